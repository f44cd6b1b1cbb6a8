// A process SIGKILLed inside every critical section (fault injection, util/fault.hpp): the
// others go on, nothing corrupt is read, verify() is clean and the byte accounting exact.
#include <doctest/doctest.h>
#include <signal.h>

#include <random>
#include <thread>

#include "support/process.hpp"
#include "util/fault.hpp"

using namespace pipecache;
using namespace std::chrono_literals;
using pipecache::detail::FaultPoint;

namespace {

std::string key_of(int i) { return "events_by_range:" + std::to_string(i); }

// Fills the segment so that puts evict (mid_evict needs eviction) and values are checkable.
void fill(Cache& c, int keys) {
  for (int i = 0; i < keys; ++i) c.put(key_of(i), testing::make_value(key_of(i), 0, 500 + i % 700));
}

// Every key readable is correct, and all keys can be written and read again.
void check_after_recovery(Cache& c, int keys) {
  std::string out;
  int bad = 0;
  for (int i = 0; i < keys; ++i)
    if (c.get(key_of(i), out) && !testing::check_value(key_of(i), out)) ++bad;
  CHECK(bad == 0);
  for (int i = 0; i < keys; ++i) c.put(key_of(i), testing::make_value(key_of(i), 9, 300));
  int found = 0;
  for (int i = 0; i < keys; ++i) found += c.get(key_of(i), out) && testing::check_value(key_of(i), out);
  CHECK(found > keys / 2);
  auto v = c.verify();
  for (auto& p : v.problems) MESSAGE(p);
  CHECK(v.ok());
  auto s = c.stats();
  CHECK(s.bytes_used <= s.byte_budget);
}

// value_bytes 0: sizes vary (updates go through the allocator); else every value has that
// size, so updates of resident keys are written in place (store/table.hpp W4).
void kill_at(FaultPoint point, long nth, std::size_t value_bytes = 0) {
  testing::SegmentGuard g(testing::unique_name("crash"));
  constexpr int kKeys = 400;
  auto c = Cache::create(testing::small_options(g.name(), 256u << 10));
  fill(c, kKeys);
  pid_t victim = testing::spawn([&] {
    auto d = Cache::open(g.name());
    pipecache::detail::arm_fault(point, nth);
    std::mt19937 rng(3);
    for (std::uint64_t v = 1; v < 200000; ++v) {
      int k = static_cast<int>(rng() % kKeys);
      d.put(key_of(k), testing::make_value(key_of(k), v, value_bytes ? value_bytes : 200 + rng() % 1500));
      if (v % 7 == 0) d.erase(key_of(static_cast<int>(rng() % kKeys)));
    }
    return 0;  // the fault point was never reached
  });
  auto st = testing::wait_for(victim, 60s);
  REQUIRE(st.signaled);
  CHECK(st.signal == SIGKILL);
  check_after_recovery(c, kKeys);
  CHECK(c.stats().lock_recoveries >= 1);  // the dead holder's lock was found and repaired
}

}  // namespace

TEST_SUITE("crash") {
  TEST_CASE("fault_injection_is_compiled_into_the_test_build") {
    REQUIRE(pipecache::detail::fault_injection_compiled());
  }
  TEST_CASE("killed_holding_a_stripe_lock") { kill_at(FaultPoint::stripe_locked, 50); }
  TEST_CASE("killed_mid_link_leaves_no_torn_value") { kill_at(FaultPoint::mid_link, 50); }
  TEST_CASE("killed_mid_split_in_the_allocator") { kill_at(FaultPoint::mid_split, 30); }
  TEST_CASE("killed_mid_eviction") { kill_at(FaultPoint::mid_evict, 20); }
  TEST_CASE("killed_mid_free_coalescing") { kill_at(FaultPoint::mid_free, 40); }
  TEST_CASE("killed_mid_overwrite_in_place_leaves_no_torn_value") { kill_at(FaultPoint::mid_overwrite, 50, 700); }

  TEST_CASE("repairer_killed_mid_recovery_is_repaired_again") {
    testing::SegmentGuard g(testing::unique_name("crash"));
    auto c = Cache::create(testing::small_options(g.name(), 256u << 10));
    fill(c, 100);
    pid_t first = testing::spawn([&] {
      auto d = Cache::open(g.name());
      pipecache::detail::arm_fault(FaultPoint::mid_link, 1);
      d.put(key_of(5), "x");
      return 0;
    });
    REQUIRE(testing::wait_for(first, 20s).signaled);
    pid_t second = testing::spawn([&] {
      auto d = Cache::open(g.name());
      pipecache::detail::arm_fault(FaultPoint::mid_recovery, 1);
      d.put(key_of(5), "y");  // locks the dead writer's stripe: repairs, dies half-way
      return 0;
    });
    REQUIRE(testing::wait_for(second, 20s).signaled);
    check_after_recovery(c, 100);
    CHECK(c.stats().lock_recoveries >= 2);
  }

  TEST_CASE("readers_keep_going_while_writers_are_killed_at_random") {
    testing::SegmentGuard g(testing::unique_name("crash"));
    constexpr int kKeys = 300;
    auto c = Cache::create(testing::small_options(g.name(), 256u << 10));
    fill(c, kKeys);
    auto deadline = std::chrono::steady_clock::now() + 3s;
    pid_t reader = testing::spawn([&] {
      auto d = Cache::open(g.name());
      std::string out;
      std::mt19937 rng(11);
      long bad = 0, reads = 0;
      while (std::chrono::steady_clock::now() < deadline + 500ms) {
        int k = static_cast<int>(rng() % kKeys);
        if (d.get(key_of(k), out) && !testing::check_value(key_of(k), out)) ++bad;
        ++reads;
      }
      return bad == 0 && reads > 1000 ? 0 : 1;
    });
    std::mt19937 rng(5);
    int kills = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      pid_t w = testing::spawn([&, seed = rng()] {
        auto d = Cache::open(g.name());
        std::mt19937 r(seed);
        for (std::uint64_t v = 1;; ++v) {
          int k = static_cast<int>(r() % kKeys);
          d.put(key_of(k), testing::make_value(key_of(k), v, 100 + r() % 2000));
          if (v % 13 == 0) d.invalidate(key_of(static_cast<int>(r() % kKeys)) + "*");
        }
        return 0;
      });
      std::this_thread::sleep_for(std::chrono::microseconds(500 + rng() % 20000));
      ::kill(w, SIGKILL);
      testing::wait_for(w, 10s);
      ++kills;
    }
    auto st = testing::wait_for(reader, 30s);
    CHECK(st.exited);
    CHECK(st.code == 0);
    MESSAGE("writers killed: " << kills);
    CHECK(kills > 20);
    check_after_recovery(c, kKeys);
  }
}
