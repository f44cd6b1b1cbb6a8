#include "remote/endpoint.hpp"

#include <charconv>

#include <fmt/format.h>

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

namespace pipecache::detail {
namespace {

[[noreturn]] void bad_url(std::string_view url, std::string_view why) {
  throw Error(fmt::format("Redis URL '{}': {} (expected redis://HOST[:PORT][/DB] or "
                          "unix:///path/to/redis.sock)",
                          url, why));
}

bool parse_int(std::string_view text, int lo, int hi, int& out) {
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

bool parse_u64(std::string_view text, int base, std::uint64_t& out) {
  if (text.empty()) return false;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), out, base);
  return ec == std::errc() && p == text.data() + text.size();
}

}  // namespace

RedisEndpoint parse_redis_url(std::string_view url) {
  RedisEndpoint e;
  e.url = std::string(url);
  if (url.empty()) bad_url(url, "empty");
  constexpr std::string_view kTcp = "redis://", kUnix = "unix://";
  if (url.starts_with(kUnix)) {
    std::string_view rest = url.substr(kUnix.size());
    if (auto q = rest.find('?'); q != std::string_view::npos) {
      std::string_view query = rest.substr(q + 1);
      rest = rest.substr(0, q);
      if (!query.starts_with("db=") || !parse_int(query.substr(3), 0, 1 << 20, e.db))
        bad_url(url, "the only query is ?db=N");
    }
    if (rest.empty() || rest[0] != '/') bad_url(url, "a unix socket needs an absolute path (unix:///...)");
    if (rest.size() > 107) bad_url(url, "the socket path is longer than a unix socket allows (107 bytes)");
    e.unix_path = std::string(rest);
    return e;
  }
  if (!url.starts_with(kTcp)) bad_url(url, "unknown scheme");
  std::string_view rest = url.substr(kTcp.size());
  if (rest.find('@') != std::string_view::npos)
    bad_url(url, "credentials in the URL are not supported (use a unix socket or a local ACL)");
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    std::string_view db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty() && !parse_int(db, 0, 1 << 20, e.db)) bad_url(url, "the database must be a number");
  }
  std::string_view host = rest;
  if (!rest.empty() && rest[0] == '[') {  // [IPv6]:port
    auto close = rest.find(']');
    if (close == std::string_view::npos) bad_url(url, "unclosed '[' in the host");
    host = rest.substr(1, close - 1);
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] != ':') bad_url(url, "junk after the IPv6 address");
    if (!rest.empty() && !parse_int(rest.substr(1), 1, 65535, e.port)) bad_url(url, "the port must be 1..65535");
  } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    if (!parse_int(rest.substr(colon + 1), 1, 65535, e.port)) bad_url(url, "the port must be 1..65535");
  }
  if (host.empty()) bad_url(url, "no host");
  e.host = std::string(host);
  return e;
}

void validate_channel(std::string_view channel) {
  if (channel.empty() || channel.size() > 256)
    throw Error(fmt::format("Redis channel '{}': must be 1..256 bytes", channel));
  for (char ch : channel) {
    if (ch <= ' ' || ch > '~')
      throw Error(fmt::format("Redis channel '{}': only printable ASCII without spaces", channel));
  }
}

std::string format_message(const InvalidationMessage& m) {
  return fmt::format("pc1 {:016x} {} {}", m.origin, m.published_unix_ns, m.pattern);
}

std::optional<InvalidationMessage> parse_message(std::string_view text) {
  if (!text.starts_with("pc1 ")) return std::nullopt;
  text.remove_prefix(4);
  auto sp = text.find(' ');
  if (sp != 16) return std::nullopt;
  InvalidationMessage m;
  if (!parse_u64(text.substr(0, 16), 16, m.origin)) return std::nullopt;
  text.remove_prefix(17);
  sp = text.find(' ');
  if (sp == std::string_view::npos || !parse_u64(text.substr(0, sp), 10, m.published_unix_ns))
    return std::nullopt;
  m.pattern = std::string(text.substr(sp + 1));
  if (m.pattern.empty() || m.pattern.size() > 4096) return std::nullopt;
  return m;
}

}  // namespace pipecache::detail

namespace pipecache {
void validate_redis_url(std::string_view url) { (void)detail::parse_redis_url(url); }
}  // namespace pipecache
