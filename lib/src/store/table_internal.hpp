// What the table's source files share (not part of the table's interface): the lock
// timeouts, the three lock guards and the one loop over a stripe's buckets.
//
// Lock guards. Each goes through lock_or_repair (lock/robust_mutex.hpp), handing it the repair
// of the data its mutex protects (recovery.cpp), so owner death is met the same way at every
// lock site:
//   StripeLock   one stripe: repair_stripe drops a stripe whose holder died mid-change (W1);
//   ArenaLock    the arena: repair_arena rebuilds free lists, queue and counters from A1;
//   LockedTable  every stripe (ascending: the lock order), then the arena — one consistent
//                instant of the whole table, like libcuckoo's locked_table; clear and verify.
// The registry lock (namespaces.cpp, stats.cpp) needs no repair and calls lock_or_repair
// directly.
#pragma once

#include "lock/robust_mutex.hpp"
#include "store/table.hpp"
#include "util/clock.hpp"

namespace pipecache::detail {

inline constexpr auto kRelaxed = std::memory_order_relaxed;
// Chains are ~1 long at the default load factor; a longer walk means a cycle in a corrupted
// segment, and ends the walk rather than the process.
inline constexpr int kMaxChain = 4096;
// A holder stopped (SIGSTOP, debugger) costs the others this much, never a hang.
inline constexpr std::uint64_t kReadLockTimeoutNs = 1'000'000'000;
inline constexpr std::uint64_t kWriteLockTimeoutNs = 2'000'000'000;

// A load of a field another process may be changing (seqlock reads; a bounds check of a
// linked entry's size while the arena flips a neighbour's prev-free bit).
template <typename T>
T racy(const T& x) noexcept {
  return __atomic_load_n(&x, __ATOMIC_RELAXED);
}

// The entry's namespace has not been invalidated since it was stamped (Arena::alloc). An id
// out of range (only a foreign writer makes one) counts as invalidated.
__attribute__((always_inline)) inline bool Table::current_generation(const Entry& e) const noexcept {
  unsigned ns = word0_ns(racy(e.word0));
  if (ns >= kMaxNamespaces) return false;
  return ns == 0 || racy(e.ns_generation) == static_cast<std::uint32_t>(ns_[ns].generation.load(kRelaxed));
}

__attribute__((always_inline)) inline bool Table::usable(const Entry& e, std::uint64_t now) const noexcept {
  std::uint64_t exp = racy(e.expiry_ns);
  // now == 0: read the clock only for an entry that has a TTL (most hits of a response cache
  // do, but a TTL-less hit then costs no clock read at all).
  if (exp != 0 && exp <= (now ? now : coarse_ns())) return false;
  return current_generation(e);
}

class Table::StripeLock {
 public:
  StripeLock(Table& t, unsigned idx, std::uint64_t timeout_ns, Counters c) : t_(t), idx_(idx) {
    held_ = lock_or_repair(t.stripes_[idx].mutex, timeout_ns, [&] { t.repair_stripe(idx, false, c); }) ==
            LockResult::ok;
  }
  ~StripeLock() {
    if (held_) unlock_robust(t_.stripes_[idx_].mutex);
  }
  StripeLock(const StripeLock&) = delete;
  StripeLock& operator=(const StripeLock&) = delete;
  explicit operator bool() const noexcept { return held_; }
  // W1: set before the first change of the stripe, cleared after the last.
  void dirty(bool on) noexcept { t_.stripes_[idx_].dirty.store(on ? 1 : 0, kRelaxed); }

 private:
  Table& t_;
  unsigned idx_;
  bool held_ = false;
};

class Table::ArenaLock {
 public:
  ArenaLock(Table& t, Counters c) : t_(t) {
    // A broken block chain found by the repair marks the segment corrupt.
    locked_ = lock_or_repair(t.h_.arena.lock, kWriteLockTimeoutNs, [&] { t.repair_arena(c); }) == LockResult::ok;
  }
  ~ArenaLock() {
    if (locked_) unlock_robust(t_.h_.arena.lock);
  }
  ArenaLock(const ArenaLock&) = delete;
  ArenaLock& operator=(const ArenaLock&) = delete;
  bool locked() const noexcept { return locked_; }
  // Held, and the arena fit to allocate from.
  explicit operator bool() const noexcept { return locked_ && !t_.corrupt(); }

