#include "engine/grpc_server_session.h"

#include <nghttp2/nghttp2.h>

#include <array>
#include <cstring>

namespace sluice::engine {

struct GrpcServerSession::Stream {
  int32_t id = 0;
  size_t live_index = 0;
  CallKind kind = CallKind::kUnary;
  bool head_done = false;
  bool headers_too_big = false;
  bool responded = false;   // response HEADERS submitted
  bool finishing = false;   // end the response once `out` is written
  bool done = false;        // final status submitted, or reset: the call is over for the handler
  bool remote_ended = false;
  bool paused = false;
  bool deferred = false;    // the data provider is waiting for bytes
  bool reset_after_headers = false;  // trailers-only answer to a request still arriving
  size_t header_bytes = 0;
  std::string arena;
  std::vector<std::array<uint32_t, 4>> field_offsets;
  std::vector<HeaderField> fields;
  RequestHead head;
  GrpcDeframer deframer;
  std::vector<uint8_t> unary;
  uint32_t messages = 0;
  std::vector<uint8_t> out;
  size_t out_off = 0;
  // Trailers to send after the last DATA: name/value pairs in an arena.
  std::string trailer_arena;
  std::vector<std::array<uint32_t, 4>> trailer_offsets;
  GrpcEncoding response_encoding = GrpcEncoding::kIdentity;
  double deadline_at = -1;
  size_t unconsumed = 0;
  size_t held_in = 0;

  void Clear() {
    id = 0;
    kind = CallKind::kUnary;
    head_done = headers_too_big = responded = finishing = done = remote_ended = paused = deferred = reset_after_headers = false;
    header_bytes = 0;
    arena.clear();
    field_offsets.clear();
    fields.clear();
    head = RequestHead{};
    unary.clear();
    messages = 0;
    out.clear();
    out_off = 0;
    trailer_arena.clear();
    trailer_offsets.clear();
    response_encoding = GrpcEncoding::kIdentity;
    deadline_at = -1;
    unconsumed = 0;
    held_in = 0;
  }

  size_t out_pending() const { return out.size() - out_off; }

  void AddTrailer(std::string_view name, std::string_view value) {
    uint32_t n = static_cast<uint32_t>(trailer_arena.size());
    trailer_arena.append(name);
    uint32_t v = static_cast<uint32_t>(trailer_arena.size());
    trailer_arena.append(value);
    trailer_offsets.push_back({n, static_cast<uint32_t>(name.size()), v, static_cast<uint32_t>(value.size())});
  }
};

namespace {

constexpr size_t kKeepBufferBytes = 1u << 20;

nghttp2_nv Nv(std::string_view name, std::string_view value) {
  return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())),
                    name.size(), value.size(), NGHTTP2_NV_FLAG_NONE};
}

bool StartsWith(std::string_view s, std::string_view p) { return s.size() >= p.size() && s.compare(0, p.size(), p) == 0; }

