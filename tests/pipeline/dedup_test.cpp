// De-duplication across processes: one compute for N concurrent misses, takeover of a dead
// holder, a throwing handler.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>
#include <vector>

#include "pipeline/helpers.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

constexpr int kMaxChildren = 16;

struct Board {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
  std::atomic<int> computes{0};
  std::atomic<int> owner_in_handler{0};
  std::atomic<int> release_owner{0};
  std::atomic<std::int64_t> done_ns[kMaxChildren]{};
};

void wait_go(Board* b) {
  while (b->go.load() == 0) std::this_thread::sleep_for(100us);
}

}  // namespace

TEST_SUITE("pipeline_dedup") {

TEST_CASE("eight_processes_missing_one_key_compute_it_once") {
  const std::string name = testing::unique_name("pl-dedup8");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  { Pipeline creator(cfg); REQUIRE(creator.cache_available()); }
  Board* b = shared_block<Board>();

  constexpr int kProcesses = 8;
  std::vector<pid_t> pids;
  for (int i = 0; i < kProcesses; ++i) {
    pids.push_back(testing::spawn([b, cfg] {
      Pipeline p(cfg);
      b->ready.fetch_add(1);
      wait_go(b);
      const std::string v = p.process_request("report", {{"id", "42"}}, [b] {
        b->computes.fetch_add(1);
        std::this_thread::sleep_for(300ms);  // long enough for every process to ask
        return std::string("value-42");
      });
      return v == "value-42" ? 0 : 1;
    }));
  }
  REQUIRE(eventually([b] { return b->ready.load() == kProcesses; }, 10s));
  b->go.store(1);
  for (pid_t pid : pids) {
    const auto st = testing::wait_for(pid, 20s);
    CHECK(st.exited);
    CHECK(st.code == 0);
  }
  CHECK(b->computes.load() == 1);

  Pipeline p(cfg);
  const auto t = type_stats(p, "report");
  CHECK(t.requests == kProcesses);
  CHECK(t.computes == 1);
  CHECK(t.misses + t.hits == kProcesses);
  CHECK(t.dedup_waits + t.hits == kProcesses - 1);
  // And a later request is a plain hit.
  CHECK(p.process_request("report", {{"id", "42"}}, [] { return std::string("again"); }) ==
        "value-42");
  free_block(b);
}

TEST_CASE("pipeline_created_before_fork_deduplicates_across_its_children") {
  // The prefork pattern: the master builds the Pipeline, the workers inherit it.
  const std::string name = testing::unique_name("pl-prefork");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  REQUIRE(p.cache_available());
  Board* b = shared_block<Board>();
  constexpr int kWorkers = 4;
  std::vector<pid_t> pids;
  for (int i = 0; i < kWorkers; ++i) {
    pids.push_back(testing::spawn([b, &p] {
      b->ready.fetch_add(1);
      wait_go(b);
      const auto v = p.process_request("report", {{"id", "fork"}}, [b] {
        b->computes.fetch_add(1);
        std::this_thread::sleep_for(300ms);
        return std::string("forked");
      });
      return v == "forked" ? 0 : 1;
    }));
  }
  REQUIRE(eventually([b] { return b->ready.load() == kWorkers; }, 10s));
  b->go.store(1);
  for (pid_t pid : pids) {
    const auto st = testing::wait_for(pid, 20s);
    CHECK(st.exited);
    CHECK(st.code == 0);
  }
  CHECK(b->computes.load() == 1);
  CHECK(p.process_request("report", {{"id", "fork"}}, [] { return std::string("x"); }) ==
        "forked");
  free_block(b);
}

TEST_CASE("threads_of_one_process_missing_one_key_compute_it_once") {
  const std::string name = testing::unique_name("pl-dedupthr");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  std::atomic<int> computes{0};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&] {
      const auto v = p.process_request("report", {{"id", "9"}}, [&] {
        computes.fetch_add(1);
        std::this_thread::sleep_for(200ms);
        return std::string("nine");
      });
      if (v != "nine") wrong.fetch_add(1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(computes.load() == 1);
  CHECK(wrong.load() == 0);
}

TEST_CASE("holder_killed_in_its_handler_is_replaced_within_one_second") {
  const std::string name = testing::unique_name("pl-kill");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);  // lease_time 10 s: only death frees it early
  { Pipeline creator(cfg); REQUIRE(creator.cache_available()); }
  Board* b = shared_block<Board>();
  const Params params{{"id", "7"}};

  const pid_t owner = testing::spawn([b, cfg, params] {
    Pipeline p(cfg);
    p.process_request("report", params, [b]() -> std::string {
      b->owner_in_handler.store(1);
      std::this_thread::sleep_for(60s);  // killed here
      return "never";
    });
    return 3;
  });
  REQUIRE(eventually([b] { return b->owner_in_handler.load() == 1; }, 10s));

  constexpr int kWaiters = 3;
  std::vector<pid_t> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(testing::spawn([b, cfg, params, i] {
      Pipeline p(cfg);
      b->ready.fetch_add(1);
      const std::string v = p.process_request("report", params, [b] {
        b->computes.fetch_add(1);
        return std::string("value-7");
      });
      b->done_ns[i].store(now_ns());
      return v == "value-7" ? 0 : 1;
    }));
  }
  REQUIRE(eventually([b] { return b->ready.load() == kWaiters; }, 10s));
  std::this_thread::sleep_for(300ms);  // let them settle into waiting on the lease
  CHECK(b->computes.load() == 0);      // nobody computed behind a live holder's back

  const std::int64_t killed_at = now_ns();
  ::kill(owner, SIGKILL);
  const auto owner_status = testing::wait_for(owner, 10s);  // reap: the pid is gone for good
  CHECK(owner_status.signaled);

  std::int64_t last_done = 0;
  for (int i = 0; i < kWaiters; ++i) {
    const auto st = testing::wait_for(waiters[i], 20s);
    CHECK(st.exited);
    CHECK(st.code == 0);
    last_done = std::max(last_done, b->done_ns[i].load());
  }
  CHECK(b->computes.load() == 1);
  const double seconds_after_death = static_cast<double>(last_done - killed_at) / 1e9;
  MESSAGE("last waiter answered " << seconds_after_death * 1000 << " ms after the SIGKILL");
  CHECK(seconds_after_death < 1.0);

  Pipeline p(cfg);
  CHECK(type_stats(p, "report").lease_takeovers >= 1);
  free_block(b);
}

