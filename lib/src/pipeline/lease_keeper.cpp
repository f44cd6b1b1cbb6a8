#include "pipeline/lease_keeper.hpp"

#include <pthread.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

namespace pipecache::detail {
namespace {

// A third of lease_time: a renewal is late only if the keeper stalls for two thirds of it.
// At least 1 ms, so a tiny lease_time cannot spin the keeper.
std::chrono::milliseconds period(std::chrono::milliseconds lease_time) {
  return std::max(lease_time / 3, std::chrono::milliseconds(1));
}

struct Registration {
  Cache* cache;
  std::string key;
  std::uint64_t token;
  std::chrono::milliseconds lease_time;
  std::chrono::steady_clock::time_point next;  // when to renew it
};

// The process's keeper. Leaked on purpose: a static destructor would join a thread during
// exit while handlers of other threads may still be registering.
struct Keeper {
  std::mutex mu;
  // A pointer: the child of a fork gets a fresh one (below). A condition variable copied while
  // the parent's keeper thread waited on it counts a waiter that no longer exists, and glibc's
  // signal can then wait for that phantom forever.
  std::condition_variable* wake = new std::condition_variable;  // GUARDED_BY(mu)
  std::map<std::uint64_t, Registration> leases;  // GUARDED_BY(mu)
  std::uint64_t next_id = 1;                       // GUARDED_BY(mu)
  bool running = false;                            // GUARDED_BY(mu): the thread exists

  void loop() {
    std::unique_lock lock(mu);
    for (;;) {
      auto now = std::chrono::steady_clock::now();
      auto next = now + std::chrono::seconds(60);
      for (auto& [id, r] : leases) {
        if (r.next <= now) {
          // Renewing under mu: a registration cannot end (and its Cache go) meanwhile. A
          // renewal is one stripe lock, microseconds.
          try {
            r.cache->renew_lease(r.key, r.token, r.lease_time);
          } catch (...) {
            // The lease then runs out at its deadline; the holder's publish still works
            // unless it was taken over.
          }
          r.next = now + period(r.lease_time);
        }
        next = std::min(next, r.next);
      }
      wake->wait_until(lock, next);
    }
  }
};

Keeper& keeper() {
  static Keeper* k = [] {
    auto* made = new Keeper;
    pthread_atfork([] { keeper().mu.lock(); }, [] { keeper().mu.unlock(); },
                   [] {
                     Keeper& c = keeper();
                     c.leases.clear();
                     c.running = false;
                     c.wake = new std::condition_variable;  // the old one is leaked
                     c.mu.unlock();
                   });
    return made;
  }();
  return *k;
}

}  // namespace

RenewedLease::RenewedLease(Cache& cache, std::string_view key, std::uint64_t token,
                           std::chrono::milliseconds lease_time) {
  Keeper& k = keeper();
  std::lock_guard lock(k.mu);
  if (!k.running) {
    try {
      std::thread([&k] { k.loop(); }).detach();
      k.running = true;
    } catch (...) {
      return;  // no thread: the lease is not renewed, as before this class existed
    }
  }
  id_ = k.next_id++;
  k.leases.emplace(id_, Registration{&cache, std::string(key), token, lease_time,
                                     std::chrono::steady_clock::now() + period(lease_time)});
  k.wake->notify_one();
}

RenewedLease::~RenewedLease() {
  if (id_ == 0) return;
  Keeper& k = keeper();
  std::lock_guard lock(k.mu);
  k.leases.erase(id_);
}

}  // namespace pipecache::detail
