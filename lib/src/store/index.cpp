// The seqlock index: get / visit (R1-R3 of the essay in table.hpp) and put / erase (W1-W2),
// with the chain primitives every other part of the table builds on.
#include <cstring>

#include "store/table_internal.hpp"
#include "util/clock.hpp"
#include "util/fault.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

namespace {

// R2: optimistic attempts before a reader takes the stripe lock, and how long it pauses when
// it finds a writer inside (seq odd) before looking again.
constexpr int kOptimisticTries = 4;
constexpr int kOddSpins = 64;

}  // namespace

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

void Table::format(Segment& seg) {
  init_robust_mutex(seg.header().registry_lock);
  init_robust_mutex(seg.header().arena.lock);
  for (std::uint32_t i = 0; i < seg.geometry().stripes; ++i) init_robust_mutex(seg.stripes()[i].mutex);
  for (unsigned i = 0; i < kMaxProcessSlots; ++i) init_robust_mutex(seg.slots()[i].life);
  seg.namespaces()[0].state.store(kNsReady, std::memory_order_release);  // id 0: keys without a type
  Arena(seg).reset();
}

// Under a lock entries are consistent, unless something other than pipecache wrote the
// segment: every locked walk stops at an entry whose header does not fit its block, and uses
// the lengths loaded here (once each), so a corrupted key or value length can never send a
// read past the block, even when it changes after this check.
Table::EntryView Table::checked_entry(std::uint32_t off) const noexcept {
  if (!arena_.in_bounds(off)) return {};
  const Entry* e = arena_.entry(off);
  std::uint32_t size = word0_size(racy(e->word0));
  if (size < kMinBlockUnits || size > arena_.end() - off) return {};
  std::uint16_t klen = racy(e->key_len);
  std::uint32_t vlen = racy(e->value_len);
  if (kEntryHeader + std::uint64_t{klen} + vlen > std::uint64_t{size} * kUnit) return {};
  const char* p = arena_.bytes(off) + kEntryHeader;
  return {off, {p, klen}, {p + klen, vlen}};
}

void Table::begin_write(Stripe& s) noexcept {
  s.seq.store(s.seq.load(kRelaxed) + 1, kRelaxed);
  std::atomic_thread_fence(std::memory_order_release);
}

void Table::end_write(Stripe& s) noexcept { s.seq.store(s.seq.load(kRelaxed) + 1, std::memory_order_release); }

// The value into the caller's reused buffer. Not out.assign(p, n): its aliasing and capacity
// checks (_M_replace) cost ~60 instructions a hit (callgrind, bench/profile), more than the
// rest of the lookup's bookkeeping; a buffer already of the value's size needs only the copy.
__attribute__((always_inline, no_sanitize("thread"))) inline void copy_value(std::string& out, const char* p,
                                                                            std::size_t n) {
  if (out.size() != n) out.resize(n);
  std::memcpy(out.data(), p, n);
}

// R1 of the essay in table.hpp. Returns 1 found (copied when out != nullptr), 0 absent,
// -1 inconsistent (retry or lock). Safe against any concurrent change: loads each field once
// and bounds-checks it before it is used as an offset or a length; `view` receives the value
// with the length that was checked (visit). Inlined into get() and
// visit() (this file only): the hit path is one function but for the compare, clock and copy.
__attribute__((always_inline, no_sanitize("thread"))) inline int Table::read_racy(
    const std::atomic<std::uint32_t>& head, std::string_view key, std::uint32_t tag, std::uint64_t now,
    std::string* out, std::uint16_t* flags, std::uint32_t* found, std::string_view* view) const noexcept {
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
        if (out) copy_value(*out, p + klen, vlen);
        if (view) *view = {p + klen, vlen};
        if (flags) *flags = eflags & kUserFlagsMask;
        *found = off;
        return 1;
      }
    }
    off = next;
  }
  return 0;
}

bool Table::get(std::string_view key, std::string& out, std::uint16_t* flags, Counters c) {
  if (corrupt() || key.size() > kMaxKeyBytes) {
    count(c, StoreCounter::misses);
    return false;
  }
  const std::uint64_t h = hash(key);
  unsigned idx = stripe_index(h);
  Stripe& s = stripes_[idx];
  const auto& head = bucket(h);
  std::uint32_t tag = tag_of(h);
  constexpr std::uint64_t now = 0;  // read lazily by usable()
  std::uint32_t off = 0;
  int r = -1;
  for (int attempt = 0; attempt < kOptimisticTries && r < 0; ++attempt) {
    std::uint32_t s1 = s.seq.load(std::memory_order_acquire);
    if (s1 & 1) {
      for (int i = 0; i < kOddSpins; ++i) cpu_relax();
      continue;
    }
    int seen = read_racy(head, key, tag, now, &out, flags, &off);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(kRelaxed) != s1) continue;
    if (seen < 0) break;  // inconsistent although nothing moved: let the locked path decide
    r = seen;
  }
  if (r < 0) {
    StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
    r = lock ? read_racy(head, key, tag, now, &out, flags, &off) : 0;
  }
  if (r == 1) {
    arena_.mark_visited(off);  // R3
    count(c, StoreCounter::hits);
    return true;
  }
  count(c, StoreCounter::misses);
  return false;
}

