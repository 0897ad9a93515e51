// The link handshake as a state machine over bytes (src/transport/handshake.ts,
// src/wire/handshake-record.ts, src/crypto/key-schedule.ts; docs/wire.md §1-2).
#include <cstring>
#include <string>

#include "engine/inference_link.h"
#include "engine/key_schedule.h"

namespace sluice {
namespace engine {

namespace {
constexpr size_t kRecordHeader = 8;
constexpr size_t kMaxBody = 512;
constexpr uint8_t kHello = 1, kProof = 2, kReject = 3;
constexpr uint8_t kRejectAuth = 1, kRejectSegment = 2, kRejectVersion = 3, kRejectProtocol = 4;
constexpr uint8_t kMinVersion = 1, kMaxVersion = 1;
constexpr size_t kMaxBuffered = 4 * 1024 * 1024;

void AppendRecord(uint8_t type, const uint8_t* body, size_t len, std::vector<uint8_t>* out) {
  const uint8_t head[kRecordHeader] = {'S', 'L', 'H', 'S', 1, type, static_cast<uint8_t>(len >> 8), static_cast<uint8_t>(len)};
  out->insert(out->end(), head, head + kRecordHeader);
  out->insert(out->end(), body, body + len);
}

std::vector<uint8_t> HelloRecord(Role role, uint8_t selected, const uint8_t nonce[32], const std::string& segment) {
  std::vector<uint8_t> body;
  body.push_back(static_cast<uint8_t>(role));
  body.push_back(kMinVersion);
  body.push_back(kMaxVersion);
  body.push_back(selected);
  body.insert(body.end(), nonce, nonce + 32);
  body.push_back(static_cast<uint8_t>(segment.size()));
  body.insert(body.end(), segment.begin(), segment.end());
  std::vector<uint8_t> rec;
  AppendRecord(kHello, body.data(), body.size(), &rec);
  return rec;
}

const char* RejectToCode(uint8_t c) {
  switch (c) {
    case 1: return codes::kHandshakeAuth;
    case 2: return codes::kHandshakeSegment;
    case 3: return codes::kHandshakeVersion;
    case 5: return codes::kHandshakeBusy;
    default: return codes::kHandshakeProtocol;
  }
}

struct Record {
  uint8_t type;
  const uint8_t* raw;
  size_t raw_len;
  const uint8_t* body;
  size_t body_len;
};

// 1: a record; 0: need more bytes; -1: not a valid record (message in *why).
int ReadRecord(const std::vector<uint8_t>& buf, Record* r, std::string* why) {
  static const uint8_t kMagic[4] = {'S', 'L', 'H', 'S'};
  const size_t m = std::min<size_t>(4, buf.size());
  for (size_t i = 0; i < m; i++) {
    if (buf[i] != kMagic[i]) {
      *why = "not a sluice handshake (wrong protocol or port?)";
      return -1;
    }
  }
  if (buf.size() < kRecordHeader) return 0;
  if (buf[4] != 1) {
    *why = "handshake format " + std::to_string(buf[4]) + " not supported (this node speaks 1)";
    return -1;
  }
  const uint8_t type = buf[5];
  if (type != kHello && type != kProof && type != kReject) {
    *why = "handshake: unknown record type " + std::to_string(type);
    return -1;
  }
  const size_t len = static_cast<size_t>(buf[6]) << 8 | buf[7];
  if (len > kMaxBody) {
    *why = "handshake record body of " + std::to_string(len) + " bytes exceeds 512";
    return -1;
  }
  if (buf.size() < kRecordHeader + len) return 0;
  *r = Record{type, buf.data(), kRecordHeader + len, buf.data() + kRecordHeader, len};
  return 1;
}

struct Hello {
  uint8_t role, min_version, max_version, selected;
  const uint8_t* nonce;
  std::string segment;
};

bool DecodeHello(const Record& r, Hello* h, std::string* why) {
  const size_t fixed = 5 + 32;
  const uint8_t* b = r.body;
  if (r.body_len < fixed + 1) {
    *why = "handshake: hello of " + std::to_string(r.body_len) + " bytes is too short";
    return false;
  }
  if (b[0] != 1 && b[0] != 2) {
    *why = "handshake: unknown role " + std::to_string(b[0]);
    return false;
  }
  if (b[1] == 0 || b[1] > b[2]) {
    *why = "handshake: version range " + std::to_string(b[1]) + ".." + std::to_string(b[2]) + " is empty";
    return false;
  }
  const size_t seg_len = b[4 + 32];
  if (seg_len < 1 || seg_len > 32 || r.body_len != fixed + seg_len) {
    *why = "handshake: segment name length does not match the record";
    return false;
  }
  for (size_t i = 0; i < seg_len; i++) {
    if (b[fixed + i] < 0x21 || b[fixed + i] > 0x7e) {
      *why = "handshake: segment name is not printable ASCII";
      return false;
    }
  }
  h->role = b[0];
  h->min_version = b[1];
  h->max_version = b[2];
  h->selected = b[3];
  h->nonce = b + 4;
  h->segment.assign(reinterpret_cast<const char*>(b + fixed), seg_len);
  return true;
}

bool Label(const char* label, const std::string& segment, const uint8_t t[32], uint8_t out[32], const uint8_t* key,
           const uint8_t salt[64]) {
  std::string info = std::string("sluice/1 ") + label + " " + segment;
  info.append(reinterpret_cast<const char*>(t), 32);
  return Hkdf32(key, 32, salt, 64, reinterpret_cast<const uint8_t*>(info.data()), info.size(), out);
}

bool Proof(const uint8_t auth_key[32], const char* role, const uint8_t t[32], uint8_t out[32]) {
  std::string msg = std::string("sluice/1 ") + role + " proof";
  msg.append(reinterpret_cast<const char*>(t), 32);
  return HmacSha256(auth_key, 32, reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), out);
}
}  // namespace

Handshake::Handshake(Role role, std::string segment, const uint8_t key[32]) : role_(role), segment_(std::move(segment)) {
  std::memcpy(key_, key, 32);
  std::memset(auth_key_, 0, sizeof auth_key_);
}

Handshake::~Handshake() {
  Wipe(key_, sizeof key_);
  Wipe(auth_key_, sizeof auth_key_);
  Wipe(&secrets_, sizeof secrets_);
}

void Handshake::Start(std::vector<uint8_t>* out) {
  if (!RandomBytes(nonce_, sizeof nonce_)) {
    Fail(codes::kInternal, "RAND_bytes failed");
    return;
  }
  if (role_ == Role::kInitiator) {
    my_hello_ = HelloRecord(Role::kInitiator, 0, nonce_, segment_);
    out->insert(out->end(), my_hello_.begin(), my_hello_.end());
  }
}

void Handshake::Fail(const char* code, std::string message) {
  if (state_ != State::kInProgress) return;
  state_ = State::kFailed;
  status_ = Status::Error(code, std::move(message));
}

Handshake::State Handshake::Reject(uint8_t reject_code, const char* code, std::string reason, std::vector<uint8_t>* out) {
  std::string text = reason.substr(0, 200);
  std::vector<uint8_t> body;
  body.push_back(reject_code);
  body.insert(body.end(), text.begin(), text.end());
  AppendRecord(kReject, body.data(), body.size(), out);
  Fail(code, std::move(reason));
  return state_;
}

Handshake::State Handshake::Feed(const uint8_t* data, size_t size, std::vector<uint8_t>* out) {
  if (state_ != State::kInProgress) {
    // After success, later bytes are the first frames: keep them for the link.
    if (state_ == State::kDone) buf_.insert(buf_.end(), data, data + size);
    return state_;
  }
  if (buf_.size() + size > kMaxBuffered) {
    Fail(codes::kHandshakeProtocol, "peer sent more than a handshake before finishing it");
    return state_;
  }
  buf_.insert(buf_.end(), data, data + size);
  return Step(out);
}

Handshake::State Handshake::Step(std::vector<uint8_t>* out) {
  while (state_ == State::kInProgress) {
    Record r;
    std::string why;
    const int got = ReadRecord(buf_, &r, &why);
    if (got == 0) return state_;
    if (got < 0) return Reject(kRejectProtocol, codes::kHandshakeProtocol, why, out);
    std::vector<uint8_t> raw(r.raw, r.raw + r.raw_len);
    std::vector<uint8_t> body(r.body, r.body + r.body_len);
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<long>(r.raw_len));
    if (r.type == kReject) {
      if (body.empty() || body.size() > 201) return Reject(kRejectProtocol, codes::kHandshakeProtocol, "handshake: reject of " + std::to_string(body.size()) + " bytes", out);
      const char* code = RejectToCode(body[0]);
      std::string reason(body.begin() + 1, body.end());
      if (code == codes::kHandshakeProtocol) return Reject(kRejectProtocol, code, "peer rejected the handshake: " + reason, out);
      Fail(code, "peer rejected the handshake: " + reason);
      return state_;
    }
    const Record rec{r.type, raw.data(), raw.size(), body.data(), body.size()};
    if (step_ == 0) {
      if (rec.type != kHello) {
        return Reject(kRejectProtocol, codes::kHandshakeProtocol,
                      role_ == Role::kInitiator ? "expected HELLO from the acceptor" : "expected HELLO from the initiator", out);
      }
      Hello hello;
      if (!DecodeHello(rec, &hello, &why)) return Reject(kRejectProtocol, codes::kHandshakeProtocol, why, out);
      uint8_t version;
      if (role_ == Role::kInitiator) {
        if (hello.role != 2) return Reject(kRejectProtocol, codes::kHandshakeProtocol, "peer answered as an initiator", out);
        if (hello.segment != segment_) {
          return Reject(kRejectSegment, codes::kHandshakeSegment, "peer serves segment \"" + hello.segment + "\", not \"" + segment_ + "\"", out);
        }
        version = hello.selected;
        if (version < kMinVersion || version > kMaxVersion || version < hello.min_version || version > hello.max_version) {
          return Reject(kRejectVersion, codes::kHandshakeVersion,
                        "peer selected wire version " + std::to_string(version) + ", this node speaks 1..1", out);
        }
        std::memcpy(peer_nonce_, hello.nonce, 32);
        std::vector<uint8_t> t = my_hello_;
        t.insert(t.end(), raw.begin(), raw.end());
        Sha256(t.data(), t.size(), transcript_);
      } else {
        if (hello.role != 1) return Reject(kRejectProtocol, codes::kHandshakeProtocol, "peer opened as an acceptor", out);
        if (hello.segment != segment_) {
          return Reject(kRejectSegment, codes::kHandshakeSegment,
                        "this listener serves segment \"" + segment_ + "\", not \"" + hello.segment + "\"", out);
        }
        version = std::min(hello.max_version, kMaxVersion);
        if (version < std::max(hello.min_version, kMinVersion)) {
          return Reject(kRejectVersion, codes::kHandshakeVersion,
                        "no common wire version (peer " + std::to_string(hello.min_version) + ".." + std::to_string(hello.max_version) +
                            ", this node 1..1)",
                        out);
        }
        std::memcpy(peer_nonce_, hello.nonce, 32);
        my_hello_ = HelloRecord(Role::kAcceptor, version, nonce_, segment_);
        out->insert(out->end(), my_hello_.begin(), my_hello_.end());
        std::vector<uint8_t> t = raw;
        t.insert(t.end(), my_hello_.begin(), my_hello_.end());
        Sha256(t.data(), t.size(), transcript_);
      }
      uint8_t salt[64];
      const uint8_t* ni = role_ == Role::kInitiator ? nonce_ : peer_nonce_;
      const uint8_t* na = role_ == Role::kInitiator ? peer_nonce_ : nonce_;
      std::memcpy(salt, ni, 32);
      std::memcpy(salt + 32, na, 32);
      uint8_t i2a[32], a2i[32];
      if (!Label("handshake", segment_, transcript_, auth_key_, key_, salt) || !Label("i2a", segment_, transcript_, i2a, key_, salt) ||
          !Label("a2i", segment_, transcript_, a2i, key_, salt)) {
        Fail(codes::kInternal, "HKDF failed");
        return state_;
      }
      if (role_ == Role::kInitiator) {
        std::memcpy(secrets_.send, i2a, 32);
        std::memcpy(secrets_.receive, a2i, 32);
        secrets_.send_direction = 1;
        secrets_.receive_direction = 2;
        uint8_t proof[32];
        Proof(auth_key_, "initiator", transcript_, proof);
        AppendRecord(kProof, proof, 32, out);
      } else {
        std::memcpy(secrets_.send, a2i, 32);
        std::memcpy(secrets_.receive, i2a, 32);
        secrets_.send_direction = 2;
        secrets_.receive_direction = 1;
      }
      Wipe(i2a, 32);
      Wipe(a2i, 32);
      std::memcpy(secrets_.link_id, transcript_, 8);
      step_ = 1;
      continue;
    }
    // step 1: the peer's PROOF
    if (rec.type != kProof) {
      return Reject(kRejectProtocol, codes::kHandshakeProtocol,
                    role_ == Role::kInitiator ? "expected PROOF from the acceptor" : "expected PROOF from the initiator", out);
    }
    if (rec.body_len != 32) {
      return Reject(kRejectProtocol, codes::kHandshakeProtocol, "handshake: proof of " + std::to_string(rec.body_len) + " bytes (expected 32)", out);
    }
    uint8_t expected[32];
    Proof(auth_key_, role_ == Role::kInitiator ? "acceptor" : "initiator", transcript_, expected);
    if (!ConstantTimeEqual(expected, rec.body, 32)) {
      Wipe(auth_key_, 32);
      return Reject(kRejectAuth, codes::kHandshakeAuth,
                    role_ == Role::kInitiator ? "peer does not hold the key of segment \"" + segment_ + "\""
                                              : "segment key mismatch on segment \"" + segment_ + "\"",
                    out);
    }
    if (role_ == Role::kAcceptor) {
      uint8_t proof[32];
      Proof(auth_key_, "acceptor", transcript_, proof);
      AppendRecord(kProof, proof, 32, out);
    }
    Wipe(auth_key_, 32);
    state_ = State::kDone;
  }
  return state_;
}

}  // namespace engine
}  // namespace sluice
