#include <doctest/doctest.h>
#include <sys/mman.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "lock/life.hpp"
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

  // hold_life (lock/life.hpp) waits a bounded time for a mutex held by a live process, then
  // fails cleanly: its holder thread has ended. A dead holder's mutex is taken (owner died).
  TEST_CASE("hold_life_fails_cleanly_when_a_live_process_holds_the_mutex") {
    RobustMutex* m = shared_mutex();
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t child = testing::spawn([&] {
      lock_robust(*m, 1'000'000'000);
      (void)!::write(ready[1], "y", 1);
      ::pause();
      return 0;
    });
    struct KillOnExit {
      pid_t pid;
      ~KillOnExit() {
        if (pid > 0) {
          ::kill(pid, SIGKILL);
          testing::wait_for(pid, std::chrono::seconds(5));
        }
      }
    } reap{child};
    char b = 0;
    REQUIRE(::read(ready[0], &b, 1) == 1);
    const auto threads = [] {
      std::size_t n = 0;
      for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
      return n;
    };
    std::thread([] {}).join();  // ThreadSanitizer starts its own thread at the first one
    const std::size_t before = threads();
    const auto t0 = std::chrono::steady_clock::now();
    const bool held = hold_life(*m);
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK_FALSE(held);
    CHECK(waited >= std::chrono::milliseconds(1500));  // the 2 s lock timeout
    CHECK(waited < std::chrono::seconds(10));
    CHECK(threads() == before);  // the holder thread ended and was joined
    ::kill(child, SIGKILL);
    testing::wait_for(child, std::chrono::seconds(5));
    reap.pid = 0;
    CHECK(hold_life(*m));  // owner died: taken, marked consistent
    CHECK(threads() == before + 1);
    CHECK(try_lock_robust(*m) == LockResult::timeout);  // held by this process's holder
    drop_life(*m);
    CHECK(threads() == before);
    CHECK(try_lock_robust(*m) == LockResult::ok);  // released cleanly, not ENOTRECOVERABLE
    unlock_robust(*m);
    ::close(ready[0]);
    ::close(ready[1]);
  }
}
