// Many hosts: invalidations that reach every host's segment, through Redis.
//
// One segment per host stays the fast path. Between hosts, Redis carries invalidation
// messages on a pub/sub channel: a publisher (pipectl invalidate --broadcast, a Pipeline with
// a Redis URL, broadcast_invalidation below) invalidates its own segment and publishes the
// pattern; the relay of every other host (pipecache-relay, run_relay below) applies it to its
// segment. Each message names the segment it came from (RemoteStats::origin, a random id kept
// in the segment), so a relay skips its own host's messages, which were applied at the source.
//
// Semantics copied from Redis client-side caching: pub/sub is at-most-once, so a relay that
// lost its connection assumes it missed messages and, once subscribed again, invalidates
// everything its segment holds (a "flush": O(1) per request type). While Redis is unreachable
// every host keeps serving from its own segment; an entry missed by an invalidation is then
// stale for at most its TTL. docs/scaling.md describes a fleet and what is guaranteed.
//
// Redis URLs: redis://HOST[:PORT][/DB] (port 6379, db 0 by default) or unix:///path/to.sock
// (also unix:///path?db=N). Nothing here includes hiredis; a build without it
// (redis_supported() false) reports every Redis operation as not possible.
#pragma once

#include <pipecache/export.hpp>

#include <pipecache/cache.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace pipecache {

inline constexpr std::string_view kDefaultInvalidationChannel = "pipecache:invalidate";
// The environment variable naming the Redis URL (pipectl, pipecache-relay, PipelineConfig).
inline constexpr std::string_view kRedisUrlVariable = "PIPECACHE_REDIS_URL";

// Counters of the segment's relay, publishers and second tier, summed over every process of
// the host. Order is part of the segment layout (append only).
enum class RemoteCounter : unsigned {
  messages_applied,     // other hosts' invalidations applied by the relay
  messages_own,         // this host's own messages, skipped
  messages_malformed,   // messages on the channel that are not ours to read
  entries_invalidated,  // entries those invalidations (and flushes) removed
  reconnects,           // relay: connections made again after losing one
  flushes,              // relay: whole-segment invalidations after a reconnect
  flushed_entries,      // entries those flushes removed
  publishes,            // invalidations published
  publish_failures,     // invalidations that could not be published (Redis unreachable, queue full)
  tier_hits,            // second tier: a local miss answered by Redis
  tier_misses,          // second tier: absent in Redis too, computed here
  tier_stores,          // second tier: values stored in Redis
  tier_waits,           // second tier: waited for another host computing the key
  tier_takeovers,       // second tier: another host's lease expired, computed here
  tier_fallbacks,       // second tier: Redis failed or slow, computed without it
  tier_breaker_opens,   // second tier: the circuit breaker opened
  count_
};
inline constexpr unsigned kRemoteCounterCount = static_cast<unsigned>(RemoteCounter::count_);
PIPECACHE_API std::string_view remote_counter_name(RemoteCounter counter) noexcept;
PIPECACHE_API std::string_view remote_counter_help(RemoteCounter counter) noexcept;

struct PIPECACHE_API RemoteStats {
  std::uint64_t origin = 0;          // this segment's id in messages (0 = never published)
  std::int64_t relay_pid = 0;        // the attached relay, 0 = none ever attached
  bool relay_alive = false;          // relay_pid is a live process
  bool relay_connected = false;      // subscribed right now
  std::uint64_t relay_since_unix_ms = 0;   // when relay_connected last changed
  std::uint64_t last_message_unix_ms = 0;  // last message applied or skipped
  std::array<std::uint64_t, kRemoteCounterCount> counters{};
  Histogram lag;  // publication (publisher's clock) to application (relay's clock)
  std::uint64_t counter(RemoteCounter c) const noexcept { return counters[static_cast<unsigned>(c)]; }
  // Anything to show: a relay attached or any counter non-zero.
  bool active() const noexcept;
};
PIPECACHE_API RemoteStats remote_stats(const Cache& cache);

// Whether this build links hiredis.
PIPECACHE_API bool redis_supported() noexcept;
// Throws Error naming the URL and the problem when it is not a usable Redis URL.
PIPECACHE_API void validate_redis_url(std::string_view url);

struct BroadcastResult {
  std::size_t removed = 0;  // entries removed from the local segment
  bool published = false;
  std::string problem;      // why it was not published (empty when published)
};
// Invalidates `pattern` in `cache` (as Pipeline::invalidate does: namespace forms are O(1)),
// then publishes it on `channel` for every other host's relay, waiting at most `timeout` for
// Redis. Never throws for Redis: a failure is in `problem` and counted (publish_failures).
// Throws Error only for an invalid URL.
PIPECACHE_API BroadcastResult broadcast_invalidation(Cache& cache, std::string_view pattern,
                                       std::string_view redis_url,
                                       std::string_view channel = kDefaultInvalidationChannel,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(2));

// Publishes `pattern` for every host's relay without invalidating anything here (a host with
// no segment, such as the one a sync job runs on). Empty on success, else the problem (never
// throws for Redis; throws Error for an invalid URL or channel).
PIPECACHE_API std::string publish_invalidation(std::string_view pattern, std::string_view redis_url,
                                 std::string_view channel = kDefaultInvalidationChannel,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(2));

struct RelayOptions {
  std::string segment;                                    // the local segment's name
  std::string redis_url;
  std::string channel = std::string(kDefaultInvalidationChannel);
  std::chrono::milliseconds initial_backoff{100};         // first retry after a failure
  std::chrono::milliseconds max_backoff{5000};            // doubling, capped here (+-20% jitter)
  std::chrono::milliseconds connect_timeout{2000};
  // One line per event (connected, lost, flushed, ...); default: stderr with a timestamp.
  std::function<void(std::string_view)> log;
};
// Runs a relay until `stop_fd` becomes readable (or is closed): waits for the segment to
// exist, subscribes, applies other hosts' messages, reconnects with back-off and flushes the
// segment after each reconnect. Throws Error for invalid options (name, URL, channel) and when
// hiredis is not built in; everything else it survives.
PIPECACHE_API void run_relay(const RelayOptions& options, int stop_fd);

}  // namespace pipecache
