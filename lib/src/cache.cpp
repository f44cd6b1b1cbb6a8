// The public Cache: a thin facade over segment (mapping), table (store) and stats (slots).
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>

#include <fmt/format.h>

#include <pipecache/cache.hpp>

#include "segment/invalidation_log.hpp"
#include "segment/segment.hpp"
#include "stats/stats.hpp"
#include "store/control.hpp"
#include "store/table.hpp"
#include "util/clock.hpp"
#include "remote/figures.hpp"

namespace pipecache {

namespace {

// Bumped in every child after fork(): a Cache inherited from the parent must not keep
// counting into the parent's process slot.
std::atomic<unsigned> g_fork_epoch{0};
void on_fork_child() { g_fork_epoch.fetch_add(1, std::memory_order_relaxed); }
std::once_flag g_atfork_once;

std::uint64_t ttl_ns(std::chrono::milliseconds ttl, std::string_view name) {
  if (ttl.count() < 0) throw Error(fmt::format("pipecache segment '{}': negative TTL {} ms", name, ttl.count()));
  // Saturates at 100 years: ms -> ns cannot overflow, nor can the store's now + ttl (the
  // monotonic clock counts from boot), so a huge TTL is "a very long time", never "expired".
  constexpr std::uint64_t kMaxTtlMs = 100ull * 365 * 24 * 3600 * 1000;
  return std::min<std::uint64_t>(static_cast<std::uint64_t>(ttl.count()), kMaxTtlMs) * 1000000ull;
}

}  // namespace

struct PIPECACHE_LOCAL Cache::Impl {
  std::unique_ptr<detail::Segment> seg;
  std::unique_ptr<detail::Table> table;
  std::atomic<unsigned> slot{detail::kNoSlot};
  std::atomic<unsigned> epoch{0};
  // The claimed slot's counters, valid while epoch == g_fork_epoch: the hit path's only
  // bookkeeping is two relaxed loads and a compare.
  std::atomic<detail::Counters> cached{nullptr};
  std::mutex slot_mutex;
  std::string config_drift;  // set once by open_or_create

  explicit Impl(std::unique_ptr<detail::Segment> s) : seg(std::move(s)), table(std::make_unique<detail::Table>(*seg)) {
    std::call_once(g_atfork_once, [] { pthread_atfork(nullptr, nullptr, on_fork_child); });
  }
  ~Impl() {
    unsigned sl = slot.load(std::memory_order_relaxed);
    if (sl != detail::kNoSlot && epoch.load(std::memory_order_relaxed) == g_fork_epoch.load(std::memory_order_relaxed))
      detail::release_slot(*seg, sl);
  }

  // The slot is claimed on the first counted operation, so that observers (pipectl stats)
  // are not counted as attached processes.
  detail::Counters counters() {
    if (detail::Counters c = claimed()) return c;
    return claim();
  }
  // The claimed slot's counters, or nullptr when this process has none yet.
  detail::Counters claimed() const noexcept {
    detail::Counters c = cached.load(std::memory_order_acquire);
    return c && epoch.load(std::memory_order_relaxed) == g_fork_epoch.load(std::memory_order_relaxed) ? c : nullptr;
  }
  detail::Counters claim() {
    std::lock_guard<std::mutex> g(slot_mutex);
    unsigned e = g_fork_epoch.load(std::memory_order_relaxed);
    unsigned sl = slot.load(std::memory_order_relaxed);
    if (sl == detail::kNoSlot || epoch.load(std::memory_order_relaxed) != e) {
      sl = detail::claim_slot(*seg);  // after fork: a new slot; the parent keeps its own
      epoch.store(e, std::memory_order_relaxed);
      slot.store(sl, std::memory_order_release);
      cached.store(seg->slots()[sl].counters, std::memory_order_release);
    }
    return seg->slots()[sl].counters;
  }
  detail::ProcessSlot& process_slot() {
    counters();
    return seg->slots()[slot.load(std::memory_order_acquire)];
  }

  // The first counted get of a process (or of a child after fork) claims its slot first. Apart,
  // so that the usual get is one test and a tail call: with the claim in line, GCC saved and
  // restored four registers around every get.
  [[gnu::noinline]] bool get_claiming(std::string_view key, std::string& out, std::uint16_t* flags) {
    return table->get(key, out, flags, claim());
  }

