#include "store/table.hpp"

#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include <fmt/format.h>

#include "util/clock.hpp"
#include "util/fault.hpp"
#include "util/glob.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr int kOptimisticTries = 4;
constexpr int kOddSpins = 64;
// Chains are ~1 long at the default load factor; a longer walk means a cycle in a corrupted
// segment, and ends the walk rather than the process.
constexpr int kMaxChain = 4096;
// A holder stopped (SIGSTOP, debugger) costs the others this much, never a hang.
constexpr std::uint64_t kReadLockTimeoutNs = 1'000'000'000;
constexpr std::uint64_t kWriteLockTimeoutNs = 2'000'000'000;

template <typename T>
T racy(const T& x) noexcept {
  return __atomic_load_n(&x, __ATOMIC_RELAXED);
}

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

bool pid_alive(std::int64_t pid) noexcept {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

std::uint64_t make_token() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return (static_cast<std::uint64_t>(::getpid()) << 32) ^ (mono_ns() << 8) ^
         counter.fetch_add(1, kRelaxed);
}

}  // namespace

// Holds one stripe's mutex; repairs the stripe when the previous holder died (the ONE place,
// with ArenaLock, where owner death is handled).
class Table::StripeLock {
 public:
  StripeLock(Table& t, unsigned idx, std::uint64_t timeout_ns, Counters c) : t_(t), idx_(idx) {
    Stripe& s = t.stripes_[idx];
    LockResult r = lock_robust(s.mutex, timeout_ns);
    if (r == LockResult::owner_died) {
      t.repair_stripe(idx, false, c);
      r = LockResult::ok;
    }
    held_ = r == LockResult::ok;
  }
  ~StripeLock() {
    if (held_) unlock_robust(t_.stripes_[idx_].mutex);
  }
  explicit operator bool() const noexcept { return held_; }
  void dirty(bool on) noexcept { t_.stripes_[idx_].dirty.store(on ? 1 : 0, kRelaxed); }

 private:
  Table& t_;
  unsigned idx_;
  bool held_ = false;
};

class Table::ArenaLock {
 public:
  ArenaLock(Table& t, Counters c) : t_(t) {
    LockResult r = lock_robust(t.h_.arena.lock, kWriteLockTimeoutNs);
    if (r == LockResult::owner_died) {
      t.repair_arena(c);  // marks the mutex consistent; a broken chain marks the segment corrupt
      r = LockResult::ok;
    }
    locked_ = r == LockResult::ok;
  }
  ~ArenaLock() {
    if (locked_) unlock_robust(t_.h_.arena.lock);
  }
  bool locked() const noexcept { return locked_; }
  explicit operator bool() const noexcept { return locked_ && !t_.corrupt(); }

 private:
  Table& t_;
  bool locked_ = false;
};

Table::Table(Segment& segment)
    : seg_(segment),
      h_(segment.header()),
      arena_(segment),
      stripes_(segment.stripes()),
      buckets_(segment.buckets()),
      ns_(segment.namespaces()),
      stripe_count_(segment.geometry().stripes),
      stripe_shift_(segment.geometry().stripe_shift),
      bps_(segment.geometry().buckets_per_stripe) {}

std::uint64_t Table::hash(std::string_view key) const noexcept { return hash_key(key); }

bool Table::corrupt() const noexcept { return h_.corrupt.load(kRelaxed) != 0; }

// Under a lock entries are consistent, unless something other than pipecache wrote the
// segment: every locked walk stops at an entry whose header does not fit its block, so a
// corrupted key length can never send a read past the arena.
bool Table::entry_ok(std::uint32_t off) const noexcept {
  if (!arena_.in_bounds(off)) return false;
  const Entry* e = arena_.entry(off);
  std::uint32_t size = word0_size(racy(e->word0));
  if (size < kMinBlockUnits || size > arena_.end() - off) return false;
  return kEntryHeader + std::uint64_t{e->key_len} + e->value_len <= std::uint64_t{size} * kUnit;
}

std::string_view Table::key_of(std::uint32_t off) const noexcept {
  const Entry* e = arena_.entry(off);
  return {arena_.bytes(off) + kEntryHeader, e->key_len};
}

