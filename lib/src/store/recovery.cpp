// Crash recovery: what a locker does when the previous holder of a lock died holding it.
// lock_or_repair (lock/robust_mutex.hpp) runs these with the mutex held and marks it
// consistent afterwards; the guards of table_internal.hpp hand them over.
//
//  C1. A stripe whose holder died mid-change (dirty set, or seq left odd: W1) is dropped —
//      every bucket emptied and every block it owns released. Dropping is always safe for a
//      cache; repairing a half-linked chain would need a log.
//  C2. A stripe whose holder died between changes (dirty clear, seq even) is intact: only the
//      mutex is marked consistent.
//  C3. The arena after a dead holder is rebuilt from its chain of block sizes, which is valid
//      at every instant (arena.hpp A1). A broken chain is corruption, not a crash: the segment
//      is marked corrupt and stays so until clear().
//  C4. Every repair is idempotent: dirty stays set until the very end, so a repairer that dies
//      is repaired again from the start by the next locker (who gets EOWNERDEAD in turn).
//  C5. No repair allocates or throws: it runs holding an inconsistent mutex, and an exception
//      would leave that mutex held by a live thread, timing out every other locker.
#include <array>

#include "store/table_internal.hpp"
#include "util/fault.hpp"

namespace pipecache::detail {

// REQUIRES: stripe idx's mutex (owner died); the arena lock if arena_held.
void Table::repair_stripe(unsigned idx, bool arena_held, Counters c) noexcept {
  Stripe& s = stripes_[idx];
  count(c, StoreCounter::lock_recoveries);
  if (!s.dirty.load(kRelaxed) && !(s.seq.load(kRelaxed) & 1)) return;  // C2
  // C1, C4.
  s.dirty.store(1, kRelaxed);
  if (!(s.seq.load(kRelaxed) & 1)) begin_write(s);
  std::atomic<std::uint32_t>* heads = stripe_buckets(idx);
  for (std::uint64_t b = 0; b < bps_; ++b) heads[b].store(0, kRelaxed);
  fault(FaultPoint::mid_recovery);
  // C5: the blocks it owns, a batch at a time (a release may coalesce the chain being
  // walked, so none is released during the walk); a walk that finds none ends it.
  auto drop_owned = [&] {
    std::array<std::uint32_t, 64> owned;
    for (;;) {
      std::size_t n = 0;
      arena_.walk([&](std::uint32_t off, std::uint64_t w) {
        if (n < owned.size() && !(word0_flags(w) & kBlockFree) && word0_stripe(w) == idx) owned[n++] = off;
      });
      for (std::size_t i = 0; i < n; ++i) arena_.release(owned[i]);
      if (n < owned.size()) return;
    }
  };
  if (arena_held) {
    drop_owned();
  } else {
    ArenaLock al(*this, c);
    if (al) drop_owned();
  }
  s.entries.store(0, kRelaxed);
  end_write(s);
  s.dirty.store(0, kRelaxed);
  wake_lease_waiters(idx);
}

// REQUIRES: the arena mutex (owner died). C3.
void Table::repair_arena(Counters c) noexcept {
  count(c, StoreCounter::lock_recoveries);
  if (!arena_.rebuild(nullptr)) h_.corrupt.store(kCorruptFlag, kRelaxed);
}

}  // namespace pipecache::detail