  void check_key(std::string_view key) const {
    if (key.size() > detail::kMaxKeyBytes)
      throw Error(fmt::format("pipecache segment '{}': key of {} bytes exceeds the maximum of {}", seg->name(),
                              key.size(), detail::kMaxKeyBytes));
  }
  void check_value(std::string_view value) const {
    if (value.size() > seg->geometry().max_value_bytes)
      throw Error(fmt::format("pipecache segment '{}': value of {} bytes exceeds the maximum of {} (budget / 8)",
                              seg->name(), value.size(), seg->geometry().max_value_bytes));
  }
};

Cache::Cache(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

detail::RemoteBlock& detail::remote_block(const Cache& cache) noexcept {
  return cache.impl_->seg->header().remote;
}
const detail::Segment& detail::segment_of(const Cache& cache) noexcept { return *cache.impl_->seg; }
Cache::Cache(Cache&&) noexcept = default;
Cache& Cache::operator=(Cache&&) noexcept = default;
Cache::~Cache() = default;

void Cache::validate_name(std::string_view name) { detail::validate_name(name); }

std::string Cache::path_of(std::string_view name) { return detail::Segment::path(name); }

Cache Cache::create(const Options& options) {
  auto seg = detail::Segment::create(options, detail::Table::format);
  if (!seg)
    throw Error(fmt::format("pipecache segment '{}': already exists ({})", options.name,
                            detail::Segment::path(options.name)),
                ErrorKind::already_exists);
  return Cache(std::make_unique<Impl>(std::move(seg)));
}

Cache Cache::open(std::string_view name) { return open(name, Trust{}); }
Cache Cache::open(std::string_view name, const Trust& trust) {
  return Cache(std::make_unique<Impl>(detail::Segment::open(name, trust)));
}

Cache Cache::open_or_create(const Options& options) {
  // Loser of a creation race opens the winner's segment; the loop also covers a segment
  // removed between our failed create and our open.
  for (int attempt = 0;; ++attempt) {
    if (detail::Segment::exists(options.name) || attempt > 0) {
      try {
        Cache c = open(options.name, options.trust);
        c.impl_->config_drift = detail::note_config_drift(*c.impl_->seg, options);
        return c;
      } catch (const Error&) {
        if (detail::Segment::exists(options.name) || attempt >= 3) throw;
      }
    }
    if (auto seg = detail::Segment::create(options, detail::Table::format)) return Cache(std::make_unique<Impl>(std::move(seg)));
  }
}

bool Cache::remove(std::string_view name) { return detail::Segment::remove(name); }
bool Cache::exists(std::string_view name) { return detail::Segment::exists(name); }

std::optional<std::string> Cache::get(std::string_view key) {
  std::string out;
  if (!get(key, out)) return std::nullopt;
  return out;
}

// Both overloads are one call of Table::get, which checks the key's length and hashes it: the
// hit path has no frame of its own here (callgrind, bench/profile).
bool Cache::get(std::string_view key, std::string& out) {
  if (detail::Counters c = impl_->claimed()) return impl_->table->get(key, out, nullptr, c);
  return impl_->get_claiming(key, out, nullptr);
}

bool Cache::get(std::string_view key, std::string& out, std::uint16_t& flags) {
  if (detail::Counters c = impl_->claimed()) return impl_->table->get(key, out, &flags, c);
  return impl_->get_claiming(key, out, &flags);
}

bool Cache::visit(std::string_view key, const std::function<void(std::string_view)>& reader) {
  auto c = impl_->counters();
  if (key.size() > detail::kMaxKeyBytes) return false;
  return impl_->table->visit(key, impl_->table->hash(key), reader, c);
}

bool Cache::put(std::string_view key, std::string_view value) {
  return put(key, value,
      std::chrono::milliseconds(impl_->seg->geometry().default_ttl_ns / 1000000ull), 0);
}

bool Cache::put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl) {
  return put(key, value, ttl, 0);
}

bool Cache::put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl, std::uint16_t flags) {
  impl_->check_key(key);
  impl_->check_value(value);
  std::uint64_t t = ttl_ns(ttl, impl_->seg->name());
  return impl_->table->put(key, impl_->table->hash(key), value, t, flags, impl_->counters());
}

