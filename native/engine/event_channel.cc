// See event_channel.h.
#include "engine/event_channel.h"

namespace sluice {
namespace engine {

EventChannel::EventChannel(size_t capacity, CounterBlock* counters, std::function<void()> notify)
    : ring_(capacity), counters_(counters), notify_(std::move(notify)) {}

bool EventChannel::Push(EngineEvent&& event) {
  bool signal;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (size_ == ring_.size()) {
      if (counters_ != nullptr) counters_->Add(kEventsDropped);
      return false;
    }
    ring_[(head_ + size_) % ring_.size()] = std::move(event);
    size_ += 1;
    signal = !signaled_;
    signaled_ = true;
  }
  if (signal && notify_) notify_();
  return true;
}

bool EventChannel::PushDeferred(EngineEvent&& event, bool* wake_later) {
  bool signal = false;
  *wake_later = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (size_ == ring_.size()) {
      if (counters_ != nullptr) counters_->Add(kEventsDropped);
      return false;
    }
    ring_[(head_ + size_) % ring_.size()] = std::move(event);
    size_ += 1;
    if (!signaled_) {
      // A quarter of the ring: wake JS now, long before deferring could drop events.
      signal = size_ * 4 >= ring_.size();
      signaled_ = signal;
      *wake_later = !signal;
    }
  }
  if (signal && notify_) notify_();
  return true;
}

void EventChannel::Flush() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (size_ == 0 || signaled_) return;
    signaled_ = true;
  }
  if (notify_) notify_();
}

void EventChannel::Log(LogLevel level, std::string text) {
  EngineEvent e;
  e.type = EventType::kLog;
  e.a = static_cast<uint64_t>(level);
  e.text = std::move(text);
  Push(std::move(e));
}

void EventChannel::Log(LogLevel level, std::string text, std::string code, std::string request_id, std::string model, std::string err) {
  EngineEvent e;
  e.type = EventType::kLog;
  e.a = static_cast<uint64_t>(level);
  e.text = std::move(text);
  e.code = std::move(code);
  e.request_id = std::move(request_id);
  e.model = std::move(model);
  e.err = std::move(err);
  Push(std::move(e));
}

size_t EventChannel::Drain(std::vector<EngineEvent>* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mutex_);
  signaled_ = false;
  while (size_ > 0) {
    out->push_back(std::move(ring_[head_]));
    head_ = (head_ + 1) % ring_.size();
    size_ -= 1;
  }
  return out->size();
}

}  // namespace engine
}  // namespace sluice
