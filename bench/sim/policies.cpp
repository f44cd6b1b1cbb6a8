#include "sim/policies.hpp"

#include <algorithm>
#include <deque>
#include <vector>

namespace bench {
namespace {

constexpr std::uint32_t kNil = 0xffffffffu;

// Doubly linked queue threaded through per-id link arrays: `head` is the newest end, `tail`
// the oldest; prev points toward the head, next toward the tail. Dense ids make this two
// vector look-ups per step, which keeps a million-request replay well under a second.
class Queue {
 public:
  explicit Queue(std::size_t id_count) : prev_(id_count, kNil), next_(id_count, kNil) {}
  bool empty() const noexcept { return head_ == kNil; }
  std::uint32_t head() const noexcept { return head_; }
  std::uint32_t tail() const noexcept { return tail_; }
  std::uint32_t toward_head(std::uint32_t id) const noexcept { return prev_[id]; }
  std::uint64_t bytes() const noexcept { return bytes_; }

  void push_head(std::uint32_t id, std::uint64_t cost) {
    prev_[id] = kNil;
    next_[id] = head_;
    if (head_ != kNil) prev_[head_] = id;
    head_ = id;
    if (tail_ == kNil) tail_ = id;
    bytes_ += cost;
  }
  void remove(std::uint32_t id, std::uint64_t cost) {
    if (prev_[id] != kNil) next_[prev_[id]] = next_[id]; else head_ = next_[id];
    if (next_[id] != kNil) prev_[next_[id]] = prev_[id]; else tail_ = prev_[id];
    prev_[id] = next_[id] = kNil;
    bytes_ -= cost;
  }

 private:
  std::vector<std::uint32_t> prev_, next_;
  std::uint32_t head_ = kNil, tail_ = kNil;
  std::uint64_t bytes_ = 0;
};

// LRU and FIFO differ only in what a hit does.
class ListPolicy final : public Policy {
 public:
  ListPolicy(std::uint64_t capacity, std::size_t id_count, bool move_on_hit)
      : capacity_(capacity), move_on_hit_(move_on_hit), queue_(id_count), cost_(id_count, 0),
        resident_(id_count, 0) {}
  std::string_view name() const override { return move_on_hit_ ? "LRU" : "FIFO"; }
  bool access(std::uint32_t id, std::uint64_t cost) override {
    if (resident_[id]) {
      if (move_on_hit_) {
        queue_.remove(id, cost_[id]);
        queue_.push_head(id, cost_[id]);
      }
      return true;
    }
    if (cost > capacity_) return false;
    while (queue_.bytes() + cost > capacity_) {
      std::uint32_t victim = queue_.tail();
      queue_.remove(victim, cost_[victim]);
      resident_[victim] = 0;
      ++evictions_;
    }
    cost_[id] = cost;
    resident_[id] = 1;
    queue_.push_head(id, cost);
    return false;
  }

 private:
  std::uint64_t capacity_;
  bool move_on_hit_;
  Queue queue_;
  std::vector<std::uint64_t> cost_;
  std::vector<std::uint8_t> resident_;
};

class SievePolicy final : public Policy {
 public:
  SievePolicy(std::uint64_t capacity, std::size_t id_count)
      : capacity_(capacity), queue_(id_count), cost_(id_count, 0), resident_(id_count, 0),
        visited_(id_count, 0) {}
  std::string_view name() const override { return "SIEVE"; }
  bool access(std::uint32_t id, std::uint64_t cost) override {
    if (resident_[id]) {
      visited_[id] = 1;
      return true;
    }
    if (cost > capacity_) return false;
    while (queue_.bytes() + cost > capacity_) evict();
    cost_[id] = cost;
    resident_[id] = 1;
    visited_[id] = 0;
    queue_.push_head(id, cost);
    return false;
  }

 private:
  void evict() {
    std::uint32_t at = hand_ != kNil ? hand_ : queue_.tail();
    while (visited_[at]) {
      visited_[at] = 0;
      at = queue_.toward_head(at);
      if (at == kNil) at = queue_.tail();  // passed the newest object: wrap to the oldest
    }
    hand_ = queue_.toward_head(at);  // the hand stays where the victim was
    queue_.remove(at, cost_[at]);
    resident_[at] = 0;
    ++evictions_;
  }