bool Cache::erase(std::string_view key) {
  if (key.size() > detail::kMaxKeyBytes) return false;
  return impl_->table->erase(key, impl_->table->hash(key), impl_->counters());
}

std::size_t Cache::invalidate(std::string_view glob) {
  std::size_t removed = impl_->table->invalidate(glob, impl_->counters());
  detail::log_invalidation(impl_->seg->header().invalidations, glob, removed, /*clear=*/false);
  return removed;
}
bool Cache::clear() {
  const std::uint64_t present = impl_->seg->header().arena.entries.load(std::memory_order_relaxed);
  if (!impl_->table->clear(impl_->counters())) return false;
  detail::log_invalidation(impl_->seg->header().invalidations, "*", present, /*clear=*/true);
  return true;
}
std::vector<InvalidationRecord> Cache::recent_invalidations() const {
  return detail::read_invalidations(impl_->seg->header().invalidations);
}
std::size_t Cache::purge() { return impl_->table->purge(impl_->counters()); }

LeaseResult Cache::try_lease(std::string_view key, std::chrono::milliseconds lease_time) {
  impl_->check_key(key);
  std::uint64_t t = ttl_ns(lease_time, impl_->seg->name());
  detail::Counters c = impl_->counters();  // claims this process's slot: the lease lives as long as it
  return impl_->table->try_lease(key, impl_->table->hash(key), t, impl_->slot.load(std::memory_order_acquire), c);
}

bool Cache::publish(std::string_view key, std::string_view value, std::chrono::milliseconds ttl, std::uint16_t flags,
                    std::uint64_t token) {
  impl_->check_key(key);
  impl_->check_value(value);
  std::uint64_t t = ttl_ns(ttl, impl_->seg->name());
  return impl_->table->publish(key, impl_->table->hash(key), value, t, flags, token, impl_->counters());
}

bool Cache::renew_lease(std::string_view key, std::uint64_t token, std::chrono::milliseconds lease_time) {
  if (key.size() > detail::kMaxKeyBytes) return false;
  std::uint64_t t = ttl_ns(lease_time, impl_->seg->name());
  return impl_->table->renew_lease(key, impl_->table->hash(key), token, t, impl_->counters());
}

void Cache::release_lease(std::string_view key, std::uint64_t token) {
  if (key.size() > detail::kMaxKeyBytes) return;
  impl_->table->release_lease(key, impl_->table->hash(key), token, impl_->counters());
}

std::uint32_t Cache::lease_wake_seq(std::string_view key) const noexcept {
  return impl_->table->lease_wake_seq(impl_->table->hash(key));
}

void Cache::wait_lease(std::string_view key, std::uint32_t seen_seq, std::chrono::nanoseconds timeout) const noexcept {
  if (timeout.count() <= 0) return;
  impl_->table->wait_lease(impl_->table->hash(key), seen_seq, static_cast<std::uint64_t>(timeout.count()));
}

Stats Cache::stats() const { return detail::collect_stats(*impl_->seg); }
std::vector<std::string> Cache::namespaces() const { return impl_->table->namespace_names(); }
bool Cache::healthy() const noexcept { return !impl_->table->corrupt(); }

std::vector<KeyInfo> Cache::keys(std::string_view glob, std::size_t limit) const {
  return impl_->table->keys(glob, limit, impl_->seg->slots()[detail::kOverflowSlot].counters);
}

SegmentInfo Cache::inspect() const {
  const detail::Segment& seg = *impl_->seg;
  const detail::Header& h = seg.header();
  SegmentInfo info;
  info.name = seg.name();
  info.path = detail::Segment::path(seg.name());
  info.layout_version = h.layout_version;
  info.fingerprint = h.fingerprint;
  const detail::Geometry& g = seg.geometry();
  info.segment_bytes = g.total_bytes;
  info.arena_bytes = g.arena_bytes;
  info.byte_budget = g.byte_budget;
  info.max_entries = g.max_entries;
  info.stripes = g.stripes;
  info.buckets = std::uint64_t{g.stripes} * g.buckets_per_stripe;
  info.default_ttl = std::chrono::milliseconds(g.default_ttl_ns / 1000000ull);
  info.permissions = h.permissions;
  info.owner_uid = seg.owner_uid();
  info.owner = detail::user_name(seg.owner_uid());
  info.mode = seg.mode();
  info.created_unix_ms = h.created_unix_ms;
  for (unsigned i = 0; i < seg.geometry().stripes; ++i)
    info.entries_per_stripe.push_back(seg.stripes()[i].entries.load(std::memory_order_relaxed));
  info.free_blocks = h.arena.free_blocks.load(std::memory_order_relaxed);
  info.free_bytes = h.arena.free_bytes.load(std::memory_order_relaxed);
  detail::Arena arena(seg);
  info.largest_free_block = arena.largest_free_units() * detail::kUnit;
  info.used_blocks = h.arena.entries.load(std::memory_order_relaxed);
  info.bytes_used = h.arena.bytes_used.load(std::memory_order_relaxed);
  info.processes = detail::collect_processes(*impl_->seg);
  info.process_slots = detail::kMaxProcessSlots;
  info.namespace_slots = detail::kMaxNamespaces;
  return info;
}

