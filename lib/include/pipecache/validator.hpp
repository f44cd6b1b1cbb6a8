// Checks measured figures against the design's targets for the response cache.
//
// A run without the cache (baseline) and a run with it (current) of the same workload are
// compared; each target yields its figure and pass/fail. Pure functions, so a bench program
// or a pipectl subcommand (`pipectl validate`) can call them on figures it measured or read
// from a segment.
//
// Judging: every figure is judged as printed (percentages to 0.1 pt, milliseconds and MB to
// 0.01), so a line never reads "FAIL 20.0% (goal >= 20%)" because 1 - 0.8 / 1.0 is
// 0.19999999999999996 in binary. "At least" goals pass at the threshold (hit ratio 80.0%,
// CPU and batch time saved 20.0%); "less than" and "more than" goals do not (hit time
// 10.00 ms, memory 50.00 MB, overhead 10.00 MB, formation 70.0%).
//
// Targets whose figures were not measured (no batchable requests, no process memory, no
// bodies compared) are listed as "not measured" and left out of all_pass: a workload without
// batching has no batch target to meet. The five first targets are always judged.
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
  // Batching. batchable_requests / batch_joined: misses sent to a batcher / those that joined
  // a batch of 2 or more (formation). batch_time_per_request_ms: handler time per request
  // answered through a batch (current), or the single handler's time per request with
  // batching off (baseline): the design wants the first >= 20% below the second.
  std::uint64_t batchable_requests = 0;
  std::uint64_t batch_joined = 0;
  double batch_time_per_request_ms = 0;
  // The process's own memory (process_memory_mb()): baseline without the pipeline, current
  // with it; the difference is the pipeline's overhead. 0 = not measured.
  double process_memory_mb = 0;
  // Accuracy: responses compared byte for byte with the uncached run's, and how many differ.
  std::uint64_t bodies_compared = 0;
  std::uint64_t bodies_differing = 0;
};

struct TargetResult {
  std::string name;    // e.g. "hit ratio"
  std::string goal;    // e.g. ">= 80%"
  std::string figure;  // e.g. "93.1%"
  double value = 0;    // the figure as a number (unit as in `figure`)
  bool pass = false;
  bool measured = true;  // false: the run did not measure it (pass is false, all_pass skips it)
};

// The design's targets, in this order: hit ratio >= 80%, hit time < 10 ms, cache memory
// < 50 MB, response time saved >= 100 ms per cached request (baseline mean response -
// current mean hit time), CPU saved >= 20% on repeated requests (1 - current cpu / baseline
// cpu), batch formation > 70% (batch_joined / batchable_requests), batch processing time
// saved >= 20% (1 - current / baseline batch_time_per_request_ms), pipeline overhead < 10 MB
// (current - baseline process_memory_mb), accuracy: no body differs.
PIPECACHE_API std::vector<TargetResult> validate_targets(const Measurements& baseline,
                                           const Measurements& current);
// Every measured target passed (and at least one was measured).
PIPECACHE_API bool all_pass(const std::vector<TargetResult>& results) noexcept;
// One line per target ("PASS  hit ratio  93.1%  (goal >= 80%)") and a closing summary line.
PIPECACHE_API std::string format_targets(const std::vector<TargetResult>& results);

// Fills the cache-side figures of `current` from a pipeline's stats (all request types):
// requests, hit ratio, mean hit time, mean compute time, memory, batch formation and batch
// time per request. cpu_seconds, mean_response_time_ms, process memory and accuracy are left
// to the caller, who measured them.
PIPECACHE_API Measurements measurements_from(const PipelineStats& stats);

// This process's resident memory outside shared mappings, MiB: VmRSS - RssShmem from
// /proc/self/status (a segment's pages are the cache's memory, judged apart). 0 when unknown.
PIPECACHE_API double process_memory_mb() noexcept;

// The figures a baseline file gives, for `pipectl validate`: a JSON object
//   {"baseline": {<Measurements field>: number, ...}, "current": {...}}
// with "current" optional (the figures a segment cannot know: cpu_seconds, process_memory_mb,
// bodies_compared, ...). An unknown key, a value that is not a non-negative number, or a
// syntax error throws Error naming the file, the line and the field.
struct BaselineFile {
  Measurements baseline;
  Measurements current;  // only the fields the file gave are non-zero
};
PIPECACHE_API BaselineFile load_baseline_file(const std::string& path);
// `from_stats` (measurements_from of a segment) with the file's current figures laid over it
// where the file gave them.
PIPECACHE_API Measurements merge_measurements(const Measurements& from_stats, const Measurements& from_file);

}  // namespace pipecache