std::string JsonQuote(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace

double ParseGrpcTimeoutMs(std::string_view v) {
  if (v.size() < 2 || v.size() > 9) return -1;
  double n = 0;
  for (size_t i = 0; i + 1 < v.size(); i++) {
    char c = v[i];
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  switch (v.back()) {
    case 'H':
      return n * 3'600'000;
    case 'M':
      return n * 60'000;
    case 'S':
      return n * 1000;
    case 'm':
      return n;
    case 'u':
      return n * 1e-3;
    case 'n':
      return n * 1e-6;
    default:
      return -1;
  }
}

void AppendGrpcMessage(std::string* out, std::string_view message) {
  static const char kHex[] = "0123456789ABCDEF";
  for (unsigned char c : message) {
    if (c < 0x20 || c > 0x7e || c == '%') {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

// nghttp2's C callbacks, forwarding to the session.
struct SessionCallbacks {
  static GrpcServerSession* Self(void* user) { return static_cast<GrpcServerSession*>(user); }
  static GrpcServerSession::Stream* StreamOf(nghttp2_session* ng, int32_t id) {
    return static_cast<GrpcServerSession::Stream*>(nghttp2_session_get_stream_user_data(ng, id));
  }

  static int OnBeginHeaders(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
    GrpcServerSession* self = Self(user);
    GrpcServerSession::Stream* s = self->Acquire(frame->hd.stream_id);
    if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(ng, frame->hd.stream_id, s);
    return 0;
  }

  static int OnHeader(nghttp2_session* ng, const nghttp2_frame* frame, const uint8_t* name, size_t namelen, const uint8_t* value,
                      size_t valuelen, uint8_t, void* user) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    GrpcServerSession::Stream* s = StreamOf(ng, frame->hd.stream_id);
    if (s == nullptr || s->head_done) return 0;  // client trailers: not part of gRPC requests
    s->header_bytes += namelen + valuelen + 32;  // RFC 9113 6.5.2 accounting
    if (s->header_bytes > Self(user)->limits_.max_header_list_bytes) {
      s->headers_too_big = true;
      return 0;
    }
    uint32_t n = static_cast<uint32_t>(s->arena.size());
    s->arena.append(reinterpret_cast<const char*>(name), namelen);
    uint32_t v = static_cast<uint32_t>(s->arena.size());
    s->arena.append(reinterpret_cast<const char*>(value), valuelen);
    s->field_offsets.push_back({n, static_cast<uint32_t>(namelen), v, static_cast<uint32_t>(valuelen)});
    return 0;
  }

  static int OnFrameRecv(nghttp2_session* ng, const nghttp2_frame* frame, void* user) {
    GrpcServerSession* self = Self(user);
    switch (frame->hd.type) {
      case NGHTTP2_SETTINGS:
        self->handshake_done_ = true;
        break;
      case NGHTTP2_HEADERS: {
        GrpcServerSession::Stream* s = StreamOf(ng, frame->hd.stream_id);
        if (s == nullptr) break;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) self->OnHeadersDone(s);
        if ((frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
          s = StreamOf(ng, frame->hd.stream_id);  // still ours unless OnHeadersDone reset it (it stays until closed)
          if (s != nullptr) self->OnRemoteEnd(s);
        }
        break;
      }
      case NGHTTP2_DATA: {
        bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
        if (frame->hd.length == 0 && !end) {
          if (++self->empty_frames_ > self->limits_.max_empty_data_frames) {
            self->counters_.flood_closes++;
            self->Terminate(NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
          }
        } else {
          self->empty_frames_ = 0;
        }
        if (end) {
          GrpcServerSession::Stream* s = StreamOf(ng, frame->hd.stream_id);
          if (s != nullptr) self->OnRemoteEnd(s);
        }
        break;
      }
      case NGHTTP2_RST_STREAM:
        self->NoteReset();
        break;
      default:
        break;
    }
    return 0;
  }

  static int OnDataChunk(nghttp2_session* ng, uint8_t, int32_t id, const uint8_t* data, size_t len, void* user) {
    GrpcServerSession* self = Self(user);
    self->ConsumeConnection(len);
    GrpcServerSession::Stream* s = StreamOf(ng, id);
    if (s == nullptr || s->done || !s->head_done) {
      nghttp2_session_consume_stream(ng, id, len);
      return 0;
    }
    if (s->kind == CallKind::kRelay) {
      self->handler_->OnRelayData(id, data, len, false);
    } else {
      self->OnData(s, data, len);
    }
    if (s->paused && !s->done) {
      s->unconsumed += len;
    } else {
      nghttp2_session_consume_stream(ng, id, len);
    }
    return 0;
  }

  static int OnStreamClose(nghttp2_session* ng, int32_t id, uint32_t, void* user) {
    GrpcServerSession* self = Self(user);
    GrpcServerSession::Stream* s = StreamOf(ng, id);
    if (s == nullptr) return 0;
    nghttp2_session_set_stream_user_data(ng, id, nullptr);
    if (!s->done && s->head_done && s->kind != CallKind::kAnswered) {
      s->done = true;
      self->counters_.client_resets++;
      self->handler_->OnCancel(id);
    }
    self->Release(s);
    return 0;
  }

  // A trailers-only answer to a request still arriving: once it is on the wire, RST_STREAM
  // (NO_ERROR) tells the client to stop sending (submitting both at once would drop the HEADERS).
  static int OnFrameSend(nghttp2_session* ng, const nghttp2_frame* frame, void*) {
    if (frame->hd.type != NGHTTP2_HEADERS) return 0;
    GrpcServerSession::Stream* s = StreamOf(ng, frame->hd.stream_id);
    if (s != nullptr && s->reset_after_headers) {
      s->reset_after_headers = false;
      nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    return 0;
  }

  static ssize_t ReadData(nghttp2_session* ng, int32_t id, uint8_t* buf, size_t length, uint32_t* flags, nghttp2_data_source* source,
                          void* user) {
    GrpcServerSession* self = Self(user);
    auto* s = static_cast<GrpcServerSession::Stream*>(source->ptr);
    size_t avail = s->out_pending();
    size_t n = avail < length ? avail : length;
    if (n > 0) {
      std::memcpy(buf, s->out.data() + s->out_off, n);
      s->out_off += n;
      self->held_bytes_ -= n;
      if (s->out_off == s->out.size()) {
        s->out.clear();
        s->out_off = 0;
      }
      self->ReleaseConnectionWindow();
    }
    if (s->out_pending() == 0) {
      if (s->finishing) {
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!s->trailer_offsets.empty()) {
          *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
          std::vector<nghttp2_nv>& nva = self->nva_;  // nghttp2 copies it: reused, no allocation per call
          nva.clear();
          for (const auto& o : s->trailer_offsets) {
            nva.push_back(Nv(std::string_view(s->trailer_arena).substr(o[0], o[1]), std::string_view(s->trailer_arena).substr(o[2], o[3])));
          }
          if (nghttp2_submit_trailer(ng, id, nva.data(), nva.size()) != 0) {
            *flags &= ~NGHTTP2_DATA_FLAG_NO_END_STREAM;
          }
        }
        return static_cast<ssize_t>(n);
      }
      if (n == 0) {
        s->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
      }
    }
    return static_cast<ssize_t>(n);
  }
};

GrpcServerSession::GrpcServerSession(Handler* handler, const GrpcSessionLimits& limits, uint64_t now_ms)
    : handler_(handler), limits_(limits), now_ms_(now_ms), created_ms_(now_ms), last_activity_ms_(now_ms) {
  nghttp2_session_callbacks* cbs = nullptr;
  if (nghttp2_session_callbacks_new(&cbs) != 0) return;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, SessionCallbacks::OnBeginHeaders);
  nghttp2_session_callbacks_set_on_header_callback(cbs, SessionCallbacks::OnHeader);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, SessionCallbacks::OnFrameRecv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, SessionCallbacks::OnDataChunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, SessionCallbacks::OnStreamClose);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, SessionCallbacks::OnFrameSend);
  nghttp2_option* opt = nullptr;
  if (nghttp2_option_new(&opt) != 0) {
    nghttp2_session_callbacks_del(cbs);
    return;
  }
  // Windows reopen when the engine has taken the bytes, not when nghttp2 has read them.
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_outbound_ack(opt, 1000);
  nghttp2_option_set_max_settings(opt, 32);
  nghttp2_option_set_max_continuations(opt, 8);
  // Rapid reset (CVE-2023-44487): a token bucket of stream resets in nghttp2, and NoteReset here.
  nghttp2_option_set_stream_reset_rate_limit(opt, limits_.max_resets_per_second, limits_.max_resets_per_second / 2 + 1);
  int rv = nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    session_ = nullptr;
    return;
  }
  nghttp2_settings_entry iv[] = {
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_concurrent_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, limits_.initial_stream_window},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, limits_.max_header_list_bytes},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]);
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, static_cast<int32_t>(limits_.connection_window));
}

