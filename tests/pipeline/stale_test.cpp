// Stale serving: within the stale window one process refreshes, the others get the stale
// value at once; a failed refresh serves stale.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <sys/wait.h>

#include <stdexcept>
#include <thread>

#include "pipeline/helpers.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

struct Board {
  std::atomic<int> refresher_in_handler{0};
  std::atomic<int> release_refresher{0};
  std::atomic<int> other_computes{0};
};

RequestPolicy short_fresh_long_stale() {
  RequestPolicy p;
  p.ttl = 300ms;
  p.stale_for = 60s;
  p.deduplicate = true;
  return p;
}

}  // namespace

TEST_SUITE("pipeline_stale") {

TEST_CASE("stale_value_is_served_while_one_process_refreshes") {
  const std::string name = testing::unique_name("pl-stale");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline p(cfg);
  p.set_policy("quote", short_fresh_long_stale());
  REQUIRE(p.process_request("quote", {}, [] { return std::string("v1"); }) == "v1");
  std::this_thread::sleep_for(450ms);  // past fresh, well inside the stale window

  Board* b = shared_block<Board>();
  const pid_t refresher = testing::spawn([b, cfg] {
    Pipeline q(cfg);
    q.set_policy("quote", short_fresh_long_stale());
    const auto v = q.process_request("quote", {}, [b] {
      b->refresher_in_handler.store(1);
      eventually([b] { return b->release_refresher.load() == 1; }, 10s);
      return std::string("v2");
    });
    return v == "v2" ? 0 : 1;
  });
  REQUIRE(eventually([b] { return b->refresher_in_handler.load() == 1; }, 10s));

  // While the refresh runs, another process gets v1 without computing.
  const pid_t reader = testing::spawn([b, cfg] {
    Pipeline q(cfg);
    q.set_policy("quote", short_fresh_long_stale());
    const auto v = q.process_request("quote", {}, [b] {
      b->other_computes.fetch_add(1);
      return std::string("reader");
    });
    return v == "v1" ? 0 : 1;
  });
  const auto rs = testing::wait_for(reader, 20s);
  CHECK(rs.exited);
  CHECK(rs.code == 0);
  CHECK(b->other_computes.load() == 0);
  int status = 0;
  CHECK(::waitpid(refresher, &status, WNOHANG) == 0);  // still refreshing: nobody waited for it

  b->release_refresher.store(1);
  CHECK(testing::wait_for(refresher, 20s).code == 0);
  // The refreshed value is now fresh for everybody.
  int computes = 0;
  CHECK(p.process_request("quote", {}, [&] { ++computes; return std::string("x"); }) == "v2");
  CHECK(computes == 0);
  const auto t = type_stats(p, "quote");
  CHECK(t.stale_served >= 1);
  CHECK(t.computes == 2);
  free_block(b);
}

TEST_CASE("failed_refresh_serves_the_stale_value") {
  const std::string name = testing::unique_name("pl-stalefail");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  p.set_policy("quote", short_fresh_long_stale());
  REQUIRE(p.process_request("quote", {{"s", "X"}}, [] { return std::string("old"); }) == "old");
  std::this_thread::sleep_for(450ms);
  std::string v;
  CHECK_NOTHROW(v = p.process_request("quote", {{"s", "X"}}, []() -> std::string {
                  throw std::runtime_error("backend down");
                }));
  CHECK(v == "old");
  const auto t = type_stats(p, "quote");
  CHECK(t.compute_failures == 1);
  CHECK(t.stale_served == 1);
  // The next request tries again (the failure released the lease).
  CHECK(p.process_request("quote", {{"s", "X"}}, [] { return std::string("new"); }) == "new");
}

TEST_CASE("without_a_stale_window_an_expired_value_is_recomputed") {
  const std::string name = testing::unique_name("pl-nostale");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  RequestPolicy pol;
  pol.ttl = 200ms;
  pol.stale_for = 0ms;
  p.set_policy("quote", pol);
  REQUIRE(p.process_request("quote", {}, [] { return std::string("a"); }) == "a");
  CHECK(p.process_request("quote", {}, [] { return std::string("b"); }) == "a");  // fresh hit
  std::this_thread::sleep_for(400ms);
  CHECK(p.process_request("quote", {}, [] { return std::string("c"); }) == "c");
  // And a throwing handler with nothing stale reaches the caller.
  std::this_thread::sleep_for(400ms);
  CHECK_THROWS_AS(p.process_request("quote", {}, []() -> std::string {
                    throw std::logic_error("no");
                  }),
                  std::logic_error);
}

}  // TEST_SUITE
