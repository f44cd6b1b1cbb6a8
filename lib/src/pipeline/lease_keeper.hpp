// Lease renewal for long computations: a handler that runs longer than lease_time keeps its
// lease, so it is computed once however slow it is (the waiters go on waiting, up to
// dedup_max_wait, instead of taking the lease over from a live holder and computing again).
//
// One keeper thread per process, started on the first registration, renews every registered
// lease every lease_time / 3 (so a renewal is late only if the keeper is stalled for two
// thirds of lease_time). A holder that dies stops being renewed with it: its lease then runs
// out at its deadline or is taken over at once by the store's liveness check.
//
// Fork: the keeper thread does not exist in a child. A pthread_atfork handler holds the
// keeper's mutex across fork() and, in the child, forgets the parent's registrations (the
// threads computing them are not in the child) and the thread; the next registration in the
// child starts its own.
#pragma once

#include <pipecache/cache.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pipecache::detail {

// Renews `key`'s lease `token` in `cache` while it lives. REQUIRES: `cache` outlives it.
class RenewedLease {
 public:
  RenewedLease(Cache& cache, std::string_view key, std::uint64_t token,
               std::chrono::milliseconds lease_time);
  ~RenewedLease();
  RenewedLease(const RenewedLease&) = delete;
  RenewedLease& operator=(const RenewedLease&) = delete;

 private:
  std::uint64_t id_ = 0;  // 0: not registered (the keeper could not start)
};

}  // namespace pipecache::detail
