// Whole-table passes: invalidation by glob, purge of the expired, clear, and the key listing.
// Each takes one stripe at a time (clear: all of them at once, LockedTable) and walks it with
// walk_stripe; none holds more than one stripe and the arena, in the lock order.
#include <algorithm>
#include <cstring>
#include <vector>

#include "store/table_internal.hpp"
#include "util/clock.hpp"
#include "util/glob.hpp"

namespace pipecache::detail {

// Per stripe, under its lock: first matches (seq even: the stripe's readers go on while the
// matcher, a glob of any length, runs), then unlinks the matches in one short pass with seq
// odd (W2) and releases them under the arena lock. Only what the second pass unlinked is
// released (a foreign writer could change a chain between the passes). Lease entries are the
// matcher's to decide.
std::size_t Table::scan_remove(const std::function<bool(const Entry&, std::string_view)>& match, Counters c,
                               StoreCounter counter) {
  std::size_t removed = 0;
  std::vector<std::uint32_t> doomed, unlinked;
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
    if (!lock) continue;
    Stripe& s = stripes_[idx];
    doomed.clear();
    walk_stripe(idx, [&](std::uint64_t, const EntryView& v) {
      if (match(*arena_.entry(v.off), v.key)) doomed.push_back(v.off);
      return Walk::keep;
    });
    if (doomed.empty()) continue;
    std::sort(doomed.begin(), doomed.end());
    unlinked.clear();
    lock.dirty(true);
    begin_write(s);
    walk_stripe(idx, [&](std::uint64_t, const EntryView& v) {
      if (!std::binary_search(doomed.begin(), doomed.end(), v.off)) return Walk::keep;
      unlinked.push_back(v.off);
      return Walk::unlink;
    });
    end_write(s);
    s.entries.fetch_sub(static_cast<std::uint32_t>(unlinked.size()), kRelaxed);
    {
      ArenaLock al(*this, c);
      if (al)
        for (std::uint32_t off : unlinked) arena_.release(off);
    }
    removed += unlinked.size();
    lock.dirty(false);
  }
  count(c, counter, removed);
  return removed;
}

std::size_t Table::invalidate(std::string_view glob, Counters c) {
  if (corrupt()) return 0;
  GlobPrefix gp = glob_prefix(glob);
  std::uint64_t now = coarse_ns();
  // Namespaces wholly covered by the glob are bumped in O(1); those it covers in part, and
  // keys outside any namespace, are scanned.
  bool scan_all = !gp.prefix_star_only;
  std::uint32_t scan_mask = 0;  // bit i: scan namespace i
  std::size_t removed = 0;
  if (gp.prefix_star_only) {
    if (ns_[0].entries.load(kRelaxed) > 0) scan_mask |= 1u;
    std::vector<unsigned> bump;
    for (unsigned i = 1; i < kMaxNamespaces; ++i) {
      if (ns_[i].state.load(std::memory_order_acquire) != kNsReady) continue;
      std::string whole(ns_[i].name, std::min<std::size_t>(ns_[i].name_len, kMaxNamespaceName));
      whole += ':';
      if (whole.starts_with(gp.prefix)) bump.push_back(i);
      else if (gp.prefix.starts_with(whole)) scan_mask |= 1u << i;
    }
    if (!bump.empty()) {
      ArenaLock al(*this, c);
      if (al)
        for (unsigned i : bump) removed += arena_.bump_generation(i);
      count(c, StoreCounter::invalidations, removed);
    }
    if (!scan_mask) return removed;
  }
  removed += scan_remove(
      [&](const Entry& e, std::string_view key) {
        if (e.flags & kEntryLease) return false;
        unsigned ns = word0_ns(racy(e.word0));
        if (!scan_all && !(scan_mask & (1u << ns))) return false;
        return usable(e, now) && glob_match(glob, key);
      },
      c, StoreCounter::invalidations);
  return removed;
}

std::size_t Table::purge(Counters c) {
  std::uint64_t now = coarse_ns();
  return scan_remove(
      [&](const Entry& e, std::string_view) {
        if (e.flags & kEntryLease) return e.expiry_ns != 0 && e.expiry_ns <= now;
        return !usable(e, now);
      },
      c, StoreCounter::expirations);
}

// Every stripe, then the arena (LockedTable): a consistent instant in which the whole table is
// reformatted. This is also the way out of a corrupt arena.
bool Table::clear(Counters c) {
  LockedTable all(*this, c, LockedTable::OnOwnerDeath::reset);
  if (!all) return false;
  std::uint64_t removed = 0;
  std::uint64_t now = coarse_ns();
  arena_.walk([&](std::uint32_t off, std::uint64_t w) {
    if (!(word0_flags(w) & kBlockFree) && !(arena_.entry(off)->flags & kEntryLease) &&
        usable(*arena_.entry(off), now))
      ++removed;
  });
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    if (!(stripes_[idx].seq.load(kRelaxed) & 1)) begin_write(stripes_[idx]);  // odd if a writer died
    stripes_[idx].dirty.store(1, kRelaxed);
  }
  std::memset(static_cast<void*>(buckets_), 0, std::uint64_t{stripe_count_} * bps_ * 4);
  arena_.reset();
  h_.corrupt.store(0, kRelaxed);
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    stripes_[idx].entries.store(0, kRelaxed);
    stripes_[idx].dirty.store(0, kRelaxed);
    end_write(stripes_[idx]);
  }
  count(c, StoreCounter::invalidations, removed);
  return true;
}

std::vector<KeyInfo> Table::keys(std::string_view glob, std::size_t limit, Counters c) {
  std::vector<KeyInfo> out;
  if (limit == 0) return out;
  std::uint64_t now = coarse_ns();
  std::uint64_t now_s = (mono_ns() - seg_.geometry().created_mono_ns) / 1000000000ull;
  for (unsigned idx = 0; idx < stripe_count_ && out.size() < limit; ++idx) {
    StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
    if (!lock) continue;
    walk_stripe(idx, [&](std::uint64_t, const EntryView& v) {
      const Entry* e = arena_.entry(v.off);
      std::string_view key = v.key;
      bool lease = e->flags & kEntryLease;
      if ((lease || usable(*e, now)) && glob_match(glob, key)) {
        KeyInfo k;
        k.key = std::string(key);
        k.value_size = v.value.size();
        if (e->expiry_ns)
          k.ttl_left = std::chrono::milliseconds(e->expiry_ns > now ? (e->expiry_ns - now) / 1000000ull : 0);
        k.age = std::chrono::seconds(now_s > e->created_s ? now_s - e->created_s : 0);
        k.lease = lease;
        k.flags = static_cast<std::uint16_t>(e->flags & kUserFlagsMask);
        out.push_back(std::move(k));
        if (out.size() >= limit) return Walk::stop;
      }
      return Walk::keep;
    });
  }
  return out;
}

}  // namespace pipecache::detail
