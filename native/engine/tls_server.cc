#include "engine/tls_server.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cctype>
#include <vector>

namespace sluice::engine {

namespace {

// The last queued OpenSSL error as text (and the queue cleared).
std::string LastError(const char* what) {
  unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  if (e == 0) return what;
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return std::string(what) + ": " + buf;
}

// node's ALPN rule: h2 if the client offers it; a client offering only other protocols gets the
// fatal no_application_protocol alert; no ALPN extension at all does not reach this callback.
// `in` is the client's list as OpenSSL parsed it (length-prefixed names); scanned bounds-checked.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
  static const unsigned char kH2[] = {'h', '2'};
  unsigned int i = 0;
  while (i < inlen) {
    unsigned int n = in[i];
    if (n == 0 || n > inlen - i - 1) break;
    if (n == sizeof kH2 && in[i + 1] == 'h' && in[i + 2] == '2') {
      *out = kH2;
      *outlen = sizeof kH2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

// PEM certificates one after the other; `each` takes ownership. False on a PEM error (none at
// all counts as an error too).
template <typename F>
bool ForEachCert(const std::string& pem, F each) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return false;
  int count = 0;
  for (;;) {
    X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    if (x == nullptr) break;
    count++;
    if (!each(x)) {
      BIO_free(bio);
      return false;
    }
  }
  BIO_free(bio);
  // The loop ends on "no start line" once the input is used up: not an error after a cert.
  unsigned long e = ERR_peek_last_error();
  if (count > 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ERR_clear_error();
  return count > 0 && ERR_peek_error() == 0;
}

std::string Hex(const unsigned char* p, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; i++) {
    s[2 * i] = kDigits[p[i] >> 4];
    s[2 * i + 1] = kDigits[p[i] & 15];
  }
  return s;
}

std::string CommonName(X509_NAME* name) {
  if (name == nullptr) return "";
  char buf[256];
  int n = X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof buf);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

}  // namespace

std::shared_ptr<const TlsContext> TlsContext::Create(const TlsSettings& s, std::string* error) {
  ERR_clear_error();
  std::shared_ptr<TlsContext> c(new TlsContext());
  c->require_client_cert_ = s.require_client_cert;
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) {
    *error = LastError("SSL_CTX_new");
    return nullptr;
  }
  c->ctx_ = ctx;
  SSL_CTX_set_min_proto_version(ctx, s.tls13_only ? TLS1_3_VERSION : TLS1_2_VERSION);
  // Server cipher order (honorCipherOrder); no renegotiation (a CPU sink for the peer); no
  // compression.
  SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // A partial write hands back what fit; the output buffer may move between retries.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

  // The allowlist as node splits it: TLS_* are TLS 1.3 suites, the rest the TLS 1.2 list.
  std::string suites, list;
  size_t start = 0;
  while (start <= s.ciphers.size()) {
    size_t end = s.ciphers.find(':', start);
    if (end == std::string::npos) end = s.ciphers.size();
    std::string name = s.ciphers.substr(start, end - start);
    if (!name.empty()) {
      std::string& into = name.rfind("TLS_", 0) == 0 ? suites : list;
      if (!into.empty()) into += ':';
      into += name;
    }
    start = end + 1;
  }
  if (suites.empty() && list.empty()) {
    *error = "security.tls.ciphers names no cipher";
    return nullptr;
  }
  if (SSL_CTX_set_ciphersuites(ctx, suites.c_str()) != 1) {
    *error = LastError("security.tls.ciphers (TLS 1.3 suites)");
    return nullptr;
  }
  if (!list.empty() && SSL_CTX_set_cipher_list(ctx, list.c_str()) != 1) {
    *error = LastError("security.tls.ciphers (TLS 1.2 ciphers)");
    return nullptr;
  }
  if (list.empty()) SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  ERR_clear_error();

