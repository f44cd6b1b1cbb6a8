// The request pipeline: get-or-compute on the shared cache, for the worker processes of a
// prefork server.
//
//   Pipeline p(PipelineConfig::from_environment());
//   std::string body = p.process_request("events_by_range", {{"from", a}, {"to", b}},
//                                        [&] { return render_events(a, b); });
//
// process_request answers from the shared segment when it can; on a miss exactly one process
// (of all that ask for the key at once) runs its handler while the others wait for its value
// (a lease in the segment; a dead or late holder is replaced). Within a type's stale window an
// expired value is served at once while one process refreshes it. Per-type policies set the
// TTL, stale window, de-duplication, batching and invalidation triggers.
//
// The cache never makes a request fail: when the segment cannot be opened or created, is
// corrupt, full, or a value is too large, the handler's result is returned directly, the cause
// is counted (process-local, and in the segment's namespace counters when it works) and logged
// once per cause to stderr.
//
// Errors: the constructor throws pipecache::Error only for an invalid configuration, never for
// the segment's state. process_request throws only what the handler throws.
//
// Thread-safety: every member function may be called from many threads at once.
#pragma once

#include <pipecache/export.hpp>

#include <pipecache/cache.hpp>
#include <pipecache/keys.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace pipecache {

// How a batch window treats requests with the same cache key.
enum class BatchMerge : unsigned {
  identical_keys,  // they share one slot: the batch handler sees the key once (the default)
  none,            // every request has its own slot (a handler with per-request effects)
};

// A named set of batch options: the design's batch types. A policy names one
// (RequestPolicy::batch_profile); a type naming none uses the config's batch_size and
// batch_timeout with identical_keys.
struct BatchProfile {
  std::size_t batch_size = 10;                  // distinct slots per batch, >= 1
  std::chrono::milliseconds batch_timeout{50};  // window, from its first request, >= 0
  BatchMerge merge = BatchMerge::identical_keys;
};

struct RequestPolicy {
  std::chrono::milliseconds ttl{0};  // fresh for this long; 0 = never expires
  // Then served stale while one process refreshes (the holder of the key's lease: the
  // others never wait, whatever `deduplicate` says), or when the refresh throws.
  std::chrono::milliseconds stale_for{0};
  // A miss waits for the process already computing the key instead of computing it again.
  bool deduplicate = true;
  bool batch_eligible = false;
  std::vector<std::string> invalidation_triggers;  // change types that invalidate this type
  // Additions. Keys carry the start of the current bucket of this length (0 = none).
  std::chrono::seconds time_bucket{0};
  // PipelineConfig::batch_profiles entry for this type's batches; "" = the config's
  // batch_size / batch_timeout.
  std::string batch_profile;
  // Share of the type's keys that are cached, 0..100 (percent, 0.01 steps). Decided by a
  // stable hash of the cache key, so one key is always or never cached; 0 turns caching off
  // for the type (its requests run the handler directly, counted as `bypassed`). A runtime
  // switch in the segment (Pipeline::set_type_switch, `pipectl rollout`) overrides it.
  double rollout_percent = 100.0;
  // A local miss asks Redis (PipelineConfig::redis_url) before computing, and a computed value
  // is stored there with the same TTL: one host computes a key, the others reuse its value.
  bool second_tier = false;
};

struct PIPECACHE_API PipelineConfig {
  std::string segment_name = "default";
  bool enable_response_caching = true;
  std::chrono::milliseconds cache_ttl = std::chrono::seconds(300);  // types without a policy
  std::size_t cache_max_size = 1000;     // entries; 0 = only the memory limit
  std::size_t cache_memory_limit_mb = 50;
  bool enable_request_batching = true;
  std::size_t batch_size = 10;
  std::chrono::milliseconds batch_timeout{50};
  bool enable_request_deduplication = true;

