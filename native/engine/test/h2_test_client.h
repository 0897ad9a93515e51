// A sans-IO HTTP/2 client over nghttp2 for the engine's tests and fuzz seeds: it makes real
// HTTP/2 bytes (preface, SETTINGS, HEADERS, DATA, RST_STREAM) for GrpcServerSession::Feed and
// reads the session's output back into per-stream responses.
#pragma once

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sluice::engine::test {

struct Response {
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> trailers;
  std::string data;
  bool closed = false;
  uint32_t close_code = 0;
  bool reset = false;

  std::string Header(const std::string& name) const {
    for (const auto& [n, v] : headers) if (n == name) return v;
    for (const auto& [n, v] : trailers) if (n == name) return v;
    return "";
  }
};

class H2TestClient {
 public:
  H2TestClient() {
    nghttp2_session_callbacks* cbs;
    nghttp2_session_callbacks_new(&cbs);
    nghttp2_session_callbacks_set_on_header_callback(cbs, OnHeader);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, OnData);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, OnClose);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, OnFrame);
    nghttp2_session_client_new(&ng_, cbs, this);
    nghttp2_session_callbacks_del(cbs);
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 16u << 20}};
    nghttp2_submit_settings(ng_, NGHTTP2_FLAG_NONE, iv, 1);
    nghttp2_session_set_local_window_size(ng_, NGHTTP2_FLAG_NONE, 0, 64 << 20);
  }
  ~H2TestClient() { nghttp2_session_del(ng_); }

  // Starts a request; `body` (already gRPC-framed) is sent as DATA with END_STREAM unless
  // `end` is false (then Write/End it later).
  int32_t Request(const std::string& path, const std::vector<std::pair<std::string, std::string>>& extra, const std::string& body,
                  bool end = true, const std::string& content_type = "application/grpc") {
    std::vector<std::pair<std::string, std::string>> h = {
        {":method", "POST"}, {":scheme", "http"}, {":authority", "localhost"}, {":path", path}, {"content-type", content_type}, {"te", "trailers"}};
    for (const auto& e : extra) h.push_back(e);
    std::vector<nghttp2_nv> nva;
    for (auto& [n, v] : h) {
      nva.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(n.data())), reinterpret_cast<uint8_t*>(const_cast<char*>(v.data())), n.size(),
                     v.size(), NGHTTP2_NV_FLAG_NONE});
    }
    auto src = std::make_unique<Source>(Source{body, 0, end});
    nghttp2_data_provider prd;
    prd.source.ptr = src.get();
    prd.read_callback = Read;
    int32_t id = nghttp2_submit_request(ng_, nullptr, nva.data(), nva.size(), &prd, nullptr);
    sources_[id] = std::move(src);
    return id;
  }
  void Write(int32_t id, const std::string& more, bool end) {
    Source* s = sources_[id].get();
    s->data += more;
    s->end = end;
    nghttp2_session_resume_data(ng_, id);
  }
  void Rst(int32_t id, uint32_t code = NGHTTP2_CANCEL) { nghttp2_submit_rst_stream(ng_, NGHTTP2_FLAG_NONE, id, code); }

  // Bytes the client wants to send.
  std::string Pull() {
    std::string out;
    for (;;) {
      const uint8_t* p;
      ssize_t n = nghttp2_session_mem_send(ng_, &p);
      if (n <= 0) break;
      out.append(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
    }
    return out;
  }
  void Feed(const std::string& bytes) { nghttp2_session_mem_recv(ng_, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()); }

  std::map<int32_t, Response> responses;
  bool goaway = false;
  uint32_t goaway_code = 0;

 private:
  struct Source {
    std::string data;
    size_t off;
    bool end;
  };
  static ssize_t Read(nghttp2_session*, int32_t, uint8_t* buf, size_t len, uint32_t* flags, nghttp2_data_source* src, void*) {
    auto* s = static_cast<Source*>(src->ptr);
    size_t n = std::min(len, s->data.size() - s->off);
    std::memcpy(buf, s->data.data() + s->off, n);
    s->off += n;
    if (s->off == s->data.size()) {
      if (s->end) *flags |= NGHTTP2_DATA_FLAG_EOF;
      else if (n == 0) return NGHTTP2_ERR_DEFERRED;
    }
    return static_cast<ssize_t>(n);
  }
  static int OnHeader(nghttp2_session*, const nghttp2_frame* f, const uint8_t* n, size_t nl, const uint8_t* v, size_t vl, uint8_t, void* u) {
    auto* self = static_cast<H2TestClient*>(u);
    Response& r = self->responses[f->hd.stream_id];
    auto& list = f->headers.cat == NGHTTP2_HCAT_HEADERS ? r.trailers : r.headers;
    list.emplace_back(std::string(reinterpret_cast<const char*>(n), nl), std::string(reinterpret_cast<const char*>(v), vl));
    return 0;
  }
  static int OnData(nghttp2_session*, uint8_t, int32_t id, const uint8_t* d, size_t len, void* u) {
    static_cast<H2TestClient*>(u)->responses[id].data.append(reinterpret_cast<const char*>(d), len);
    return 0;
  }
  static int OnClose(nghttp2_session*, int32_t id, uint32_t code, void* u) {
    Response& r = static_cast<H2TestClient*>(u)->responses[id];
    r.closed = true;
    r.close_code = code;
    return 0;
  }
  static int OnFrame(nghttp2_session*, const nghttp2_frame* f, void* u) {
    auto* self = static_cast<H2TestClient*>(u);
    if (f->hd.type == NGHTTP2_GOAWAY) {
      self->goaway = true;
      self->goaway_code = f->goaway.error_code;
    } else if (f->hd.type == NGHTTP2_RST_STREAM) {
      self->responses[f->hd.stream_id].reset = true;
    }
    return 0;
  }

  nghttp2_session* ng_ = nullptr;
  std::map<int32_t, std::unique_ptr<Source>> sources_;
};

inline std::string GrpcFrame(const std::string& msg, bool compressed = false) {
  std::string out(5, '\0');
  out[0] = compressed ? 1 : 0;
  uint32_t n = static_cast<uint32_t>(msg.size());
  out[1] = static_cast<char>(n >> 24);
  out[2] = static_cast<char>(n >> 16);
  out[3] = static_cast<char>(n >> 8);
  out[4] = static_cast<char>(n);
  return out + msg;
}

}  // namespace sluice::engine::test