void Table::begin_write(Stripe& s) noexcept {
  s.seq.store(s.seq.load(kRelaxed) + 1, kRelaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void Table::end_write(Stripe& s) noexcept { s.seq.store(s.seq.load(kRelaxed) + 1, std::memory_order_release); }

__attribute__((always_inline)) inline bool Table::usable(const Entry& e, std::uint64_t now) const noexcept {
  std::uint64_t exp = racy(e.expiry_ns);
  // now == 0: read the clock only for an entry that has a TTL (most hits of a response cache
  // do, but a TTL-less hit then costs no clock read at all).
  if (exp != 0 && exp <= (now ? now : coarse_ns())) return false;
  unsigned ns = word0_ns(racy(e.word0));
  if (ns >= kMaxNamespaces) return false;
  return ns == 0 || racy(e.ns_generation) == static_cast<std::uint32_t>(ns_[ns].generation.load(kRelaxed));
}

// R1 of the essay in table.hpp. Returns 1 found (copied when out != nullptr), 0 absent,
// -1 inconsistent (retry or lock). Safe against any concurrent change: loads each field once
// and bounds-checks it before it is used as an offset or a length.
__attribute__((no_sanitize("thread"))) int Table::read_racy(
    const std::atomic<std::uint32_t>& head, std::string_view key, std::uint32_t tag, std::uint64_t now,
    std::string* out, std::uint16_t* flags, std::uint32_t* found) const noexcept {
  std::uint32_t off = head.load(kRelaxed);
  for (int steps = 0; off; ++steps) {
    if (steps > kMaxChain || !arena_.in_bounds(off)) return -1;
    const Entry* e = arena_.entry(off);
    std::uint64_t w0 = racy(e->word0);
    std::uint32_t size = word0_size(w0);
    if (size < kMinBlockUnits || size > arena_.end() - off) return -1;
    std::uint32_t next = e->chain_next.load(kRelaxed);
    std::uint16_t klen = racy(e->key_len);
    std::uint16_t eflags = racy(e->flags);
    if (racy(e->hash_tag) == tag && klen == key.size() && !(eflags & kEntryLease)) {
      std::uint64_t vlen = racy(e->value_len);
      if (kEntryHeader + klen + vlen > std::uint64_t{size} * kUnit) return -1;
      const char* p = arena_.bytes(off) + kEntryHeader;
      if (std::memcmp(p, key.data(), klen) == 0) {
        if (!usable(*e, now)) return 0;
        if (out) out->assign(p + klen, vlen);
        if (flags) *flags = eflags & kUserFlagsMask;
        *found = off;
        return 1;
      }
    }
    off = next;
  }
  return 0;
}

bool Table::get(std::string_view key, std::uint64_t h, std::string& out, std::uint16_t* flags, Counters c) {
  if (corrupt()) {
    count(c, StoreCounter::misses);
    return false;
  }
  unsigned idx = stripe_index(h);
  Stripe& s = stripes_[idx];
  const auto& head = bucket(h);
  std::uint32_t tag = tag_of(h);
  constexpr std::uint64_t now = 0;  // read lazily by usable()
  for (int attempt = 0; attempt < kOptimisticTries; ++attempt) {
    std::uint32_t s1 = s.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      for (int i = 0; i < kOddSpins; ++i) cpu_relax();
      continue;
    }
    std::uint32_t off = 0;
    int r = read_racy(head, key, tag, now, &out, flags, &off);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(kRelaxed) != s1) continue;
    if (r < 0) break;  // inconsistent although nothing moved: let the locked path decide
    if (r == 1) {
      arena_.mark_visited(off);
      count(c, StoreCounter::hits);
      return true;
    }
    count(c, StoreCounter::misses);
    return false;
  }
  StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
  std::uint32_t off = 0;
  int r = lock ? read_racy(head, key, tag, now, &out, flags, &off) : 0;
  if (r == 1) {
    arena_.mark_visited(off);
    count(c, StoreCounter::hits);
    return true;
  }
  count(c, StoreCounter::misses);
  return false;
}

bool Table::visit(std::string_view key, std::uint64_t h, const std::function<void(std::string_view)>& fn,
                  Counters c) {
  if (corrupt()) {
    count(c, StoreCounter::misses);
    return false;
  }
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
  std::uint32_t off = 0;
  if (!lock || read_racy(bucket(h), key, tag_of(h), coarse_ns(), nullptr, nullptr, &off) != 1) {
    count(c, StoreCounter::misses);
    return false;
  }
  const Entry* e = arena_.entry(off);
  arena_.mark_visited(off);
  count(c, StoreCounter::hits);
  fn(std::string_view(arena_.bytes(off) + kEntryHeader + e->key_len, e->value_len));
  return true;
}

Table::Found Table::find_locked(std::uint64_t h, std::string_view key, bool lease) const noexcept {
  std::uint32_t tag = tag_of(h);
  Found f;
  std::uint32_t pred = 0;
  std::uint32_t off = bucket(h).load(kRelaxed);
  for (int steps = 0; off && steps <= kMaxChain && entry_ok(off); ++steps) {
    const Entry* e = arena_.entry(off);
    if (e->hash_tag == tag && e->key_len == key.size() && ((e->flags & kEntryLease) != 0) == lease &&
        std::memcmp(arena_.bytes(off) + kEntryHeader, key.data(), key.size()) == 0) {
      f.off = off;
      f.pred = pred;
      return f;
    }
    pred = off;
    off = e->chain_next.load(kRelaxed);
  }
  return f;
}

void Table::unlink_locked(unsigned stripe, std::uint64_t h, const Found& f) noexcept {
  Stripe& s = stripes_[stripe];
  std::uint32_t next = arena_.entry(f.off)->chain_next.load(kRelaxed);
  begin_write(s);
  if (f.pred) arena_.entry(f.pred)->chain_next.store(next, kRelaxed);
  else bucket(h).store(next, kRelaxed);
  end_write(s);
  s.entries.fetch_sub(1, kRelaxed);
}

