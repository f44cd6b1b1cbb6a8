// The arena: every entry's memory, one allocator for the whole segment, and the SIEVE queue.
//
// Memory layout: arena_bytes of blocks, addressed in 8-byte units from the arena start; unit 0
// is "none", the first block starts at kFirstUnit. Blocks tile the arena with no gap: walking
// from kFirstUnit by each block's size reaches the end exactly. A used block is an Entry
// (layout.hpp); a free block is on the free list of its size class (TLSF-style: 4 classes per
// power of two, a bitmap of non-empty classes, O(1) search) and repeats its size in its last
// 4 bytes so that freeing its right neighbour can coalesce backwards.
//
// Invariants (all under ArenaState::lock; checked by check(), which pipectl verify runs):
//  A1. The chain of block sizes is valid at every instant: each change of a block's size,
//      state or owner is ONE 8-byte store of word0, made in an order (remainder header before
//      the shrunk block, merged header before anything else) such that every intermediate
//      state still tiles the arena. Crash recovery relies on this alone.
//  A2. No two free blocks are adjacent after any complete operation.
//  A3. bytes_used == sum of used block sizes; entries == used blocks; free_bytes/free_blocks
//      likewise; Namespace::entries == used blocks of that namespace.
//  A4. Every used block is on the SIEVE queue exactly once; free blocks never are.
//  A5. bytes_used <= byte_budget after every allocation (Table enforces it by evicting first).
// Recovery (rebuild): after a holder died with the arena lock, everything but A1 may be
// broken. rebuild() walks the blocks and recomputes A2..A4 (free lists, merged runs, queue in
// arena order, counters). It is idempotent: a rebuilder that dies leaves A1 intact.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "segment/layout.hpp"
#include "segment/segment.hpp"

namespace pipecache::detail {

inline constexpr std::uint32_t kFirstUnit = kCacheLine / kUnit;

class Arena {
 public:
  Arena() = default;
  // The arena of a mapped segment, sized by its validated geometry (not the live header).
  explicit Arena(const Segment& seg)
      : h_(&seg.header()),
        a_(&seg.header().arena),
        base_(seg.arena()),
        visited_(seg.visited()),
        ns_(seg.namespaces()),
        end_(static_cast<std::uint32_t>(seg.geometry().arena_bytes / kUnit)) {}

  static std::uint32_t units_for(std::uint64_t bytes) noexcept {
    return static_cast<std::uint32_t>((bytes + kUnit - 1) / kUnit);
  }

  // --- REQUIRES: arena lock held -------------------------------------------------------
  // A used block of exactly `units` (or up to kMinBlockUnits-1 more) owned by `stripe`,
  // pushed on the SIEVE queue as newest with its visited bit clear; 0 if nothing fits.
  // `flags` are the entry's (kEntryLease counts it out of Namespace::live).
  std::uint32_t alloc(std::uint32_t units, unsigned stripe, unsigned ns, std::uint16_t flags = 0) noexcept;
  // Frees a used block: off the queue, merged with free neighbours, on its free list.
  void release(std::uint32_t off) noexcept;
  // SIEVE: the candidate under the hand (oldest when the hand is parked), then step.
  std::uint32_t hand() const noexcept;
  void step_hand(std::uint32_t from) noexcept;
  void park_hand() noexcept { a_->hand = 0; }
  // Recomputes free lists, queue and counters from the chain of block sizes (see above).
  // False, with the problem, when the chain itself is broken (corruption, not a crash).
  bool rebuild(std::string* problem) noexcept;
  // O(1) invalidation of a namespace: entries of older generations become misses and are
  // reclaimed lazily. Returns how many live entries that made unreachable.
  std::uint64_t bump_generation(unsigned ns) noexcept;
  // Reformats: everything free. REQUIRES all stripe locks held too (Table::clear), or a
  // segment not yet published (Table::format).
  void reset() noexcept;
  // Checks A1-A5, the free lists and the visitable header of every used block, reporting each
  // violation in words to problem(); `stripes` bounds the owner stripe of a used block.
  // Returns what the index check needs next: the blocks walked and the used ones.
  struct Census {
    std::uint64_t blocks = 0;
    std::set<std::uint32_t> used;  // offsets of the used blocks
  };
  Census check(unsigned stripes, const std::function<void(std::string)>& problem) const;
  // ---------------------------------------------------------------------------------------

