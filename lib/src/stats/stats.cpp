#include "stats/stats.hpp"
#include "store/control.hpp"

#include <unistd.h>

#include <bit>

#include <pipecache/figures.hpp>

#include "lock/life.hpp"
#include "lock/robust_mutex.hpp"
#include "store/arena.hpp"
#include "util/clock.hpp"
#include "util/process.hpp"

namespace pipecache {

unsigned Histogram::bucket_for(std::uint64_t ns) noexcept {
  if (ns < 2) return 0;
  unsigned b = 63u - static_cast<unsigned>(std::countl_zero(ns));
  return b < kBuckets ? b : kBuckets - 1;
}

double Histogram::mean_ns() const noexcept {
  return figures::or_zero(figures::mean_ns(sum_ns, count));
}

double Histogram::percentile_ns(double q) const noexcept {
  std::uint64_t total = 0;
  for (auto b : buckets) total += b;
  if (total == 0) return 0.0;
  double target = q * static_cast<double>(total);
  double seen = 0;
  for (unsigned i = 0; i < kBuckets; ++i) {
    if (buckets[i] == 0) continue;
    double lo = i == 0 ? 0.0 : static_cast<double>(std::uint64_t{1} << i);
    double hi = static_cast<double>(std::uint64_t{1} << (i + 1));
    if (seen + static_cast<double>(buckets[i]) >= target) {
      double frac = (target - seen) / static_cast<double>(buckets[i]);
      return lo + (hi - lo) * frac;
    }
    seen += static_cast<double>(buckets[i]);
  }
  return static_cast<double>(std::uint64_t{1} << kBuckets);
}

Histogram& Histogram::operator+=(const Histogram& o) noexcept {
  for (unsigned i = 0; i < kBuckets; ++i) buckets[i] += o.buckets[i];
  count += o.count;
  sum_ns += o.sum_ns;
  return *this;
}

}  // namespace pipecache

namespace pipecache::detail {

namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr std::uint64_t kRegistryTimeoutNs = 2'000'000'000;

template <typename A>
void fold(A& into, A& from) {
  into.fetch_add(from.exchange(0, kRelaxed), kRelaxed);
}

// REQUIRES: registry lock. A dead holder may have folded a slot half-way: some counters then
// appear twice in the totals; structure is never affected.
void fold_slot(Segment& seg, unsigned i) {
  ProcessSlot& from = seg.slots()[i];
  ProcessSlot& to = seg.slots()[kRetiredSlot];
  for (unsigned c = 0; c < kStoreCounters; ++c) fold(to.counters[c], from.counters[c]);
  for (unsigned n = 0; n < kMaxNamespaces; ++n) {
    for (unsigned c = 0; c < kNsCounters; ++c) fold(to.ns[n].counters[c], from.ns[n].counters[c]);
    for (unsigned h = 0; h < kNsHistograms; ++h) {
      for (unsigned b = 0; b < Histogram::kBuckets; ++b) fold(to.ns[n].hist[h][b], from.ns[n].hist[h][b]);
      fold(to.ns[n].hist_count[h], from.ns[n].hist_count[h]);
      fold(to.ns[n].hist_sum[h], from.ns[n].hist_sum[h]);
    }
  }
}

bool lock_registry(Segment& seg) {
  // Nothing to repair after a dead holder: a slot is published by its pid store, last, and a
  // half-folded slot only counts some figures twice (fold_slot).
  return lock_or_repair(seg.header().registry_lock, kRegistryTimeoutNs, [] {}) == LockResult::ok;
}

}  // namespace

// A slot is free when nobody claimed it, or when its claimer is gone: its life mutex is not
// held (lock/life.hpp), whatever its pid says (reused, or of another PID namespace). The
// claimer's own slots are held by its holder threads, so they are never taken for free.
unsigned claim_slot(Segment& seg) {
  if (!lock_registry(seg)) return kOverflowSlot;
  ProcessSlot* slots = seg.slots();
  unsigned chosen = kOverflowSlot;
  for (unsigned i = 0; i < kMaxProcessSlots && chosen == kOverflowSlot; ++i)
    if (slots[i].pid.load(kRelaxed) == 0) chosen = i;
  for (unsigned i = 0; i < kMaxProcessSlots && chosen == kOverflowSlot; ++i) {
    if (!slot_holder_alive(slots[i], slots[i].life_epoch.load(kRelaxed))) {
      fold_slot(seg, i);
      chosen = i;
    }
  }
  if (chosen != kOverflowSlot) {
    ProcessSlot& s = slots[chosen];
    // A new incarnation first (leases of the previous claimer die with it), then the life
    // mutex, then the pid that publishes the slot.
    s.life_epoch.fetch_add(1, std::memory_order_acq_rel);
    if (hold_life(s.life)) {
      s.attached_unix_ms.store(realtime_ms(), kRelaxed);
      s.pid.store(::getpid(), std::memory_order_release);
    } else {
      s.pid.store(0, kRelaxed);
      chosen = kOverflowSlot;
    }
  }
  unlock_robust(seg.header().registry_lock);
  return chosen;
}