void Table::remove_locked(unsigned stripe, std::uint64_t h, const Found& f, Counters c) {
  unlink_locked(stripe, h, f);
  ArenaLock al(*this, c);
  if (al) arena_.release(f.off);
}

bool Table::store_locked(unsigned stripe, std::uint64_t h, std::string_view key, const char* value,
                         std::uint32_t value_len, std::uint64_t expiry_ns, std::uint16_t flags, unsigned ns,
                         Counters c, bool* replaced) {
  std::uint32_t units = Arena::units_for(kEntryHeader + key.size() + value_len);
  std::uint32_t off = allocate(stripe, units, ns, flags, c);
  if (!off) return false;
  // W2: fill while private.
  Entry* e = arena_.entry(off);
  e->expiry_ns = expiry_ns;
  e->hash_tag = tag_of(h);
  e->value_len = value_len;
  e->key_len = static_cast<std::uint16_t>(key.size());
  e->flags = flags;
  e->created_s = static_cast<std::uint32_t>((mono_ns() - seg_.geometry().created_mono_ns) / 1000000000ull);
  char* p = arena_.bytes(off) + kEntryHeader;
  std::memcpy(p, key.data(), key.size());
  if (value_len) std::memcpy(p + key.size(), value, value_len);
  // Look for the entry to replace only now: allocate() may have evicted it.
  Found old = find_locked(h, key, (flags & kEntryLease) != 0);
  Stripe& s = stripes_[stripe];
  auto& head = bucket(h);
  begin_write(s);
  if (old.off) {
    e->chain_next.store(arena_.entry(old.off)->chain_next.load(kRelaxed), kRelaxed);
    fault(FaultPoint::mid_link);
    if (old.pred) arena_.entry(old.pred)->chain_next.store(off, kRelaxed);
    else head.store(off, kRelaxed);
  } else {
    e->chain_next.store(head.load(kRelaxed), kRelaxed);
    fault(FaultPoint::mid_link);
    head.store(off, kRelaxed);
    s.entries.fetch_add(1, kRelaxed);
  }
  end_write(s);
  if (old.off) {
    ArenaLock al(*this, c);
    if (al) arena_.release(old.off);
  }
  if (replaced) *replaced = old.off != 0;
  return true;
}

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