  // Bounds: a block header at `off` lies inside the arena. Safe on racy offsets.
  bool in_bounds(std::uint32_t off) const noexcept {
    return off >= kFirstUnit && off <= end_ - kMinBlockUnits;
  }
  std::uint32_t end() const noexcept { return end_; }
  Entry* entry(std::uint32_t off) const noexcept {
    return reinterpret_cast<Entry*>(base_ + std::uint64_t{off} * kUnit);
  }
  char* bytes(std::uint32_t off) const noexcept { return base_ + std::uint64_t{off} * kUnit; }
  // word0 is written under the arena lock only, but read under a stripe lock too (a linked
  // entry's size, for bounds) while the arena flips the prev-free bit of its neighbour: every
  // write is a single atomic store, every read outside the arena lock an atomic load.
  void store_word0(std::uint32_t off, std::uint64_t w) noexcept {
    __atomic_store_n(&entry(off)->word0, w, __ATOMIC_RELAXED);
  }
  std::uint64_t load_word0(std::uint32_t off) const noexcept {
    return __atomic_load_n(&entry(off)->word0, __ATOMIC_RELAXED);
  }

  // Visited bits (layout.hpp kVisitedShift): one per 32 arena bytes, indexed by block start,
  // each block its own bit (0.4% of the arena). A reader may set the bit of a block freed and
  // reused meanwhile: that marks another entry visited (an eviction-order blemish), never
  // corrupts memory — why the bits live outside the blocks.
  bool visited(std::uint32_t off) const noexcept {
    std::uint32_t b = off >> kVisitedShift;
    return (visited_[b / 64].load(std::memory_order_relaxed) >> (b % 64)) & 1;
  }
  void mark_visited(std::uint32_t off) noexcept {
    std::uint32_t b = off >> kVisitedShift;
    auto& w = visited_[b / 64];
    std::uint64_t bit = std::uint64_t{1} << (b % 64);
    if (!(w.load(std::memory_order_relaxed) & bit)) w.fetch_or(bit, std::memory_order_relaxed);
  }
  void clear_visited(std::uint32_t off) noexcept {
    std::uint32_t b = off >> kVisitedShift;
    visited_[b / 64].fetch_and(~(std::uint64_t{1} << (b % 64)), std::memory_order_relaxed);
  }

  // Walks the blocks in address order, calling fn(off, word0); stops (false) on a broken chain.
  template <typename Fn>
  bool walk(Fn&& fn, std::string* problem = nullptr) const {
    std::uint32_t off = kFirstUnit;
    while (off < end_) {
      std::uint64_t w = entry(off)->word0;
      std::uint32_t size = word0_size(w);
      if (size < kMinBlockUnits || size > end_ - off) {
        if (problem) *problem = "block at unit " + std::to_string(off) + " has bad size " + std::to_string(size);
        return false;
      }
      fn(off, w);
      off += size;
    }
    return true;
  }

  // Figures for stats (racy reads).
  std::uint64_t largest_free_units() const noexcept;
  std::uint64_t fragmented_bytes(std::uint64_t typical_entry_bytes) const noexcept;
  static unsigned bin_of(std::uint32_t units) noexcept;
  static std::uint32_t bin_floor(unsigned bin) noexcept;

 private:
  void bin_insert(std::uint32_t off, std::uint32_t size) noexcept;
  void bin_remove(std::uint32_t off, std::uint32_t size) noexcept;
  void write_free(std::uint32_t off, std::uint32_t size, std::uint64_t extra_flags) noexcept;
  void set_prev_free(std::uint32_t off, bool on) noexcept;
  void fifo_push(std::uint32_t off) noexcept;
  void fifo_unlink(std::uint32_t off) noexcept;
  // A3: a used block counts in Namespace::live when it is a value of its namespace's current
  // generation. REQUIRES ns < kMaxNamespaces.
  bool counts_live(std::uint32_t off, unsigned ns) const noexcept {
    return !(entry(off)->flags & kEntryLease) &&
           entry(off)->ns_generation == static_cast<std::uint32_t>(ns_[ns].generation.load(std::memory_order_relaxed));
  }
  FreeBlock* free_block(std::uint32_t off) const noexcept {
    return reinterpret_cast<FreeBlock*>(bytes(off));
  }
  std::uint32_t& footer(std::uint32_t off, std::uint32_t size) const noexcept {
    return *reinterpret_cast<std::uint32_t*>(bytes(off + size) - 4);
  }

  Header* h_ = nullptr;
  ArenaState* a_ = nullptr;
  char* base_ = nullptr;
  std::atomic<std::uint64_t>* visited_ = nullptr;
  Namespace* ns_ = nullptr;
  std::uint32_t end_ = 0;
};

}  // namespace pipecache::detail