TEST_CASE("throwing_handler_reaches_its_caller_and_one_waiter_retries") {
  const std::string name = testing::unique_name("pl-throw");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  { Pipeline creator(cfg); REQUIRE(creator.cache_available()); }
  Board* b = shared_block<Board>();
  const Params params{{"id", "13"}};

  const pid_t owner = testing::spawn([b, cfg, params] {
    Pipeline p(cfg);
    try {
      p.process_request("report", params, [b]() -> std::string {
        b->owner_in_handler.store(1);
        eventually([b] { return b->release_owner.load() == 1; }, 10s);
        throw std::runtime_error("backend down");
      });
    } catch (const std::runtime_error& e) {
      return std::string(e.what()) == "backend down" ? 0 : 1;
    }
    return 2;  // no exception: wrong
  });
  REQUIRE(eventually([b] { return b->owner_in_handler.load() == 1; }, 10s));

  constexpr int kWaiters = 4;
  std::vector<pid_t> waiters;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.push_back(testing::spawn([b, cfg, params] {
      Pipeline p(cfg);
      b->ready.fetch_add(1);
      const std::string v = p.process_request("report", params, [b] {
        b->computes.fetch_add(1);
        std::this_thread::sleep_for(100ms);
        return std::string("recovered");
      });
      return v == "recovered" ? 0 : 1;
    }));
  }
  REQUIRE(eventually([b] { return b->ready.load() == kWaiters; }, 10s));
  std::this_thread::sleep_for(200ms);
  b->release_owner.store(1);

  const auto os = testing::wait_for(owner, 20s);
  CHECK(os.exited);
  CHECK(os.code == 0);
  for (pid_t pid : waiters) {
    const auto st = testing::wait_for(pid, 20s);
    CHECK(st.exited);
    CHECK(st.code == 0);
  }
  CHECK(b->computes.load() == 1);  // exactly one waiter retried

  Pipeline p(cfg);
  const auto t = type_stats(p, "report");
  CHECK(t.compute_failures == 1);
  CHECK(t.computes == 1);
  free_block(b);
}

