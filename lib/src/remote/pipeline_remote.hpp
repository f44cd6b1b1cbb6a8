// The Pipeline's link to the other hosts (PipelineConfig::redis_url): it publishes the
// pipeline's invalidations, and answers local misses of second-tier types from Redis.
// Neither ever fails or blocks a request on Redis (publisher.hpp, tier.hpp say how).
#pragma once

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace pipecache::detail {

class PipelineRemote {
 public:
  // nullptr when the config names no Redis. In a build without hiredis, says so on stderr
  // (once) and returns nullptr: the pipeline then works for this host only.
  static std::unique_ptr<PipelineRemote> make(const PipelineConfig& config);
  ~PipelineRemote();

  // Publishes `pattern`, already invalidated in `cache` (nullptr: segment unavailable).
  void publish(Cache* cache, std::string_view pattern) noexcept;
  // Waits until queued invalidations are sent (tests); false after `timeout`.
  bool drain_publishes(std::chrono::milliseconds timeout);

  // Second tier: the value for `key` of `request_type` (with policy TTL `ttl`) as the local
  // lease holder gets it: from Redis when another host stored it, else from `compute` (then
  // stored in Redis). Throws only what `compute` throws.
  std::string fetch_or_compute(Cache& cache, std::string_view request_type, std::string_view key,
                               std::chrono::milliseconds ttl,
                               const std::function<std::string()>& compute);

  struct State;

 private:
  explicit PipelineRemote(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace pipecache::detail
