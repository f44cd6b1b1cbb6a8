// Get-or-compute on the shared cache with cross-process de-duplication and stale serving.
//
// The protocol, built on the store's leases (Cache::try_lease / publish / release_lease /
// lease_wake_seq / wait_lease). Numbered invariants:
//   1. No segment lock is held while a handler runs: leases are entries, not locks.
//   2. A value is computed once per key per expiry across processes: only a lease holder
//      computes, and a holder first looks again for a fresh value (someone may have published
//      between its miss and its lease), releasing the lease if it finds one.
//   3. A waiter reads the stripe's wake sequence BEFORE looking at the key, so a publish
//      between its look and its sleep changes the sequence and the sleep returns at once
//      (no lost wake-up).
//   4. A waiter sleeps in slices (kWaitSlice) and calls try_lease after each: try_lease takes
//      over a lease whose holder died (pid gone) or ran past its deadline, so a SIGKILLed
//      holder is replaced within one slice plus the store's liveness check.
//   5. Nobody waits forever: after PipelineConfig::dedup_max_wait a waiter computes directly
//      (counted as dedup_wait_timeout).
//   6. A holder whose handler throws releases the lease (waking the waiters, one of which
//      takes the lease and computes with its own handler) and rethrows to its caller; a
//      refresh of a stale value that throws serves the stale value instead.
//   7. A computed value the store cannot keep (too large, no room) is replaced by an
//      uncacheable marker, so waiters compute directly instead of queueing one by one.
//   8. Only the handler's exceptions leave this module: every cache failure is counted as a
//      fallback and the request is answered by computing. The wait hook's exceptions leave
//      too, thrown only between slices of a wait, when the caller holds no lease.
//   9. A holder's lease is renewed every lease_time / 3 while its handler runs
//      (RenewedLease): a live holder is never taken over however long it computes; the
//      waiters give up after dedup_max_wait (invariant 5), not after lease_time.
#pragma once

#include "pipeline/fallback.hpp"
#include "pipeline/policy.hpp"

#include <pipecache/cache.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>

namespace pipecache::detail {

// Waiters re-check (and try to take over) at least this often. 50 ms bounds the detection of
// a dead holder well inside the 1 s goal while costing a waiter ~20 futex wake-ups a second.
inline constexpr std::chrono::milliseconds kWaitSlice{50};

// One hit in this many (per thread, the first one included) is timed for the hit_time
// histogram; the others judge freshness with the coarse clock. Two precise clock reads cost
// ~90 ns here, a third of a hit's overhead; a 1-in-8 sample keeps mean and percentiles
// meaningful (hit_time.count is then about hits / 8).
inline constexpr unsigned kHitTimeSampleEvery = 8;

struct RequestScope {
  Cache& cache;
  int ns;  // namespace id, -1 = none (record() is then a no-op)
  const TypeState& type;
  std::string_view key;
  const std::function<std::string()>& compute;
  FallbackLog& fallbacks;
  std::chrono::milliseconds lease_time;
  std::chrono::milliseconds max_wait;
  // Pipeline::set_wait_hook's function, or nullptr: called before each slice of a wait.
  const std::function<void()>* wait_hook = nullptr;
};

// The answer for scope.key. Throws only what scope.compute throws.
std::string get_or_compute(const RequestScope& scope);

// Runs the computation without a lease and stores its value (warming, fallbacks). Counts
// computes / compute_failures; store failures are counted as fallbacks, never thrown.
// `fresh_until_ns` overrides the policy's TTL (warming of future buckets); 0 = now + ttl.
// `stored` (optional) tells whether the store kept the value.
std::string compute_and_store(const RequestScope& scope, std::int64_t fresh_until_ns = 0,
                              bool* stored = nullptr);

// Stores an already computed payload; false (counted) if the store could not keep it.
bool store_payload(const RequestScope& scope, std::string_view payload, std::int64_t fresh_until_ns);

}  // namespace pipecache::detail
