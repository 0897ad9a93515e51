// libFuzzer harness: the ingress's TLS server session (tls_server.h) fed what a client could
// send, in chunks the input chooses: raw bytes, a real ClientHello with input bytes XORed over it,
// or a real ClientHello followed by the input. mTLS is on (the CA path and the certificate
// request run too); an established session has its plaintext read and answered. A failed
// handshake must come back as kFailed with a code, never a crash, leak or hang.
// fuzz-build: native/engine/tls_server.cc -lssl -lcrypto
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/tls_server.h"

namespace {

std::string Pem(int (*write)(BIO*, void*), void* obj) {
  BIO* b = BIO_new(BIO_s_mem());
  write(b, obj);
  char* p = nullptr;
  long n = BIO_get_mem_data(b, &p);
  std::string s(p, static_cast<size_t>(n));
  BIO_free(b);
  return s;
}

int WriteCert(BIO* b, void* x) { return PEM_write_bio_X509(b, static_cast<X509*>(x)); }
int WriteKey(BIO* b, void* k) { return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0, nullptr, nullptr); }

struct Fixture {
  std::shared_ptr<const sluice::engine::TlsContext> context;
  std::vector<uint8_t> client_hello;

  Fixture() {
    // A self-signed P-256 certificate: the server's and (as the CA) the clients'.
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    X509* cert = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), 0);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("fuzz"), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    X509_sign(cert, key, EVP_sha256());
    sluice::engine::TlsSettings s;
    s.cert_pem = Pem(WriteCert, cert);
    s.key_pem = Pem(WriteKey, key);
    s.ca_pem = s.cert_pem;
    s.ciphers = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
    s.require_client_cert = true;
    std::string error;
    context = sluice::engine::TlsContext::Create(s, &error);
    if (context == nullptr) __builtin_trap();
    // A real client's first flight (ALPN h2, SNI) to mutate.
    SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
    SSL* c = SSL_new(cctx);
    BIO* in = BIO_new(BIO_s_mem());
    BIO* out = BIO_new(BIO_s_mem());
    SSL_set_bio(c, in, out);
    SSL_set_connect_state(c);
    static const unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(c, kAlpn, sizeof kAlpn);
    SSL_set_tlsext_host_name(c, "localhost");
    SSL_do_handshake(c);
    char* p = nullptr;
    long n = BIO_get_mem_data(out, &p);
    client_hello.assign(p, p + n);
    SSL_free(c);
    SSL_CTX_free(cctx);
    X509_free(cert);
    EVP_PKEY_free(key);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Fixture fixture;
  if (size < 2) return 0;
  const size_t chunk = 1 + data[0] * 16u;
  const uint8_t mode = data[1] % 3;
  data += 2;
  size -= 2;
  std::vector<uint8_t> input;
  if (mode == 0) {
    input.assign(data, data + size);
  } else if (mode == 1) {
    input = fixture.client_hello;
    for (size_t i = 0; i < size && i < input.size(); i++) input[i] ^= data[i];
    if (size > input.size()) input.insert(input.end(), data + input.size(), data + size);
  } else {
    input = fixture.client_hello;
    input.insert(input.end(), data, data + size);
  }
  sluice::engine::TlsServerSession tls(fixture.context);
  if (!tls.ok()) return 0;
  uint8_t buf[4096];
  for (size_t off = 0; off < input.size(); off += chunk) {
    size_t n = input.size() - off < chunk ? input.size() - off : chunk;
    tls.Feed(input.data() + off, n);
    if (!tls.established()) {
      sluice::engine::TlsServerSession::Step step = tls.Handshake();
      if (step == sluice::engine::TlsServerSession::Step::kFailed) {
        if (tls.error_code().empty()) __builtin_trap();
        break;
      }
      if (step == sluice::engine::TlsServerSession::Step::kPending) {
        while (tls.TakeCiphertext(buf, sizeof buf) > 0) {
        }
        continue;
      }
      sluice::engine::PeerCertificate cert;
      tls.PeerCert(&cert);
    }
    long r = tls.ReadPlain(buf, sizeof buf);
    if (r < 0) break;
    if (r > 0 && tls.WritePlain(buf, static_cast<size_t>(r)) < 0) break;
    while (tls.TakeCiphertext(buf, sizeof buf) > 0) {
    }
  }
  return 0;
}
