// Request metrics of the gRPC ingress's fast path, kept where calls end: per (model, gRPC
// status) a count by latency bucket and the summed duration. The loop thread adds one call with
// a few adds under an uncontended mutex; JS takes what accumulated at scrape time (one addon
// call per scrape, not one event and one JS wake-up per call). The bounds are
// src/telemetry/bucket-histogram.ts's LATENCY_BUCKETS_SECONDS in microseconds, so the taken
// counts add straight into the request histograms.
//
// Between two takes at most kMaxSeries distinct series are kept; calls of further models count
// under kOtherModel (client-chosen model names must not grow memory while nobody scrapes).
#ifndef SLUICE_NATIVE_ENGINE_REQUEST_TALLY_H_
#define SLUICE_NATIVE_ENGINE_REQUEST_TALLY_H_

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace sluice {
namespace engine {

class RequestTally {
 public:
  static constexpr uint64_t kBoundsUs[] = {100,    250,    500,     1000,    2500,    5000,    10000,    25000,   50000,
                                           100000, 250000, 500000,  1000000, 2500000, 5000000, 10000000, 30000000};
  static constexpr size_t kBuckets = sizeof(kBoundsUs) / sizeof(kBoundsUs[0]) + 1;  // + the +Inf bucket
  static constexpr size_t kMaxSeries = 256;
  static constexpr std::string_view kOtherModel = "_other";

  struct Series {
    std::string model;
    uint32_t status = 0;
    uint64_t counts[kBuckets] = {};
    uint64_t sum_us = 0;
  };

  // Loop thread: one finished call.
  void Record(std::string_view model, uint32_t status, uint64_t duration_us) {
    size_t b = 0;
    while (b < kBuckets - 1 && duration_us > kBoundsUs[b]) b++;
    std::lock_guard<std::mutex> lock(mutex_);
    Series* s = Find(model, status);
    s->counts[b] += 1;
    s->sum_us += duration_us;
  }

  // Any thread: moves what accumulated since the last take into *out (cleared first). The
  // vectors keep their capacity: the loop thread allocates only a series' first call per take.
  void Take(std::vector<Series>* out) {
    out->clear();
    std::lock_guard<std::mutex> lock(mutex_);
    out->swap(series_);
    last_ = 0;
  }

 private:
  Series* Find(std::string_view model, uint32_t status) {
    // Most calls are of the model the previous call named.
    if (last_ < series_.size() && series_[last_].status == status && series_[last_].model == model) return &series_[last_];
    for (size_t i = 0; i < series_.size(); i++) {
      if (series_[i].status == status && series_[i].model == model) return &series_[last_ = i];
    }
    if (series_.size() >= kMaxSeries) {
      model = kOtherModel;
      for (size_t i = 0; i < series_.size(); i++) {
        if (series_[i].status == status && series_[i].model == model) return &series_[last_ = i];
      }
    }
    series_.emplace_back();
    last_ = series_.size() - 1;
    Series& s = series_.back();
    s.model.assign(model.data(), model.size());
    s.status = status;
    return &s;
  }

  std::mutex mutex_;
  std::vector<Series> series_;
  size_t last_ = 0;
};

}  // namespace engine
}  // namespace sluice

#endif  // SLUICE_NATIVE_ENGINE_REQUEST_TALLY_H_
