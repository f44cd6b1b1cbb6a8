// W4, the get-or-compute storm: P worker processes ask for the same K keys at the same instant,
// right after those keys expired, through pipecache::Pipeline::process_request with
// de-duplication on. Per storm (one key in one round) the goal is exactly one compute, and the
// processes that waited for it are answered soon after its publish (DESIGN.md: < 100 us).
//
// Round protocol (a coordinator — the bench process — and P workers share a Board mapped
// MAP_SHARED before fork):
//   1. the coordinator waits until every worker finished round r-1, then sleeps TTL + margin
//      so that every key of the previous round has expired (no stale window: stale_for = 0);
//   2. it publishes go_round = r; workers spin on it, so they all start within microseconds;
//   3. each worker requests the K keys in the same order; a handler counts its compute in the
//      Board, sleeps `compute` (a real handler takes milliseconds: the window in which the
//      others pile up), stamps the publish time and returns a value naming round and key;
//   4. a worker that did not compute and started before that stamp is a waiter: its latency
//      after publish = its return time - the stamp (the handler's return; the store's publish
//      and the futex wake follow it, so they are inside the figure).
// Every returned value is checked to be the current round's value of that key.
#pragma once

#include "common/histogram.hpp"
#include "systems/system.hpp"
#include "throughput/runner.hpp"

#include <chrono>
#include <string>
#include <vector>

namespace bench {

struct StormResult {
  unsigned processes = 0;
  unsigned rounds = 0;
  unsigned keys = 0;
  std::uint64_t requests = 0;
  std::uint64_t computes = 0;
  std::uint64_t storms = 0;             // rounds x keys
  std::uint64_t storms_not_once = 0;    // storms with 0 or more than 1 compute
  std::uint64_t max_computes = 0;       // in one storm
  std::uint64_t waiters = 0;
  std::uint64_t late_hits = 0;          // started after the publish: a plain hit
  std::uint64_t wrong_values = 0;       // not this round's value of the key
  std::uint64_t fallbacks = 0;          // local fallbacks summed over the workers
  double waiter_p50_ns = 0, waiter_p99_ns = 0, waiter_max_ns = 0;
  double request_p50_ns = 0, request_p99_ns = 0;
  std::string error;
};

struct StormSettings {
  unsigned keys = 4;
  std::chrono::milliseconds ttl{20};
  std::chrono::milliseconds compute{2};
  std::chrono::milliseconds expiry_margin{10};  // > CLOCK_MONOTONIC_COARSE's 4 ms resolution
};

// Rounds = what fits in settings.seconds x repetitions. Returns one result per process count.
std::vector<StormResult> run_storm(const RunSettings& settings, const Environment& env,
                                   const std::vector<unsigned>& process_counts,
                                   const StormSettings& storm = {});

}  // namespace bench
