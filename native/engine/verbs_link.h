// An inference-segment link over an RDMA RC queue pair on the engine's loop, wire-compatible
// with the TypeScript RDMA link (src/transport/rdma/rdma-link.ts, rdma-setup.ts; docs/rdma.md).
//
//   TCP side channel: handshake (link_endpoints.cc) -> sealed ENDPOINT records both ways ->
//   READY (initiator) -> afterwards only its end matters (the peer is gone).
//   Queue pair: one sealed frame per SEND_WITH_IMM into the peer's posted receive slots, the
//   immediate carrying returned credits (verbs_flow.h); credit-only messages when idle.
//
// On the loop: the completion channel's fd is watched; on readable the link takes the channel's
// events (acknowledged in batches), drains the CQ in batches of 32, optionally spins on the CQ
// for a bounded time (busy poll) and re-arms it. Sends seal straight into registered send slots
// and every flush goes out as one chained ibv_post_send, with only every kSignalInterval-th
// request signalled and frames up to the device's max_inline_data sent inline.
//
// Every failure (a verbs call, a bad completion, a protocol violation, an async event of the
// device) fails this one link with a {code, message}; nothing here asserts or aborts.
#ifndef SLUICE_NATIVE_ENGINE_VERBS_LINK_H_
#define SLUICE_NATIVE_ENGINE_VERBS_LINK_H_

#include <infiniband/verbs.h>

#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/inference_link.h"
#include "engine/verbs_flow.h"

namespace sluice {
namespace verbs {
class Device;
}
namespace engine {

class VerbsInferenceLink;

namespace rdma_codes {
extern const char kVerbs[];        // SLUICE_ERR_RDMA_VERBS: a verbs call failed
extern const char kCompletion[];   // SLUICE_ERR_RDMA_COMPLETION: a work request completed in error
extern const char kProtocol[];     // SLUICE_ERR_RDMA_PROTOCOL: the peer broke the credit protocol
extern const char kNoDevice[];     // SLUICE_ERR_RDMA_NO_DEVICE
extern const char kPortDown[];     // SLUICE_ERR_RDMA_PORT_DOWN: async event, the link's port went down
extern const char kQpFatal[];      // SLUICE_ERR_RDMA_QP_FATAL: async event, the queue pair is in error
extern const char kDeviceFatal[];  // SLUICE_ERR_RDMA_DEVICE_FATAL: async event, the device failed
}  // namespace rdma_codes

// The devices an engine's verbs links use, opened once each, with their async event fds on the
// loop: a port going down fails the links on that port, a fatal queue pair its link, a fatal
// device every link on it. Loop thread only.
class VerbsDevices {
 public:
  explicit VerbsDevices(EventLoop* loop) : loop_(loop) {}
  ~VerbsDevices();
  // The device `spec` names (empty: the first with an active port); null with *status set.
  std::shared_ptr<verbs::Device> Open(const std::string& spec, Status* status);
  void Attach(VerbsInferenceLink* link);
  void Detach(VerbsInferenceLink* link);
  // The verbs link with that engine id (once its queue pair exists), or null.
  VerbsInferenceLink* Find(uint32_t id) const;
  // Handles what is pending on a device's async fd (public for the test hook).
  void OnAsyncEvents(ibv_context* ctx);

 private:
  EventLoop* loop_;
  std::unordered_map<std::string, std::shared_ptr<verbs::Device>> devices_;
  std::vector<VerbsInferenceLink*> links_;
};

class VerbsInferenceLink : public InferenceLink {
 public:
  // `fd` is the side channel after the handshake (the link owns it).
  VerbsInferenceLink(EventLoop* loop, CounterBlock* counters, LinkHandler* handler, VerbsDevices* devices, uint32_t id, int fd, Role role,
                     const LinkOptions& options, const LinkSecrets& secrets, std::string remote);
  ~VerbsInferenceLink() override;
  void Start(const std::vector<uint8_t>& early) override;
  Status Send(const OutboundMessage& msg, bool* below_high_water) override;
  void Close(uint16_t code, const std::string& reason) override;
  uint32_t id() const override { return id_; }
  Role role() const override { return role_; }
  const std::string& remote() const override { return remote_; }
  const std::string& link_id_hex() const override { return link_id_hex_; }
  bool open() const override { return state_ == kOpen; }
  uint64_t queued_bytes() const override { return queue_.bytes(); }
  void SetPeerCounters(CounterBlock* peer) override { counters_.SetPeer(peer); }