GrpcServerSession::~GrpcServerSession() {
  // nghttp2_session_del does not report stream closes: streams still open are freed here.
  if (session_ != nullptr) nghttp2_session_del(session_);
  for (Stream* s : live_) delete s;
}

GrpcServerSession::Stream* GrpcServerSession::Find(int32_t id) const {
  if (session_ == nullptr) return nullptr;
  return static_cast<Stream*>(nghttp2_session_get_stream_user_data(session_, id));
}

GrpcServerSession::Stream* GrpcServerSession::Acquire(int32_t id) {
  Stream* s = nullptr;
  if (!pool_.empty()) {
    s = pool_.back().release();
    pool_.pop_back();
  } else {
    s = new (std::nothrow) Stream();
    if (s == nullptr) return nullptr;
  }
  s->id = id;
  s->deframer.Reset(limits_.max_request_message_bytes);
  s->live_index = live_.size();
  live_.push_back(s);
  open_streams_++;
  return s;
}

void GrpcServerSession::Release(Stream* s) {
  held_bytes_ -= s->held_in + s->out_pending();
  Stream* last = live_.back();
  live_[s->live_index] = last;
  last->live_index = s->live_index;
  live_.pop_back();
  open_streams_--;
  s->Clear();
  if (s->unary.capacity() > kKeepBufferBytes) std::vector<uint8_t>().swap(s->unary);
  if (s->out.capacity() > kKeepBufferBytes) std::vector<uint8_t>().swap(s->out);
  s->deframer.Shrink(kKeepBufferBytes);
  if (pool_.size() < 64) {
    pool_.emplace_back(s);
  } else {
    delete s;
  }
  ReleaseConnectionWindow();
}

