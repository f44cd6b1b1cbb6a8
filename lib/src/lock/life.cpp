#include "lock/life.hpp"

#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "lock/robust_mutex.hpp"

namespace pipecache::detail {

namespace {

// A holder waits this long for a mutex held by somebody else (a checker holds it for an
// instant; a live claimer of a reclaimed slot cannot exist, claim_slot tests that first).
constexpr std::uint64_t kLifeLockTimeoutNs = 2'000'000'000;
// A holder's stack: it runs lock_robust, one condition-variable wait and unlock_robust (a
// few hundred bytes); 64 KiB leaves room for sanitizer builds' larger frames.
constexpr std::size_t kHolderStackBytes = 64 * 1024;

// The thread that holds one life mutex (life.hpp). Owned by the Registry of the process that
// started it; `state` is GUARDED_BY(mu) and moves locking -> held | failed, held -> dropping.
struct Holder {
  enum class State { locking, held, failed, dropping };
  explicit Holder(RobustMutex& mutex) : m(&mutex) {}
  RobustMutex* const m;
  pthread_t thread{};
  std::mutex mu;
  std::condition_variable cv;
  State state = State::locking;
};

void* hold(void* arg) noexcept {
  Holder& h = *static_cast<Holder*>(arg);
  LockResult l = lock_robust(*h.m, kLifeLockTimeoutNs);
  // The previous holder died and nobody looked since: nothing to repair, it guards no data.
  if (l == LockResult::owner_died) mark_consistent(*h.m);
  const bool ok = l == LockResult::ok || l == LockResult::owner_died;
  std::unique_lock g(h.mu);
  h.state = ok ? Holder::State::held : Holder::State::failed;
  h.cv.notify_all();
  if (!ok) return nullptr;
  h.cv.wait(g, [&] { return h.state == Holder::State::dropping; });
  g.unlock();
  // The mutex may be zeros by now (segment overwritten): then glibc unlocks it as a plain
  // mutex and leaves it linked on this thread's robust list, which ends with this thread.
  unlock_robust(*h.m);
  return nullptr;
}

// The holders of one process. Heap-allocated and never freed: after fork() the child
// abandons its parent's registry untouched (its holder threads did not survive, and another
// parent thread may have held `mu` at the fork); `pid` tells which process it serves.
struct Registry {
  explicit Registry(pid_t p) : pid(p) {}
  const pid_t pid;
  std::mutex mu;
  std::vector<std::unique_ptr<Holder>> holders;  // GUARDED_BY(mu); one per held life mutex
};

std::atomic<Registry*> g_registry{nullptr};

// This process's registry (in a forked child: a new one).
Registry* registry() noexcept {
  const pid_t me = ::getpid();
  Registry* r = g_registry.load(std::memory_order_acquire);
  if (r != nullptr && r->pid == me) return r;
  Registry* fresh = new (std::nothrow) Registry(me);
  if (fresh == nullptr) return nullptr;
  if (!g_registry.compare_exchange_strong(r, fresh, std::memory_order_acq_rel)) {
    delete fresh;  // another thread of this process installed one first
    return r->pid == me ? r : nullptr;
  }
  return fresh;
}

// Starts h's thread with every signal blocked from its first instruction (signals are for the
// host's own threads: a prefork master's sigwait, a worker's SIGTERM thread) and a small stack.
bool start(Holder& h) noexcept {
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0) return false;
  const long min_stack = ::sysconf(_SC_THREAD_STACK_MIN);
  pthread_attr_setstacksize(&attr, std::max<std::size_t>(kHolderStackBytes, min_stack > 0 ? min_stack : 0));
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  const int rc = pthread_create(&h.thread, &attr, hold, &h);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_attr_destroy(&attr);
  return rc == 0;
}

// Tells h's thread to unlock its mutex and end.
void release(Holder& h) noexcept {
  std::lock_guard g(h.mu);
  h.state = Holder::State::dropping;
  h.cv.notify_all();
}

}  // namespace

bool hold_life(RobustMutex& m) noexcept {
  Registry* r = registry();
  if (r == nullptr) return false;
  std::unique_ptr<Holder> h(new (std::nothrow) Holder(m));
  if (!h) return false;
  if (!start(*h)) return false;
  bool held;
  {
    std::unique_lock g(h->mu);
    // Bounded by the holder's own lock timeout.
    h->cv.wait(g, [&] { return h->state != Holder::State::locking; });
    held = h->state == Holder::State::held;
  }
  if (held) {
    try {
      std::lock_guard g(r->mu);
      r->holders.push_back(nullptr);  // may throw: h is still ours then
      r->holders.back() = std::move(h);
      return true;
    } catch (...) {
      release(*h);  // no room to remember it: let go at once
    }
  }
  pthread_join(h->thread, nullptr);  // it has returned or is returning
  return false;
}

void drop_life(RobustMutex& m) noexcept {
  Registry* r = registry();
  if (r == nullptr) return;
  std::unique_ptr<Holder> h;
  {
    std::lock_guard g(r->mu);
    auto it = std::find_if(r->holders.begin(), r->holders.end(), [&](const auto& x) { return x->m == &m; });
    if (it == r->holders.end()) return;
    h = std::move(*it);
    r->holders.erase(it);
  }
  release(*h);
  // Returns once the mutex is unlocked and the thread gone: the caller may unmap next.
  pthread_join(h->thread, nullptr);
}

bool slot_holder_alive(ProcessSlot& slot, std::uint64_t epoch) noexcept {
  if (slot.life_epoch.load(std::memory_order_acquire) != epoch) return false;  // detached or reclaimed since
  switch (try_lock_robust(slot.life)) {
    case LockResult::timeout:
      return true;  // EBUSY: held, by its claimer (or by another checker for an instant)
    case LockResult::owner_died:
      mark_consistent(slot.life);
      unlock_robust(slot.life);
      return false;
    case LockResult::ok:
      unlock_robust(slot.life);
      return false;
    case LockResult::failed:
      return false;  // a mutex no process can hold (only a foreign writer makes one)
  }
  return false;
}

}  // namespace pipecache::detail