  // For VerbsDevices: an async event concerns this link.
  ibv_context* context() const;
  uint8_t port() const;
  ibv_qp* qp() const { return qp_; }
  ibv_cq* cq() const { return cq_; }
  void FailFromDevice(const char* code, const std::string& message);
  // The queue pair's GRH traffic class (ibv_query_qp), -1 when unreadable.
  int QueryTrafficClass() const;
  // Statistics for tests and docs: requests posted, completions asked for, inline sends,
  // ibv_post_send calls, busy-poll spins that found work.
  struct Stats {
    uint64_t requests = 0, signalled = 0, inlined = 0, post_calls = 0, cq_events = 0, busy_spins = 0, busy_hits = 0;
  };
  const Stats& stats() const { return stats_; }
  std::string StatsJson() const;

 private:
  enum State { kOpen, kClosing, kClosed };
  enum Phase { kSetup, kRunning };
  // Side channel
  void OnSideEvents(uint32_t events);
  Status SendSetupFrame(uint16_t kind, const uint8_t* payload, size_t size);
  bool FlushSide();
  void OnSetupMessage(const InboundMessage& m);
  Status CreateQueuePair();
  Status ConnectQueuePair(const uint8_t* record, size_t size);
  void EncodeEndpoint(uint8_t out[40]) const;
  void BeginRunning();
  // Queue pair
  void OnChannelReadable();
  bool DrainCq();
  void OnCompletion(const ibv_wc& wc);
  void OnReceive(uint32_t slot, uint32_t length);
  void RepostLater(uint32_t slot);
  bool PostRecvs();
  bool CanPostData() const;
  // Seals one frame into a slot and appends its work request; false with status on error.
  Status AppendFrame(uint8_t type, uint8_t cls, uint8_t flags, uint32_t stream, uint16_t kind, uint32_t tenant, uint32_t message_length,
                     const BytePart* parts, size_t part_count, size_t payload_length, bool force_signal, uint64_t* seq);
  void AppendCreditMessage();
  bool PostBatch();
  void Pump();
  bool TrySendClose();
  void Fail(const Status& status);
  void Finish();
  void Teardown();
  void DestroyVerbs();
  uint32_t FrameLimit(uint8_t cls) const;
  void UpdateQueuedGauge();
  void CountReceived();

  EventLoop* loop_;
  LinkCounters counters_;
  LinkHandler* handler_;
  VerbsDevices* devices_;
  uint32_t id_;
  int fd_;
  Role role_;
  LinkOptions options_;
  uint8_t segment_code_;
  std::string remote_;
  std::string link_id_hex_;
  State state_ = kOpen;
  Phase phase_ = kSetup;
  bool setup_endpoint_sent_ = false;
  std::unique_ptr<LinkReceiver> receiver_;
  std::unique_ptr<FrameSealer> sealer_;
  std::vector<uint8_t> side_out_;
  EventLoop::TimerId setup_timer_ = EventLoop::kNoTimer;
  EventLoop::TimerId close_timer_ = EventLoop::kNoTimer;
  EventLoop::TimerId teardown_timer_ = EventLoop::kNoTimer;

  // verbs objects (null until created)
  std::shared_ptr<verbs::Device> device_;
  bool attached_ = false;
  ibv_comp_channel* channel_ = nullptr;
  ibv_cq* cq_ = nullptr;
  ibv_qp* qp_ = nullptr;
  ibv_mr* send_mr_ = nullptr;
  ibv_mr* recv_mr_ = nullptr;
  uint8_t* send_mem_ = nullptr;
  uint8_t* recv_mem_ = nullptr;
  uint32_t slot_bytes_ = 0;
  uint32_t max_send_bytes_ = 0;  // min(ours, the peer's receive slot)
  uint32_t max_inline_ = 0;      // what the queue pair accepted
  uint32_t psn_ = 0;
  uint32_t unacked_events_ = 0;
  bool watching_channel_ = false;
  VerbsCredits credits_;
  SendTracker tracker_;
  std::vector<ibv_send_wr> wrs_;  // one flush; reserved to the send queue's depth
  std::vector<ibv_sge> sges_;
  std::vector<uint32_t> slot_of_wr_;  // the slot each WR of the flush sealed into (inline: returned after post)
  std::vector<ibv_recv_wr> rwrs_;
  std::vector<ibv_sge> rsges_;
  std::vector<uint32_t> repost_;  // receive slots consumed this turn

  OutboundQueue queue_;
  std::vector<BytePart> slice_;
  uint64_t reported_queued_ = 0;
  bool need_drain_ = false;
  bool reading_ = true;
  bool close_wanted_ = false;
  bool close_posted_ = false;
  uint64_t close_seq_ = 0;
  bool close_delivered_ = false;
  bool side_shut_ = false;
  bool side_gone_ = false;
  uint16_t close_code_ = 0;
  std::string close_reason_;
  LinkCloseInfo info_{};
  bool info_set_ = false;
  uint64_t reported_recv_frames_ = 0, reported_recv_bytes_ = 0, reported_rekeys_ = 0;
  Stats stats_;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_VERBS_LINK_H_
