// One HTTP/2 connection of the engine's gRPC server, sans-IO: bytes read from the socket go
// in through Feed(), bytes to write come out of output()/ConsumeOutput(), and time comes in as
// an argument, so the same code runs on the engine thread, in unit tests and under a fuzzer.
// HTTP/2 itself is nghttp2's (frames, HPACK, stream states, flow control, SETTINGS, the
// rapid-reset, CONTINUATION and ack-flood limits); this layer speaks gRPC on top of it:
//   - the request head of each stream: path, content-type (non-gRPC: HTTP 415), :method,
//     grpc-timeout (malformed: INVALID_ARGUMENT), grpc-encoding / grpc-accept-encoding,
//     x-request-id / traceparent, authorization, x-api-key (counted, to refuse duplicates);
//   - messages deframed with the size limit checked on the 5-byte prefix, inflated (gzip,
//     deflate) under the same limit; responses compressed with the negotiated encoding;
//   - responses: headers, messages, trailers; trailers-only for an early status;
//   - RST_STREAM from the client cancels the call (Handler::OnCancel);
//   - flow control as backpressure: a paused stream's window is not reopened, and the
//     connection's window stops reopening while the connection holds more than its budget;
//   - rapid reset and empty-frame floods: GOAWAY(ENHANCE_YOUR_CALM) and close;
//   - connection-level protocol errors: GOAWAY (by nghttp2) and close once it is written;
//   - timers: Tick(now) fires handshake and idle timeouts and call deadlines.
// The Handler decides what a call is (fast path unary/streaming, or relayed as raw HTTP/2 to
// another server) and answers it; the session never calls into anything else.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/grpc_compression.h"
#include "engine/grpc_deframer.h"
#include "engine/grpc_status.h"

#include <nghttp2/nghttp2.h>

namespace sluice::engine {

struct GrpcSessionLimits {
  uint32_t max_request_message_bytes = 4u << 20;
  uint32_t max_concurrent_streams = 1000;
  uint32_t initial_stream_window = 16u << 20;
  uint32_t connection_window = 64u << 20;
  uint32_t max_header_list_bytes = 64u << 10;
  // Request and response bytes a connection may hold before its window stops reopening.
  size_t max_buffered_bytes = 256u << 20;
  // Client RST_STREAMs per second past which the connection is closed (rapid reset).
  uint32_t max_resets_per_second = 200;
  // Consecutive DATA frames without payload or END_STREAM (CVE-2019-9518).
  uint32_t max_empty_data_frames = 100;
  // No preface + SETTINGS within this long: close. 0: off.
  uint64_t handshake_timeout_ms = 10'000;
  // No open stream and no bytes for this long: GOAWAY and close. 0: off.
  uint64_t idle_timeout_ms = 0;
  // Output gathered per pull before the caller writes it.
  size_t output_watermark = 256u << 10;
};

enum class CallKind : uint8_t {
  kUnary,      // exactly one request message, delivered at END_STREAM
  kStreaming,  // messages delivered as they arrive, then OnHalfClose
  kRelay,      // raw HTTP/2: OnRelayData; answered with SubmitRawHeaders/SendRawData/FinishRaw
  kAnswered,   // the handler already finished the call from OnCall
};

struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// A stream's request head; the views stay valid until the stream closes.
struct RequestHead {
  std::string_view method;
  std::string_view path;
  std::string_view scheme;
  std::string_view authority;
  std::string_view content_type;
  std::string_view te;
  std::string_view grpc_timeout;
  std::string_view x_request_id;
  std::string_view traceparent;
  std::string_view authorization;
  std::string_view api_key;
  uint32_t authorization_count = 0;
  uint32_t api_key_count = 0;
  // Milliseconds from grpc-timeout; -1 when absent.
  double timeout_ms = -1;
  GrpcEncoding encoding = GrpcEncoding::kIdentity;
  uint32_t accept_encodings = 1;
  const HeaderField* fields = nullptr;  // every header, in order (pseudo-headers included)
  size_t field_count = 0;
};

// Milliseconds of a grpc-timeout value (1-8 digits and H M S m u n); -1 when malformed.
double ParseGrpcTimeoutMs(std::string_view v);
// Percent-encodes a grpc-message value (gRPC over HTTP/2, "Responses").
void AppendGrpcMessage(std::string* out, std::string_view message);

class GrpcServerSession {
 public:
  class Handler {
   public:
    // Which kind of call a request is (its path and head); kAnswered when the handler has
    // already answered it (Finish/RespondHttp). Relayed calls skip the gRPC checks below.
    virtual CallKind Route(int32_t stream_id, const RequestHead& head) = 0;
    // A fast-path call passed the gRPC checks (POST, grpc-timeout, grpc-encoding). From here the
    // handler sees exactly one ending: its own Finish, or OnCancel (client reset, connection
    // gone, or a framing error the session answered itself). A unary call's message view stays
    // valid until then.
    virtual void OnCall(int32_t stream_id, const RequestHead& head) = 0;
    // A request message (inflated when it was compressed); the view is valid during the call.
    virtual void OnMessage(int32_t stream_id, const uint8_t* data, size_t len) = 0;
    // The client half-closed (a unary call's message was delivered just before).
    virtual void OnHalfClose(int32_t stream_id) = 0;
    // The client reset the stream or the connection went away before the call finished.
    virtual void OnCancel(int32_t stream_id) = 0;
    // grpc-timeout passed before the call finished; the handler answers (DEADLINE_EXCEEDED).
    virtual void OnDeadline(int32_t stream_id) = 0;
    virtual void OnRelayData(int32_t stream_id, const uint8_t* data, size_t len, bool end_stream) = 0;