// Starts a child holding the lease on `params` in a handler that returns "slow" only when
// the board's release_owner is set (or after 10 s).
pid_t start_slow_holder(Board* b, const PipelineConfig& cfg, const Params& params) {
  const pid_t pid = testing::spawn([b, cfg, params] {
    Pipeline p(cfg);
    const auto v = p.process_request("report", params, [b] {
      b->owner_in_handler.store(1);
      eventually([b] { return b->release_owner.load() == 1; }, 10s);
      return std::string("slow");
    });
    return v == "slow" ? 0 : 1;
  });
  REQUIRE(eventually([b] { return b->owner_in_handler.load() == 1; }, 10s));
  return pid;
}

TEST_CASE("a_waiter_never_waits_past_dedup_max_wait") {
  const std::string name = testing::unique_name("pl-maxwait");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.lease_time = 30s;
  cfg.dedup_max_wait = 300ms;
  Pipeline p(cfg);
  Board* b = shared_block<Board>();
  const Params params{{"id", "wait"}};
  const pid_t holder = start_slow_holder(b, cfg, params);

  const auto t0 = std::chrono::steady_clock::now();
  CHECK(p.process_request("report", params, [] { return std::string("direct"); }) == "direct");
  const auto waited = std::chrono::steady_clock::now() - t0;
  CHECK(waited >= 200ms);  // it did wait for the live holder first (coarse clock: not 300)
  CHECK(p.stats().local_fallbacks[static_cast<unsigned>(FallbackCause::dedup_wait_timeout)] == 1);
  CHECK(b->owner_in_handler.load() == 1);

  b->release_owner.store(1);
  CHECK(testing::wait_for(holder, 20s).code == 0);
  free_block(b);
}

// The holder renews its lease while its handler runs (RenewedLease): a handler that takes 3x
// lease_time is still computed once, and the waiter gets its value.
TEST_CASE("a_handler_running_3x_lease_time_is_computed_once") {
  const std::string name = testing::unique_name("pl-late");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.lease_time = 300ms;
  cfg.dedup_max_wait = 10s;
  Pipeline p(cfg);
  Board* b = shared_block<Board>();
  const Params params{{"id", "late"}};
  const pid_t holder = start_slow_holder(b, cfg, params);

  std::thread release([b] {
    std::this_thread::sleep_for(900ms);  // 3x lease_time inside the holder's handler
    b->release_owner.store(1);
  });
  int computes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  CHECK(p.process_request("report", params, [&] {
    ++computes;
    return std::string("mine");
  }) == "slow");
  CHECK(std::chrono::steady_clock::now() - t0 >= 800ms);  // it waited for the live holder
  release.join();
  CHECK(computes == 0);
  CHECK(type_stats(p, "report").lease_takeovers == 0);
  CHECK(type_stats(p, "report").computes == 1);
  CHECK(p.stats().local_fallback_total() == 0);
  CHECK(testing::wait_for(holder, 20s).code == 0);
  free_block(b);
}

TEST_CASE("deduplication_off_lets_every_process_compute") {
  const std::string name = testing::unique_name("pl-nodedup");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.enable_request_deduplication = false;
  { Pipeline creator(cfg); REQUIRE(creator.cache_available()); }
  Board* b = shared_block<Board>();
  std::vector<pid_t> pids;
  for (int i = 0; i < 3; ++i) {
    pids.push_back(testing::spawn([b, cfg] {
      Pipeline p(cfg);
      b->ready.fetch_add(1);
      wait_go(b);
      const auto v = p.process_request("report", {{"id", "1"}}, [b] {
        b->computes.fetch_add(1);
        // All three inside their handlers at once proves nobody waited for another.
        eventually([b] { return b->computes.load() == 3; }, 5s);
        return std::string("one");
      });
      return v == "one" ? 0 : 1;
    }));
  }
  REQUIRE(eventually([b] { return b->ready.load() == 3; }, 10s));
  b->go.store(1);
  for (pid_t pid : pids) CHECK(testing::wait_for(pid, 20s).code == 0);
  CHECK(b->computes.load() == 3);
  free_block(b);
}

}  // TEST_SUITE
