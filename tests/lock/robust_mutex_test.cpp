#include <doctest/doctest.h>
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

#include "lock/robust_mutex.hpp"
#include "support/process.hpp"

using namespace pipecache::detail;

namespace {
RobustMutex* shared_mutex() {
  void* p = mmap(nullptr, sizeof(RobustMutex), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  auto* m = static_cast<RobustMutex*>(p);
  init_robust_mutex(*m);
  return m;
}
}  // namespace

TEST_SUITE("lock") {
  TEST_CASE("holder_killed_gives_owner_died_not_a_hang") {
    RobustMutex* m = shared_mutex();
    pid_t child = testing::spawn([&] {
      lock_robust(*m, 1'000'000'000);
      ::pause();  // dies holding the lock
      return 0;
    });
    usleep(50'000);
    ::kill(child, SIGKILL);
    auto st = testing::wait_for(child, std::chrono::seconds(5));
    CHECK(st.signaled);
    CHECK(lock_robust(*m, 2'000'000'000) == LockResult::owner_died);
    mark_consistent(*m);
    unlock_robust(*m);
    CHECK(lock_robust(*m, 1'000'000'000) == LockResult::ok);
    unlock_robust(*m);
  }
  TEST_CASE("stopped_holder_costs_a_timeout") {
    RobustMutex* m = shared_mutex();
    pid_t child = testing::spawn([&] {
      lock_robust(*m, 1'000'000'000);
      ::pause();
      return 0;
    });
    usleep(50'000);
    CHECK(lock_robust(*m, 100'000'000) == LockResult::timeout);
    CHECK(try_lock_robust(*m) == LockResult::timeout);
    ::kill(child, SIGKILL);
    testing::wait_for(child, std::chrono::seconds(5));
  }
  TEST_CASE("repairer_killed_before_consistent_passes_owner_died_on") {
    RobustMutex* m = shared_mutex();
    pid_t a = testing::spawn([&] {
      lock_robust(*m, 1'000'000'000);
      ::raise(SIGKILL);
      return 0;
    });
    testing::wait_for(a, std::chrono::seconds(5));
    pid_t b = testing::spawn([&] {
      // gets owner_died, "repairs", dies before mark_consistent
      return lock_robust(*m, 1'000'000'000) == LockResult::owner_died ? (::raise(SIGKILL), 0) : 1;
    });
    auto st = testing::wait_for(b, std::chrono::seconds(5));
    CHECK(st.signaled);
    CHECK(lock_robust(*m, 1'000'000'000) == LockResult::owner_died);
    mark_consistent(*m);
    unlock_robust(*m);
  }
}
