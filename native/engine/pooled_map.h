// An unordered_map that keeps the nodes of erased entries (C++17 node handles) and reuses them
// for the next insert: a map of calls in flight allocates nothing per call once warm, where
// std::unordered_map allocates a node per insert. The spare nodes are bounded in count.
#pragma once

#include <cstddef>
#include <iterator>
#include <unordered_map>
#include <utility>
#include <vector>

namespace sluice::engine {

template <typename K, typename V, size_t kMaxSpare = 1024>
class PooledMap {
 public:
  using Map = std::unordered_map<K, V>;
  using iterator = typename Map::iterator;

  iterator find(const K& k) { return map_.find(k); }
  iterator begin() { return map_.begin(); }
  iterator end() { return map_.end(); }
  size_t count(const K& k) const { return map_.count(k); }
  size_t size() const { return map_.size(); }
  bool empty() const { return map_.empty(); }

  /** Sets `k` to `v`, replacing a value that was there. */
  void Put(const K& k, V v) {
    auto it = map_.find(k);
    if (it != map_.end()) {
      it->second = std::move(v);
      return;
    }
    if (spare_.empty()) {
      map_.emplace(k, std::move(v));
      return;
    }
    typename Map::node_type node = std::move(spare_.back());
    spare_.pop_back();
    node.key() = k;
    node.mapped() = std::move(v);
    map_.insert(std::move(node));
  }

  /** Erases the entry at `it`; returns the one after it. */
  iterator erase(iterator it) {
    iterator next = std::next(it);
    typename Map::node_type node = map_.extract(it);
    if (spare_.size() < kMaxSpare) spare_.push_back(std::move(node));
    return next;
  }

  size_t erase(const K& k) {
    auto it = map_.find(k);
    if (it == map_.end()) return 0;
    erase(it);
    return 1;
  }

  void clear() {
    while (!map_.empty()) erase(map_.begin());
  }

 private:
  Map map_;
  std::vector<typename Map::node_type> spare_;
};

}  // namespace sluice::engine
