// Pipeline: ties config, policies, keys, get-or-compute, invalidation rules, warming and
// stats together.
//
// Locking (never held while a handler runs, never nested):
//   open_mu   guards `opened`, `watch` and every (re)open attempt; `current` publishes the
//             Attached in use with release/acquire. An Attached, once published, lives as long
//             as the Pipeline (retired or not), so readers need no lock and no reference count.
//   rules_mu  guards rules.
//   PolicyTable and BatchLanes have their own locks (policy.hpp, batching.hpp).
//
// Member order is destruction order reversed: batch_lanes is declared last so that every
// Batcher drains (answers its waiting requests, recording into the cache) while the cache and
// the fallback log still exist.
#include <pipecache/figures.hpp>
#include <pipecache/pipeline.hpp>

#include "pipeline/batching.hpp"
#include "pipeline/envelope.hpp"
#include "pipeline/fallback.hpp"
#include "pipeline/get_or_compute.hpp"
#include "pipeline/invalidation.hpp"
#include "pipeline/policy.hpp"
#include "remote/pipeline_remote.hpp"
#include "segment/segment.hpp"
#include "segment/watch.hpp"
#include "util/clock.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <mutex>
#include <set>

namespace pipecache {

using detail::monotonic_ns;

namespace {

// While the segment cannot be opened, one request in this interval tries again (a segment
// created later, or room freed in /dev/shm, is picked up without a restart).
constexpr std::int64_t kReopenIntervalNs = 2'000'000'000;
// How often a request checks that the segment name still names the object in use (a stat(2)
// under open_mu, by one request; the others compare one coarse clock read with next_watch_ns).
constexpr std::int64_t kWatchIntervalNs = 1'000'000'000;

LatencySummary summarize(const Histogram& h) {
  LatencySummary s;
  s.count = h.count;
  s.mean_ns = h.mean_ns();
  s.p50_ns = h.percentile_ns(0.5);
  s.p99_ns = h.percentile_ns(0.99);
  return s;
}

// Each counter of RequestTypeStats and the namespace counter it reports.
constexpr std::pair<std::uint64_t RequestTypeStats::*, NsCounter> kTypeCounters[] = {
    {&RequestTypeStats::requests, NsCounter::requests},
    {&RequestTypeStats::hits, NsCounter::hits},
    {&RequestTypeStats::misses, NsCounter::misses},
    {&RequestTypeStats::stale_served, NsCounter::stale_served},
    {&RequestTypeStats::computes, NsCounter::computes},
    {&RequestTypeStats::compute_failures, NsCounter::compute_failures},
    {&RequestTypeStats::dedup_waits, NsCounter::dedup_waits},
    {&RequestTypeStats::lease_takeovers, NsCounter::lease_takeovers},
    {&RequestTypeStats::fallbacks, NsCounter::fallbacks},
    {&RequestTypeStats::batchable_requests, NsCounter::batchable_requests},
    {&RequestTypeStats::batches, NsCounter::batches},
    {&RequestTypeStats::batched_requests, NsCounter::batched_requests},
    {&RequestTypeStats::batch_joined, NsCounter::batch_joined},
    {&RequestTypeStats::batch_failures, NsCounter::batch_failures},
    {&RequestTypeStats::batch_fallbacks, NsCounter::batch_fallbacks},
    {&RequestTypeStats::batch_wait_ns, NsCounter::batch_wait_ns},
    {&RequestTypeStats::batch_run_ns, NsCounter::batch_run_ns},
};

}  // namespace

struct PIPECACHE_LOCAL Pipeline::Impl {
  explicit Impl(PipelineConfig c)
      : config(std::move(c)), policies(config) {}

  PipelineConfig config;
  detail::PolicyTable policies;
  detail::FallbackLog fallbacks;

  // One open of the segment. `generation` counts the opens of this Pipeline (1, 2, ...): the
  // namespace ids cached in TypeState are of one generation's segment.
  struct Attached {
    std::unique_ptr<Cache> cache;
    std::uint32_t generation = 0;
  };

