#include <pipecache/remote.hpp>

#include "remote/endpoint.hpp"
#include "remote/figures.hpp"
#include "remote/publisher.hpp"

namespace pipecache {

BroadcastResult broadcast_invalidation(Cache& cache, std::string_view pattern,
                                       std::string_view redis_url, std::string_view channel,
                                       std::chrono::milliseconds timeout) {
  const detail::RedisEndpoint endpoint = detail::parse_redis_url(redis_url);
  detail::validate_channel(channel);
  BroadcastResult result;
  // Local first: a host whose Redis is down still drops its own stale entries.
  result.removed = detail::apply_invalidation(cache, pattern);
  result.problem =
      detail::publish_invalidation(endpoint, channel, detail::origin_of(cache), pattern, timeout);
  result.published = result.problem.empty();
  detail::count_remote(cache, result.published ? RemoteCounter::publishes
                                               : RemoteCounter::publish_failures);
  return result;
}

std::string publish_invalidation(std::string_view pattern, std::string_view redis_url,
                                 std::string_view channel, std::chrono::milliseconds timeout) {
  const detail::RedisEndpoint endpoint = detail::parse_redis_url(redis_url);
  detail::validate_channel(channel);
  // Origin 0 is no segment's id (origin_of never hands it out): every relay applies it.
  return detail::publish_invalidation(endpoint, channel, 0, pattern, timeout);
}

}  // namespace pipecache