void GrpcServerSession::OnHeadersDone(Stream* s) {
  s->head_done = true;
  counters_.calls++;
  s->fields.reserve(s->field_offsets.size());
  RequestHead& h = s->head;
  for (const auto& o : s->field_offsets) {
    HeaderField f{std::string_view(s->arena).substr(o[0], o[1]), std::string_view(s->arena).substr(o[2], o[3])};
    s->fields.push_back(f);
    std::string_view n = f.name;
    if (n == ":method") h.method = f.value;
    else if (n == ":path") h.path = f.value;
    else if (n == ":scheme") h.scheme = f.value;
    else if (n == ":authority") h.authority = f.value;
    else if (n == "content-type") h.content_type = f.value;
    else if (n == "te") h.te = f.value;
    else if (n == "grpc-timeout") h.grpc_timeout = f.value;
    else if (n == "grpc-encoding") h.encoding = ParseGrpcEncoding(f.value);
    else if (n == "grpc-accept-encoding") h.accept_encodings = ParseAcceptEncoding(f.value);
    else if (n == "x-request-id") {
      if (h.x_request_id.empty()) h.x_request_id = f.value;
    } else if (n == "traceparent") {
      if (h.traceparent.empty()) h.traceparent = f.value;
    } else if (n == "authorization") {
      if (h.authorization_count++ == 0) h.authorization = f.value;
    } else if (n == "x-api-key") {
      if (h.api_key_count++ == 0) h.api_key = f.value;
    }
  }
  h.fields = s->fields.data();
  h.field_count = s->fields.size();
  if (s->headers_too_big) {
    s->kind = CallKind::kAnswered;
    Finish(s->id, GrpcStatus::kResourceExhausted,
           "request headers larger than " + std::to_string(limits_.max_header_list_bytes) + " bytes");
    return;
  }
  if (!StartsWith(h.content_type, "application/grpc")) {
    // gRPC over HTTP/2: a non-gRPC content-type is an HTTP-level error (415).
    s->kind = CallKind::kAnswered;
    std::string body = "content-type must be application/grpc, not ";
    body.append(h.content_type.empty() ? std::string_view("none") : h.content_type);
    body += '\n';
    RespondHttp(s->id, 415, body);
    return;
  }
  CallKind kind = handler_->Route(s->id, h);
  s->kind = kind;
  if (kind == CallKind::kRelay || kind == CallKind::kAnswered) return;
  if (h.method != "POST") {
    s->kind = CallKind::kAnswered;
    Finish(s->id, GrpcStatus::kUnimplemented, "gRPC calls use POST, not " + std::string(h.method));
    return;
  }
  if (!h.grpc_timeout.empty()) {
    h.timeout_ms = ParseGrpcTimeoutMs(h.grpc_timeout);
    if (h.timeout_ms < 0) {
      s->kind = CallKind::kAnswered;
      Finish(s->id, GrpcStatus::kInvalidArgument, "malformed grpc-timeout " + JsonQuote(h.grpc_timeout));
      return;
    }
    s->deadline_at = static_cast<double>(now_ms_) + h.timeout_ms;
  }
  if (h.encoding == GrpcEncoding::kUnsupported) {
    s->kind = CallKind::kAnswered;
    HeaderField accept{"grpc-accept-encoding", kAcceptEncodingValue};
    std::string_view named;
    for (const HeaderField& f : s->fields) {
      if (f.name == "grpc-encoding") named = f.value;
    }
    Finish(s->id, GrpcStatus::kUnimplemented, "grpc-encoding " + JsonQuote(named) + " is not supported (use identity, deflate or gzip)",
           &accept, 1);
    return;
  }
  s->response_encoding = PickResponseEncoding(h.encoding, h.accept_encodings);
  handler_->OnCall(s->id, h);
}