  std::mutex open_mu;
  // GUARDED_BY(open_mu). Never shrinks: a segment destroyed and created again is reopened,
  // and the Attached of the old one is kept (requests in flight, batchers, the publisher's
  // queue and cache() callers may still use its Cache), mapping the unlinked object until the
  // Pipeline ends. The last one is `current`.
  std::vector<std::unique_ptr<Attached>> opened;
  std::atomic<Attached*> current{nullptr};  // release/acquire
  detail::SegmentWatch watch{config.segment_name};  // GUARDED_BY(open_mu)
  std::atomic<std::int64_t> next_watch_ns{0};      // coarse clock
  std::atomic<std::uint64_t> segment_reopened{0};
  std::atomic<std::int64_t> next_open_ns{0};
  // Why the last open failed: what note_unavailable() counts.
  std::atomic<FallbackCause> open_failure{FallbackCause::segment_unavailable};

  // Publisher and second tier (config.redis_url), null for a single host. Declared after the
  // cache (it keeps Cache pointers in its queue) and before batch_lanes (batches use the tier).
  std::unique_ptr<detail::PipelineRemote> remote;

  mutable std::mutex rules_mu;
  std::map<std::string, std::vector<std::string>, std::less<>> rules;  // GUARDED_BY(rules_mu)

  // Set before the first request (set_wait_hook), read without a lock by waiters.
  WaitHook wait_hook;

  // Every RequestScope of this pipeline: one fallback log, lease time, wait bound and hook.
  detail::RequestScope scope(Cache& c, int ns, const detail::TypeState& type, std::string_view key,
                             const Handler& compute) {
    return {c, ns, type, key, compute, fallbacks, config.lease_time, config.dedup_max_wait, &wait_hook};
  }

  Options segment_options() const {
    Options o;
    o.name = config.segment_name;
    o.byte_budget = config.cache_memory_limit_mb << 20;
    o.max_entries = config.cache_max_size;
    o.default_ttl = config.cache_ttl;
    o.trust = config.trust;
    return o;
  }

  // The segment in use, or nullptr while falling back (then retries when due). About once a
  // second, one request checks that the name still names it (open_mu, try-locked).
  Attached* acquire() noexcept {
    if (Attached* a = current.load(std::memory_order_acquire)) [[likely]] {
      if (detail::monotonic_coarse_ns() < next_watch_ns.load(std::memory_order_relaxed)) [[likely]] return a;
      return watch_segment(a);
    }
    if (!config.enable_response_caching) return nullptr;
    const std::int64_t now = monotonic_ns();
    if (now < next_open_ns.load(std::memory_order_relaxed)) return nullptr;
    std::unique_lock lock(open_mu, std::try_to_lock);
    if (!lock.owns_lock()) return nullptr;  // another thread is trying right now
    if (Attached* a = current.load(std::memory_order_acquire)) return a;
    next_open_ns.store(now + kReopenIntervalNs, std::memory_order_relaxed);
    return open_segment();
  }
  Cache* acquire_cache() noexcept {
    Attached* a = acquire();
    return a != nullptr ? a->cache.get() : nullptr;
  }
  Cache* cache_in_use() const noexcept {
    Attached* a = current.load(std::memory_order_acquire);
    return a != nullptr ? a->cache.get() : nullptr;
  }

  // Opens (or creates) the segment and publishes it as `current`; nullptr when that failed
  // (counted by cause, logged once). Caller holds open_mu.
  Attached* open_segment() noexcept {
    try {
      auto a = std::make_unique<Attached>();
      a->cache = std::make_unique<Cache>(Cache::open_or_create(segment_options()));
      a->generation = static_cast<std::uint32_t>(opened.size() + 1);
      if (!a->cache->config_drift().empty()) {
        log_once_line(fmt::format("segment '{}' exists with another configuration ({}); using "
                                  "the segment's. To resize, create a segment under a new name "
                                  "and switch the workers to it",
                                  config.segment_name, a->cache->config_drift()));
      }
      publish_rules(*a->cache);
      watch.adopt(detail::segment_of(*a->cache).identity());
      opened.push_back(std::move(a));
      next_watch_ns.store(detail::monotonic_coarse_ns() + kWatchIntervalNs, std::memory_order_relaxed);
      current.store(opened.back().get(), std::memory_order_release);
      return opened.back().get();
    } catch (const std::exception& e) {
      const auto* err = dynamic_cast<const Error*>(&e);
      const FallbackCause cause = err != nullptr && err->kind() == ErrorKind::permission_denied
                                      ? FallbackCause::segment_untrusted
                                      : FallbackCause::segment_unavailable;
      open_failure.store(cause, std::memory_order_relaxed);
      fallbacks.log_once(cause, e.what());
      return nullptr;
    }
  }

