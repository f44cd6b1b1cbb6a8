// Checks measured figures against the design's targets for the response cache.
//
// A run without the cache (baseline) and a run with it (current) of the same workload are
// compared; each target yields its figure and pass/fail. Pure functions, so a bench program
// or a pipectl subcommand can call them on figures it measured or read from a segment.
#pragma once

#include <pipecache/export.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace pipecache {

struct PipelineStats;

struct Measurements {
  std::uint64_t requests = 0;
  double hit_ratio = 0;                  // 0..1
  double mean_hit_time_ms = 0;           // time to answer a request from the cache
  double mean_response_time_ms = 0;      // over all requests
  double mean_compute_time_ms = 0;       // time to run a handler
  double cache_memory_mb = 0;            // bytes used by the cache, MiB
  double cpu_seconds = 0;                // CPU time spent on the workload
};

struct TargetResult {
  std::string name;    // e.g. "hit ratio"
  std::string goal;    // e.g. "> 80%"
  std::string figure;  // e.g. "93.1%"
  double value = 0;    // the figure as a number (unit as in `figure`)
  bool pass = false;
};

// The design's targets: hit ratio > 80%, hit time < 10 ms, cache memory < 50 MB, response
// time saved >= 100 ms per cached request (baseline mean response - current mean hit time),
// CPU saved >= 20% on repeated requests (1 - current cpu / baseline cpu).
PIPECACHE_API std::vector<TargetResult> validate_targets(const Measurements& baseline,
                                           const Measurements& current);
PIPECACHE_API bool all_pass(const std::vector<TargetResult>& results) noexcept;
// One line per target ("PASS  hit ratio  93.1%  (goal > 80%)") and a closing summary line.
PIPECACHE_API std::string format_targets(const std::vector<TargetResult>& results);

// Fills the cache-side figures of `current` from a pipeline's stats (all request types):
// requests, hit ratio, mean hit time, mean compute time, memory. cpu_seconds and
// mean_response_time_ms are left to the caller, who measured them.
PIPECACHE_API Measurements measurements_from(const PipelineStats& stats);

}  // namespace pipecache