namespace {
struct DeliverSink final : GrpcDeframer::Sink {
  GrpcServerSession* self;
  GrpcServerSession::Stream* s;
  bool (*deliver)(GrpcServerSession*, GrpcServerSession::Stream*, bool, const uint8_t*, size_t);
  bool OnMessage(bool compressed, const uint8_t* data, size_t len) override { return deliver(self, s, compressed, data, len); }
};
}  // namespace

void GrpcServerSession::OnData(Stream* s, const uint8_t* data, size_t len) {
  DeliverSink sink;
  sink.self = this;
  sink.s = s;
  sink.deliver = [](GrpcServerSession* self, Stream* st, bool compressed, const uint8_t* d, size_t n) {
    self->DeliverMessage(st, compressed, d, n);
    return !st->done;
  };
  CallError e = s->deframer.Push(data, len, s->head.encoding != GrpcEncoding::kIdentity, sink);
  if (!e.ok()) {
    FailCall(s, e);
    return;
  }
  AccountIn(s, s->done ? 0 : s->deframer.buffered() + s->unary.size());
}

void GrpcServerSession::DeliverMessage(Stream* s, bool compressed, const uint8_t* data, size_t len) {
  if (s->done) return;
  if (compressed) {
    CallError e = codec_.Inflate(s->head.encoding, data, len, limits_.max_request_message_bytes);
    if (!e.ok()) {
      FailCall(s, e);
      return;
    }
    data = codec_.data();
    len = codec_.size();
  }
  if (s->kind == CallKind::kUnary) {
    if (++s->messages > 1) {
      FailCall(s, CallError::Of(GrpcStatus::kInvalidArgument, err::kBadRequest, "a unary call carries exactly one request message; got more"));
      return;
    }
    s->unary.assign(data, data + len);
    return;
  }
  s->messages++;
  handler_->OnMessage(s->id, data, len);
}

void GrpcServerSession::FailCall(Stream* s, const CallError& e) {
  AccountIn(s, 0);
  Finish(s->id, e.status, e.message);
  // The handler learns of it as a cancel: its call is over.
  if (s->kind != CallKind::kAnswered) handler_->OnCancel(s->id);
}

