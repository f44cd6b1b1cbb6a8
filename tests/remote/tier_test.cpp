// The second tier across "hosts" (separate segments, separate processes), on a real Redis.
#include <doctest/doctest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include <pipecache/pipeline.hpp>
#include <pipecache/remote.hpp>

#include "fixture.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using pipecache::RemoteCounter;
using remote_testing::eventually;
using remote_testing::RedisServer;

namespace {

struct Shared {
  std::atomic<int> computes{0};
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
};

Shared* shared_block() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  return new (p) Shared();
}

pipecache::PipelineConfig host_config(const std::string& segment, const std::string& url) {
  pipecache::PipelineConfig c;
  c.segment_name = segment;
  c.cache_memory_limit_mb = 4;
  c.redis_url = url;
  c.lease_time = 2s;
  return c;
}

pipecache::RequestPolicy tier_policy() {
  pipecache::RequestPolicy p;
  p.ttl = 60s;
  p.second_tier = true;
  return p;
}

std::uint64_t counter(pipecache::Pipeline& p, RemoteCounter c) {
  return pipecache::remote_stats(*p.cache()).counter(c);
}

}  // namespace

TEST_SUITE("remote_tier") {
  TEST_CASE("a_key_is_computed_once_across_hosts") {
    RedisServer redis;
    Shared* s = shared_block();
    constexpr int kHosts = 3;
    std::vector<std::unique_ptr<testing::SegmentGuard>> guards;
    for (int i = 0; i < kHosts; ++i)
      guards.push_back(std::make_unique<testing::SegmentGuard>(testing::unique_name("tier")));
    std::vector<pid_t> children;
    for (int i = 0; i < kHosts; ++i) {
      const std::string name = guards[i]->name();
      children.push_back(testing::spawn([&, name] {
        pipecache::Pipeline p(host_config(name, redis.url()));
        p.set_policy("report", tier_policy());
        s->ready.fetch_add(1);
        while (s->go.load() == 0) std::this_thread::sleep_for(100us);
        const std::string v = p.process_request("report", {{"id", "7"}}, [&] {
          s->computes.fetch_add(1);
          std::this_thread::sleep_for(300ms);  // long enough for every host to miss meanwhile
          return std::string("report-7");
        });
        return v == "report-7" ? 0 : 1;
      }));
    }
    REQUIRE(eventually([&] { return s->ready.load() == kHosts; }));
    s->go.store(1);
    for (pid_t c : children) CHECK(testing::wait_for(c, 20s).code == 0);
    CHECK(s->computes.load() == 1);

    // Another host later: a tier hit, no compute, and its counters say so.
    testing::SegmentGuard late(testing::unique_name("tierlate"));
    pipecache::Pipeline p(host_config(late.name(), redis.url()));
    p.set_policy("report", tier_policy());
    CHECK(p.process_request("report", {{"id", "7"}}, [&] {
      s->computes.fetch_add(1);
      return std::string("recomputed");
    }) == "report-7");
    CHECK(s->computes.load() == 1);
    CHECK(counter(p, RemoteCounter::tier_hits) == 1);

    // An invalidation of the type from any host moves the type's generation in Redis: O(1),
    // and the next miss anywhere computes again.
    p.invalidate("report:*");
    testing::SegmentGuard fresh(testing::unique_name("tierfresh"));
    pipecache::Pipeline q(host_config(fresh.name(), redis.url()));
    q.set_policy("report", tier_policy());
    CHECK(eventually([&] {
      return counter(p, RemoteCounter::publishes) == 1;
    }));
    CHECK(q.process_request("report", {{"id", "7"}}, [] { return std::string("report-7 v2"); }) ==
          "report-7 v2");
    CHECK(counter(q, RemoteCounter::tier_misses) == 1);
    CHECK(counter(q, RemoteCounter::tier_stores) == 1);
  }

  TEST_CASE("redis_stopped_mid_request_falls_back_and_the_breaker_opens") {
    RedisServer redis;
    testing::SegmentGuard g(testing::unique_name("tierdown"));
    pipecache::PipelineConfig config = host_config(g.name(), redis.url());
    config.redis_timeout = 50ms;
    pipecache::Pipeline p(config);
    p.set_policy("report", tier_policy());
    // The handler runs while this host holds the Redis lease; Redis dies under it.
    CHECK(p.process_request("report", {{"id", "1"}}, [&] {
      redis.kill_hard();
      return std::string("computed while Redis died");
    }) == "computed while Redis died");
    CHECK(counter(p, RemoteCounter::tier_fallbacks) == 1);
    // The value is still cached locally.
    CHECK(p.process_request("report", {{"id", "1"}}, [] { return std::string("again"); }) ==
          "computed while Redis died");

    // More misses with Redis down: each computed at once, the breaker opens after 3 failures.
    const auto start = std::chrono::steady_clock::now();
    for (int i = 2; i < 30; ++i) {
      CHECK(p.process_request("report", {{"id", std::to_string(i)}},
                              [i] { return "v" + std::to_string(i); }) == "v" + std::to_string(i));
    }
    CHECK(std::chrono::steady_clock::now() - start < 5s);  // never a Redis wait per request
    CHECK(counter(p, RemoteCounter::tier_breaker_opens) >= 1);
    CHECK(counter(p, RemoteCounter::tier_fallbacks) == 29);

    // Redis hung rather than gone: a request waits at most about the timeout.
    redis.start();
    std::this_thread::sleep_for(1100ms);  // the breaker's open period passes
    redis.pause();
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(p.process_request("report", {{"id", "hung"}}, [] { return std::string("h"); }) == "h");
    CHECK(std::chrono::steady_clock::now() - t0 < 2s);
    redis.resume();
    // And it is used again once it answers.
    std::this_thread::sleep_for(1100ms);
    CHECK(p.process_request("report", {{"id", "back"}}, [] { return std::string("b"); }) == "b");
    CHECK(eventually([&] { return counter(p, RemoteCounter::tier_stores) >= 1; }, 3s));
  }
}
