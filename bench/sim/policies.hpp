// Eviction simulators at a byte budget, written from the papers' descriptions:
//   LRU     exact: a hit moves the object to the head, the tail is evicted.
//   FIFO    insertion order, hits change nothing.
//   SIEVE   (Zhang et al., NSDI'24) one FIFO queue, a visited bit per object and a "hand".
//           A hit sets the bit. To evict, the hand walks from where it stopped toward the
//           newer end (wrapping from the head back to the tail), clearing set bits, and
//           evicts the first object whose bit is clear; objects never move.
//   S3-FIFO (Yang et al., SOSP'23) a small FIFO S (10% of the bytes), a main FIFO M and a
//           ghost FIFO G of keys only (as many bytes as M). Hits increment a 2-bit counter.
//           New keys go to S — or straight to M if G remembers them. Evicting from S: an
//           object accessed while in S (freq >= promote threshold, 1 by default) moves to M,
//           otherwise it leaves and its key goes to G ("quick demotion"). Evicting from M:
//           an object with freq > 0 is reinserted at the head with freq - 1 ("lazy
//           promotion"), otherwise it leaves.
// Cost of an object = key bytes + value bytes + a per-entry overhead, the way pipecache
// counts its budget, so a simulated policy and the real store get the same budget.
// An object larger than the whole budget is never admitted (a miss, not an error).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace bench {

class Policy {
 public:
  virtual ~Policy() = default;
  virtual std::string_view name() const = 0;
  // One request for object `id` (dense, < id_count) costing `cost` bytes. True on a hit; on
  // a miss the object is admitted, evicting as needed.
  virtual bool access(std::uint32_t id, std::uint64_t cost) = 0;
  // Objects evicted so far (compare with the real store's count: extra evictions there mean
  // it made room for reasons other than the budget, e.g. a free block too small).
  std::uint64_t evictions() const noexcept { return evictions_; }

 protected:
  std::uint64_t evictions_ = 0;
};

std::unique_ptr<Policy> make_lru(std::uint64_t capacity, std::size_t id_count);
std::unique_ptr<Policy> make_fifo(std::uint64_t capacity, std::size_t id_count);
std::unique_ptr<Policy> make_sieve(std::uint64_t capacity, std::size_t id_count);
std::unique_ptr<Policy> make_s3fifo(std::uint64_t capacity, std::size_t id_count,
                                    double small_fraction = 0.1, unsigned promote_threshold = 1);

}  // namespace bench
