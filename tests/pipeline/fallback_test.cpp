// Fallback: the cache never makes a request fail. Corrupt segment, caching disabled, values
// too large: the handler's value is returned, the cause counted.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>

#include "pipeline/helpers.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

std::uint64_t local(const Pipeline& p, FallbackCause cause) {
  return p.stats().local_fallbacks[static_cast<unsigned>(cause)];
}

// Overwrites the first bytes of the segment file (its header) with garbage.
void corrupt_header(const std::string& name) {
  const std::string path = Cache::path_of(name);
  const int fd = ::open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  std::string garbage(512, '\x5a');
  REQUIRE(::pwrite(fd, garbage.data(), garbage.size(), 0) == static_cast<ssize_t>(garbage.size()));
  ::close(fd);
}

// Sends `n` requests for one key; returns how many of them ran the handler (each must answer
// with the handler's value).
int computed_directly(Pipeline& p, int n) {
  int computes = 0;
  for (int i = 0; i < n; ++i) {
    CHECK(p.process_request("report", {{"id", "1"}}, [&] {
      ++computes;
      return std::string("direct");
    }) == "direct");
  }
  return computes;
}

// What a forked worker reports through shared memory.
struct WorkerBoard {
  std::atomic<bool> stop{false};
  std::atomic<long> served{0};
  std::atomic<long> wrong{0};       // answers that were not the handler's value
  std::atomic<long> exceptions{0};  // requests that threw
  std::atomic<long> fallbacks{0};   // the worker's local fallback total at the end
  std::atomic<long> reopened{-1};   // its stats' segment_reopened at the end
};

// A prefork worker: one Pipeline answering "item" requests for 50 ids until told to stop.
int serve_items(const std::string& name, WorkerBoard& b) {
  Pipeline p(small_config(name));
  for (long i = 0; !b.stop.load(); ++i) {
    const std::string id = std::to_string(i % 50);
    try {
      const std::string v = p.process_request("item", {{"id", id}}, [&] { return "item-" + id; });
      if (v != "item-" + id) b.wrong.fetch_add(1);
    } catch (...) {
      b.exceptions.fetch_add(1);
    }
    b.served.fetch_add(1);
    std::this_thread::sleep_for(1ms);
  }
  const PipelineStats st = p.stats();
  b.fallbacks.store(static_cast<long>(st.local_fallback_total()));
  b.reopened.store(static_cast<long>(st.segment_reopened));
  return 0;
}

// Kills and reaps the worker when a check fails before it was stopped.
struct ReapOnExit {
  pid_t pid;
  ~ReapOnExit() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

std::size_t item_keys(const std::string& name) {
  try {
    return Cache::open(name).keys("item:*").size();
  } catch (const Error&) {
    return 0;  // not there (yet)
  }
}

}  // namespace

