// The relay: one process per host applying the other hosts' invalidations to its segment.
//
// Invariants:
//   1. Only other hosts' messages are applied: a message whose origin is this segment's id
//      was applied by its publisher before it was published (counted as messages_own).
//   2. Every subscription is followed by a flush (the whole segment invalidated, O(1) per
//      request type): pub/sub delivers at most once, so after a gap, and before the first
//      subscription, the relay cannot know what it missed. Redis client-side caching flushes
//      on disconnect for the same reason. The flush comes AFTER the subscription is
//      confirmed: a message published between the flush and a later subscription would be
//      lost, one published between the subscription and the flush is merely redundant.
//   3. The relay never blocks on Redis without also watching stop_fd: every wait is a poll()
//      on both (connect and SUBSCRIBE are bounded by connect_timeout), so SIGTERM stops it
//      within one bounded Redis call at worst, at once in the usual state (subscribed, idle).
//   4. A silent network (no RST, no FIN) is noticed: an idle subscription sends PING every
//      kPingEvery and counts the connection lost when no reply came within kPongWithin.
//   5. A segment removed and created again under the same name is noticed (SegmentWatch,
//      segment/watch.hpp, checked every kSegmentCheck) and reopened; the new one starts empty.
#include <pipecache/remote.hpp>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <random>

#include <fmt/format.h>

#include "remote/endpoint.hpp"
#include "remote/figures.hpp"
#include "remote/redis.hpp"
#include "segment/segment.hpp"

namespace pipecache {
namespace {

using namespace detail;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kRelaxed = std::memory_order_relaxed;
// An idle subscription is probed this often; a probe unanswered for kPongWithin means the
// connection is gone. 1 s / 3 s: a silently dead link is noticed in ~4 s, at the cost of one
// tiny round trip a second per host.
constexpr milliseconds kPingEvery{1000};
constexpr milliseconds kPongWithin{3000};
constexpr milliseconds kSegmentCheck{1000};

class Relay {
 public:
  Relay(const RelayOptions& o, int stop_fd)
      : o_(o), stop_fd_(stop_fd), endpoint_(parse_redis_url(o.redis_url)), rng_(std::random_device{}()) {
    Cache::validate_name(o.segment);
    validate_channel(o.channel);
    if (o.initial_backoff.count() <= 0 || o.max_backoff < o.initial_backoff)
      throw Error("relay: back-off must be positive and max_backoff >= initial_backoff");
  }

  void run() {
    log(fmt::format("relay for segment '{}' on channel '{}' via {}", o_.segment, o_.channel,
                    endpoint_.url));
    if (!open_segment()) return;
    bool first = true;
    milliseconds backoff = o_.initial_backoff;
    while (!stopped()) {
      std::string problem;
      auto conn = RedisConnection::connect(endpoint_, o_.connect_timeout, problem);
      if (conn && subscribe(*conn, problem)) {
        if (!first) count_remote(*cache_, RemoteCounter::reconnects);
        first = false;
        backoff = o_.initial_backoff;
        problem = listen(*conn);
        set_connected(false);
        if (stopped()) break;
        log(fmt::format("lost Redis at {}: {}; reconnecting", endpoint_.url, problem));
      } else if (problem != last_problem_) {
        log(fmt::format("{}; retrying with back-off up to {} ms", problem, o_.max_backoff.count()));
      }
      last_problem_ = problem;
      if (!sleep_for(jittered(backoff))) break;
      backoff = std::min(backoff * 2, o_.max_backoff);
    }
    if (cache_) set_connected(false);
    log("stopped");
  }

 private:
  void log(std::string_view text) {
    if (o_.log) o_.log(text);
    else log_line("pipecache-relay", text);
  }

  bool stopped() {
    pollfd p{stop_fd_, POLLIN, 0};
    return ::poll(&p, 1, 0) > 0;  // readable, closed or error: stop
  }

  // Sleeps, returning false as soon as stop_fd is readable.
  bool sleep_for(milliseconds d) {
    const auto until = Clock::now() + d;
    for (;;) {
      const auto left = std::chrono::duration_cast<milliseconds>(until - Clock::now());
      if (left.count() <= 0) return true;
      pollfd p{stop_fd_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) return false;
    }
  }

  milliseconds jittered(milliseconds d) {
    std::uniform_real_distribution<double> f(0.8, 1.2);  // relays of a fleet do not reconnect in step
    return milliseconds(static_cast<long long>(static_cast<double>(d.count()) * f(rng_)));
  }

  // Waits (with back-off, watching stop_fd) until the segment can be opened.
  bool open_segment() {
    milliseconds backoff = o_.initial_backoff;
    std::string last;
    while (!stopped()) {
      try {
        cache_ = std::make_unique<Cache>(Cache::open(o_.segment));
        watch_.adopt(segment_of(*cache_).identity());
        origin_ = origin_of(*cache_);
        RemoteBlock& r = remote_block(*cache_);
        r.relay_pid.store(::getpid(), kRelaxed);
        set_connected(false);
        log(fmt::format("attached to segment '{}' (origin {:016x})", o_.segment, origin_));
        return true;
      } catch (const std::exception& e) {
        if (e.what() != last) log(fmt::format("{}; waiting for it", e.what()));
        last = e.what();
      }
      if (!sleep_for(jittered(backoff))) return false;
      backoff = std::min(backoff * 2, o_.max_backoff);
    }
    return false;
  }

