// Leases: one computation per key across processes (get-or-compute). A lease is an entry of
// the key with flag kEntryLease whose value is a LeaseRecord {pid, token, deadline}; it lives
// in the key's stripe beside the value entry, under the same stripe lock.
//
//  L1. A lease is held while its deadline (CLOCK_MONOTONIC) is ahead and its holder alive —
//      the holder's process slot still in the incarnation the record names and its life mutex
//      held (lock/life.hpp: the kernel's answer, across PID namespaces and pid reuse); any
//      other is taken over by the next try_lease (a crashed or stuck computer never blocks a
//      key for longer than its lease, a dead one not at all).
//  L2. Only the holder's token publishes, renews or releases it. publish() stores the value
//      only if the lease is still the caller's AND its namespace generation is still the one
//      stamped on the lease entry when it was taken: otherwise the data changed while the
//      value was computed, and the value is discarded (a change arriving mid-computation would
//      else be lost for a whole TTL — found by the example server's tests).
//  L3. Every resolution (publish, release, a dropped stripe, clear) bumps the stripe's
//      lease_wake futex word; waiters sleep on it with the Dekker pairing of layout.hpp, so a
//      wake between their check and their sleep is never lost.
//  L4. Lease records are read and written only under the stripe lock: an in-place renewal
//      needs no seqlock (readers of values skip lease entries).
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <climits>
#include <cstring>

#include "store/table_internal.hpp"
#include "util/clock.hpp"
#include "util/fault.hpp"
#include "lock/life.hpp"
#include "util/process.hpp"

namespace pipecache::detail {

namespace {

std::uint64_t make_token() noexcept {
  static std::atomic<std::uint64_t> counter{0};
  return (static_cast<std::uint64_t>(::getpid()) << 32) ^ (mono_ns() << 8) ^ counter.fetch_add(1, kRelaxed);
}

}  // namespace

// L1's "alive". A holder without a slot (all were taken) can only be judged by its pid.
bool Table::lease_holder_alive(const LeaseRecord& rec) const noexcept {
  if (rec.slot >= kMaxProcessSlots) return pid_alive(rec.pid);
  return slot_holder_alive(seg_.slots()[rec.slot], rec.life_epoch);
}

// The one decoder of a lease entry's value. REQUIRES: the stripe lock. Empty when the value is
// not a record (only a foreign writer makes one).
std::optional<LeaseRecord> Table::read_lease(const EntryView& v) const noexcept {
  LeaseRecord rec;
  if (!v || v.value.size() != sizeof rec) return std::nullopt;
  std::memcpy(&rec, v.value.data(), sizeof rec);
  return rec;
}

LeaseResult Table::try_lease(std::string_view key, std::uint64_t h, std::uint64_t lease_ns, unsigned slot,
                             Counters c) {
  LeaseResult r;
  if (corrupt()) return r;
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) return r;
  Found f = find_locked(h, key, true);
  if (f.off) {
    std::optional<LeaseRecord> held = read_lease(checked_entry(f.off));
    std::uint64_t now = mono_ns();
    if (held && held->deadline_ns > now && lease_holder_alive(*held)) {  // L1
      r.state = LeaseState::held_by_other;
      r.holder_pid = held->pid;
      r.holder_remaining = std::chrono::nanoseconds(held->deadline_ns - now);
      return r;
    }
  }
  LeaseRecord rec{};
  rec.pid = ::getpid();
  rec.token = make_token();
  rec.deadline_ns = mono_ns() + lease_ns;
  rec.slot = slot < kMaxProcessSlots ? slot : kMaxProcessSlots;
  rec.life_epoch = slot < kMaxProcessSlots ? seg_.slots()[slot].life_epoch.load(std::memory_order_acquire) : 0;
  lock.dirty(true);
  bool ok = store_locked(idx, h, key, reinterpret_cast<const char*>(&rec), sizeof rec,
                         coarse_ns() + lease_ns + kCoarseSlackNs, kEntryLease, namespace_of_key(key), c, nullptr);
  lock.dirty(false);
  if (!ok) return r;
  fault(FaultPoint::lease_held);
  r.state = f.off ? LeaseState::taken_over : LeaseState::acquired;
  r.token = rec.token;
  return r;
}

// L2.
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
      std::optional<LeaseRecord> rec = read_lease(checked_entry(lease.off));
      own = rec && rec->token == token;
      current = current_generation(*arena_.entry(lease.off));
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
    std::optional<LeaseRecord> rec = f.off ? read_lease(checked_entry(f.off)) : std::nullopt;
    if (rec && rec->token == token) {
      lock.dirty(true);
      remove_locked(idx, h, f, c);
      lock.dirty(false);
    }
  }
  wake_lease_waiters(idx);
}

bool Table::renew_lease(std::string_view key, std::uint64_t h, std::uint64_t token, std::uint64_t lease_ns,
                        Counters c) {
  if (corrupt()) return false;
  unsigned idx = stripe_index(h);
  StripeLock lock(*this, idx, kWriteLockTimeoutNs, c);
  if (!lock) return false;
  Found f = find_locked(h, key, true);
  EntryView v = f.off ? checked_entry(f.off) : EntryView{};
  std::optional<LeaseRecord> rec = read_lease(v);
  if (!rec || rec->token != token) return false;
  // L4: in place, no seq; at the record's checked place.
  rec->deadline_ns = mono_ns() + lease_ns;
  Entry* e = arena_.entry(f.off);
  std::memcpy(const_cast<char*>(v.value.data()), &*rec, sizeof *rec);
  e->expiry_ns = coarse_ns() + lease_ns + kCoarseSlackNs;
  return true;
}

std::uint32_t Table::lease_wake_seq(std::uint64_t h) const noexcept {
  return stripes_[stripe_index(h)].lease_wake.load(std::memory_order_acquire);
}

// L3, the waiter's half: count in, then check the word, then sleep on it.
void Table::wait_lease(std::uint64_t h, std::uint32_t seen, std::uint64_t timeout_ns) const noexcept {
  Stripe& s = stripes_[stripe_index(h)];
  s.lease_waiters.fetch_add(1, std::memory_order_seq_cst);
  if (s.lease_wake.load(std::memory_order_seq_cst) == seen) {
    timespec ts{static_cast<time_t>(timeout_ns / 1000000000ull), static_cast<long>(timeout_ns % 1000000000ull)};
    ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s.lease_wake), FUTEX_WAIT, seen, &ts, nullptr, 0);
  }
  s.lease_waiters.fetch_sub(1, std::memory_order_relaxed);
}

// L3, the resolver's half: bump the word, then wake only if somebody counted in.
void Table::wake_lease_waiters(unsigned idx) noexcept {
  Stripe& s = stripes_[idx];
  s.lease_wake.fetch_add(1, std::memory_order_seq_cst);
  if (s.lease_waiters.load(std::memory_order_seq_cst) == 0) return;  // Dekker pairing: layout.hpp
  // Shared futex (no FUTEX_PRIVATE_FLAG): the waiters are other processes.
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&s.lease_wake), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
}

}  // namespace pipecache::detail