  // The watch's tick (segment/watch.hpp): when the name names another object, or none, the
  // segment is reopened as at start-up (open_or_create: a removed name is created again).
  // If that fails, the old segment stays in use and the next tick tries again.
  Attached* watch_segment(Attached* in_use) noexcept {
    std::unique_lock lock(open_mu, std::try_to_lock);
    if (!lock.owns_lock()) return in_use;  // another thread is checking right now
    const std::int64_t now = detail::monotonic_coarse_ns();
    if (now < next_watch_ns.load(std::memory_order_relaxed)) return current.load(std::memory_order_acquire);
    next_watch_ns.store(now + kWatchIntervalNs, std::memory_order_relaxed);
    const detail::SegmentWatch::Change change = watch.check();
    if (change == detail::SegmentWatch::Change::same) return in_use;
    Attached* reopened = open_segment();
    if (reopened == nullptr) return in_use;
    const std::uint64_t n = segment_reopened.fetch_add(1, std::memory_order_relaxed) + 1;
    std::fprintf(stderr, "pipecache: segment '%s' was %s; reopened it (%llu time%s in this process)\n",
                 config.segment_name.c_str(), detail::SegmentWatch::describe(change),
                 static_cast<unsigned long long>(n), n == 1 ? "" : "s");
    return reopened;
  }

  // The type's namespace id in a's segment, resolved once per generation.
  static int resolve_namespace(const Attached& a, const detail::TypeState& type) noexcept {
    const std::uint64_t packed = type.ns_id.load(std::memory_order_relaxed);
    if (packed >> 32 == a.generation) return static_cast<int>(static_cast<std::uint32_t>(packed));
    int id;
    try {
      id = a.cache->namespace_id(escape_request_type(type.request_type));
    } catch (...) {
      id = -1;
    }
    type.ns_id.store(std::uint64_t{a.generation} << 32 | static_cast<std::uint32_t>(id), std::memory_order_relaxed);
    return id;
  }

  // `at`: the time for a time-bucketed type (nullopt = now, read only when needed: a clock
  // read costs ~45 ns here, a tenth of a hit).
  std::string key_for(const detail::TypeState& type, const Params& params, const Cache* c,
                      std::optional<std::chrono::system_clock::time_point> at = {}) const {
    const auto now = type.key_options.time_bucket.count() > 0
                         ? at.value_or(std::chrono::system_clock::now())
                         : std::chrono::system_clock::time_point{};
    KeyOptions options = type.key_options;
    if (c != nullptr) options.max_length = std::min(options.max_length, c->max_key_size());
    return make_cache_key(type.request_type, params, now, options);
  }

  // A request the rollout or switch keeps out of the cache: the handler, counted.
  static std::string bypass(Cache& c, int ns, const Handler& handler) {
    c.record(ns, NsCounter::bypassed);
    return handler();
  }

  void note_unavailable() noexcept {
    const FallbackCause cause = config.enable_response_caching
                                    ? open_failure.load(std::memory_order_relaxed)
                                    : FallbackCause::caching_disabled;
    fallbacks.note(cause,
                   cause == FallbackCause::caching_disabled
                       ? "response caching is disabled by configuration"
                       : "the segment could not be opened",
                   nullptr, -1);
  }

  // Namespace names present in the segment, and whether its table has no free slot.
  detail::NamespaceList segment_namespaces(Cache& c) {
    unsigned slots = namespace_slots.load(std::memory_order_relaxed);
    detail::NamespaceList list = detail::segment_namespaces(c, slots);
    if (slots == 0 && !list.table_full) {
      // Fixed at creation: asked once. (A full list is re-asked: it may be the unknown case.)
      try {
        namespace_slots.store(c.inspect().namespace_slots, std::memory_order_relaxed);
      } catch (...) {
      }
    }
    return list;
  }

