// Redis URLs and invalidation messages: the plain-text parts of talking to Redis, without
// hiredis (pipectl and the tests use them in any build).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace pipecache::detail {

// redis://HOST[:PORT][/DB] or unix:///absolute/path[?db=N].
struct RedisEndpoint {
  std::string host;       // empty for a unix socket
  int port = 6379;
  std::string unix_path;  // empty for TCP
  int db = 0;
  std::string url;        // as given, for messages
};
// Throws Error naming the URL and what is wrong with it.
RedisEndpoint parse_redis_url(std::string_view url);

// A channel name: 1..256 bytes, printable ASCII without spaces (it appears in logs and on
// command lines). Throws Error naming it otherwise.
void validate_channel(std::string_view channel);

// An invalidation message: "pc1 <origin, 16 hex> <published, unix ns> <pattern>". The pattern
// is the rest of the message (it may hold spaces). "pc1" versions the format: a relay skips
// (and counts) anything else, so a future format can share a channel with this one.
struct InvalidationMessage {
  std::uint64_t origin = 0;
  std::uint64_t published_unix_ns = 0;
  std::string pattern;
};
std::string format_message(const InvalidationMessage& m);
std::optional<InvalidationMessage> parse_message(std::string_view text);

}  // namespace pipecache::detail