  std::uint64_t capacity_;
  Queue queue_;
  std::vector<std::uint64_t> cost_;
  std::vector<std::uint8_t> resident_;
  std::vector<std::uint8_t> visited_;
  std::uint32_t hand_ = kNil;
};

class S3FifoPolicy final : public Policy {
 public:
  S3FifoPolicy(std::uint64_t capacity, std::size_t id_count, double small_fraction,
               unsigned promote_threshold)
      : capacity_(capacity),
        small_target_(static_cast<std::uint64_t>(static_cast<double>(capacity) * small_fraction)),
        main_target_(capacity - small_target_),
        promote_threshold_(promote_threshold),
        small_(id_count),
        main_(id_count),
        cost_(id_count, 0),
        where_(id_count, kNowhere),
        freq_(id_count, 0),
        ghost_stamp_(id_count, 0) {}
  std::string_view name() const override { return "S3-FIFO"; }

  bool access(std::uint32_t id, std::uint64_t cost) override {
    if (where_[id] != kNowhere) {
      freq_[id] = static_cast<std::uint8_t>(std::min<unsigned>(freq_[id] + 1u, 3u));
      return true;
    }
    if (cost > capacity_) return false;
    while (small_.bytes() + main_.bytes() + cost > capacity_) evict();
    cost_[id] = cost;
    freq_[id] = 0;
    if (ghost_stamp_[id] != 0) {
      ghost_stamp_[id] = 0;  // its ghost record (still queued) is now stale
      where_[id] = kMain;
      main_.push_head(id, cost);
    } else {
      where_[id] = kSmall;
      small_.push_head(id, cost);
    }
    return false;
  }

 private:
  static constexpr std::uint8_t kNowhere = 0, kSmall = 1, kMain = 2;

  void evict() {
    if (!small_.empty() && (small_.bytes() >= small_target_ || main_.empty()))
      evict_small();
    else
      evict_main();
  }

  // Ends when one object left S for the ghost; promotions alone free nothing of the budget.
  void evict_small() {
    while (!small_.empty()) {
      std::uint32_t t = small_.tail();
      small_.remove(t, cost_[t]);
      if (freq_[t] >= promote_threshold_) {
        freq_[t] = 0;
        where_[t] = kMain;
        main_.push_head(t, cost_[t]);
        if (main_.bytes() > main_target_) evict_main();
      } else {
        where_[t] = kNowhere;
        remember(t);
        ++evictions_;
        return;
      }
    }
  }

  void evict_main() {
    while (!main_.empty()) {
      std::uint32_t t = main_.tail();
      main_.remove(t, cost_[t]);
      if (freq_[t] > 0) {
        --freq_[t];
        main_.push_head(t, cost_[t]);
      } else {
        where_[t] = kNowhere;
        ++evictions_;
        return;
      }
    }
  }

  // The ghost holds keys (with the bytes they stood for) up to M's target size. A stamp per id
  // tells a live record from one superseded by a re-insertion or a later eviction.
  void remember(std::uint32_t id) {
    ghost_stamp_[id] = ++ghost_clock_;
    ghost_.push_back({id, ghost_clock_, cost_[id]});
    ghost_bytes_ += cost_[id];
    while (ghost_bytes_ > main_target_ && !ghost_.empty()) {
      GhostRecord old = ghost_.front();
      ghost_.pop_front();
      ghost_bytes_ -= old.cost;
      if (ghost_stamp_[old.id] == old.stamp) ghost_stamp_[old.id] = 0;
    }
  }

  struct GhostRecord {
    std::uint32_t id;
    std::uint64_t stamp;
    std::uint64_t cost;
  };

  std::uint64_t capacity_, small_target_, main_target_;
  unsigned promote_threshold_;
  Queue small_, main_;
  std::vector<std::uint64_t> cost_;
  std::vector<std::uint8_t> where_;
  std::vector<std::uint8_t> freq_;
  std::vector<std::uint64_t> ghost_stamp_;
  std::deque<GhostRecord> ghost_;
  std::uint64_t ghost_bytes_ = 0;
  std::uint64_t ghost_clock_ = 0;
};

}  // namespace

std::unique_ptr<Policy> make_lru(std::uint64_t capacity, std::size_t id_count) {
  return std::make_unique<ListPolicy>(capacity, id_count, true);
}
std::unique_ptr<Policy> make_fifo(std::uint64_t capacity, std::size_t id_count) {
  return std::make_unique<ListPolicy>(capacity, id_count, false);
}
std::unique_ptr<Policy> make_sieve(std::uint64_t capacity, std::size_t id_count) {
  return std::make_unique<SievePolicy>(capacity, id_count);
}
std::unique_ptr<Policy> make_s3fifo(std::uint64_t capacity, std::size_t id_count,
                                    double small_fraction, unsigned promote_threshold) {
  return std::make_unique<S3FifoPolicy>(capacity, id_count, small_fraction, promote_threshold);
}

}  // namespace bench