void GrpcServerSession::OnRemoteEnd(Stream* s) {
  s->remote_ended = true;
  if (s->done || !s->head_done) return;
  if (s->kind == CallKind::kRelay) {
    handler_->OnRelayData(s->id, nullptr, 0, true);
    return;
  }
  if (s->kind == CallKind::kAnswered) return;
  if (!s->deframer.at_boundary()) {
    FailCall(s, CallError::Of(GrpcStatus::kInvalidArgument, err::kBadRequest, "the request stream ended inside a message"));
    return;
  }
  if (s->kind == CallKind::kUnary) {
    if (s->messages == 0) {
      FailCall(s, CallError::Of(GrpcStatus::kInvalidArgument, err::kBadRequest, "a unary call carries exactly one request message; got none"));
      return;
    }
    handler_->OnMessage(s->id, s->unary.data(), s->unary.size());
    if (s->done) return;
  }
  handler_->OnHalfClose(s->id);
}

void GrpcServerSession::AccountIn(Stream* s, size_t held_now) {
  held_bytes_ = held_bytes_ - s->held_in + held_now;
  s->held_in = held_now;
  ReleaseConnectionWindow();
}

void GrpcServerSession::ConsumeConnection(size_t n) {
  if (held_bytes_ <= limits_.max_buffered_bytes && pending_conn_consume_ == 0) {
    nghttp2_session_consume_connection(session_, n);
  } else {
    pending_conn_consume_ += n;
  }
}

void GrpcServerSession::ReleaseConnectionWindow() {
  if (pending_conn_consume_ > 0 && held_bytes_ <= limits_.max_buffered_bytes && session_ != nullptr) {
    nghttp2_session_consume_connection(session_, pending_conn_consume_);
    pending_conn_consume_ = 0;
  }
}

void GrpcServerSession::NoteReset() {
  counters_.client_resets++;
  if (now_ms_ - reset_window_start_ >= 1000) {
    reset_window_start_ = now_ms_;
    resets_in_window_ = 0;
  }
  if (++resets_in_window_ > limits_.max_resets_per_second) {
    counters_.flood_closes++;
    Terminate(NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

void GrpcServerSession::Terminate(uint32_t code) {
  if (terminated_ || session_ == nullptr) return;
  terminated_ = true;
  // SETTINGS_TIMEOUT: no preface in time (Tick); NO_ERROR: idle (Tick); the rest: floods and errors.
  close_reason_ = code == NGHTTP2_SETTINGS_TIMEOUT ? CloseReason::kHandshakeTimeout
                  : code == NGHTTP2_NO_ERROR       ? CloseReason::kIdleTimeout
                                                   : CloseReason::kProtocolError;
  nghttp2_session_terminate_session(session_, code);
}

void GrpcServerSession::Feed(const uint8_t* data, size_t len, uint64_t now_ms) {
  now_ms_ = now_ms;
  last_activity_ms_ = now_ms;
  if (session_ == nullptr || peer_gone_) return;
  ssize_t rv = nghttp2_session_mem_recv(session_, data, len);
  if (rv < 0) {
    counters_.protocol_errors++;
    uint32_t code = rv == NGHTTP2_ERR_FLOODED ? NGHTTP2_ENHANCE_YOUR_CALM : NGHTTP2_PROTOCOL_ERROR;
    if (rv == NGHTTP2_ERR_FLOODED) counters_.flood_closes++;
    Terminate(code);
    // A session that failed inside mem_recv may refuse to send anything more: close regardless.
    hard_close_ = true;
  }
}

void GrpcServerSession::Tick(uint64_t now_ms) {
  now_ms_ = now_ms;
  if (session_ == nullptr) return;
  if (!handshake_done_ && limits_.handshake_timeout_ms > 0 && now_ms - created_ms_ >= limits_.handshake_timeout_ms) {
    counters_.timeouts++;
    timeout_reason_ = "handshake_timeout";
    Terminate(NGHTTP2_SETTINGS_TIMEOUT);
    hard_close_ = true;
    return;
  }
  if (open_streams_ == 0 && limits_.idle_timeout_ms > 0 && now_ms - last_activity_ms_ >= limits_.idle_timeout_ms && !terminated_) {
    counters_.timeouts++;
    timeout_reason_ = "idle_timeout";
    Terminate(NGHTTP2_NO_ERROR);
    return;
  }
  for (size_t i = 0; i < live_.size(); i++) {
    Stream* s = live_[i];
    if (s->deadline_at >= 0 && !s->done && static_cast<double>(now_ms) >= s->deadline_at) {
      s->deadline_at = -1;
      handler_->OnDeadline(s->id);
    }
  }
}

void GrpcServerSession::PeerGone() {
  if (peer_gone_) return;
  peer_gone_ = true;
  for (size_t i = 0; i < live_.size(); i++) {
    Stream* s = live_[i];
    if (!s->done && s->head_done && s->kind != CallKind::kAnswered) {
      s->done = true;
      handler_->OnCancel(s->id);
    }
  }
}

void GrpcServerSession::FillOutput() {
  if (session_ == nullptr || peer_gone_) return;
  if (out_off_ == out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
  while (out_.size() - out_off_ < limits_.output_watermark) {
    const uint8_t* p = nullptr;
    ssize_t n = nghttp2_session_mem_send(session_, &p);
    if (n <= 0) {
      if (n < 0) hard_close_ = true;
      break;
    }
    out_.insert(out_.end(), p, p + n);
  }
}

void GrpcServerSession::ConsumeOutput(size_t n) {
  out_off_ += n;
  if (out_off_ >= out_.size()) {
    out_.clear();
    out_off_ = 0;
  }
}

bool GrpcServerSession::closing() const {
  if (session_ == nullptr || peer_gone_) return true;
  if (hard_close_) return true;
  return nghttp2_session_want_read(session_) == 0 && nghttp2_session_want_write(session_) == 0;
}

void GrpcServerSession::Drain() {
  if (session_ == nullptr || terminated_ || draining_) return;
  draining_ = true;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_), NGHTTP2_NO_ERROR, nullptr, 0);
}

void GrpcServerSession::StartResponse(Stream* s) {
  s->responded = true;
  std::array<nghttp2_nv, 4> nva;
  size_t n = 0;
  nva[n++] = Nv(":status", "200");
  nva[n++] = Nv("content-type", "application/grpc");
  if (s->response_encoding != GrpcEncoding::kIdentity) nva[n++] = Nv("grpc-encoding", GrpcEncodingName(s->response_encoding));
  nva[n++] = Nv("grpc-accept-encoding", kAcceptEncodingValue);
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = SessionCallbacks::ReadData;
  if (nghttp2_submit_response(session_, s->id, nva.data(), n, &prd) != 0) s->done = true;
}

void GrpcServerSession::Kick(Stream* s) {
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, s->id);
  }
}