bool Table::evict_one(unsigned held, Counters c) {
  std::uint64_t limit = 2 * h_.arena.entries.load(kRelaxed) + 8;
  std::uint64_t now = coarse_ns();
  int broken = 0;
  for (std::uint64_t examined = 0; examined < limit; ++examined) {
    std::uint32_t off = arena_.hand();
    if (!off) return false;
    if (!entry_ok(off)) {  // only a foreign writer puts a bad offset on the queue
      arena_.park_hand();
      if (++broken > 1) return false;
      continue;
    }
    arena_.step_hand(off);
    const Entry* e = arena_.entry(off);
    bool expired = e->expiry_ns != 0 && e->expiry_ns <= now;
    unsigned ns = word0_ns(e->word0);
    bool stale = ns != 0 && e->ns_generation != static_cast<std::uint32_t>(ns_[ns].generation.load(kRelaxed));
    if (e->flags & kEntryLease) {
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
      LockResult r = try_lock_robust(stripes_[victim_stripe].mutex);
      if (r == LockResult::owner_died) {
        repair_stripe(victim_stripe, true, c);  // drops that stripe: room was made
        unlock_robust(stripes_[victim_stripe].mutex);
        return true;
      }
      if (r != LockResult::ok) continue;
      stripes_[victim_stripe].dirty.store(1, kRelaxed);
    }
    std::string_view key = key_of(off);
    std::uint64_t h = hash_key(key);
    Found f = find_locked(h, key, (e->flags & kEntryLease) != 0);
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

// Owner death of a stripe lock (W1). Caller holds the stripe mutex (EOWNERDEAD).
void Table::repair_stripe(unsigned idx, bool arena_held, Counters c) {
  Stripe& s = stripes_[idx];
  count(c, StoreCounter::lock_recoveries);
  if (s.dirty.load(kRelaxed) || (s.seq.load(kRelaxed) & 1)) {
    // Drop the stripe. Idempotent: dirty stays set until the very end, so a repairer that
    // dies here is repaired again from the start by the next locker.
    s.dirty.store(1, kRelaxed);
    if (!(s.seq.load(kRelaxed) & 1)) begin_write(s);
    for (std::uint64_t b = 0; b < bps_; ++b) buckets_[std::uint64_t{idx} * bps_ + b].store(0, kRelaxed);
    fault(FaultPoint::mid_recovery);
    auto drop_owned = [&] {
      std::vector<std::uint32_t> owned;
      arena_.walk([&](std::uint32_t off, std::uint64_t w) {
        if (!(word0_flags(w) & kBlockFree) && word0_stripe(w) == idx) owned.push_back(off);
      });
      for (std::uint32_t off : owned) arena_.release(off);
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
  mark_consistent(s.mutex);
}

bool Table::repair_arena(Counters c) {
  count(c, StoreCounter::lock_recoveries);
  std::string problem;
  bool ok = arena_.rebuild(&problem);
  if (!ok) h_.corrupt.store(kCorruptFlag, kRelaxed);
  mark_consistent(h_.arena.lock);
  return ok;
}

void Table::wake_lease_waiters(unsigned idx) noexcept {
  Stripe& s = stripes_[idx];
  s.lease_wake.fetch_add(1, std::memory_order_seq_cst);
  if (s.lease_waiters.load(std::memory_order_seq_cst) == 0) return;  // Dekker pairing: layout.hpp
  // Shared futex (no FUTEX_PRIVATE_FLAG): the waiters are other processes.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s.lease_wake), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

bool Table::put(std::string_view key, std::uint64_t h, std::string_view value, std::uint64_t ttl_ns,
                std::uint16_t flags, Counters c) {
  if (corrupt()) {
    count(c, StoreCounter::put_failures);
    return false;
  }
  unsigned ns = namespace_of_key(key);
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) {
    count(c, StoreCounter::put_failures);
    return false;
  }
  lock.dirty(true);
  fault(FaultPoint::stripe_locked);
  bool replaced = false;
  std::uint64_t expiry = ttl_ns ? coarse_ns() + ttl_ns : 0;
  bool ok = store_locked(idx, h, key, value.data(), static_cast<std::uint32_t>(value.size()), expiry,
                         static_cast<std::uint16_t>(flags & kUserFlagsMask), ns, c, &replaced);
  lock.dirty(false);
  count(c, ok ? (replaced ? StoreCounter::updates : StoreCounter::inserts) : StoreCounter::put_failures);
  return ok;
}

bool Table::erase(std::string_view key, std::uint64_t h, Counters c) {
  if (corrupt()) return false;
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) return false;
  Found f = find_locked(h, key, false);
  if (!f.off) return false;
  bool was_usable = usable(*arena_.entry(f.off), coarse_ns());
  lock.dirty(true);
  remove_locked(idx, h, f, c);
  lock.dirty(false);
  if (was_usable) count(c, StoreCounter::invalidations);
  return was_usable;
}

std::size_t Table::scan_remove(const std::function<bool(const Entry&, std::string_view)>& match, Counters c,
                               StoreCounter counter) {
  std::size_t removed = 0;
  std::vector<std::uint32_t> doomed;
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
    if (!lock) continue;
    Stripe& s = stripes_[idx];
    doomed.clear();
    lock.dirty(true);
    begin_write(s);
    for (std::uint64_t b = 0; b < bps_; ++b) {
      auto& head = buckets_[std::uint64_t{idx} * bps_ + b];
      std::uint32_t pred = 0, off = head.load(kRelaxed);
      for (int steps = 0; off && steps <= kMaxChain && entry_ok(off); ++steps) {
        Entry* e = arena_.entry(off);
        std::uint32_t next = e->chain_next.load(kRelaxed);
        if (match(*e, key_of(off))) {
          if (pred) arena_.entry(pred)->chain_next.store(next, kRelaxed);
          else head.store(next, kRelaxed);
          doomed.push_back(off);
        } else {
          pred = off;
        }
        off = next;
      }
    }
    end_write(s);
    if (!doomed.empty()) {
      s.entries.fetch_sub(static_cast<std::uint32_t>(doomed.size()), kRelaxed);
      ArenaLock al(*this, c);
      if (al)
        for (std::uint32_t off : doomed) arena_.release(off);
      removed += doomed.size();
    }
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

void Table::clear(Counters c) {
  // Every stripe (ascending: the lock order), then the arena: a consistent instant in which
  // the whole table is reformatted. This is also the way out of a corrupt arena.
  std::vector<unsigned> held;
  held.reserve(stripe_count_);
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    LockResult r = lock_robust(stripes_[idx].mutex, kWriteLockTimeoutNs);
    if (r == LockResult::owner_died) {
      count(c, StoreCounter::lock_recoveries);
      mark_consistent(stripes_[idx].mutex);  // about to be reset wholesale
      r = LockResult::ok;
    }
    if (r != LockResult::ok) break;
    held.push_back(idx);
  }
  if (held.size() == stripe_count_) {
    LockResult r = lock_robust(h_.arena.lock, kWriteLockTimeoutNs);
    if (r == LockResult::owner_died) {
      count(c, StoreCounter::lock_recoveries);
      mark_consistent(h_.arena.lock);
      r = LockResult::ok;
    }
    if (r == LockResult::ok) {
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
      unlock_robust(h_.arena.lock);
      count(c, StoreCounter::invalidations, removed);
    }
  }
  for (unsigned idx : held) {
    unlock_robust(stripes_[idx].mutex);
    wake_lease_waiters(idx);
  }
}

// --- leases -------------------------------------------------------------------------------

LeaseResult Table::try_lease(std::string_view key, std::uint64_t h, std::uint64_t lease_ns, Counters c) {
  LeaseResult r;
  if (corrupt()) return r;
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) return r;
  Found f = find_locked(h, key, true);
  bool takeover = false;
  if (f.off) {
    const Entry* e = arena_.entry(f.off);
    LeaseRecord rec{};
    if (e->value_len == sizeof rec) {
      std::memcpy(&rec, arena_.bytes(f.off) + kEntryHeader + e->key_len, sizeof rec);
      std::uint64_t now = mono_ns();
      if (rec.deadline_ns > now && pid_alive(rec.pid)) {
        r.state = LeaseState::held_by_other;
        r.holder_pid = rec.pid;
        r.holder_remaining = std::chrono::nanoseconds(rec.deadline_ns - now);
        return r;
      }
    }
    takeover = true;
  }
  LeaseRecord rec{::getpid(), make_token(), mono_ns() + lease_ns};
  lock.dirty(true);
  bool ok = store_locked(idx, h, key, reinterpret_cast<const char*>(&rec), sizeof rec,
                         coarse_ns() + lease_ns + kCoarseSlackNs, kEntryLease, namespace_of_key(key), c, nullptr);
  lock.dirty(false);
  if (!ok) return r;
  fault(FaultPoint::lease_held);
  r.state = takeover ? LeaseState::taken_over : LeaseState::acquired;
  r.token = rec.token;
  return r;
}

// A value computed under a lease is stored only if that lease is still the caller's and its
// namespace generation is still the one stamped on the lease entry when it was taken (Arena::
// alloc stamps it). Otherwise an invalidation (or clear) happened while the value was being
// computed from the old data: the value is discarded, the lease dropped and the waiters woken,
// so one of them computes again from the new data. Without this rule a change that arrived
// mid-computation was lost for a whole TTL (found by the example server's tests).
bool Table::publish(std::string_view key, std::uint64_t h, std::string_view value, std::uint64_t ttl_ns,
                    std::uint16_t flags, std::uint64_t token, Counters c) {
  if (corrupt()) return false;
  unsigned ns = namespace_of_key(key);
  unsigned idx = stripe_index(h);
  bool ok = true;
  {
    StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
    if (!lock) return false;
    Found lease = find_locked(h, key, true);
    bool own = false, current = false;
    if (lease.off) {
      const Entry* e = arena_.entry(lease.off);
      LeaseRecord rec{};
      if (e->value_len == sizeof rec) std::memcpy(&rec, arena_.bytes(lease.off) + kEntryHeader + e->key_len, sizeof rec);
      own = rec.token == token;
      unsigned lns = word0_ns(racy(e->word0));
      current = lns < kMaxNamespaces &&
                e->ns_generation == static_cast<std::uint32_t>(ns_[lns].generation.load(std::memory_order_acquire));
    }
    lock.dirty(true);
    if (own && current) {
      bool replaced = false;
      ok = store_locked(idx, h, key, value.data(), static_cast<std::uint32_t>(value.size()),
                        ttl_ns ? coarse_ns() + ttl_ns : 0, static_cast<std::uint16_t>(flags & kUserFlagsMask), ns, c,
                        &replaced);
      count(c, ok ? (replaced ? StoreCounter::updates : StoreCounter::inserts) : StoreCounter::put_failures);
      // Storing (even a failed attempt: it may evict in this stripe) can change the chain
      // around the lease: its predecessor may be gone. Find it again.
      lease = find_locked(h, key, true);
    } else {
      count(c, StoreCounter::invalidations);  // a value of superseded data, discarded
    }
    if (own && lease.off) remove_locked(idx, h, lease, c);
    lock.dirty(false);
  }
  wake_lease_waiters(idx);
  return ok;
}

void Table::release_lease(std::string_view key, std::uint64_t h, std::uint64_t token, Counters c) {
  if (corrupt()) return;
  unsigned idx = stripe_index(h);
  {
    StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
    if (!lock) return;
    Found f = find_locked(h, key, true);
    if (f.off) {
      LeaseRecord rec{};
      const Entry* e = arena_.entry(f.off);
      if (e->value_len == sizeof rec)
        std::memcpy(&rec, arena_.bytes(f.off) + kEntryHeader + e->key_len, sizeof rec);
      if (rec.token == token) {
        lock.dirty(true);
        remove_locked(idx, h, f, c);
        lock.dirty(false);
      }
    }
  }
  wake_lease_waiters(idx);
}

std::uint32_t Table::lease_wake_seq(std::uint64_t h) const noexcept {
  return stripes_[stripe_index(h)].lease_wake.load(std::memory_order_acquire);
}

void Table::wait_lease(std::uint64_t h, std::uint32_t seen, std::uint64_t timeout_ns) const noexcept {
  Stripe& s = stripes_[stripe_index(h)];
  s.lease_waiters.fetch_add(1, std::memory_order_seq_cst);
  if (s.lease_wake.load(std::memory_order_seq_cst) == seen) {
    timespec ts{static_cast<time_t>(timeout_ns / 1000000000ull), static_cast<long>(timeout_ns % 1000000000ull)};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s.lease_wake), FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
  s.lease_waiters.fetch_sub(1, std::memory_order_relaxed);
}

bool Table::renew_lease(std::string_view key, std::uint64_t h, std::uint64_t token, std::uint64_t lease_ns,
                        Counters c) {
  if (corrupt()) return false;
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) return false;
  Found f = find_locked(h, key, true);
  if (!f.off) return false;
  Entry* e = arena_.entry(f.off);
  LeaseRecord rec{};
  if (e->value_len != sizeof rec) return false;
  char* p = arena_.bytes(f.off) + kEntryHeader + e->key_len;
  std::memcpy(&rec, p, sizeof rec);
  if (rec.token != token) return false;
  // Lease records are read only under the stripe lock, so an in-place update needs no seq.
  rec.deadline_ns = mono_ns() + lease_ns;
  std::memcpy(p, &rec, sizeof rec);
  e->expiry_ns = coarse_ns() + lease_ns + kCoarseSlackNs;
  return true;
}

// --- namespaces ---------------------------------------------------------------------------

int Table::namespace_id(std::string_view type, bool register_if_absent) {
  if (type.empty()) return 0;
  if (type.size() > kMaxNamespaceName || type.find(':') != std::string_view::npos) return -1;
  std::uint64_t hh = hash_key(type);
  constexpr unsigned kSlots = kMaxNamespaces - 1;
  auto probe = [&](unsigned i) { return 1 + static_cast<unsigned>((hh + i) % kSlots); };
  // Slots are never freed, so a lookup may stop at the first free slot of its probe sequence.
  for (unsigned i = 0; i < kSlots; ++i) {
    Namespace& n = ns_[probe(i)];
    if (n.state.load(std::memory_order_acquire) != kNsReady) break;
    if (n.name_len == type.size() && std::memcmp(n.name, type.data(), type.size()) == 0)
      return static_cast<int>(probe(i));
  }
  if (!register_if_absent) return -1;
  LockResult r = lock_robust(h_.registry_lock, kWriteLockTimeoutNs);
  if (r == LockResult::owner_died) {
    // Registration publishes a slot by its final store (state): a half-written name in a
    // free slot is overwritten by the next registration. Nothing to repair.
    mark_consistent(h_.registry_lock);
    r = LockResult::ok;
  }
  if (r != LockResult::ok) return -1;
  int id = -1;
  for (unsigned i = 0; i < kSlots; ++i) {
    Namespace& n = ns_[probe(i)];
    if (n.state.load(std::memory_order_acquire) == kNsReady) {
      if (n.name_len == type.size() && std::memcmp(n.name, type.data(), type.size()) == 0) {
        id = static_cast<int>(probe(i));
        break;
      }
      continue;
    }
    std::memset(n.name, 0, sizeof n.name);
    std::memcpy(n.name, type.data(), type.size());
    n.name_len = static_cast<std::uint32_t>(type.size());
    n.state.store(kNsReady, std::memory_order_release);
    id = static_cast<int>(probe(i));
    break;
  }
  unlock_robust(h_.registry_lock);
  return id;
}

std::vector<std::string> Table::namespace_names() const {
  std::vector<std::string> out;
  for (unsigned i = 1; i < kMaxNamespaces; ++i)
    if (ns_[i].state.load(std::memory_order_acquire) == kNsReady)
      out.emplace_back(ns_[i].name, std::min<std::size_t>(ns_[i].name_len, kMaxNamespaceName));
  return out;
}

unsigned Table::namespace_of_key(std::string_view key) {
  auto colon = key.find(':');
  if (colon == std::string_view::npos || colon == 0) return 0;
  int id = namespace_id(key.substr(0, colon), true);
  return id < 0 ? 0 : static_cast<unsigned>(id);
}

// --- inspection ---------------------------------------------------------------------------

std::vector<KeyInfo> Table::keys(std::string_view glob, std::size_t limit, Counters c) {
  std::vector<KeyInfo> out;
  std::uint64_t now = coarse_ns();
  std::uint64_t now_s = (mono_ns() - seg_.geometry().created_mono_ns) / 1000000000ull;
  for (unsigned idx = 0; idx < stripe_count_ && out.size() < limit; ++idx) {
    StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
    if (!lock) continue;
    for (std::uint64_t b = 0; b < bps_ && out.size() < limit; ++b) {
      std::uint32_t off = buckets_[std::uint64_t{idx} * bps_ + b].load(kRelaxed);
      for (int steps = 0; off && steps <= kMaxChain && entry_ok(off) && out.size() < limit; ++steps) {
        const Entry* e = arena_.entry(off);
        std::string_view key = key_of(off);
        bool lease = e->flags & kEntryLease;
        if ((lease || usable(*e, now)) && glob_match(glob, key)) {
          KeyInfo k;
          k.key = std::string(key);
          k.value_size = e->value_len;
          if (e->expiry_ns)
            k.ttl_left = std::chrono::milliseconds(e->expiry_ns > now ? (e->expiry_ns - now) / 1000000ull : 0);
          k.age = std::chrono::seconds(now_s > e->created_s ? now_s - e->created_s : 0);
          k.lease = lease;
          k.flags = static_cast<std::uint16_t>(e->flags & kUserFlagsMask);
          out.push_back(std::move(k));
        }
        off = e->chain_next.load(kRelaxed);
      }
    }
  }
  return out;
}

VerifyReport Table::verify(Counters c) {
  VerifyReport rep;
  auto problem = [&rep](std::string s) {
    if (rep.problems.size() < 100) rep.problems.push_back(std::move(s));
  };
  // All stripes (ascending), then the arena: a consistent instant. Readers go on (seq stays
  // even); writers wait for the duration of the check.
  std::vector<unsigned> held;
  for (unsigned idx = 0; idx < stripe_count_; ++idx) {
    LockResult r = lock_robust(stripes_[idx].mutex, kWriteLockTimeoutNs);
    if (r == LockResult::owner_died) {
      repair_stripe(idx, false, c);
      r = LockResult::ok;
    }
    if (r != LockResult::ok) {
      problem(fmt::format("stripe {}: lock not obtained within the timeout (holder stopped?)", idx));
      break;
    }
    held.push_back(idx);
  }
  if (held.size() == stripe_count_) {
    ArenaLock al(*this, c);
    if (!al.locked()) {
      problem("arena lock not obtained within the timeout");
    } else {
      if (corrupt()) problem("segment marked corrupt (a broken block chain was found by recovery)");
      // Blocks.
      std::uint64_t used = 0, used_bytes = 0, free_blocks = 0, free_bytes = 0;
      std::uint64_t ns_entries[kMaxNamespaces] = {}, ns_live[kMaxNamespaces] = {};
      std::set<std::uint32_t> used_offs;
      bool prev_free = false;
      std::string chain_problem;
      bool chain_ok = arena_.walk(
          [&](std::uint32_t off, std::uint64_t w) {
            ++rep.blocks_checked;
            std::uint32_t size = word0_size(w);
            bool is_free = word0_flags(w) & kBlockFree;
            if (((word0_flags(w) & kBlockPrevFree) != 0) != prev_free)
              problem(fmt::format("block {}: prev-free flag is {} but the previous block is {}", off,
                                  !prev_free, prev_free ? "free" : "used"));
            if (is_free) {
              if (prev_free) problem(fmt::format("block {}: two adjacent free blocks (not coalesced)", off));
              if (*reinterpret_cast<const std::uint32_t*>(arena_.bytes(off + size) - 4) != size)
                problem(fmt::format("free block {}: footer does not repeat its size", off));
              ++free_blocks;
              free_bytes += std::uint64_t{size} * kUnit;
            } else {
              const Entry* e = arena_.entry(off);
              if (kEntryHeader + std::uint64_t{e->key_len} + e->value_len > std::uint64_t{size} * kUnit)
                problem(fmt::format("entry {}: key + value exceed its block", off));
              if (word0_stripe(w) >= stripe_count_) problem(fmt::format("entry {}: owner stripe out of range", off));
              unsigned ns = word0_ns(w);
              if (ns >= kMaxNamespaces) {
                problem(fmt::format("entry {}: namespace id {} out of range", off, ns));
              } else {
                ++ns_entries[ns];
                if (!(e->flags & kEntryLease) &&
                    e->ns_generation == static_cast<std::uint32_t>(ns_[ns].generation.load(kRelaxed)))
                  ++ns_live[ns];
              }
              ++used;
              used_bytes += std::uint64_t{size} * kUnit;
              used_offs.insert(off);
            }
            prev_free = is_free;
          },
          &chain_problem);
      if (!chain_ok) problem("arena: " + chain_problem);
      const ArenaState& a = h_.arena;
      if (a.bytes_used.load() != used_bytes)
        problem(fmt::format("bytes_used is {} but used blocks sum to {}", a.bytes_used.load(), used_bytes));
      if (a.entries.load() != used)
        problem(fmt::format("entries is {} but there are {} used blocks", a.entries.load(), used));
      if (a.free_bytes.load() != free_bytes)
        problem(fmt::format("free_bytes is {} but free blocks sum to {}", a.free_bytes.load(), free_bytes));
      if (a.free_blocks.load() != free_blocks)
        problem(fmt::format("free_blocks is {} but there are {}", a.free_blocks.load(), free_blocks));
      if (used_bytes > h_.byte_budget)
        problem(fmt::format("bytes used {} exceed the byte budget {}", used_bytes, h_.byte_budget));
      if (h_.max_entries && used > h_.max_entries)
        problem(fmt::format("{} entries exceed max_entries {}", used, h_.max_entries));
      for (unsigned i = 0; i < kMaxNamespaces; ++i) {
        if (ns_[i].entries.load() != ns_entries[i])
          problem(fmt::format("namespace {}: entries is {} but {} blocks carry it", i, ns_[i].entries.load(), ns_entries[i]));
        if (ns_[i].live.load() != ns_live[i])
          problem(fmt::format("namespace {}: live is {} but {} blocks are of its generation", i, ns_[i].live.load(), ns_live[i]));
      }
      // Free lists: every free block exactly once, in its class.
      std::uint64_t listed = 0, listed_bytes = 0;
      for (unsigned b = 0; b < kBins; ++b) {
        bool bit = (a.bin_map[b / 64] >> (b % 64)) & 1;
        if (bit != (a.bin_head[b] != 0)) problem(fmt::format("free class {}: bitmap disagrees with its list", b));
        std::uint64_t class_bytes = 0;
        std::uint32_t prev = 0;
        for (std::uint32_t off = a.bin_head[b]; off; off = reinterpret_cast<const FreeBlock*>(arena_.bytes(off))->bin_next) {
          if (!arena_.in_bounds(off) || listed > rep.blocks_checked) {
            problem(fmt::format("free class {}: list leaves the arena or loops", b));
            break;
          }
          auto* f = reinterpret_cast<const FreeBlock*>(arena_.bytes(off));
          std::uint32_t size = word0_size(f->word0);
          if (!(word0_flags(f->word0) & kBlockFree)) problem(fmt::format("free class {}: block {} is not free", b, off));
          if (size >= kMinBlockUnits && Arena::bin_of(size) != b)
            problem(fmt::format("free block {} of {} units is in class {}", off, size, b));
          if (f->bin_prev != prev) problem(fmt::format("free block {}: back link broken", off));
          prev = off;
          ++listed;
          listed_bytes += std::uint64_t{size} * kUnit;
          class_bytes += std::uint64_t{size} * kUnit;
        }
        if (a.bin_bytes[b].load() != class_bytes)
          problem(fmt::format("free class {}: byte count {} but its blocks sum to {}", b, a.bin_bytes[b].load(), class_bytes));
      }
      if (listed != free_blocks) problem(fmt::format("{} free blocks listed in classes, {} in the arena", listed, free_blocks));
      // SIEVE queue: every used block once.
      std::uint64_t queued = 0;
      std::uint32_t prev = 0;
      for (std::uint32_t off = a.fifo_oldest; off; off = arena_.entry(off)->fifo_newer) {
        if (!used_offs.count(off) || queued > used) {
          problem(fmt::format("SIEVE queue holds {} which is not a used block (or loops)", off));
          break;
        }
        if (arena_.entry(off)->fifo_older != prev) problem(fmt::format("SIEVE queue: back link of {} broken", off));
        prev = off;
        ++queued;
      }
      if (queued != used) problem(fmt::format("SIEVE queue holds {} entries, the arena {}", queued, used));
      // Index: every used block reachable exactly once from its own stripe and bucket.
      std::uint64_t reachable = 0;
      for (unsigned idx = 0; idx < stripe_count_; ++idx) {
        const Stripe& s = stripes_[idx];
        if (s.seq.load() & 1) problem(fmt::format("stripe {}: sequence left odd", idx));
        if (s.dirty.load()) problem(fmt::format("stripe {}: left dirty", idx));
        std::uint64_t in_stripe = 0;
        for (std::uint64_t b = 0; b < bps_; ++b) {
          std::uint32_t off = buckets_[std::uint64_t{idx} * bps_ + b].load();
          for (int steps = 0; off; ++steps) {
            if (steps > kMaxChain || !used_offs.count(off)) {
              problem(fmt::format("stripe {} bucket {}: chain reaches {} which is not a used block (or loops)", idx, b, off));
              break;
            }
            used_offs.erase(off);  // a second visit is reported as "not a used block"
            ++rep.entries_checked;
            ++in_stripe;
            if (!entry_ok(off)) break;  // reported by the block walk; its key cannot be trusted
            std::uint64_t hh = hash_key(key_of(off));
            if (stripe_index(hh) != idx || (hh & (bps_ - 1)) != b || tag_of(hh) != arena_.entry(off)->hash_tag)
              problem(fmt::format("entry {}: key hash does not belong to stripe {} bucket {}", off, idx, b));
            if (word0_stripe(arena_.entry(off)->word0) != idx)
              problem(fmt::format("entry {}: owner stripe {} but linked from stripe {}", off,
                                  word0_stripe(arena_.entry(off)->word0), idx));
            off = arena_.entry(off)->chain_next.load();
          }
        }
        if (s.entries.load() != in_stripe)
          problem(fmt::format("stripe {}: entries is {} but {} are linked", idx, s.entries.load(), in_stripe));
        reachable += in_stripe;
      }
      if (!used_offs.empty())
        problem(fmt::format("{} used blocks are linked from no stripe (leaked), first at {}", used_offs.size(),
                            *used_offs.begin()));
      (void)reachable;
    }
  }
  for (unsigned idx : held) unlock_robust(stripes_[idx].mutex);
  return rep;
}

}  // namespace pipecache::detail