  bool first = true;
  bool certs_ok = ForEachCert(s.cert_pem, [&](X509* x) {
    bool ok;
    if (first) {
      ok = SSL_CTX_use_certificate(ctx, x) == 1;
      X509_free(x);
      first = false;
    } else {
      ok = SSL_CTX_add_extra_chain_cert(ctx, x) == 1;  // takes x
      if (!ok) X509_free(x);
    }
    return ok;
  });
  if (!certs_ok) {
    *error = LastError("security.tls.certFile: no usable PEM certificate");
    return nullptr;
  }
  BIO* kb = BIO_new_mem_buf(s.key_pem.data(), static_cast<int>(s.key_pem.size()));
  EVP_PKEY* key = kb != nullptr ? PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr) : nullptr;
  if (kb != nullptr) BIO_free(kb);
  if (key == nullptr) {
    *error = LastError("security.tls.keyFile: no usable PEM private key");
    return nullptr;
  }
  int used = SSL_CTX_use_PrivateKey(ctx, key);
  EVP_PKEY_free(key);
  if (used != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    *error = LastError("security.tls.keyFile does not match certFile");
    return nullptr;
  }
  if (s.require_client_cert) {
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    bool ca_ok = ForEachCert(s.ca_pem, [&](X509* x) {
      bool ok = X509_STORE_add_cert(store, x) == 1 && SSL_CTX_add_client_CA(ctx, x) == 1;
      X509_free(x);
      return ok;
    });
    if (!ca_ok) {
      *error = LastError("security.tls.clientCerts.caFile: no usable PEM certificate");
      return nullptr;
    }
    // requestCert + rejectUnauthorized: no certificate, or one not chaining to the CA, fails
    // the handshake.
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  static const unsigned char kSessionContext[] = "sluice-grpc";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(ctx, SelectAlpn, nullptr);
  return c;
}

TlsContext::~TlsContext() {
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

TlsServerSession::TlsServerSession(std::shared_ptr<const TlsContext> context) : context_(std::move(context)) {
  if (context_ == nullptr) return;
  ssl_ = SSL_new(context_->ctx());
  if (ssl_ == nullptr) {
    ERR_clear_error();
    return;
  }
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (in_ == nullptr || out_ == nullptr) {
    if (in_ != nullptr) BIO_free(in_);
    if (out_ != nullptr) BIO_free(out_);
    SSL_free(ssl_);
    ssl_ = nullptr;
    ERR_clear_error();
    return;
  }
  // An empty memory BIO reads as "retry", not EOF.
  BIO_set_mem_eof_return(in_, -1);
  BIO_set_mem_eof_return(out_, -1);
  SSL_set_bio(ssl_, in_, out_);
  SSL_set_accept_state(ssl_);
}

TlsServerSession::~TlsServerSession() {
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIOs too
}

void TlsServerSession::Feed(const uint8_t* data, size_t len) {
  if (ssl_ == nullptr || len == 0) return;
  BIO_write(in_, data, static_cast<int>(len));
}

void TlsServerSession::SetError(int ssl_error) {
  unsigned long e = ERR_peek_last_error();
  if (e != 0) {
    const char* reason = ERR_reason_error_string(e);
    std::string code = "ERR_SSL_";
    for (const char* p = reason != nullptr ? reason : "unknown"; *p != '\0'; p++) {
      code += *p == ' ' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(*p)));
    }
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    error_code_ = code;
    error_message_ = buf;
  } else {
    error_code_ = "ERR_SSL_PROTOCOL";
    error_message_ = "TLS error " + std::to_string(ssl_error);
  }
  ERR_clear_error();
}

TlsServerSession::Step TlsServerSession::Handshake() {
  if (ssl_ == nullptr) {
    error_code_ = "ERR_SSL_INTERNAL";
    error_message_ = "TLS session could not be created";
    return Step::kFailed;
  }
  if (established_) return Step::kEstablished;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    established_ = true;
    return Step::kEstablished;
  }
  int err = SSL_get_error(ssl_, rc);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Step::kPending;
  SetError(err);
  return Step::kFailed;
}

long TlsServerSession::ReadPlain(uint8_t* buf, size_t cap) {
  if (ssl_ == nullptr || !established_) return 0;
  ERR_clear_error();
  int n = SSL_read(ssl_, buf, static_cast<int>(cap > 0x40000000 ? 0x40000000 : cap));
  if (n > 0) return n;
  int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  if (err == SSL_ERROR_ZERO_RETURN) {
    error_code_ = "ECONNRESET";
    error_message_ = "peer sent close_notify";
    ERR_clear_error();
    return -1;
  }
  SetError(err);
  return -1;
}

long TlsServerSession::WritePlain(const uint8_t* data, size_t len) {
  if (ssl_ == nullptr || !established_) return -1;
  if (len == 0) return 0;
  ERR_clear_error();
  int n = SSL_write(ssl_, data, static_cast<int>(len > 0x40000000 ? 0x40000000 : len));
  if (n > 0) return n;
  int err = SSL_get_error(ssl_, n);
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return 0;
  SetError(err);
  return -1;
}

size_t TlsServerSession::pending_ciphertext() const { return out_ != nullptr ? BIO_ctrl_pending(out_) : 0; }

size_t TlsServerSession::TakeCiphertext(uint8_t* buf, size_t cap) {
  if (out_ == nullptr || cap == 0) return 0;
  int n = BIO_read(out_, buf, static_cast<int>(cap > 0x40000000 ? 0x40000000 : cap));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

std::string TlsServerSession::alpn() const {
  if (ssl_ == nullptr) return "";
  const unsigned char* p = nullptr;
  unsigned int n = 0;
  SSL_get0_alpn_selected(ssl_, &p, &n);
  return p != nullptr ? std::string(reinterpret_cast<const char*>(p), n) : std::string();
}

std::string TlsServerSession::version() const { return ssl_ != nullptr ? SSL_get_version(ssl_) : ""; }

bool TlsServerSession::PeerCert(PeerCertificate* out) const {
  if (ssl_ == nullptr || !established_) return false;
  X509* cert = SSL_get1_peer_certificate(ssl_);
  if (cert == nullptr) return false;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  bool ok = X509_digest(cert, EVP_sha256(), md, &len) == 1 && len == 32;
  if (ok) {
    out->fingerprint = Hex(md, len);
    out->subject = CommonName(X509_get_subject_name(cert));
    out->issuer = CommonName(X509_get_issuer_name(cert));
    out->serial.clear();
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get_serialNumber(cert), nullptr);
    if (bn != nullptr) {
      char* hex = BN_bn2hex(bn);
      if (hex != nullptr) {
        out->serial = hex;
        OPENSSL_free(hex);
      }
      BN_free(bn);
    }
  }
  X509_free(cert);
  ERR_clear_error();
  return ok;
}

}  // namespace sluice::engine
