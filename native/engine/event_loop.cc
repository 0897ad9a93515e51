// See event_loop.h.
#include "engine/event_loop.h"

#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <future>

namespace sluice {
namespace engine {

namespace {
constexpr int kMaxEvents = 64;
constexpr uint64_t kWakeTag = ~0ull;

uint64_t PackTag(int fd, uint64_t generation) { return (generation << 32) | static_cast<uint32_t>(fd); }
}  // namespace

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
  Stop();
  if (epoll_fd_ >= 0) close(epoll_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

uint64_t EventLoop::NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

bool EventLoop::Start(const std::string& thread_name, std::string* error) {
  if (running_.load()) return true;
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) {
    *error = std::string("epoll_create1: ") + strerror(errno);
    return false;
  }
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake_fd_ < 0) {
    *error = std::string("eventfd: ") + strerror(errno);
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeTag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) {
    *error = std::string("epoll_ctl(eventfd): ") + strerror(errno);
    return false;
  }
  now_ms_ = NowMs();
  stop_requested_.store(false);
  running_.store(true, std::memory_order_release);
  const std::string name = thread_name.substr(0, 15);
  std::promise<int> started;
  std::future<int> tid = started.get_future();
  thread_ = std::thread([this, name, &started] {
    pthread_setname_np(pthread_self(), name.c_str());
    started.set_value(static_cast<int>(syscall(SYS_gettid)));
    Run();
  });
  loop_thread_id_ = thread_.get_id();
  thread_tid_ = tid.get();
  return true;
}

void EventLoop::Stop() {
  if (!thread_.joinable()) return;
  if (std::this_thread::get_id() == thread_.get_id()) {
    RequestStop();
    return;
  }
  stop_requested_.store(true);
  Wake();
  thread_.join();
  running_.store(false, std::memory_order_release);
}

void EventLoop::RequestStop() {
  stop_requested_.store(true);
  Wake();
}

bool EventLoop::InLoopThread() const { return std::this_thread::get_id() == loop_thread_id_; }

void EventLoop::Wake() {
  if (wake_fd_ < 0) return;
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof one);
  (void)n;  // EAGAIN: the counter is already non-zero, the loop will wake anyway
}

bool EventLoop::Post(Task task) {
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    if (!running_.load(std::memory_order_acquire) || stop_requested_.load()) return false;
    posted_.push_back(std::move(task));
    if (posted_.size() > 1) return true;  // a wake-up is already pending
  }
  Wake();
  return true;
}

void EventLoop::RunDeferred() {
  // A deferred task may defer another (a connection freeing its streams): bounded rounds.
  for (int round = 0; round < 8 && !deferred_.empty(); round++) {
    std::vector<Task> now;
    now.swap(deferred_);
    for (auto& t : now) t();
  }
}

void EventLoop::RunPosted() {
  {
    std::lock_guard<std::mutex> lock(post_mutex_);
    running_tasks_.swap(posted_);
  }
  for (auto& t : running_tasks_) t();
  running_tasks_.clear();  // keeps its capacity
}

bool EventLoop::Watch(int fd, uint32_t events, FdCallback callback) {
  const uint64_t gen = ++watch_generation_ & 0xffffffffu;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = PackTag(fd, gen);
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
  watchers_[fd] = std::unique_ptr<Watcher>(new Watcher{std::move(callback), gen});
  return true;
}

bool EventLoop::Modify(int fd, uint32_t events) {
  auto it = watchers_.find(fd);
  if (it == watchers_.end()) return false;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = PackTag(fd, it->second->generation);
  return epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) == 0;
}

void EventLoop::Unwatch(int fd) {
  auto it = watchers_.find(fd);
  if (it == watchers_.end()) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  retired_watchers_.push_back(std::move(it->second));
  watchers_.erase(it);
}

