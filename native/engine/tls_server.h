// TLS for the gRPC ingress's client connections, terminated on the engine's loop thread.
// OpenSSL's SSL API over memory BIOs: the ingress reads ciphertext from the socket and feeds it
// in, takes ciphertext out and writes it; nothing here touches a socket, blocks or allocates per
// record beyond OpenSSL's own reused buffers. Inside node the SSL_*/BIO_*/X509_* calls resolve
// from node's own OpenSSL (as the EVP calls of key_schedule.cc do); the test executables link
// Debian's libssl.
//
// Behaviour of the TypeScript listener (src/security/secure-listener.ts, tls-options.ts):
//   - certificate chain and key from PEM; TLS 1.2 or 1.3 as the version floor; the cipher
//     allowlist split as node does (TLS_* names are TLS 1.3 suites, the rest the 1.2 list);
//     server cipher preference;
//   - ALPN: h2 is selected; a client that offers protocols but not h2 gets the fatal
//     no_application_protocol alert (node's behaviour); a client without ALPN proceeds;
//   - mTLS ("require"): a certificate chaining to the CA bundle is required (no certificate:
//     the handshake fails); its SHA-256 fingerprint is then checked against the allowlist by
//     the ingress.
// A peer's bytes can only fail the handshake or the connection: errors are returned, never
// asserted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace sluice::engine {

struct TlsSettings {
  std::string cert_pem;  // the server certificate, then its chain
  std::string key_pem;
  std::string ca_pem;    // client certificates must chain to these (mTLS only)
  bool tls13_only = false;  // security.tls.minVersion TLSv1.3
  std::string ciphers;      // security.tls.ciphers (OpenSSL names, ':'-separated)
  bool require_client_cert = false;
};

// One SSL_CTX, immutable once built; connections keep the context they started with, so a
// reload (new certificate) affects new handshakes only.
class TlsContext {
 public:
  // Null with *error set (a message naming what is wrong) when the material does not load.
  static std::shared_ptr<const TlsContext> Create(const TlsSettings& settings, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* ctx() const { return ctx_; }
  bool require_client_cert() const { return require_client_cert_; }

 private:
  TlsContext() = default;
  SSL_CTX* ctx_ = nullptr;
  bool require_client_cert_ = false;
};

// The verified client certificate (mTLS): what the allowlist and the audit records name.
struct PeerCertificate {
  std::string fingerprint;  // SHA-256 of the DER, lowercase hex (client-cert-allowlist.ts's form)
  std::string subject;      // subject CN ("" when none)
  std::string issuer;       // issuer CN
  std::string serial;       // serial number, uppercase hex (node's serialNumber)
};

// One server-side TLS connection (sans-IO).
class TlsServerSession {
 public:
  explicit TlsServerSession(std::shared_ptr<const TlsContext> context);
  ~TlsServerSession();
  TlsServerSession(const TlsServerSession&) = delete;
  TlsServerSession& operator=(const TlsServerSession&) = delete;

  bool ok() const { return ssl_ != nullptr; }

  enum class Step : uint8_t { kPending, kEstablished, kFailed };
  // Ciphertext from the peer (copied into the read BIO).
  void Feed(const uint8_t* data, size_t len);
  // Advances the handshake over what was fed. kFailed: error_code()/error_message() say why
  // (an alert for the peer may be waiting in the ciphertext output).
  Step Handshake();
  bool established() const { return established_; }

  // Plaintext of the records fed so far: > 0 bytes read, 0 none yet, -1 the peer closed
  // (close_notify) or a fatal record error (error_*()).
  long ReadPlain(uint8_t* buf, size_t cap);
  // Encrypts up to len bytes into the ciphertext output: bytes taken, or -1 (fatal).
  long WritePlain(const uint8_t* data, size_t len);

  size_t pending_ciphertext() const;
  // Moves up to cap bytes of ciphertext output into buf; returns the count.
  size_t TakeCiphertext(uint8_t* buf, size_t cap);

  // After kEstablished: the negotiated ALPN protocol ("" without ALPN), version name.
  std::string alpn() const;
  std::string version() const;
  // After kEstablished with a client certificate: its identity. False without one.
  bool PeerCert(PeerCertificate* out) const;

  // A node-style code (ERR_SSL_<REASON>, as node's err.code) and OpenSSL's message.
  const std::string& error_code() const { return error_code_; }
  const std::string& error_message() const { return error_message_; }

 private:
  void SetError(int ssl_error);

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  BIO* in_ = nullptr;   // owned by ssl_
  BIO* out_ = nullptr;  // owned by ssl_
  bool established_ = false;
  std::string error_code_;
  std::string error_message_;
};

}  // namespace sluice::engine