  // Additions beyond the design's variables.
  // A lease's length. The holder renews it every lease_time / 3 while its handler runs, so a
  // live holder keeps it however long it computes; a dead holder's lease is taken over.
  std::chrono::milliseconds lease_time = std::chrono::seconds(10);
  // A waiter never waits longer than this for another process's value; it then computes.
  std::chrono::milliseconds dedup_max_wait = std::chrono::seconds(15);
  std::chrono::milliseconds default_stale_for{0};  // types without a policy
  std::size_t max_key_length = 250;                // longer keys are hashed (keys.hpp)
  // Owners besides this process's effective user whose segment it may open (Trust). A segment
  // owned by anybody else, or world-writable, is refused: requests are then computed
  // directly, counted as segment_untrusted.
  Trust trust;

  // Configuration without code (see README "Configuration file"). Per-type policies, applied
  // over the seeded ones (a type named here gets exactly this policy).
  std::map<std::string, RequestPolicy> policies;
  // Change type -> patterns (Pipeline::invalidate forms), replacing a seeded rule of the same
  // change; an empty list removes it.
  std::map<std::string, std::vector<std::string>> invalidation_rules;
  // The design's batch types, seeded: database_query 10 / 50 ms, event_processing 5 / 30 ms.
  std::map<std::string, BatchProfile> batch_profiles = seed_batch_profiles();
  // The file from_environment read (PIPECACHE_CONFIG_FILE), "" when none: for messages.
  std::string config_file;
  // Many hosts (pipecache/remote.hpp). With a Redis URL, invalidate and handle_data_change
  // also publish their patterns to the other hosts' relays, and types whose policy asks for
  // it use Redis as a second tier. Redis never fails or blocks a request: publishing happens
  // on a background thread, tier calls wait at most redis_timeout. Empty: this host only.
  std::string redis_url;                                 // PIPECACHE_REDIS_URL
  std::string redis_channel = "pipecache:invalidate";    // PIPECACHE_REDIS_CHANNEL
  std::chrono::milliseconds redis_timeout{100};          // PIPECACHE_REDIS_TIMEOUT, per call

  // Reads PIPECACHE_<NAME> for each field, or the design's unprefixed name when the prefixed
  // one is absent (PIPECACHE_NAME, PIPECACHE_ENABLE_RESPONSE_CACHING / ENABLE_RESPONSE_CACHING,
  // CACHE_TTL_SECONDS, CACHE_MAX_SIZE, CACHE_MEMORY_LIMIT_MB, ENABLE_REQUEST_BATCHING,
  // BATCH_SIZE, BATCH_TIMEOUT_MS, ENABLE_REQUEST_DEDUPLICATION; prefixed only:
  // PIPECACHE_LEASE_TIME, PIPECACHE_DEDUP_MAX_WAIT, PIPECACHE_STALE_FOR,
  // PIPECACHE_MAX_KEY_LENGTH, PIPECACHE_TRUSTED_OWNERS = "www-data,1001", see Trust::parse). Absent variables keep the defaults above. A malformed or
  // out-of-range value (an empty one included) throws Error naming the variable and value.
  //
  // Before the variables, PIPECACHE_CONFIG_FILE (when set) names a JSON file read with
  // from_file's rules; variables override the file. Per-type variables, over both:
  //   PIPECACHE_POLICY_<type>="ttl=60s; stale_for=10s; deduplicate=on; batch=database_query;
  //                            triggers=calendar_sync,data_refresh; rollout=10%"
  //   PIPECACHE_BATCH_<profile>="size=10; timeout=50ms; merge=identical_keys"
  //   PIPECACHE_RULE_<change>="whats_next_*,events_by_range:*"
  // (<type>, <profile>, <change> exactly as named; fields not given keep their values).
  static PipelineConfig from_environment();
  // The defaults, then the JSON file at `path` (format: README "Configuration file"). An
  // unreadable file, a syntax error, an unknown key or a malformed value throws Error naming
  // the file, the line and the field.
  static PipelineConfig from_file(const std::string& path);
  // Applies the JSON file at `path` over this configuration (same errors as from_file).
  void load_file(const std::string& path);
  // Throws Error naming the field when the configuration cannot work.
  void validate() const;
  // database_query {10, 50 ms}, event_processing {5, 30 ms} (the design's batch types).
  static std::map<std::string, BatchProfile> seed_batch_profiles();
};