// W3's exception: fn runs under the stripe lock, so the view stays valid while it runs.
bool Table::visit(std::string_view key, std::uint64_t h, const std::function<void(std::string_view)>& fn,
                  Counters c) {
  if (corrupt()) {
    count(c, StoreCounter::misses);
    return false;
  }
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kReadLockTimeoutNs, c);
  std::uint32_t off = 0;
  std::string_view value;
  if (!lock || read_racy(bucket(h), key, tag_of(h), coarse_ns(), nullptr, nullptr, &off, &value) != 1) {
    count(c, StoreCounter::misses);
    return false;
  }
  arena_.mark_visited(off);
  count(c, StoreCounter::hits);
  fn(value);  // the length read_racy checked, not a second load of the header
  return true;
}

Table::Found Table::find_locked(std::uint64_t h, std::string_view key, bool lease) const noexcept {
  std::uint32_t tag = tag_of(h);
  Found f;
  std::uint32_t pred = 0;
  std::uint32_t off = bucket(h).load(kRelaxed);
  for (int steps = 0; off && steps <= kMaxChain; ++steps) {
    EntryView v = checked_entry(off);
    if (!v) break;
    const Entry* e = arena_.entry(off);
    if (e->hash_tag == tag && v.key == key && ((e->flags & kEntryLease) != 0) == lease) {
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

// W4 of the essay in table.hpp: an update whose entry needs the very block the current value
// of its key occupies is written over it, with seq odd, instead of through the allocator.
// Measured why (W3: 90% get / 10% put, Zipf 0.99, evicting, 2 processes): ~89% of its puts
// replace a resident key, and each of them took the one arena lock twice (allocate the new
// block, release the old), so every put of every process serialised on it; written in place
// they take only their own stripe's lock. Not in place, through the allocator as before:
//  - a block of another size (the accounting charges whole blocks: bytes_used is unchanged only
//    when the new entry fits the old block with less than a minimal block to spare, exactly
//    the slack Arena::alloc would leave);
//  - an entry of an older namespace generation (its stamp and Namespace::live belong to the
//    arena lock), or of another namespace id (a prefix registered since it was stored);
//  - values over kOverwriteMaxBytes: readers of the stripe retry while seq is odd, so the odd
//    window stays one short copy (a 4 KiB memcpy is ~100 ns here; a 16 KiB one ~1.5 us, which
//    the allocator path hides by filling the new block while it is private).
// A writer killed mid-copy leaves dirty set and seq odd: the stripe is dropped (C1), so no
// half-written value is ever read. The entry keeps its SIEVE position and visited bit.
namespace {
constexpr std::size_t kOverwriteMaxBytes = 4096;
}

bool Table::overwrite_locked(unsigned stripe, std::uint64_t h, std::string_view key, std::string_view value,
                             std::uint64_t expiry_ns, std::uint16_t flags, unsigned ns) {
  if (value.size() > kOverwriteMaxBytes) return false;
  Found f = find_locked(h, key, false);
  if (!f.off) return false;
  Entry* e = arena_.entry(f.off);
  std::uint64_t w = arena_.load_word0(f.off);
  std::uint32_t size = word0_size(w);
  std::uint32_t units = Arena::units_for(kEntryHeader + key.size() + value.size());
  if (units > size || size - units >= kMinBlockUnits || word0_ns(w) != ns || !current_generation(*e)) return false;
  Stripe& s = stripes_[stripe];
  begin_write(s);
  // expiry_ns and flags are also read by the eviction hand under the arena lock alone.
  __atomic_store_n(&e->expiry_ns, expiry_ns, __ATOMIC_RELAXED);
  __atomic_store_n(&e->flags, flags, __ATOMIC_RELAXED);
  e->value_len = static_cast<std::uint32_t>(value.size());
  e->created_s = static_cast<std::uint32_t>((mono_ns() - seg_.geometry().created_mono_ns) / 1000000000ull);
  fault(FaultPoint::mid_overwrite);
  if (!value.empty()) std::memcpy(arena_.bytes(f.off) + kEntryHeader + key.size(), value.data(), value.size());
  end_write(s);
  return true;
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
  const auto user_flags = static_cast<std::uint16_t>(flags & kUserFlagsMask);
  bool ok = true;
  if (overwrite_locked(idx, h, key, value, expiry, user_flags, ns)) replaced = true;
  else ok = store_locked(idx, h, key, value.data(), static_cast<std::uint32_t>(value.size()), expiry, user_flags,
                         ns, c, &replaced);
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

}  // namespace pipecache::detail
