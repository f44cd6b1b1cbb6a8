#include "lock/life.hpp"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "lock/robust_mutex.hpp"

namespace pipecache::detail {

namespace {

constexpr std::uint64_t kLifeLockTimeoutNs = 2'000'000'000;
// A caller waits this long for the keeper (which itself waits at most kLifeLockTimeoutNs).
constexpr auto kKeeperAnswer = std::chrono::seconds(5);

// The keeper of one process (life.hpp). Heap-allocated and never freed: after fork() the
// child abandons its parent's keeper (its thread did not survive, its mutex may have been
// held at the fork) and makes its own; `pid` tells which process a keeper serves.
class Keeper {
 public:
  explicit Keeper(pid_t pid) : pid_(pid) {}
  pid_t pid() const noexcept { return pid_; }

  // Starts the thread. False if it could not be started (no thread: no slot is used).
  bool start() noexcept {
    try {
      std::thread([this] { run(); }).detach();
      return true;
    } catch (...) {
      return false;
    }
  }

  // Runs `lock` (or unlock) of m on the keeper thread; the outcome when it answered in time.
  bool ask(RobustMutex& m, bool lock) noexcept {
    try {
      Request r{&m, lock};
      std::unique_lock g(mu_);
      queue_.push_back(&r);
      wake_.notify_one();
      if (!answered_.wait_for(g, kKeeperAnswer, [&] { return r.done; })) {
        // Not answered: withdraw the request (it lives on this stack) if still queued; if the
        // keeper is running it, wait for it (bounded by its own lock timeout).
        for (auto it = queue_.begin(); it != queue_.end(); ++it)
          if (*it == &r) {
            queue_.erase(it);
            return false;
          }
        answered_.wait(g, [&] { return r.done; });
      }
      return r.ok;
    } catch (...) {
      return false;
    }
  }

 private:
  struct Request {
    RobustMutex* m;
    bool lock;
    bool done = false;
    bool ok = false;
  };

  void run() noexcept {
    // Signals are for the host's own threads (a prefork master's sigwait, a worker's SIGTERM
    // thread): none is ever delivered here.
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);
    std::unique_lock g(mu_);
    for (;;) {
      wake_.wait(g, [&] { return !queue_.empty(); });
      Request* r = queue_.front();
      queue_.pop_front();
      g.unlock();
      bool ok = true;
      if (r->lock) {
        LockResult l = lock_robust(*r->m, kLifeLockTimeoutNs);
        // The previous holder died and nobody looked since: nothing to repair, it guards no data.
        if (l == LockResult::owner_died) mark_consistent(*r->m);
        ok = l == LockResult::ok || l == LockResult::owner_died;
      } else {
        unlock_robust(*r->m);
      }
      g.lock();
      r->ok = ok;
      r->done = true;
      answered_.notify_all();
    }
  }

  const pid_t pid_;
  std::mutex mu_;
  std::condition_variable wake_, answered_;
  std::deque<Request*> queue_;  // GUARDED_BY(mu_)
};

std::atomic<Keeper*> g_keeper{nullptr};

// This process's keeper, started on first use (in a forked child: a new one).
Keeper* keeper() noexcept {
  const pid_t me = ::getpid();
  Keeper* k = g_keeper.load(std::memory_order_acquire);
  if (k != nullptr && k->pid() == me) return k;
  Keeper* fresh = new (std::nothrow) Keeper(me);
  if (fresh == nullptr) return nullptr;
  if (!g_keeper.compare_exchange_strong(k, fresh, std::memory_order_acq_rel)) {
    delete fresh;  // another thread of this process installed one first
    return k->pid() == me ? k : nullptr;
  }
  // Requests queued before the thread runs wait for it; if it cannot start they time out.
  fresh->start();
  return fresh;
}

}  // namespace

bool hold_life(RobustMutex& m) noexcept {
  Keeper* k = keeper();
  return k != nullptr && k->ask(m, true);
}

void drop_life(RobustMutex& m) noexcept {
  if (Keeper* k = keeper()) k->ask(m, false);
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