// Why a request was answered without the cache (see the header comment).
enum class FallbackCause : unsigned {
  caching_disabled,     // enable_response_caching = false
  segment_unavailable,  // could not open or create the segment (missing room, corrupt, ...)
  store_error,          // a cache operation failed (corruption found at run time, ...)
  value_too_large,      // the value does not fit in one entry
  store_full,           // the store dropped the write (no room could be made)
  lease_unavailable,    // no room for a lease marker: computed without de-duplication
  dedup_wait_timeout,   // waited dedup_max_wait for another process: computed directly
  segment_untrusted,    // the segment's owner or mode is not trusted (Trust): never opened
  count_
};
inline constexpr unsigned kFallbackCauses = static_cast<unsigned>(FallbackCause::count_);
PIPECACHE_API std::string_view fallback_cause_name(FallbackCause cause) noexcept;

struct LatencySummary {
  std::uint64_t count = 0;
  double mean_ns = 0;
  double p50_ns = 0;
  double p99_ns = 0;
};

// Figures of one request type, summed over every process (read from the segment).
// Each request counts once in `requests` and once in `hits` (fresh value), `stale_served`
// (stale value, somebody else refreshes) or `misses` (absent, or stale and this request
// refreshes it; a failed refresh that serves the stale value counts in `stale_served` too).
// A miss that waited for another process's computation counts in `dedup_waits` as well. `computes` / `compute_failures` count handler runs that returned /
// threw. `hit_time` is sampled (1 hit in 8 per thread is timed); `compute_time` is complete.
// For a type answered through a batch handler, a compute is one request's share of a batch
// and its compute_time runs from joining the window to getting the value, so it includes the
// wait for the window (batch_wait_ns holds that part alone).
//
// Batching (Pipeline::register_batch_handler):
// every miss sent to the type's batcher counts once in `batchable_requests`; every batch once
// in `batches`. A request answered by the batch handler counts in `batched_requests`; one
// re-run alone after its batch failed, in `batch_fallbacks` (so each request of a batch is in
// exactly one of the two). `batch_joined` counts requests of batches of 2 or more,
// `batch_failures` batches whose handler threw or returned the wrong number of values,
// `batch_wait_ns` the time requests spent in a window, summed; `batch_run_ns` the time batch
// handlers ran (their fallbacks included), summed over batches.
struct PIPECACHE_API RequestTypeStats {
  std::string request_type;
  std::uint64_t generation = 0;
  std::uint64_t entries = 0;
  std::uint64_t requests = 0;
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t stale_served = 0;
  std::uint64_t computes = 0;
  std::uint64_t compute_failures = 0;
  std::uint64_t dedup_waits = 0;
  std::uint64_t lease_takeovers = 0;
  std::uint64_t fallbacks = 0;
  LatencySummary hit_time;
  LatencySummary compute_time;
  std::uint64_t batchable_requests = 0;
  std::uint64_t batches = 0;
  std::uint64_t batched_requests = 0;
  std::uint64_t batch_joined = 0;
  std::uint64_t batch_failures = 0;
  std::uint64_t batch_fallbacks = 0;
  std::uint64_t batch_wait_ns = 0;
  std::uint64_t batch_run_ns = 0;
  // Requests a rollout share or runtime switch kept out of the cache (their handler ran
  // directly). Not counted in `requests`: the hit ratio is the cache's, over what it saw.
  std::uint64_t bypassed = 0;
  // The type's runtime switch in the segment (percent of keys cached), nullopt when none.
  std::optional<double> switch_percent;
  // (hits + stale_served) / requests; 0 when there were no requests.
  double hit_ratio() const noexcept;
  // Requests per batch: (batched_requests + batch_fallbacks) / batches; 0 without batches.
  double average_batch_size() const noexcept;
  // batch_joined / batchable_requests (the design's target is > 0.7); 0 without batchable
  // requests.
  double batch_formation_efficiency() const noexcept;
  // Mean time a batched request waited for its window to close; 0 without batches.
  double mean_batch_wait_ns() const noexcept;
  // Handler time per request answered through a batch: batch_run_ns / (batched_requests +
  // batch_fallbacks); 0 without batches. The figure the design's "20% less processing time
  // than one by one" compares with the single handler's time.
  double mean_batch_run_ns() const noexcept;
};

