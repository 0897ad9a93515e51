// Calls by HTTP/2 stream id, for one connection, without an allocation per call: a vector
// kept sorted by id. A client opens streams with ids that only grow (RFC 9113 5.1.1; nghttp2
// refuses others), so an insert is an append, a lookup a binary search, and an erase moves
// the entries after it (at most the connection's concurrent streams, 1000 by default). The
// vector keeps its capacity across calls: a connection allocates only when it has more
// streams open at once than it ever had.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace sluice::engine {

template <typename T>
class StreamTable {
 public:
  /** The value of `id`, or nullptr. */
  T* Find(int32_t id) const {
    auto it = Lower(id);
    return it != entries_.end() && it->first == id ? it->second : nullptr;
  }

  /** Sets the value of `id` (replacing one that was there). */
  void Put(int32_t id, T* value) {
    if (entries_.empty() || entries_.back().first < id) {
      entries_.emplace_back(id, value);
      return;
    }
    auto it = Lower(id);
    if (it != entries_.end() && it->first == id) {
      it->second = value;
      return;
    }
    entries_.insert(it, {id, value});
  }

  /** Removes `id`; false when it was not there. */
  bool Erase(int32_t id) {
    auto it = Lower(id);
    if (it == entries_.end() || it->first != id) return false;
    entries_.erase(it);
    return true;
  }

  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  auto begin() const { return entries_.begin(); }
  auto end() const { return entries_.end(); }

 private:
  typename std::vector<std::pair<int32_t, T*>>::const_iterator Lower(int32_t id) const {
    return std::lower_bound(entries_.begin(), entries_.end(), id, [](const std::pair<int32_t, T*>& e, int32_t k) { return e.first < k; });
  }
  typename std::vector<std::pair<int32_t, T*>>::iterator Lower(int32_t id) {
    return std::lower_bound(entries_.begin(), entries_.end(), id, [](const std::pair<int32_t, T*>& e, int32_t k) { return e.first < k; });
  }

  std::vector<std::pair<int32_t, T*>> entries_;
};

}  // namespace sluice::engine
