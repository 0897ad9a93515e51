// The engine's I/O thread: one epoll loop on its own named thread (e.g. "sluice-infer").
//
// Everything the engine owns (sockets, links, upstream HTTP/2 sessions, timers) lives on this
// thread and is touched only from it; other threads (the JS main thread) hand it work with
// Post(), which wakes the loop through an eventfd. Callbacks run on the loop thread, one at a
// time, and must not block. Nothing here allocates per event: fd callbacks are registered once
// per fd, timers come from a reused heap, posted tasks go through a swap of two vectors.
//
// No N-API here (this is the plain core; native/binding.cc is the only N-API file).
#ifndef SLUICE_NATIVE_ENGINE_EVENT_LOOP_H_
#define SLUICE_NATIVE_ENGINE_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sluice {
namespace engine {

// epoll event bits, re-exported so users need not include <sys/epoll.h>.
enum IoEvents : uint32_t {
  kReadable = 0x001,  // EPOLLIN
  kWritable = 0x004,  // EPOLLOUT
  kError = 0x008,     // EPOLLERR (always reported)
  kHangup = 0x010,    // EPOLLHUP (always reported)
  kPeerHalfClosed = 0x2000,  // EPOLLRDHUP
};

class EventLoop {
 public:
  // Called on the loop thread with the epoll events that fired (IoEvents bits).
  using FdCallback = std::function<void(uint32_t events)>;
  using Task = std::function<void()>;
  using TimerId = uint64_t;
  static constexpr TimerId kNoTimer = 0;

  EventLoop();
  ~EventLoop();  // Stop()s and joins if still running.
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Creates the epoll and eventfd and starts the thread, named `thread_name` (at most 15
  // characters, pthread_setname_np). False with *error set when a system call fails.
  bool Start(const std::string& thread_name, std::string* error);

  // Asks the loop to finish: tasks already posted run, then the thread exits; joins it. Safe
  // from any thread but the loop's own (from the loop thread use RequestStop()). Idempotent.
  void Stop();
  // From the loop thread: leave the loop after the current iteration.
  void RequestStop();

  bool running() const { return running_.load(std::memory_order_acquire); }
  bool InLoopThread() const;
  // The loop thread's kernel thread id (0 before Start): for its scheduling settings.
  int thread_id() const { return thread_tid_; }

  // Runs `task` on the loop thread, soon (FIFO with other posts). Any thread. Returns false
  // (and drops the task) when the loop is not running.
  bool Post(Task task);

  // Runs `task` on the loop thread once the current callback (event, posted task or timer) has
  // returned: for freeing an object from inside its own call stack. Loop thread only. Unlike
  // Post it never drops the task, so it also holds during a stop.
  void Defer(Task task) { deferred_.push_back(std::move(task)); }

  // fd registration, loop thread only. `events` is a mask of kReadable/kWritable/
  // kPeerHalfClosed; errors and hangups are always reported. The callback may Unwatch (even
  // its own fd) or Modify. False with errno set when epoll_ctl fails.
  bool Watch(int fd, uint32_t events, FdCallback callback);
  bool Modify(int fd, uint32_t events);
  void Unwatch(int fd);

  // One-shot timer: `task` runs on the loop thread after `delay_ms`. Loop thread only.
  TimerId AddTimer(uint64_t delay_ms, Task task);
  void CancelTimer(TimerId id);

  // Monotonic milliseconds (CLOCK_MONOTONIC).
  static uint64_t NowMs();
  // Time of the current loop iteration (cheaper than NowMs, updated once per wake-up).
  uint64_t now_ms() const { return now_ms_; }

 private:
  struct Watcher {
    FdCallback callback;
    uint64_t generation;
  };
  struct Timer {
    uint64_t deadline;
    uint64_t seq;  // timers due at the same ms run in the order they were added
    TimerId id;
    bool operator>(const Timer& o) const { return deadline > o.deadline || (deadline == o.deadline && seq > o.seq); }
  };
  // A timer's task lives in a slot; its id is the slot and the slot's generation, so a
  // cancelled or fired id never reaches the next timer in that slot. Slots are reused: adding
  // a timer allocates nothing once warm (a per-call deadline on the hot path).
  struct TimerSlot {
    Task task;
    uint32_t generation = 0;
    bool armed = false;
  };
  TimerSlot* LiveSlot(TimerId id);
  // Disarms the slot and frees it for the next timer; returns its task.
  Task ReleaseSlot(TimerSlot* s);

  void Run();
  void RunPosted();
  void RunDeferred();
  int NextTimeoutMs();
  void RunTimers();
  void Wake();

  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> stop_requested_{false};
  std::thread::id loop_thread_id_;
  int thread_tid_ = 0;

  std::mutex post_mutex_;
  std::vector<Task> posted_;       // guarded by post_mutex_
  std::vector<Task> running_tasks_;  // loop thread: swapped with posted_
  std::vector<Task> deferred_;       // loop thread: see Defer

  std::unordered_map<int, std::unique_ptr<Watcher>> watchers_;
  // Watchers removed during a batch of events die after it (a callback may unwatch itself).
  std::vector<std::unique_ptr<Watcher>> retired_watchers_;
  uint64_t watch_generation_ = 0;

  std::vector<Timer> timer_heap_;  // min-heap by deadline
  std::vector<TimerSlot> timer_slots_;
  std::vector<uint32_t> free_timer_slots_;
  uint64_t next_timer_seq_ = 0;
  uint64_t now_ms_ = 0;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_EVENT_LOOP_H_