struct PIPECACHE_API PipelineStats {
  std::string segment_name;
  bool cache_available = false;  // the segment is open (false: every request falls back)
  std::vector<RequestTypeStats> types;  // empty when the segment is not available
  std::optional<Stats> store;           // the store's own figures, when available
  // This process only, by cause (the segment's per-type `fallbacks` sum all processes).
  std::array<std::uint64_t, kFallbackCauses> local_fallbacks{};
  // This process: times the segment's name was found removed, or naming another object (a
  // segment destroyed and created again), and the Pipeline reopened it (about once a second
  // it checks; a removed name is created again, as at start-up).
  std::uint64_t segment_reopened = 0;
  std::uint64_t local_fallback_total() const noexcept;
  const RequestTypeStats* type(std::string_view request_type) const noexcept;
};

// The per-type figures of a segment's stats (Cache::stats), as Pipeline::stats reports them;
// for tools that read a segment without a Pipeline (`pipectl validate`).
PIPECACHE_API PipelineStats pipeline_stats_of(std::string segment_name, Stats store_stats);

// Applies the segment's rule for `change_type` (Cache::change_rules: the patterns the
// Pipelines on the segment published for it, their rules and their policies' triggers), as a
// worker's handle_data_change would; returns the number of entries removed, or nullopt when
// the segment holds no rule for that change. Throws Error when an invalidation fails.
// For scripts and tools (`pipectl change`) that have no Pipeline.
PIPECACHE_API std::optional<std::size_t> apply_data_change(Cache& cache, std::string_view change_type);

class PIPECACHE_API Pipeline {
 public:
  using Handler = std::function<std::string()>;
  // Answers a batch of requests of one type: one value per params, in the same order.
  using BatchHandler = std::function<std::vector<std::string>(const std::vector<Params>& batch)>;
  // Builds the value of a time-bucketed type for the bucket starting at `bucket`.
  using BucketHandler = std::function<std::string(std::chrono::system_clock::time_point bucket)>;

  // Opens or creates the segment. Throws Error only when config.validate() does.
  explicit Pipeline(PipelineConfig config);
  Pipeline(Pipeline&&) noexcept;
  Pipeline& operator=(Pipeline&&) noexcept;
  ~Pipeline();

  std::string process_request(std::string_view request_type, const Params& params,
                              const Handler& handler);

  // Throws Error (naming the field) for a policy validate() would reject: a negative
  // duration, a rollout outside 0..100, a batch_profile the config does not define.
  void set_policy(std::string request_type, RequestPolicy policy);
  // The policy process_request applies to the type (the config's default for unknown types).
  RequestPolicy policy(std::string_view request_type) const;

  // Removes cached answers matching `pattern`; returns how many entries the store dropped.
  //   "<type>:*"     one namespace, O(1) (generation bump).
  //   "<prefix>*"    (no ':' in prefix, the design's `whats_next_*`) every request type whose
  //                  name starts with prefix, O(1) each.
  //   "<type glob>:*" every request type whose name matches the glob, O(1) each.
  //   anything else  a scan of the keys (Cache::invalidate).
  std::size_t invalidate(std::string_view pattern);
  // Applies the rules for a change (set_invalidation_rule) and every policy whose
  // invalidation_triggers name it, and the segment's rule for it (apply_data_change); returns
  // how many entries the store dropped (as invalidate). A Pipeline publishes its rules to the
  // segment when it opens it and when they change. Seeded rules: data_refresh -> whats_next_*,
  // events_by_range:*; settings_change -> settings_*, whats_next_*; layout_change and
  // navigation_change -> whats_next_*.
  std::size_t handle_data_change(std::string_view change_type);
  // Replaces the patterns invalidated by `change_type` (empty: removes the rule).
  void set_invalidation_rule(std::string change_type, std::vector<std::string> patterns);
  std::map<std::string, std::vector<std::string>> invalidation_rules() const;