EventLoop::TimerId EventLoop::AddTimer(uint64_t delay_ms, Task task) {
  uint32_t slot;
  if (!free_timer_slots_.empty()) {
    slot = free_timer_slots_.back();
    free_timer_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(timer_slots_.size());
    timer_slots_.emplace_back();
  }
  TimerSlot& s = timer_slots_[slot];
  s.generation++;
  s.armed = true;
  s.task = std::move(task);
  // Never kNoTimer (0): the low half is the slot + 1.
  const TimerId id = (static_cast<uint64_t>(s.generation) << 32) | (static_cast<uint64_t>(slot) + 1);
  timer_heap_.push_back(Timer{NowMs() + delay_ms, next_timer_seq_++, id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<Timer>());
  return id;
}

EventLoop::TimerSlot* EventLoop::LiveSlot(TimerId id) {
  const uint64_t low = id & 0xffffffffu;
  if (low == 0 || low > timer_slots_.size()) return nullptr;
  TimerSlot& s = timer_slots_[low - 1];
  return s.armed && s.generation == static_cast<uint32_t>(id >> 32) ? &s : nullptr;
}

void EventLoop::CancelTimer(TimerId id) {
  // Its heap entry stays and is skipped when it comes up.
  TimerSlot* s = LiveSlot(id);
  if (s != nullptr) ReleaseSlot(s);  // the task is destroyed here, not when its heap entry comes up
}

EventLoop::Task EventLoop::ReleaseSlot(TimerSlot* s) {
  s->armed = false;
  free_timer_slots_.push_back(static_cast<uint32_t>(s - timer_slots_.data()));
  Task task = std::move(s->task);
  s->task = nullptr;
  return task;
}

int EventLoop::NextTimeoutMs() {
  while (!timer_heap_.empty() && LiveSlot(timer_heap_.front().id) == nullptr) {
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<Timer>());
    timer_heap_.pop_back();
  }
  if (timer_heap_.empty()) return -1;
  const uint64_t now = NowMs();
  const uint64_t at = timer_heap_.front().deadline;
  return at <= now ? 0 : static_cast<int>(std::min<uint64_t>(at - now, 60000));
}

void EventLoop::RunTimers() {
  const uint64_t now = NowMs();
  while (!timer_heap_.empty() && timer_heap_.front().deadline <= now) {
    const TimerId id = timer_heap_.front().id;
    std::pop_heap(timer_heap_.begin(), timer_heap_.end(), std::greater<Timer>());
    timer_heap_.pop_back();
    TimerSlot* s = LiveSlot(id);
    if (s == nullptr) continue;
    // Out of the slot before it runs: the task may add timers (the slots may move) or cancel
    // its own id (already fired: a no-op).
    Task task = ReleaseSlot(s);
    task();
  }
}

void EventLoop::Run() {
  epoll_event events[kMaxEvents];
  while (!stop_requested_.load()) {
    const int timeout = NextTimeoutMs();
    const int n = epoll_wait(epoll_fd_, events, kMaxEvents, timeout);
    now_ms_ = NowMs();
    if (n < 0 && errno != EINTR) break;  // EBADF/EINVAL: nothing sensible left to do
    for (int i = 0; i < n; i++) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kWakeTag) {
        uint64_t v;
        ssize_t r = read(wake_fd_, &v, sizeof v);
        (void)r;
        continue;
      }
      const int fd = static_cast<int>(tag & 0xffffffffu);
      auto it = watchers_.find(fd);
      // A callback earlier in this batch may have unwatched (or replaced) this fd.
      if (it == watchers_.end() || it->second->generation != (tag >> 32)) continue;
      Watcher* w = it->second.get();  // stays alive until the batch ends, even if unwatched
      w->callback(events[i].events);
    }
    retired_watchers_.clear();
    RunDeferred();
    RunPosted();
    RunDeferred();
    RunTimers();
    RunDeferred();
  }
  // Finish what was posted before the stop (e.g. closing links), then leave.
  RunPosted();
  RunDeferred();
}

}  // namespace engine
}  // namespace sluice