TEST_SUITE("pipeline_fallback") {

// `pipectl destroy` and a new segment under the same name: the worker reopens the name
// (checked about once a second) and its puts reach the new segment, no request failing.
TEST_CASE("worker_reopens_a_segment_destroyed_and_created_again_within_2s") {
  const std::string name = testing::unique_name("pl-recreate");
  testing::SegmentGuard guard(name);
  auto* board = shared_block<WorkerBoard>();
  ReapOnExit worker{testing::spawn([&] { return serve_items(name, *board); })};
  REQUIRE(eventually([&] { return board->served.load() >= 100; }, 10s));
  REQUIRE(item_keys(name) > 0);
  REQUIRE(Cache::remove(name));
  Options o = testing::small_options(name, 4u << 20);
  o.default_ttl = small_config(name).cache_ttl;  // as the worker's: no drift to report
  Cache fresh = Cache::create(o);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(fresh.keys("item:*").empty());
  const bool reached = eventually([&] { return !fresh.keys("item:*").empty(); }, 5s);
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  MESSAGE("the worker's first put reached the new segment " << took.count() << " ms after it was created");
  CHECK(reached);
  CHECK(took < 2000ms);
  const long served_then = board->served.load();
  REQUIRE(eventually([&] { return board->served.load() >= served_then + 100; }, 10s));
  CHECK(fresh.keys("item:*").size() == 50);  // every id is cached in the new one
  board->stop.store(true);
  const auto st = testing::wait_for(worker.pid, 10s);
  worker.pid = 0;
  CHECK(st.exited);
  CHECK(st.code == 0);
  CHECK(board->wrong.load() == 0);
  CHECK(board->exceptions.load() == 0);
  CHECK(board->fallbacks.load() == 0);
  CHECK(board->reopened.load() == 1);
  free_block(board);
}

// Removed and not created again: the Pipeline creates it again, as at start-up.
TEST_CASE("a_removed_segment_is_created_again_by_the_pipeline") {
  const std::string name = testing::unique_name("pl-removed");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  CHECK(p.process_request("item", {{"id", "1"}}, [] { return std::string("one"); }) == "one");
  REQUIRE(Cache::remove(name));
  REQUIRE_FALSE(Cache::exists(name));
  int computes = 0;
  const bool recreated = eventually(
      [&] {
        CHECK(p.process_request("item", {{"id", "1"}}, [&] {
          ++computes;
          return std::string("one");
        }) == "one");
        return Cache::exists(name);
      },
      3s);
  CHECK(recreated);
  CHECK(p.stats().segment_reopened == 1);
  CHECK(computes <= 1);  // served from the old mapping until the reopen, then computed once
  CHECK(p.process_request("item", {{"id", "1"}}, [] { return std::string("other"); }) == "one");
  CHECK(item_keys(name) == 1);
  CHECK(p.stats().local_fallback_total() == 0);
  CHECK(p.cache()->inspect().processes.size() == 1);  // attached to the new one
}


TEST_CASE("corrupt_segment_falls_back_to_the_handler") {
  const std::string name = testing::unique_name("pl-corrupt");
  testing::SegmentGuard guard(name);
  { Cache::create(testing::small_options(name)); }
  corrupt_header(name);

  std::optional<Pipeline> p;
  REQUIRE_NOTHROW(p.emplace(small_config(name)));
  CHECK_FALSE(p->cache_available());
  CHECK(computed_directly(*p, 3) == 3);
  CHECK(local(*p, FallbackCause::segment_unavailable) == 3);
  CHECK_FALSE(p->stats().cache_available);
  CHECK(p->invalidate("report:*") == 0);
  p->handle_data_change("data_refresh");  // must not throw either
  // The handler's own exception still reaches the caller.
  CHECK_THROWS_AS(p->process_request("report", {}, []() -> std::string {
                    throw std::invalid_argument("handler");
                  }),
                  std::invalid_argument);
}

// The name taken first by another local user (mode 0666): never opened, every request is
// computed directly and counted as segment_untrusted; trusting that user is a deliberate act
// (PIPECACHE_TRUSTED_OWNERS) and world-writable stays refused even then.
TEST_CASE("segment_squatted_by_another_user_is_refused_and_the_pipeline_falls_back") {
  if (!testing::running_as_root() || testing::nobody_uid() < 0) {
    MESSAGE("not root or no user 'nobody': cannot act as another user here");
    return;
  }
  const std::string name = testing::unique_name("pl-squat");
  testing::SegmentGuard guard(name);
  REQUIRE(testing::squat_as_nobody(name, 0666));
  std::optional<Pipeline> p;
  REQUIRE_NOTHROW(p.emplace(small_config(name)));
  CHECK_FALSE(p->cache_available());
  CHECK(computed_directly(*p, 3) == 3);
  CHECK(local(*p, FallbackCause::segment_untrusted) == 3);
  CHECK(local(*p, FallbackCause::segment_unavailable) == 0);
  PipelineConfig trusting = small_config(name);
  trusting.trust = Trust::parse("nobody");
  Pipeline q(trusting);
  CHECK_FALSE(q.cache_available());  // world-writable: refused whoever owns it
}

TEST_CASE("pipeline_recovers_when_the_segment_becomes_usable") {
  const std::string name = testing::unique_name("pl-recover");
  testing::SegmentGuard guard(name);
  { Cache::create(testing::small_options(name)); }
  corrupt_header(name);
  Pipeline p(small_config(name));
  REQUIRE_FALSE(p.cache_available());
  // The operator removes the broken segment; the next attempt (every 2 s) creates a new one.
  Cache::remove(name);
  std::this_thread::sleep_for(2200ms);
  CHECK(p.process_request("report", {}, [] { return std::string("first"); }) == "first");
  CHECK(p.cache_available());
  CHECK(p.process_request("report", {}, [] { return std::string("second"); }) == "first");
}

TEST_CASE("caching_disabled_computes_every_time_and_creates_no_segment") {
  const std::string name = testing::unique_name("pl-off");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.enable_response_caching = false;
  Pipeline p(cfg);
  int computes = 0;
  for (int i = 0; i < 2; ++i) {
    CHECK(p.process_request("report", {}, [&] { ++computes; return std::string("v"); }) == "v");
  }
  CHECK(computes == 2);
  CHECK_FALSE(Cache::exists(name));
  CHECK(local(p, FallbackCause::caching_disabled) == 2);
}

TEST_CASE("missing_segment_is_created_and_shared") {
  const std::string name = testing::unique_name("pl-create");
  testing::SegmentGuard guard(name);
  REQUIRE_FALSE(Cache::exists(name));
  Pipeline p(small_config(name));
  CHECK(p.cache_available());
  CHECK(Cache::exists(name));
  p.process_request("report", {}, [] { return std::string("stored"); });
  Pipeline q(small_config(name));
  CHECK(q.process_request("report", {}, [] { return std::string("other"); }) == "stored");
  CHECK(p.stats().local_fallback_total() == 0);
}

TEST_CASE("value_too_large_is_returned_and_counted") {
  const std::string name = testing::unique_name("pl-large");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.cache_memory_limit_mb = 1;
  Pipeline p(cfg);
  REQUIRE(p.cache_available());
  const std::string big(p.cache()->max_value_size() + 1, 'b');
  int computes = 0;
  for (int i = 0; i < 2; ++i) {
    CHECK(p.process_request("report", {}, [&] { ++computes; return big; }) == big);
  }
  CHECK(computes == 2);
  CHECK(local(p, FallbackCause::value_too_large) == 2);
  CHECK(type_stats(p, "report").fallbacks == 2);
  // A small value for another key is still cached.
  p.process_request("report", {{"small", "1"}}, [] { return std::string("s"); });
  CHECK(p.process_request("report", {{"small", "1"}}, [] { return std::string("x"); }) == "s");
}

TEST_CASE("waiters_of_a_value_too_large_compute_directly") {
  const std::string name = testing::unique_name("pl-largewait");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.cache_memory_limit_mb = 1;
  Pipeline p(cfg);
  REQUIRE(p.cache_available());
  const std::string big(p.cache()->max_value_size() + 10, 'q');
  std::atomic<int> computes{0};
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      const auto v = p.process_request("report", {{"id", "big"}}, [&] {
        computes.fetch_add(1);
        std::this_thread::sleep_for(100ms);
        return big;
      });
      if (v != big) wrong.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(wrong.load() == 0);
  CHECK(computes.load() >= 1);
  CHECK(computes.load() <= 4);
}

}  // TEST_SUITE