  // Invariant 5.
  void check_segment() {
    const SegmentWatch::Change change = watch_.check();
    if (change == SegmentWatch::Change::same) return;
    log(fmt::format("segment '{}' was {}; reopening", o_.segment, SegmentWatch::describe(change)));
    const bool connected = remote_block(*cache_).relay_connected.load(kRelaxed) != 0;
    set_connected(false);
    cache_.reset();
    if (!open_segment()) return;
    set_connected(connected);
  }

  void set_connected(bool on) {
    RemoteBlock& r = remote_block(*cache_);
    r.relay_connected.store(on ? 1 : 0, kRelaxed);
    r.relay_since_unix_ms.store(realtime_ns() / 1000000, kRelaxed);
  }

  bool subscribe(RedisConnection& conn, std::string& problem) {
    auto reply = conn.command({"SUBSCRIBE", o_.channel}, problem);
    if (!reply) {
      problem = fmt::format("Redis at {}: SUBSCRIBE {}: {}", endpoint_.url, o_.channel, problem);
      return false;
    }
    log(fmt::format("subscribed to '{}' at {}", o_.channel, endpoint_.url));
    flush();  // invariant 2
    set_connected(true);  // after the flush: "connected" promises nothing older survives
    return true;
  }

  void flush() {
    std::size_t removed = 0;
    try {
      removed = apply_invalidation(*cache_, "*");
    } catch (const std::exception& e) {
      log(fmt::format("flush failed: {}", e.what()));
      return;
    }
    count_remote(*cache_, RemoteCounter::flushes);
    count_remote(*cache_, RemoteCounter::flushed_entries, removed);
    count_remote(*cache_, RemoteCounter::entries_invalidated, removed);
    log(fmt::format("flushed the segment: {} entries (messages may have been missed while "
                    "not subscribed)",
                    removed));
  }

  // Applies messages until the connection fails (returns why) or stop_fd is readable.
  std::string listen(RedisConnection& conn) {
    std::string problem;
    auto last_traffic = Clock::now();
    auto next_segment_check = Clock::now() + kSegmentCheck;
    bool ping_pending = false;
    Clock::time_point ping_sent{};
    for (;;) {
      pollfd p[2] = {{stop_fd_, POLLIN, 0}, {conn.fd(), POLLIN, 0}};
      const int r = ::poll(p, 2, 200);
      if (r < 0 && errno != EINTR) return fmt::format("poll: {}", std::strerror(errno));
      if (p[0].revents) return "stopping";
      const auto now = Clock::now();
      if (p[1].revents) {
        if (!conn.read_available(problem)) return problem;
        while (auto reply = conn.next_reply(problem)) {
          handle(*reply);
          last_traffic = Clock::now();
          ping_pending = false;
        }
        if (conn.broken()) return problem;
      }
      if (ping_pending && now - ping_sent > kPongWithin)
        return fmt::format("no reply to PING within {} ms", kPongWithin.count());
      if (!ping_pending && now - last_traffic > kPingEvery) {
        if (!conn.send({"PING"}, problem)) return problem;
        ping_pending = true;
        ping_sent = now;
      }
      if (now >= next_segment_check) {
        next_segment_check = now + kSegmentCheck;
        check_segment();
        if (!cache_) return "stopping";
      }
    }
  }

  void handle(const redisReply& reply) {
    // ["message", channel, payload]; also ["pong", ""] and subscribe confirmations.
    if (reply_kind(reply) != ReplyKind::array || reply_elements(reply) != 3) return;
    if (reply_text(reply_element(reply, 0)) != "message") return;
    remote_block(*cache_).last_message_unix_ms.store(realtime_ns() / 1000000, kRelaxed);
    auto m = parse_message(reply_text(reply_element(reply, 2)));
    if (!m) {
      count_remote(*cache_, RemoteCounter::messages_malformed);
      if (!malformed_logged_) {
        malformed_logged_ = true;
        log(fmt::format("skipping a message that is not a pipecache invalidation on '{}' "
                        "(logged once)",
                        o_.channel));
      }
      return;
    }
    if (m->origin == origin_) {  // invariant 1
      count_remote(*cache_, RemoteCounter::messages_own);
      return;
    }
    std::size_t removed = 0;
    try {
      removed = apply_invalidation(*cache_, m->pattern);
    } catch (const std::exception& e) {
      log(fmt::format("invalidating '{}' failed: {}", m->pattern, e.what()));
      return;
    }
    const std::uint64_t now = realtime_ns();
    count_remote(*cache_, RemoteCounter::messages_applied);
    count_remote(*cache_, RemoteCounter::entries_invalidated, removed);
    // Clocks of two hosts may disagree: a negative lag is recorded as 0.
    record_lag(*cache_, now > m->published_unix_ns ? now - m->published_unix_ns : 0);
  }

  const RelayOptions& o_;
  int stop_fd_;
  RedisEndpoint endpoint_;
  std::mt19937_64 rng_;
  std::unique_ptr<Cache> cache_;
  SegmentWatch watch_{o_.segment};
  std::uint64_t origin_ = 0;
  std::string last_problem_;
  bool malformed_logged_ = false;
};

}  // namespace

bool redis_supported() noexcept { return true; }

void run_relay(const RelayOptions& options, int stop_fd) {
  Relay relay(options, stop_fd);
  relay.run();
}

}  // namespace pipecache
