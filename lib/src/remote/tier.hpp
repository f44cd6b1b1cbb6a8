// The second tier: Redis between the hosts' segments, for request types that ask for it
// (RequestPolicy::second_tier). Keys and scripts: scripts.hpp.
//
// Only a LOCAL lease holder comes here (the pipeline's de-duplication runs first), so a host
// sends at most one request per key to Redis however many of its workers missed. Then:
//   1. One round trip (kTierLookupScript) returns the value another host stored, or gives
//      this host the key's Redis lease (SET NX PX, PipelineConfig::lease_time), or says who
//      holds it.
//   2. The lease holder computes, stores the value with the type's TTL and drops the lease in
//      one script, which discards the value when the type's generation moved meanwhile (an
//      invalidation raced the computation).
//   3. A host that finds another's lease polls (every kPollEvery, one lookup each) until the
//      value appears, or the lease expires and its lookup takes it over (a host that died
//      computing is replaced after lease_time), or dedup_max_wait passes: then it computes
//      without the tier.
//   4. Redis never fails or noticeably delays a request: every call waits at most
//      redis_timeout; any error or timeout computes locally (tier_fallbacks, logged once per
//      outage); after kBreakerFailures failures in a row the breaker opens and requests skip
//      Redis for kBreakerOpenFor, then one request probes it again.
//
// Threads and processes: connections come from a per-process pool (a forked child never uses
// its parent's sockets: the pool records its pid and a child starts an empty one).
#pragma once

#include <pipecache/cache.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "remote/endpoint.hpp"

namespace pipecache::detail {

class RedisConnection;

inline constexpr unsigned kBreakerFailures = 3;
// 1 s: long enough that a dead Redis costs one probe a second per process, short enough that
// a restarted one is used again within a second.
inline constexpr std::chrono::milliseconds kBreakerOpenFor{1000};
// 5 ms: a waiting host sees another host's value within ~5 ms of its store, at ~200 cheap
// lookups a second per waiting key and host.
inline constexpr std::chrono::milliseconds kPollEvery{5};
// Idle connections kept per process: enough for the threads of a worker that miss at once.
inline constexpr std::size_t kMaxIdleConnections = 8;

class SecondTier {
 public:
  SecondTier(std::string_view redis_url, std::chrono::milliseconds timeout,
             std::chrono::milliseconds lease_time, std::chrono::milliseconds max_wait);
  ~SecondTier();

  // See the protocol above. `type` is the key's namespace; throws only what compute throws.
  std::string fetch_or_compute(Cache& cache, std::string_view type, std::string_view key,
                               std::chrono::milliseconds ttl,
                               const std::function<std::string()>& compute);

 private:
  struct Pool;
  std::unique_ptr<RedisConnection> borrow(std::string& problem);
  void give_back(std::unique_ptr<RedisConnection> conn);
  bool breaker_allows();
  void succeeded();
  void failed(Cache& cache, std::string_view problem);

  RedisEndpoint endpoint_;
  std::chrono::milliseconds timeout_, lease_time_, max_wait_;
  std::mutex pool_mu_;
  std::unique_ptr<Pool> pool_;  // GUARDED_BY(pool_mu_)
  std::atomic<unsigned> consecutive_failures_{0};
  std::atomic<std::int64_t> open_until_ns_{0};  // breaker open while now < this (monotonic)
  std::atomic<bool> probing_{false};            // one half-open probe at a time
  std::atomic<bool> outage_logged_{false};
};

}  // namespace pipecache::detail