   protected:
    ~Handler() = default;
  };

  GrpcServerSession(Handler* handler, const GrpcSessionLimits& limits, uint64_t now_ms);
  ~GrpcServerSession();
  GrpcServerSession(const GrpcServerSession&) = delete;
  GrpcServerSession& operator=(const GrpcServerSession&) = delete;

  // False when nghttp2 could not be set up (out of memory); the connection must be dropped.
  bool ok() const { return session_ != nullptr; }

  // Bytes read from the socket. A protocol error queues GOAWAY and makes closing() true.
  void Feed(const uint8_t* data, size_t len, uint64_t now_ms);
  // Fires timers: handshake/idle timeouts (GOAWAY, close) and call deadlines (OnDeadline).
  void Tick(uint64_t now_ms);
  // The peer closed its side or the socket failed: every open call is cancelled.
  void PeerGone();

  // Serializes pending frames; then output() holds bytes to write. Never call it from inside a
  // Handler callback.
  void FillOutput();
  const uint8_t* output() const { return out_.data() + out_off_; }
  size_t output_size() const { return out_.size() - out_off_; }
  void ConsumeOutput(size_t n);
  // True when nothing more will be read or written: close the socket once output is written.
  bool closing() const;
  bool wants_close() const { return closing() && output_size() == 0; }
  // Why this side ended the connection (sluice_connections_refused_total's reasons), or kNone.
  enum class CloseReason : uint8_t { kNone, kHandshakeTimeout, kIdleTimeout, kProtocolError };
  CloseReason close_reason() const { return close_reason_; }

  // Graceful drain: GOAWAY(NO_ERROR) with the last stream id; open calls may finish.
  void Drain();
  size_t open_streams() const { return open_streams_; }

  // Answers of fast-path calls. SendMessage returns false when the call is gone.
  bool SendMessage(int32_t id, const uint8_t* data, size_t len);
  // Ends the call: trailers grpc-status, grpc-message and `extra` (name, value pairs);
  // a trailers-only response when no message was sent.
  void Finish(int32_t id, GrpcStatus status, std::string_view message, const HeaderField* extra = nullptr, size_t extra_count = 0);
  // An HTTP-level refusal (415 for a non-gRPC content type): status, text body, end.
  void RespondHttp(int32_t id, int http_status, std::string_view body);

  // Backpressure: stop reopening the stream's window / reopen it.
  void PauseInput(int32_t id);
  void ResumeInput(int32_t id);
  // Response bytes a call holds that are not yet serialized (stream-side write backpressure).
  size_t pending_response_bytes(int32_t id) const;

  // Relayed streams: raw headers / data / trailers as another server sent them.
  void SubmitRawHeaders(int32_t id, const HeaderField* fields, size_t count, bool end_stream);
  void SendRawData(int32_t id, const uint8_t* data, size_t len);
  void FinishRaw(int32_t id, const HeaderField* trailers, size_t count);
  void Reset(int32_t id, uint32_t h2_error_code);

  struct Counters {
    uint64_t calls = 0;
    uint64_t client_resets = 0;
    uint64_t protocol_errors = 0;
    uint64_t flood_closes = 0;
    uint64_t timeouts = 0;
  };
  const Counters& counters() const { return counters_; }
  // Why Tick closed the connection ("handshake_timeout", "idle_timeout"), or null: the reason
  // in sluice_connections_refused_total.
  const char* timeout_reason() const { return timeout_reason_; }

  struct Stream;

 private:
  // Header lists handed to nghttp2 (which copies them), reused across calls.
  std::vector<nghttp2_nv> nva_;
  friend struct SessionCallbacks;
  Stream* Find(int32_t id) const;
  Stream* Acquire(int32_t id);
  void Release(Stream* s);
  void OnHeadersDone(Stream* s);
  void OnData(Stream* s, const uint8_t* data, size_t len);
  void OnRemoteEnd(Stream* s);
  void DeliverMessage(Stream* s, bool compressed, const uint8_t* data, size_t len);
  void FailCall(Stream* s, const CallError& e);
  void StartResponse(Stream* s);
  void Kick(Stream* s);
  void Terminate(uint32_t h2_error_code);
  void AccountIn(Stream* s, size_t held_now);
  void ConsumeConnection(size_t n);
  void ReleaseConnectionWindow();
  void NoteReset();

  Handler* handler_;
  GrpcSessionLimits limits_;
  nghttp2_session* session_ = nullptr;
  CompressionCodec codec_;
  std::vector<uint8_t> out_;
  size_t out_off_ = 0;
  std::vector<std::unique_ptr<Stream>> pool_;
  std::vector<Stream*> live_;
  size_t open_streams_ = 0;
  size_t held_bytes_ = 0;
  size_t pending_conn_consume_ = 0;
  uint64_t now_ms_ = 0;
  uint64_t created_ms_ = 0;
  uint64_t last_activity_ms_ = 0;
  bool handshake_done_ = false;
  bool terminated_ = false;
  CloseReason close_reason_ = CloseReason::kNone;
  bool hard_close_ = false;
  bool draining_ = false;
  bool peer_gone_ = false;
  uint64_t reset_window_start_ = 0;
  uint32_t resets_in_window_ = 0;
  uint32_t empty_frames_ = 0;
  Counters counters_;
  const char* timeout_reason_ = nullptr;
  std::string scratch_;
};

}  // namespace sluice::engine
