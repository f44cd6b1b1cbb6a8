// Allocation under the budget, and the SIEVE hand that makes room (the eviction paragraph of
// table.hpp). Both run under the arena lock, taken by allocate().
#include "store/table_internal.hpp"
#include "util/clock.hpp"
#include "util/fault.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

std::uint32_t Table::allocate(unsigned stripe, std::uint32_t units, unsigned ns, std::uint16_t flags, Counters c) {
  ArenaLock al(*this, c);
  if (!al) return 0;
  std::uint64_t need = std::uint64_t{units} * kUnit;
  // Bounded: every round either allocates or evicts one entry; a sweep that can evict nothing
  // (all candidates locked by others) gives up and the write is dropped.
  for (std::uint64_t round = 0;; ++round) {
    const Geometry& g = seg_.geometry();
    bool within_budget = h_.arena.bytes_used.load(kRelaxed) + need <= g.byte_budget &&
                         (g.max_entries == 0 || h_.arena.entries.load(kRelaxed) < g.max_entries);
    if (within_budget) {
      if (std::uint32_t off = arena_.alloc(units, stripe, ns, flags)) return off;
    }
    if (round > h_.arena.entries.load(kRelaxed) + 64 || !evict_one(stripe, c)) return 0;
  }
}

// REQUIRES: the arena lock and stripe `held`'s lock. True when it made room.
bool Table::evict_one(unsigned held, Counters c) {
  std::uint64_t limit = 2 * h_.arena.entries.load(kRelaxed) + 8;
  std::uint64_t now = coarse_ns();
  int broken = 0;
  for (std::uint64_t examined = 0; examined < limit; ++examined) {
    std::uint32_t off = arena_.hand();
    if (!off) return false;
    EntryView v = checked_entry(off);
    if (!v) {  // only a foreign writer puts a bad offset on the queue
      arena_.park_hand();
      if (++broken > 1) return false;
      continue;
    }
    arena_.step_hand(off);
    const Entry* e = arena_.entry(off);
    // expiry_ns and flags: racy, an update in place (W4) may be rewriting them under its stripe
    // lock; a decision on the old figures costs at worst one early eviction.
    const std::uint64_t expiry = racy(e->expiry_ns);
    const bool lease = racy(e->flags) & kEntryLease;  // never changes in place
    bool expired = expiry != 0 && expiry <= now;
    bool stale = !current_generation(*e);
    if (lease) {
      // A computation in progress is never evicted early, even in an invalidated namespace:
      // publish() needs its generation stamp to discard the superseded value.
      if (!expired) continue;
    } else if (!expired && !stale) {
      if (arena_.visited(off)) {
        arena_.clear_visited(off);
        continue;
      }
    }
    unsigned victim_stripe = word0_stripe(e->word0);
    bool own = victim_stripe == held;
    if (!own) {
      // Lock order (layout.hpp): a stripe after the arena only by try-lock. A dead holder's
      // stripe is dropped by the repair, which made room.
      bool dropped = false;
      LockResult r = try_lock_or_repair(stripes_[victim_stripe].mutex, [&] {
        repair_stripe(victim_stripe, true, c);
        dropped = true;
      });
      if (r != LockResult::ok) continue;
      if (dropped) {
        unlock_robust(stripes_[victim_stripe].mutex);
        return true;
      }
      stripes_[victim_stripe].dirty.store(1, kRelaxed);
    }
    std::string_view key = v.key;
    std::uint64_t h = hash_key(key);
    Found f = find_locked(h, key, lease);
    bool done = false;
    if (f.off == off) {
      unlink_locked(victim_stripe, h, f);
      fault(FaultPoint::mid_evict);
      arena_.release(off);
      count(c, expired ? StoreCounter::expirations : stale ? StoreCounter::invalidations : StoreCounter::evictions,
            stale && !expired ? 0 : 1);
      done = true;
    }
    if (!own) {
      stripes_[victim_stripe].dirty.store(0, kRelaxed);
      unlock_robust(stripes_[victim_stripe].mutex);
    }
    if (done) return true;
  }
  return false;
}

}  // namespace pipecache::detail
