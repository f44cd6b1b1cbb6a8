#include "remote_report.hpp"

#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include <pipecache/units.hpp>

#include "common.hpp"

namespace pipectl {
namespace {

using pipecache::RemoteCounter;

std::string duration_or_dash(double ns) {
  if (std::isnan(ns) || ns <= 0) return "-";
  return pipecache::format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(ns)));
}

std::string relay_state(const pipecache::RemoteStats& r) {
  if (r.relay_pid == 0) return "none attached";
  if (!r.relay_alive) return fmt::format("pid {} not running", r.relay_pid);
  return fmt::format("pid {} {} since {}", r.relay_pid,
                     r.relay_connected ? "subscribed" : "NOT subscribed (reconnecting)",
                     format_unix_ms(r.relay_since_unix_ms));
}

}  // namespace

std::string remote_text(const pipecache::RemoteStats& r) {
  if (!r.active()) return {};
  auto c = [&r](RemoteCounter k) { return r.counter(k); };
  std::string t = "\n";
  auto line = [&t](std::string_view label, const std::string& value) {
    t += fmt::format("{:<14} {}\n", label, value);
  };
  line("relay", relay_state(r));
  line("connection", fmt::format("reconnects {}  flushes {} ({} entries)", c(RemoteCounter::reconnects),
                                 c(RemoteCounter::flushes), c(RemoteCounter::flushed_entries)));
  line("messages", fmt::format("applied {}  own skipped {}  malformed {}  entries removed {}",
                               c(RemoteCounter::messages_applied), c(RemoteCounter::messages_own),
                               c(RemoteCounter::messages_malformed),
                               c(RemoteCounter::entries_invalidated)));
  line("lag", fmt::format("p50 {}  p99 {}  max bucket {}  last message {}",
                          duration_or_dash(r.lag.percentile_ns(0.5)),
                          duration_or_dash(r.lag.percentile_ns(0.99)),
                          duration_or_dash(r.lag.percentile_ns(1.0)),
                          r.last_message_unix_ms ? format_unix_ms(r.last_message_unix_ms) : std::string("-")));
  line("publishing", fmt::format("published {}  failed {}", c(RemoteCounter::publishes),
                                 c(RemoteCounter::publish_failures)));
  const std::uint64_t tier = c(RemoteCounter::tier_hits) + c(RemoteCounter::tier_misses) +
                             c(RemoteCounter::tier_fallbacks);
  if (tier > 0) {
    line("second tier", fmt::format("hits {}  misses {}  stores {}  waits {}  takeovers {}  "
                                    "fallbacks {}  breaker opens {}",
                                    c(RemoteCounter::tier_hits), c(RemoteCounter::tier_misses),
                                    c(RemoteCounter::tier_stores), c(RemoteCounter::tier_waits),
                                    c(RemoteCounter::tier_takeovers),
                                    c(RemoteCounter::tier_fallbacks),
                                    c(RemoteCounter::tier_breaker_opens)));
  }
  return t;
}

void remote_json(JsonWriter& j, const pipecache::RemoteStats& r) {
  if (!r.active()) {
    j.null();
    return;
  }
  j.begin_object();
  j.member("origin", fmt::format("{:016x}", r.origin));
  j.member("relay_pid", r.relay_pid);
  j.member("relay_alive", r.relay_alive);
  j.member("relay_connected", r.relay_connected);
  j.member("relay_since_unix_ms", r.relay_since_unix_ms);
  j.member("last_message_unix_ms", r.last_message_unix_ms);
  j.key("counters").begin_object();
  for (unsigned i = 0; i < pipecache::kRemoteCounterCount; ++i) {
    j.member(pipecache::remote_counter_name(static_cast<RemoteCounter>(i)), r.counters[i]);
  }
  j.end_object();
  j.key("lag").begin_object();
  j.member("count", r.lag.count);
  j.member("sum_ns", r.lag.sum_ns);
  for (auto [name, q] : {std::pair{"p50_ns", 0.5}, std::pair{"p99_ns", 0.99}}) {
    j.key(name);
    if (r.lag.count == 0) j.null();
    else j.value(r.lag.percentile_ns(q));
  }
  j.end_object();
  j.end_object();
}

}  // namespace pipectl