void release_slot(Segment& seg, unsigned slot) noexcept {
  if (slot >= kMaxProcessSlots) return;
  ProcessSlot& s = seg.slots()[slot];
  bool locked = lock_registry(seg);
  if (locked) fold_slot(seg, slot);  // else its counters are folded by the next claimer
  s.life_epoch.fetch_add(1, std::memory_order_acq_rel);
  // Always, even without the registry lock: the segment may be unmapped next (life.hpp).
  drop_life(s.life);
  if (locked) {
    s.pid.store(0, std::memory_order_release);
    unlock_robust(seg.header().registry_lock);
  }
}

std::vector<ProcessInfo> collect_processes(Segment& seg) {
  std::vector<ProcessInfo> out;
  for (unsigned i = 0; i < kMaxProcessSlots; ++i) {
    ProcessSlot& s = seg.slots()[i];
    std::int64_t pid = s.pid.load(kRelaxed);
    if (pid) out.push_back(ProcessInfo{i, pid, slot_holder_alive(s, s.life_epoch.load(kRelaxed))});
  }
  return out;
}

Stats collect_stats(Segment& seg) {
  Stats s;
  const Header& h = seg.header();
  ProcessSlot* slots = seg.slots();
  std::uint64_t c[kStoreCounters] = {};
  for (unsigned i = 0; i < kAllSlots; ++i)
    for (unsigned k = 0; k < kStoreCounters; ++k) c[k] += slots[i].counters[k].load(kRelaxed);
  auto at = [&](StoreCounter k) { return c[static_cast<unsigned>(k)]; };
  s.hits = at(StoreCounter::hits);
  s.misses = at(StoreCounter::misses);
  s.inserts = at(StoreCounter::inserts);
  s.updates = at(StoreCounter::updates);
  s.evictions = at(StoreCounter::evictions);
  s.expirations = at(StoreCounter::expirations);
  s.invalidations = at(StoreCounter::invalidations);
  s.put_failures = at(StoreCounter::put_failures);
  s.lock_recoveries = at(StoreCounter::lock_recoveries);
  s.entries = h.arena.entries.load(kRelaxed);
  s.bytes_used = h.arena.bytes_used.load(kRelaxed);
  const Geometry& g = seg.geometry();
  s.byte_budget = g.byte_budget;
  s.max_entries = g.max_entries;
  s.arena_bytes = g.arena_bytes - kFirstUnit * kUnit;
  s.free_bytes = h.arena.free_bytes.load(kRelaxed);
  Arena arena(seg);
  s.largest_free_block = arena.largest_free_units() * kUnit;
  std::uint64_t typical = s.entries ? s.bytes_used / s.entries : 1024;
  s.fragmented_bytes = arena.fragmented_bytes(typical);
  for (auto& p : collect_processes(seg)) s.attached_processes += p.alive ? 1 : 0;
  s.segment_bytes = g.total_bytes;
  s.created_unix_ms = h.created_unix_ms;
  s.uptime_ms = (mono_ns() - g.created_mono_ns) / 1000000ull;

  Namespace* ns = seg.namespaces();
  for (unsigned n = 0; n < kMaxNamespaces; ++n) {
    if (ns[n].state.load(std::memory_order_acquire) != kNsReady) continue;
    NamespaceStats st;
    st.name = n == 0 ? std::string() : std::string(ns[n].name, std::min<std::size_t>(ns[n].name_len, kMaxNamespaceName));
    st.id = n;
    st.generation = ns[n].generation.load(kRelaxed);
    st.switch_percent = switch_percent(ns[n].cache_switch.load(kRelaxed));
    st.entries = ns[n].live.load(kRelaxed);
    bool any = st.entries != 0;
    for (unsigned i = 0; i < kAllSlots; ++i) {
      const NsMetrics& m = slots[i].ns[n];
      for (unsigned k = 0; k < kNsCounters; ++k) st.counters[k] += m.counters[k].load(kRelaxed);
      for (unsigned hh = 0; hh < kNsHistograms; ++hh) {
        for (unsigned b = 0; b < Histogram::kBuckets; ++b) st.histograms[hh].buckets[b] += m.hist[hh][b].load(kRelaxed);
        st.histograms[hh].count += m.hist_count[hh].load(kRelaxed);
        st.histograms[hh].sum_ns += m.hist_sum[hh].load(kRelaxed);
      }
    }
    s.stale_entries += ns[n].entries.load(kRelaxed) - std::min(ns[n].entries.load(kRelaxed), st.entries);
    for (auto v : st.counters) any = any || v != 0;
    if (n == 0 && !any) continue;  // keys without a type: listed only when used
    s.namespaces.push_back(std::move(st));
  }
  s.config_drift = read_config_drift(seg);
  return s;
}

}  // namespace pipecache::detail
