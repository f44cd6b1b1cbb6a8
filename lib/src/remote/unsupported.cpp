// A build without hiredis: the figures and URL checks work, anything that talks to Redis
// reports that it cannot.
#include <pipecache/remote.hpp>

#include <fmt/format.h>

#include "remote/endpoint.hpp"
#include "remote/figures.hpp"
#include "remote/pipeline_remote.hpp"

namespace pipecache {
namespace detail {
constexpr const char* kNoHiredis = "pipecache was built without hiredis (libhiredis-dev): no Redis support";
}  // namespace detail
using detail::kNoHiredis;

bool redis_supported() noexcept { return false; }

BroadcastResult broadcast_invalidation(Cache& cache, std::string_view pattern,
                                       std::string_view redis_url, std::string_view channel,
                                       std::chrono::milliseconds) {
  (void)detail::parse_redis_url(redis_url);
  detail::validate_channel(channel);
  BroadcastResult result;
  result.removed = detail::apply_invalidation(cache, pattern);
  result.problem = kNoHiredis;
  detail::count_remote(cache, RemoteCounter::publish_failures);
  return result;
}

std::string publish_invalidation(std::string_view, std::string_view redis_url,
                                 std::string_view channel, std::chrono::milliseconds) {
  (void)detail::parse_redis_url(redis_url);
  detail::validate_channel(channel);
  return kNoHiredis;
}

void run_relay(const RelayOptions&, int) { throw Error(kNoHiredis); }

}  // namespace pipecache

namespace pipecache::detail {

struct PipelineRemote::State {};
PipelineRemote::PipelineRemote(std::unique_ptr<State> state) : state_(std::move(state)) {}
PipelineRemote::~PipelineRemote() = default;

std::unique_ptr<PipelineRemote> PipelineRemote::make(const PipelineConfig& config) {
  if (!config.redis_url.empty()) {
    log_line("pipecache", fmt::format("{}: redis_url '{}' ignored; invalidations stay on this host",
                                      kNoHiredis, config.redis_url));
  }
  return nullptr;
}
// Unreachable: make() never returns an object in this build.
void PipelineRemote::publish(Cache*, std::string_view) noexcept {}
bool PipelineRemote::drain_publishes(std::chrono::milliseconds) { return true; }
std::string PipelineRemote::fetch_or_compute(Cache&, std::string_view, std::string_view,
                                             std::chrono::milliseconds,
                                             const std::function<std::string()>& compute) {
  return compute();
}

}  // namespace pipecache::detail