  // Computes and stores the value ahead of demand (replacing a cached one).
  void warm(std::string_view request_type, const Params& params, const Handler& handler);
  // For a time-bucketed type, fills the buckets starting at now + each offset (the design
  // warms now, +1, +2 and +5 minutes); returns how many values were stored. A type without a
  // time bucket, or params pinned by debug_time, are warmed once.
  std::size_t warm_ahead(std::string_view request_type, const Params& params,
                         const BucketHandler& handler,
                         const std::vector<std::chrono::minutes>& offsets = {
                             std::chrono::minutes(0), std::chrono::minutes(1),
                             std::chrono::minutes(2), std::chrono::minutes(5)});

  // The key process_request would use now.
  std::string cache_key(std::string_view request_type, const Params& params) const;

  // Request batching. While `request_type`'s policy is batch_eligible and
  // config().enable_request_batching is on, its misses are computed in batches: the cache is
  // looked at first and cross-process de-duplication applies as always (only the process
  // that holds a key's lease computes it); that computation then joins the type's open
  // window, and the window's requests are answered by ONE call of `handler` with their
  // params. A window closes when it holds batch_size distinct keys or batch_timeout after it
  // opened, whichever first: the options of the policy's batch_profile, else
  // config().batch_size and config().batch_timeout (10 / 50 ms, the design's database_query,
  // for the seeded types), as the policy stands when the handler is registered. With the
  // profile's merge = none, requests with one key take a slot each. Each value is stored in the
  // cache with the type's TTL and stale window, as a handler's value would be.
  //
  // If `handler` throws or returns a number of values other than the number of params, the
  // batch failed: each of its requests is then run alone with the handler given to its own
  // process_request, and its caller gets that value or that exception — never a neighbour's
  // (which then takes the usual path: lease released, stale value served when there is one).
  // A failure is counted (batch_failures, batch_fallbacks) and logged once per type and cause.
  // Requests with the same cache key in one window share one slot (one params entry).
  //
  // Threads: `handler`, and a request's own handler after a batch failure, run on the
  // type's batcher thread (one per type and process, started on the first batched miss of
  // the process, so a prefork worker batches with its own thread). Batches of a type run
  // one at a time. `handler` must not call process_request for its own type (it would wait
  // for itself). The price of batching is latency: a miss waits up to batch_timeout for
  // company (see RequestTypeStats on compute_time).
  //
  // Registering again replaces the handler (requests already in a window finish with the
  // old one); an empty `handler` removes it. A batch-eligible type without a batch handler
  // is computed one request at a time.
  // Destroying the Pipeline answers every request still waiting in a window first.
  void register_batch_handler(std::string request_type, BatchHandler handler);

  // Called on the waiting thread by a request that waits for another process's value,
  // between slices of its wait (at least every 50 ms). An exception it throws ends the wait
  // and leaves process_request as it is (a waiter holds no lease: nothing to release). Lets
  // a language binding honour signals while a request waits (Python's KeyboardInterrupt).
  // Set it before the first request; an empty function removes it.
  using WaitHook = std::function<void()>;
  void set_wait_hook(WaitHook hook);

  PipelineStats stats() const;
  const PipelineConfig& config() const noexcept;
  bool cache_available() const noexcept;
  // The underlying cache, or nullptr while falling back (for tools and tests). After the
  // segment was destroyed and created again, the new one's; a pointer returned earlier stays
  // valid (on the old, unlinked segment) until the Pipeline is destroyed.
  Cache* cache() noexcept;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pipecache
