#include "remote/figures.hpp"

#include <signal.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <random>

#include <fmt/format.h>

#include "pipeline/invalidation.hpp"

namespace pipecache {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

struct CounterText {
  std::string_view name;
  std::string_view help;
};
constexpr CounterText kCounterText[kRemoteCounterCount] = {
    {"messages_applied", "Other hosts' invalidations applied by the relay"},
    {"messages_own", "This host's own invalidation messages, skipped by the relay"},
    {"messages_malformed", "Messages on the invalidation channel that were not ours to read"},
    {"entries_invalidated", "Entries removed by other hosts' invalidations and by flushes"},
    {"reconnects", "Relay connections to Redis made again after losing one"},
    {"flushes", "Whole-segment invalidations by the relay after (re)subscribing"},
    {"flushed_entries", "Entries removed by those flushes"},
    {"publishes", "Invalidations published to the other hosts"},
    {"publish_failures", "Invalidations that could not be published (Redis unreachable)"},
    {"tier_hits", "Local misses answered by the Redis second tier"},
    {"tier_misses", "Local misses absent from the second tier too"},
    {"tier_stores", "Computed values stored in the second tier"},
    {"tier_waits", "Second-tier misses that waited for another host's computation"},
    {"tier_takeovers", "Second-tier leases of other hosts taken over after they expired"},
    {"tier_fallbacks", "Second-tier requests computed without Redis (error, timeout, breaker)"},
    {"tier_breaker_opens", "Times the second tier's circuit breaker opened"},
};

}  // namespace

std::string_view remote_counter_name(RemoteCounter c) noexcept {
  const auto i = static_cast<unsigned>(c);
  return i < kRemoteCounterCount ? kCounterText[i].name : std::string_view("unknown");
}
std::string_view remote_counter_help(RemoteCounter c) noexcept {
  const auto i = static_cast<unsigned>(c);
  return i < kRemoteCounterCount ? kCounterText[i].help : std::string_view();
}

bool RemoteStats::active() const noexcept {
  if (relay_pid != 0) return true;
  for (auto v : counters)
    if (v != 0) return true;
  return false;
}

RemoteStats remote_stats(const Cache& cache) {
  static_assert(kRemoteCounterCount <= detail::kRemoteCounters);
  const detail::RemoteBlock& r = detail::remote_block(cache);
  RemoteStats s;
  s.origin = r.origin.load(kRelaxed);
  s.relay_pid = r.relay_pid.load(kRelaxed);
  s.relay_alive = s.relay_pid > 0 && (::kill(static_cast<pid_t>(s.relay_pid), 0) == 0 || errno == EPERM);
  s.relay_connected = s.relay_alive && r.relay_connected.load(kRelaxed) != 0;
  s.relay_since_unix_ms = r.relay_since_unix_ms.load(kRelaxed);
  s.last_message_unix_ms = r.last_message_unix_ms.load(kRelaxed);
  for (unsigned i = 0; i < kRemoteCounterCount; ++i) s.counters[i] = r.counters[i].load(kRelaxed);
  for (unsigned b = 0; b < Histogram::kBuckets; ++b) s.lag.buckets[b] = r.lag_hist[b].load(kRelaxed);
  s.lag.count = r.lag_count.load(kRelaxed);
  s.lag.sum_ns = r.lag_sum_ns.load(kRelaxed);
  return s;
}

namespace detail {

std::uint64_t origin_of(const Cache& cache) noexcept {
  RemoteBlock& r = remote_block(cache);
  std::uint64_t id = r.origin.load(std::memory_order_acquire);
  if (id != 0) return id;
  std::uint64_t fresh = 0;
  if (::getrandom(&fresh, sizeof fresh, 0) != static_cast<ssize_t>(sizeof fresh)) {
    std::random_device rd;
    fresh = (std::uint64_t{rd()} << 32) ^ rd() ^ realtime_ns();
  }
  if (fresh == 0) fresh = 1;
  // The loser of a race adopts the winner's id: every process of the host agrees.
  if (r.origin.compare_exchange_strong(id, fresh, std::memory_order_acq_rel)) return fresh;
  return id;
}

void count_remote(const Cache& cache, RemoteCounter counter, std::uint64_t delta) noexcept {
  remote_block(cache).counters[static_cast<unsigned>(counter)].fetch_add(delta, kRelaxed);
}

void record_lag(const Cache& cache, std::uint64_t lag_ns) noexcept {
  RemoteBlock& r = remote_block(cache);
  r.lag_hist[Histogram::bucket_for(lag_ns)].fetch_add(1, kRelaxed);
  r.lag_count.fetch_add(1, kRelaxed);
  r.lag_sum_ns.fetch_add(lag_ns, kRelaxed);
}

std::uint64_t realtime_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::size_t apply_invalidation(Cache& cache, std::string_view pattern) {
  const auto plan = plan_invalidation(pattern, [&] {
    NamespaceList list;
    list.names = cache.namespaces();
    // Id 0 holds keys without a registered type: kMaxNamespaces - 1 types can register.
    list.table_full = list.names.size() + 1 >= kMaxNamespaces;
    return list;
  });
  std::size_t removed = 0;
  for (const auto& glob : plan.namespace_globs) removed += cache.invalidate(glob);
  if (plan.scan) removed += cache.invalidate(pattern);
  return removed;
}

void log_line(std::string_view who, std::string_view text) noexcept {
  try {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    std::tm tm{};
    gmtime_r(&ts.tv_sec, &tm);
    const std::string line = fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {}[{}]: {}\n",
                                         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                                         tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, who,
                                         ::getpid(), text);
    [[maybe_unused]] auto n = ::write(2, line.data(), line.size());
  } catch (...) {
  }
}

}  // namespace detail
}  // namespace pipecache