bool GrpcServerSession::SendMessage(int32_t id, const uint8_t* data, size_t len) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || s->finishing || peer_gone_) return false;
  if (s->out_off == s->out.size()) {
    s->out.clear();
    s->out_off = 0;
  }
  bool compressed = false;
  if (s->response_encoding != GrpcEncoding::kIdentity && len > 0) {
    CallError e = codec_.Compress(s->response_encoding, data, len);
    if (e.ok()) {
      data = codec_.data();
      len = codec_.size();
      compressed = true;
    }
  }
  if (len > 0xffffffffu) return false;
  size_t at = s->out.size();
  s->out.resize(at + kGrpcPrefixBytes + len);
  WriteGrpcPrefix(s->out.data() + at, compressed, static_cast<uint32_t>(len));
  if (len > 0) std::memcpy(s->out.data() + at + kGrpcPrefixBytes, data, len);
  held_bytes_ += kGrpcPrefixBytes + len;
  if (!s->responded) {
    StartResponse(s);
  } else {
    Kick(s);
  }
  return true;
}

void GrpcServerSession::Finish(int32_t id, GrpcStatus status, std::string_view message, const HeaderField* extra, size_t extra_count) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || peer_gone_) return;
  s->done = true;
  s->trailer_arena.clear();
  s->trailer_offsets.clear();
  char code[4];
  std::snprintf(code, sizeof code, "%u", static_cast<unsigned>(status));
  s->AddTrailer("grpc-status", code);
  if (!message.empty()) {
    scratch_.clear();
    AppendGrpcMessage(&scratch_, message);
    s->AddTrailer("grpc-message", scratch_);
  }
  for (size_t i = 0; i < extra_count; i++) s->AddTrailer(extra[i].name, extra[i].value);
  if (s->responded) {
    s->finishing = true;
    Kick(s);
    return;
  }
  // Trailers-only response.
  std::vector<nghttp2_nv>& nva = nva_;
  nva.clear();
  nva.push_back(Nv(":status", "200"));
  nva.push_back(Nv("content-type", "application/grpc"));
  std::string_view arena(s->trailer_arena);
  for (const auto& o : s->trailer_offsets) nva.push_back(Nv(arena.substr(o[0], o[1]), arena.substr(o[2], o[3])));
  s->responded = true;
  nghttp2_submit_response(session_, id, nva.data(), nva.size(), nullptr);
  // The request may still be arriving (an oversized upload): tell the client to stop sending.
  if (!s->remote_ended) s->reset_after_headers = true;
}

