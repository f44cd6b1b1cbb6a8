// Cross-process claims, proven with forked processes on one segment.
#include <doctest/doctest.h>
#include <signal.h>

#include <random>
#include <thread>

#include "support/process.hpp"

using namespace pipecache;
using namespace std::chrono_literals;

namespace {
std::string key_of(int i) { return "whats_next:layout=4x8:t=" + std::to_string(i); }
}  // namespace

TEST_SUITE("concurrency") {
  TEST_CASE("readers_never_see_a_torn_value_while_writers_replace_and_evict") {
    testing::SegmentGuard g(testing::unique_name("rw"));
    // Budget well below the data so eviction and block reuse run all the time.
    auto opts = testing::small_options(g.name(), 512u << 10);
    { auto c = Cache::create(opts); }
    constexpr int kKeys = 600;
    auto deadline = std::chrono::steady_clock::now() + 2s;
    std::vector<pid_t> kids;
    for (int w = 0; w < 2; ++w)
      kids.push_back(testing::spawn([&, w] {
        auto c = Cache::open(g.name());
        std::mt19937 rng(w + 1);
        for (std::uint64_t v = 0; std::chrono::steady_clock::now() < deadline; ++v) {
          int k = static_cast<int>(rng() % kKeys);
          c.put(key_of(k), testing::make_value(key_of(k), v, 64 + rng() % 3000));
          if (v % 50 == 0) c.erase(key_of(static_cast<int>(rng() % kKeys)));
        }
        return 0;
      }));
    for (int r = 0; r < 2; ++r)
      kids.push_back(testing::spawn([&, r] {
        auto c = Cache::open(g.name());
        std::mt19937 rng(100 + r);
        std::string out;
        long hits = 0, bad = 0;
        while (std::chrono::steady_clock::now() < deadline) {
          int k = static_cast<int>(rng() % kKeys);
          if (c.get(key_of(k), out)) {
            ++hits;
            if (!testing::check_value(key_of(k), out)) ++bad;
          }
        }
        return bad == 0 && hits > 0 ? 0 : 1;
      }));
    for (pid_t k : kids) {
      auto st = testing::wait_for(k, 30s);
      CHECK(st.exited);
      CHECK(st.code == 0);
    }
    auto c = Cache::open(g.name());
    auto s = c.stats();
    CHECK(s.bytes_used <= s.byte_budget);
    CHECK(s.evictions > 0);
    auto v = c.verify();
    for (auto& p : v.problems) MESSAGE(p);
    CHECK(v.ok());
  }

  TEST_CASE("ttl_is_one_clock_for_all_processes") {
    testing::SegmentGuard g(testing::unique_name("ttl"));
    auto c = Cache::create(testing::small_options(g.name()));
    c.put("k", "v", 150ms);
    pid_t child = testing::spawn([&] {
      auto d = Cache::open(g.name());
      if (!d.get("k")) return 1;
      std::this_thread::sleep_for(300ms);
      return d.get("k") ? 2 : 0;
    });
    CHECK(testing::wait_for(child, 10s).code == 0);
  }

  TEST_CASE("namespace_invalidation_is_seen_by_every_process") {
    testing::SegmentGuard g(testing::unique_name("ns"));
    auto c = Cache::create(testing::small_options(g.name()));
    for (int i = 0; i < 100; ++i) c.put("whats_next_data:" + std::to_string(i), "v");
    pid_t child = testing::spawn([&] {
      auto d = Cache::open(g.name());
      for (int i = 0; i < 100; ++i)
        if (!d.get("whats_next_data:" + std::to_string(i))) return 1;
      // wait for the parent's invalidation
      for (int t = 0; t < 500; ++t) {
        if (!d.get("whats_next_data:7")) break;
        std::this_thread::sleep_for(10ms);
      }
      for (int i = 0; i < 100; ++i)
        if (d.get("whats_next_data:" + std::to_string(i))) return 2;
      return 0;
    });
    std::this_thread::sleep_for(100ms);
    CHECK(c.invalidate("whats_next_data:*") == 100);
    CHECK(testing::wait_for(child, 20s).code == 0);
  }

  TEST_CASE("stats_sum_the_counters_of_all_processes") {
    testing::SegmentGuard g(testing::unique_name("stats"));
    auto c = Cache::create(testing::small_options(g.name()));
    c.put("k", "v");
    std::vector<pid_t> kids;
    for (int i = 0; i < 4; ++i)
      kids.push_back(testing::spawn([&] {
        auto d = Cache::open(g.name());
        for (int j = 0; j < 1000; ++j) d.get("k");
        for (int j = 0; j < 10; ++j) d.get("absent");
        return 0;
      }));
    for (pid_t k : kids) CHECK(testing::wait_for(k, 20s).code == 0);
    auto s = c.stats();
    CHECK(s.hits == 4000);  // detached processes fold into the retired slot: nothing lost
    CHECK(s.misses == 40);
  }

  TEST_CASE("a_forked_child_counts_in_its_own_slot") {
    testing::SegmentGuard g(testing::unique_name("fork"));
    auto c = Cache::create(testing::small_options(g.name()));
    c.put("k", "v");
    c.get("k");
    pid_t child = testing::spawn([&] {
      // uses the parent's handle, inherited through fork
      for (int j = 0; j < 10; ++j) c.get("k");
      return static_cast<int>(c.inspect().processes.size());
    });
    auto st = testing::wait_for(child, 10s);
    CHECK(st.code == 2);  // the parent's slot and the child's own
    CHECK(c.stats().hits == 11);
  }

  TEST_CASE("lease_waiter_in_another_process_is_woken_by_publish") {
    testing::SegmentGuard g(testing::unique_name("lease"));
    auto c = Cache::create(testing::small_options(g.name()));
    auto lease = c.try_lease("k", 10s);
    REQUIRE(lease.state == LeaseState::acquired);
    pid_t child = testing::spawn([&] {
      auto d = Cache::open(g.name());
      auto t0 = std::chrono::steady_clock::now();
      for (;;) {
        std::uint32_t seq = d.lease_wake_seq("k");
        if (auto v = d.get("k")) return *v == "done" ? 0 : 1;
        if (d.try_lease("k", 10s).state != LeaseState::held_by_other) return 2;
        d.wait_lease("k", seq, 1s);
        if (std::chrono::steady_clock::now() - t0 > 10s) return 3;
      }
    });
    std::this_thread::sleep_for(100ms);
    CHECK(c.publish("k", "done", 10s, 0, lease.token));
    CHECK(testing::wait_for(child, 20s).code == 0);
  }

  TEST_CASE("dead_lease_holder_is_taken_over") {
    testing::SegmentGuard g(testing::unique_name("lease"));
    auto c = Cache::create(testing::small_options(g.name()));
    pid_t holder = testing::spawn([&] {
      auto d = Cache::open(g.name());
      if (d.try_lease("k", std::chrono::minutes(10)).state != LeaseState::acquired) return 1;
      ::pause();
      return 0;
    });
    for (int i = 0; i < 400 && c.keys("k").empty(); ++i) std::this_thread::sleep_for(5ms);
    CHECK(c.try_lease("k", 10s).state == LeaseState::held_by_other);
    ::kill(holder, SIGKILL);
    testing::wait_for(holder, 5s);
    CHECK(c.try_lease("k", 10s).state == LeaseState::taken_over);  // not after the 10 minutes
  }
}