VerifyReport Cache::verify() const {
  return impl_->table->verify(impl_->seg->slots()[detail::kOverflowSlot].counters);
}

int Cache::namespace_id(std::string_view request_type) { return impl_->table->namespace_id(request_type, true); }

void Cache::record(int ns, NsCounter counter, std::uint64_t delta) noexcept {
  if (ns < 0 || ns >= static_cast<int>(detail::kMaxNamespaces)) return;
  try {
    impl_->process_slot().ns[ns].counters[static_cast<unsigned>(counter)].fetch_add(delta, std::memory_order_relaxed);
  } catch (...) {
  }
}

void Cache::record_time(int ns, NsHistogram histogram, std::uint64_t ns_elapsed) noexcept {
  if (ns < 0 || ns >= static_cast<int>(detail::kMaxNamespaces)) return;
  try {
    auto& m = impl_->process_slot().ns[ns];
    unsigned h = static_cast<unsigned>(histogram);
    m.hist[h][Histogram::bucket_for(ns_elapsed)].fetch_add(1, std::memory_order_relaxed);
    m.hist_count[h].fetch_add(1, std::memory_order_relaxed);
    m.hist_sum[h].fetch_add(ns_elapsed, std::memory_order_relaxed);
  } catch (...) {
  }
}

void Cache::set_type_switch(std::string_view request_type, std::optional<double> percent) {
  const std::uint32_t word = detail::switch_word(percent);
  const int ns = impl_->table->namespace_id(request_type, true);
  if (ns <= 0) {
    throw Error(fmt::format("pipecache segment '{}': request type '{}' cannot be registered "
                            "(a name of 1 to {} bytes without ':', and a free namespace slot)",
                            impl_->seg->name(), request_type, detail::kMaxNamespaceName));
  }
  impl_->seg->namespaces()[ns].cache_switch.store(word, std::memory_order_relaxed);
}

std::optional<double> Cache::type_switch(std::string_view request_type) const {
  const int ns = impl_->table->namespace_id(request_type, false);
  if (ns <= 0) return std::nullopt;
  return detail::switch_percent(type_switch_word(ns));
}

std::uint32_t Cache::type_switch_word(int ns) const noexcept {
  if (ns <= 0 || ns >= static_cast<int>(detail::kMaxNamespaces)) return 0;
  return impl_->seg->namespaces()[ns].cache_switch.load(std::memory_order_relaxed);
}

void Cache::set_change_rule(std::string_view change_type, const std::vector<std::string>& patterns) {
  detail::write_change_rule(*impl_->seg, change_type, patterns);
}

std::map<std::string, std::vector<std::string>> Cache::change_rules() const {
  return detail::read_change_rules(*impl_->seg);
}

std::uint64_t Cache::change_rules_version() const noexcept {
  return impl_->seg->header().control.rules_version.load(std::memory_order_acquire);
}

const std::string& Cache::config_drift() const noexcept { return impl_->config_drift; }

const std::string& Cache::name() const noexcept { return impl_->seg->name(); }
std::chrono::milliseconds Cache::default_ttl() const noexcept {
  return std::chrono::milliseconds(impl_->seg->geometry().default_ttl_ns / 1000000ull);
}
std::size_t Cache::max_value_size() const noexcept { return impl_->seg->geometry().max_value_bytes; }
std::size_t Cache::max_key_size() const noexcept { return detail::kMaxKeyBytes; }

}  // namespace pipecache
