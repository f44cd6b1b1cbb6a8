#include "lock/robust_mutex.hpp"

#include <errno.h>
#include <time.h>

#include <cstring>

#include <pipecache/cache.hpp>

namespace pipecache::detail {

void init_robust_mutex(RobustMutex& m) {
  std::memset(&m, 0, sizeof m);
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) throw Error("pthread_mutexattr_init failed");
  bool ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
            pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 &&
            pthread_mutex_init(&m.native, &attr) == 0;
  pthread_mutexattr_destroy(&attr);
  if (!ok) throw Error("cannot initialise a process-shared robust mutex");
}

namespace {
LockResult classify(int rc) noexcept {
  switch (rc) {
    case 0: return LockResult::ok;
    case EOWNERDEAD: return LockResult::owner_died;
    case ETIMEDOUT:
    case EBUSY: return LockResult::timeout;
    default: return LockResult::failed;  // ENOTRECOVERABLE, EINVAL (corrupt), EDEADLK
  }
}
}  // namespace

namespace {
// Polls of a held mutex before sleeping on it. A robust mutex is never adaptive in glibc: a
// contended lock() goes straight to FUTEX_WAIT and the unlock to FUTEX_WAKE, two system calls
// and a context switch (~5-10 us here) for a critical section of ~0.1-1 us (an allocation with
// one eviction). Polling first, each poll one pause (~20-40 ns on this EPYC) and a plain load
// of the futex word (trylock only when it reads 0, so that the spinners do not bounce the
// holder's cache line with failed read-modify-writes), bounds the spin at a few microseconds:
// a holder that is descheduled or stopped still costs the sleep, never a longer spin.
constexpr int kSpinPolls = 100;
}  // namespace

LockResult lock_robust_contended(RobustMutex& m, std::uint64_t timeout_ns, int rc) noexcept {
  if (rc != EBUSY) return classify(rc);
  for (int i = 0; i < kSpinPolls; ++i) {
    cpu_relax();
    // glibc's futex word: 0 when free, else the owner's TID (| FUTEX_WAITERS).
    if (__atomic_load_n(&m.native.__data.__lock, __ATOMIC_RELAXED) != 0) continue;
    rc = pthread_mutex_trylock(&m.native);
    if (rc != EBUSY) return classify(rc);
  }
#if defined(__SANITIZE_THREAD__)
  // ThreadSanitizer (GCC 12) does not intercept pthread_mutex_clocklock and would miss the
  // acquisition; timedlock on CLOCK_REALTIME is intercepted. Sanitizer builds only.
  constexpr clockid_t kClock = CLOCK_REALTIME;
#else
  constexpr clockid_t kClock = CLOCK_MONOTONIC;  // immune to wall-clock steps
#endif
  timespec ts;
  clock_gettime(kClock, &ts);
  std::uint64_t ns = static_cast<std::uint64_t>(ts.tv_nsec) + timeout_ns;
  ts.tv_sec += static_cast<time_t>(ns / 1000000000ull);
  ts.tv_nsec = static_cast<long>(ns % 1000000000ull);
#if defined(__SANITIZE_THREAD__)
  return classify(pthread_mutex_timedlock(&m.native, &ts));
#else
  return classify(pthread_mutex_clocklock(&m.native, CLOCK_MONOTONIC, &ts));
#endif
}

LockResult try_lock_robust(RobustMutex& m) noexcept {
  return classify(pthread_mutex_trylock(&m.native));
}

void mark_consistent(RobustMutex& m) noexcept { pthread_mutex_consistent(&m.native); }


}  // namespace pipecache::detail