 private:
  Table& t_;
  bool locked_ = false;
};

// Every stripe, then the arena. Readers go on (every seq stays even unless the holder makes
// it odd); writers wait for the life of the guard. A dead holder of any of these locks is
// repaired as StripeLock and ArenaLock repair it, whatever the guard is for: a clear() that
// then cannot take every lock (a live holder past the timeout) reformats nothing, and the
// stripes it did take must not be left half-changed yet marked consistent. In reset mode
// (clear) the guard also wakes every held stripe's lease waiters on exit.
class Table::LockedTable {
 public:
  enum class OnOwnerDeath { repair, reset };
  LockedTable(Table& t, Counters c, OnOwnerDeath mode) : t_(t), reset_(mode == OnOwnerDeath::reset) {
    for (; held_ < t.stripe_count_; ++held_) {
      unsigned idx = held_;
      auto repair = [&] { t.repair_stripe(idx, false, c); };
      if (lock_or_repair(t.stripes_[idx].mutex, kWriteLockTimeoutNs, repair) != LockResult::ok) return;
    }
    arena_ = lock_or_repair(t.h_.arena.lock, kWriteLockTimeoutNs, [&] { t.repair_arena(c); }) == LockResult::ok;
  }
  ~LockedTable() {
    if (arena_) unlock_robust(t_.h_.arena.lock);
    for (unsigned idx = 0; idx < held_; ++idx) {
      unlock_robust(t_.stripes_[idx].mutex);
      if (reset_) t_.wake_lease_waiters(idx);
    }
  }
  LockedTable(const LockedTable&) = delete;
  LockedTable& operator=(const LockedTable&) = delete;
  // Every stripe and the arena are held.
  explicit operator bool() const noexcept { return arena_; }
  // Stripes [0, stripes_held()) are held; the first one not obtained within the timeout is
  // stripes_held() itself when it is below the stripe count.
  unsigned stripes_held() const noexcept { return held_; }

 private:
  Table& t_;
  bool reset_;
  unsigned held_ = 0;
  bool arena_ = false;
};

// The one loop over a stripe's buckets, used by every whole-stripe pass. REQUIRES: the stripe
// lock. Calls visit(bucket, view) for each linked entry in bucket order with the entry as
// checked against its block (checked_entry: only a foreign writer breaks that). A chain ends at an
// entry that does not fit, or after kMaxChain steps (a cycle), reported to broken(bucket, off).
// visit returns keep; unlink (the walk unlinks the entry; the caller holds seq odd and
// releases the block); end_chain (on to the next bucket); or stop. False when stopped.
template <typename Visit, typename Broken>
bool Table::walk_stripe(unsigned idx, Visit&& visit, Broken&& broken) {
  std::atomic<std::uint32_t>* heads = stripe_buckets(idx);
  for (std::uint64_t b = 0; b < bps_; ++b) {
    std::uint32_t pred = 0, off = heads[b].load(kRelaxed);
    for (int steps = 0; off; ++steps) {
      EntryView v = steps > kMaxChain ? EntryView{} : checked_entry(off);
      if (!v) {
        broken(b, off);
        break;
      }
      std::uint32_t next = arena_.entry(off)->chain_next.load(kRelaxed);
      Walk w = visit(b, v);
      if (w == Walk::stop) return false;
      if (w == Walk::end_chain) break;
      if (w == Walk::unlink) {
        if (pred) arena_.entry(pred)->chain_next.store(next, kRelaxed);
        else heads[b].store(next, kRelaxed);
      } else {
        pred = off;
      }
      off = next;
    }
  }
  return true;
}

template <typename Visit>
bool Table::walk_stripe(unsigned idx, Visit&& visit) {
  return walk_stripe(idx, std::forward<Visit>(visit), [](std::uint64_t, std::uint32_t) {});
}

}  // namespace pipecache::detail
