#include "remote/pipeline_remote.hpp"

#include "remote/publisher.hpp"
#include "remote/tier.hpp"

namespace pipecache::detail {

struct PipelineRemote::State {
  AsyncPublisher publisher;
  SecondTier tier;
  explicit State(const PipelineConfig& c)
      : publisher(c.redis_url, c.redis_channel, std::max(c.redis_timeout, std::chrono::milliseconds(500))),
        tier(c.redis_url, c.redis_timeout, c.lease_time, c.dedup_max_wait) {}
};

PipelineRemote::PipelineRemote(std::unique_ptr<State> state) : state_(std::move(state)) {}
PipelineRemote::~PipelineRemote() = default;

std::unique_ptr<PipelineRemote> PipelineRemote::make(const PipelineConfig& config) {
  if (config.redis_url.empty()) return nullptr;
  return std::unique_ptr<PipelineRemote>(new PipelineRemote(std::make_unique<State>(config)));
}

void PipelineRemote::publish(Cache* cache, std::string_view pattern) noexcept {
  state_->publisher.publish(cache, pattern);
}

bool PipelineRemote::drain_publishes(std::chrono::milliseconds timeout) {
  return state_->publisher.drain(timeout);
}

std::string PipelineRemote::fetch_or_compute(Cache& cache, std::string_view request_type,
                                             std::string_view key, std::chrono::milliseconds ttl,
                                             const std::function<std::string()>& compute) {
  return state_->tier.fetch_or_compute(cache, request_type, key, ttl, compute);
}

}  // namespace pipecache::detail