  std::atomic<unsigned> namespace_slots{0};  // of the open segment; 0 = not asked yet

  // A computation of a batch-eligible type (batching enabled), as get_or_compute runs it.
  struct BatchableCall {
    Impl& impl;
    Cache& cache;
    int ns;
    const detail::TypeState& type;
    std::string_view key;
    const Params& params;
    const Handler& handler;
  };

  // The registered batch handler's batch, else the handler itself. Looked up when the
  // computation runs, not per request: hits never pay.
  std::string compute_batchable(const BatchableCall& call) {
    if (auto lane = batch_lanes.find(call.type.request_type)) {
      return lane->compute(call.cache, call.ns, call.key, call.params, call.handler);
    }
    return call.handler();
  }

  // Every pattern a change invalidates: its rule, and "<type>:*" for each policy that names
  // it among its invalidation_triggers.
  std::set<std::string> patterns_for(std::string_view change_type) const {
    std::set<std::string> patterns;
    {
      std::lock_guard lock(rules_mu);
      if (auto it = rules.find(change_type); it != rules.end()) {
        patterns.insert(it->second.begin(), it->second.end());
      }
    }
    for (const auto& state : policies.all()) {
      const auto& triggers = state->policy.invalidation_triggers;
      if (std::find(triggers.begin(), triggers.end(), change_type) != triggers.end()) {
        patterns.insert(escape_request_type(state->request_type) + ":*");
      }
    }
    return patterns;
  }

  // Queues the patterns for the other hosts (config.redis_url; a background thread sends
  // them): never waits for Redis. `c` null: the segment is unavailable here.
  void publish(Cache* c, const std::set<std::string>& patterns) noexcept {
    if (!remote) return;
    for (const auto& p : patterns) remote->publish(c, p);
  }

  // Every pattern once per namespace (detail::invalidate_patterns), then queued for the other
  // hosts; entries dropped here.
  std::size_t invalidate_patterns(const std::set<std::string>& patterns) {
    Cache* c = acquire_cache();
    if (c == nullptr) {
      publish(nullptr, patterns);  // the other hosts may have them cached
      return 0;  // nothing is cached while the segment is unavailable
    }
    const std::size_t removed = detail::invalidate_patterns(
        *c, patterns, [&] { return segment_namespaces(*c); },
        [&](const std::string& pattern, const char* what) {
          fallbacks.log_once(FallbackCause::store_error,
                             fmt::format("invalidate '{}': {}", pattern, what));
        });
    publish(c, patterns);
    return removed;
  }

  // Every change this process knows (its rules, and its policies' triggers) with its patterns.
  std::map<std::string, std::set<std::string>> local_rules() const {
    std::set<std::string> changes;
    {
      std::lock_guard lock(rules_mu);
      for (const auto& [change, patterns] : rules) changes.insert(change);
    }
    for (const auto& state : policies.all()) {
      changes.insert(state->policy.invalidation_triggers.begin(),
                     state->policy.invalidation_triggers.end());
    }
    std::map<std::string, std::set<std::string>> out;
    for (const auto& change : changes) out[change] = patterns_for(change);
    return out;
  }

  // Writes this process's rules into the segment, so that every process and `pipectl change`
  // apply them (last writer wins per change). `removed`: a change whose rule this process just
  // dropped (removed from the segment too when nothing else of ours names it).
  void publish_rules(Cache& c, std::string_view removed = {}) noexcept {
    try {
      const auto mine = local_rules();
      for (const auto& [change, patterns] : mine) {
        try {
          c.set_change_rule(change, std::vector<std::string>(patterns.begin(), patterns.end()));
        } catch (const std::exception& e) {
          log_once_line(fmt::format("change rule '{}' is not kept in segment '{}' ({}): other "
                                    "processes and pipectl change will not apply it",
                                    change, config.segment_name, e.what()));
        }
      }
      if (!removed.empty() && mine.count(std::string(removed)) == 0) c.set_change_rule(removed, {});
    } catch (const std::exception& e) {
      log_once_line(fmt::format("change rules not published to segment '{}': {}",
                                config.segment_name, e.what()));
    }
  }