void GrpcServerSession::RespondHttp(int32_t id, int http_status, std::string_view body) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || s->responded || peer_gone_) return;
  s->done = true;
  s->finishing = true;
  s->responded = true;
  s->out.assign(body.begin(), body.end());
  held_bytes_ += body.size();
  char st[8];
  std::snprintf(st, sizeof st, "%d", http_status);
  nghttp2_nv nva[] = {Nv(":status", st), Nv("content-type", "text/plain")};
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = SessionCallbacks::ReadData;
  nghttp2_submit_response(session_, id, nva, 2, &prd);
}

void GrpcServerSession::PauseInput(int32_t id) {
  Stream* s = Find(id);
  if (s != nullptr) s->paused = true;
}

void GrpcServerSession::ResumeInput(int32_t id) {
  Stream* s = Find(id);
  if (s == nullptr || !s->paused) return;
  s->paused = false;
  if (s->unconsumed > 0) {
    nghttp2_session_consume_stream(session_, id, s->unconsumed);
    s->unconsumed = 0;
  }
}

size_t GrpcServerSession::pending_response_bytes(int32_t id) const {
  Stream* s = Find(id);
  return s == nullptr ? 0 : s->out_pending();
}

void GrpcServerSession::SubmitRawHeaders(int32_t id, const HeaderField* fields, size_t count, bool end_stream) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || s->responded || peer_gone_) return;
  std::vector<nghttp2_nv>& nva = nva_;
  nva.clear();
  for (size_t i = 0; i < count; i++) nva.push_back(Nv(fields[i].name, fields[i].value));
  s->responded = true;
  if (end_stream) {
    s->done = true;
    nghttp2_submit_response(session_, id, nva.data(), nva.size(), nullptr);
    return;
  }
  nghttp2_data_provider prd;
  prd.source.ptr = s;
  prd.read_callback = SessionCallbacks::ReadData;
  if (nghttp2_submit_response(session_, id, nva.data(), nva.size(), &prd) != 0) s->done = true;
}

void GrpcServerSession::SendRawData(int32_t id, const uint8_t* data, size_t len) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || !s->responded || s->finishing || peer_gone_) return;
  s->out.insert(s->out.end(), data, data + len);
  held_bytes_ += len;
  Kick(s);
}

void GrpcServerSession::FinishRaw(int32_t id, const HeaderField* trailers, size_t count) {
  Stream* s = Find(id);
  if (s == nullptr || s->done || !s->responded || peer_gone_) return;
  s->done = true;
  s->finishing = true;
  s->trailer_arena.clear();
  s->trailer_offsets.clear();
  for (size_t i = 0; i < count; i++) s->AddTrailer(trailers[i].name, trailers[i].value);
  Kick(s);
}

void GrpcServerSession::Reset(int32_t id, uint32_t code) {
  Stream* s = Find(id);
  if (s == nullptr || peer_gone_) return;
  s->done = true;
  nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, code);
}

}  // namespace sluice::engine