  // Lines worth saying once per process, however many Pipelines it builds (drift,
  // unpublishable rules).
  static void log_once_line(const std::string& text) noexcept {
    static std::mutex said_mu;
    static std::set<std::string> said;  // GUARDED_BY(said_mu)
    try {
      std::lock_guard lock(said_mu);
      if (!said.insert(text).second) return;
      std::fprintf(stderr, "pipecache: %s (logged once)\n", text.c_str());
    } catch (...) {
    }
  }

  detail::BatchLanes batch_lanes;  // last: see the locking note at the top
};

Pipeline::Pipeline(PipelineConfig config) {
  config.validate();
  impl_ = std::make_unique<Impl>(std::move(config));
  for (auto& [change, patterns] : detail::seed_invalidation_rules()) {
    impl_->rules.emplace(change, std::move(patterns));
  }
  for (const auto& [change, patterns] : impl_->config.invalidation_rules) {
    if (patterns.empty()) {
      impl_->rules.erase(change);
    } else {
      impl_->rules.insert_or_assign(change, patterns);
    }
  }
  if (!impl_->config.enable_response_caching) {
    impl_->fallbacks.log_once(FallbackCause::caching_disabled,
                              "response caching is disabled by configuration");
  }
  impl_->remote = detail::PipelineRemote::make(impl_->config);
  impl_->acquire_cache();
}

Pipeline::Pipeline(Pipeline&&) noexcept = default;
Pipeline& Pipeline::operator=(Pipeline&&) noexcept = default;
Pipeline::~Pipeline() = default;

std::string Pipeline::process_request(std::string_view request_type, const Params& params,
                                      const Handler& handler) {
  Impl& m = *impl_;
  Impl::Attached* a = m.acquire();
  if (a == nullptr) {
    m.note_unavailable();
    return handler();
  }
  Cache* const c = a->cache.get();
  const auto type = m.policies.find(request_type);
  const int ns = Impl::resolve_namespace(*a, *type);
  // The segment's runtime switch, else the policy's rollout (one relaxed load: see
  // Namespace::cache_switch).
  const std::uint32_t word = c->type_switch_word(ns);
  const std::uint32_t share = (word & detail::kSwitchSetBit) != 0
                                  ? std::min(word & ~detail::kSwitchSetBit, detail::kRolloutAll)
                                  : type->rollout_bp;
  if (share == 0) return m.bypass(*c, ns, handler);
  const std::string key = m.key_for(*type, params, c);
  if (share < detail::kRolloutAll && !detail::in_rollout(key, share)) {
    return m.bypass(*c, ns, handler);
  }

  if (!type->batch) {
    if (m.remote && type->policy.second_tier) {
      // Only the local lease holder (or a fallback) computes: that is when Redis is asked.
      const Handler tiered = [&] {
        return m.remote->fetch_or_compute(*c, key.substr(0, key.find(':')), key, type->policy.ttl, handler);
      };
      const detail::RequestScope scope = m.scope(*c, ns, *type, key, tiered);
      return detail::get_or_compute(scope);
    }
    const detail::RequestScope scope = m.scope(*c, ns, *type, key, handler);
    return detail::get_or_compute(scope);
  }
  const Impl::BatchableCall call{m, *c, ns, *type, key, params, handler};
  // One reference captured: std::function keeps it inline, so a hit allocates nothing here.
  const Handler routed = [&call] { return call.impl.compute_batchable(call); };
  const detail::RequestScope scope = m.scope(*c, ns, *type, key, routed);
  return detail::get_or_compute(scope);
}

void Pipeline::set_policy(std::string request_type, RequestPolicy policy) {
  PipelineConfig probe;  // the checks of validate(), for this one policy
  probe.batch_profiles = impl_->config.batch_profiles;
  probe.policies.emplace(request_type, policy);
  probe.validate();
  impl_->policies.set(std::move(request_type), std::move(policy));
  if (Cache* c = impl_->cache_in_use()) impl_->publish_rules(*c);
}

RequestPolicy Pipeline::policy(std::string_view request_type) const {
  return impl_->policies.find(request_type)->policy;
}

std::size_t Pipeline::invalidate(std::string_view pattern) {
  return impl_->invalidate_patterns({std::string(pattern)});
}

std::size_t Pipeline::handle_data_change(std::string_view change_type) {
  Impl& m = *impl_;
  std::set<std::string> patterns = m.patterns_for(change_type);
  // And the segment's rule for it: what another process (or a newer configuration) declared.
  if (Cache* c = m.acquire_cache()) {
    try {
      const auto stored = c->change_rules();
      if (auto it = stored.find(std::string(change_type)); it != stored.end()) {
        patterns.insert(it->second.begin(), it->second.end());
      }
    } catch (const std::exception& e) {
      m.fallbacks.log_once(FallbackCause::store_error,
                           fmt::format("change rules of segment '{}': {}", m.config.segment_name,
                                       e.what()));
    }
  }
  return m.invalidate_patterns(patterns);
}

std::optional<std::size_t> apply_data_change(Cache& cache, std::string_view change_type) {
  const auto rules = cache.change_rules();
  const auto it = rules.find(std::string(change_type));
  if (it == rules.end()) return std::nullopt;
  const std::set<std::string> patterns(it->second.begin(), it->second.end());
  std::string first_error;
  const std::size_t removed = detail::invalidate_patterns(
      cache, patterns, [&] { return detail::segment_namespaces(cache); },
      [&](const std::string& pattern, const char* what) {
        if (first_error.empty()) first_error = fmt::format("invalidate '{}': {}", pattern, what);
      });
  if (!first_error.empty()) throw Error(first_error, ErrorKind::corrupt);
  return removed;
}

void Pipeline::set_wait_hook(WaitHook hook) { impl_->wait_hook = std::move(hook); }

void Pipeline::set_invalidation_rule(std::string change_type, std::vector<std::string> patterns) {
  const bool removing = patterns.empty();
  {
    std::lock_guard lock(impl_->rules_mu);
    if (removing) {
      impl_->rules.erase(change_type);
    } else {
      impl_->rules.insert_or_assign(change_type, std::move(patterns));
    }
  }
  if (Cache* c = impl_->cache_in_use()) {
    impl_->publish_rules(*c, removing ? std::string_view(change_type) : std::string_view());
  }
}

std::map<std::string, std::vector<std::string>> Pipeline::invalidation_rules() const {
  std::lock_guard lock(impl_->rules_mu);
  return {impl_->rules.begin(), impl_->rules.end()};
}

void Pipeline::warm(std::string_view request_type, const Params& params, const Handler& handler) {
  Impl& m = *impl_;
  Impl::Attached* a = m.acquire();
  if (a == nullptr) return;  // nowhere to keep the value: computing it would be wasted
  Cache* const c = a->cache.get();
  const auto type = m.policies.find(request_type);
  const int ns = Impl::resolve_namespace(*a, *type);
  const std::string key = m.key_for(*type, params, c);
  const detail::RequestScope scope = m.scope(*c, ns, *type, key, handler);
  detail::compute_and_store(scope);
}

std::size_t Pipeline::warm_ahead(std::string_view request_type, const Params& params,
                                 const BucketHandler& handler,
                                 const std::vector<std::chrono::minutes>& offsets) {
  Impl& m = *impl_;
  Impl::Attached* a = m.acquire();
  if (a == nullptr) return 0;
  Cache* const c = a->cache.get();
  const auto type = m.policies.find(request_type);
  const int ns = Impl::resolve_namespace(*a, *type);
  const auto bucket = type->key_options.time_bucket;
  const auto sys_now = std::chrono::system_clock::now();
  const bool pinned = params.count(std::string(kDebugTimeParam)) != 0;

  std::vector<std::chrono::minutes> todo = offsets;
  if (bucket.count() <= 0 || pinned || todo.empty()) todo = {std::chrono::minutes(0)};
  std::set<std::string> done;
  std::size_t stored = 0;
  for (const auto offset : todo) {
    const auto at = sys_now + offset;
    const std::string key = m.key_for(*type, params, c, at);
    if (!done.insert(key).second) continue;  // two offsets in one bucket
    const auto start = bucket.count() > 0 ? bucket_start(at, bucket) : sys_now;
    std::int64_t until = detail::kForever;
    if (type->policy.ttl.count() > 0) {
      // Fresh from now until `ttl` after its bucket begins (a future bucket stays until used).
      const auto lead = std::max<std::chrono::nanoseconds>(start - sys_now, {});
      until = monotonic_ns() + (lead + type->policy.ttl).count();
    }
    const Handler bound = [&handler, start] { return handler(start); };
    const detail::RequestScope scope = m.scope(*c, ns, *type, key, bound);
    // A throwing handler ends the warming: the caller's to handle, as in process_request.
    bool kept = false;
    detail::compute_and_store(scope, until, &kept);
    stored += kept ? 1 : 0;
  }
  return stored;
}

std::string Pipeline::cache_key(std::string_view request_type, const Params& params) const {
  const auto type = impl_->policies.find(request_type);
  return impl_->key_for(*type, params, impl_->cache_in_use());
}

void Pipeline::register_batch_handler(std::string request_type, BatchHandler handler) {
  const auto type = impl_->policies.find(request_type);
  impl_->batch_lanes.set(std::move(request_type), std::move(handler), type->batch_options);
}

PipelineStats pipeline_stats_of(std::string segment_name, Stats store_stats) {
  PipelineStats out;
  out.segment_name = std::move(segment_name);
  for (const auto& ns : store_stats.namespaces) {
    RequestTypeStats t;
    t.request_type = ns.name;
    t.generation = ns.generation;
    t.entries = ns.entries;
    for (const auto& [field, counter] : kTypeCounters) t.*field = ns.counter(counter);
    t.hit_time = summarize(ns.histogram(NsHistogram::hit_time));
    t.compute_time = summarize(ns.histogram(NsHistogram::compute_time));
    t.bypassed = ns.counter(NsCounter::bypassed);
    t.switch_percent = ns.switch_percent;
    out.types.push_back(std::move(t));
  }
  out.store = std::move(store_stats);
  out.cache_available = true;
  return out;
}

PipelineStats Pipeline::stats() const {
  PipelineStats out;
  out.segment_name = impl_->config.segment_name;
  out.local_fallbacks = impl_->fallbacks.counts();
  out.segment_reopened = impl_->segment_reopened.load(std::memory_order_relaxed);
  Cache* c = impl_->cache_in_use();
  if (c == nullptr) return out;
  try {
    PipelineStats from_segment = pipeline_stats_of(out.segment_name, c->stats());
    out.types = std::move(from_segment.types);
    out.store = std::move(from_segment.store);
    out.cache_available = true;
  } catch (const std::exception& e) {
    impl_->fallbacks.log_once(FallbackCause::store_error, e.what());
  }
  return out;
}

const PipelineConfig& Pipeline::config() const noexcept { return impl_->config; }

bool Pipeline::cache_available() const noexcept {
  return impl_->cache_in_use() != nullptr;
}

Cache* Pipeline::cache() noexcept { return impl_->acquire_cache(); }

double RequestTypeStats::hit_ratio() const noexcept {
  return figures::or_zero(figures::request_hit_ratio(hits, stale_served, requests));
}

double RequestTypeStats::average_batch_size() const noexcept {
  return figures::or_zero(figures::average_batch_size(batched_requests, batch_fallbacks, batches));
}

double RequestTypeStats::batch_formation_efficiency() const noexcept {
  return figures::or_zero(figures::batch_formation(batch_joined, batchable_requests));
}

double RequestTypeStats::mean_batch_run_ns() const noexcept {
  return figures::or_zero(figures::mean_batch_run_ns(batch_run_ns, batched_requests, batch_fallbacks));
}

double RequestTypeStats::mean_batch_wait_ns() const noexcept {
  return figures::or_zero(
      figures::mean_batch_wait_ns(batch_wait_ns, batched_requests, batch_fallbacks));
}

std::uint64_t PipelineStats::local_fallback_total() const noexcept {
  std::uint64_t sum = 0;
  for (auto n : local_fallbacks) sum += n;
  return sum;
}

const RequestTypeStats* PipelineStats::type(std::string_view request_type) const noexcept {
  for (const auto& t : types) {
    if (t.request_type == request_type) return &t;
  }
  return nullptr;
}

}  // namespace pipecache
