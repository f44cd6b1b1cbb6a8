// The design's targets for the response cache, checked against measured figures.
#include <pipecache/figures.hpp>
#include <pipecache/pipeline.hpp>
#include <pipecache/validator.hpp>

#include <fmt/format.h>

namespace pipecache {
namespace {

// The design's goals (DESIGN.md, the pipeline's targets).
constexpr double kMinHitRatio = 0.80;           // strictly greater
constexpr double kMaxHitTimeMs = 10.0;          // strictly less
constexpr double kMaxCacheMemoryMb = 50.0;      // strictly less
constexpr double kMinTimeSavedMs = 100.0;       // at least
constexpr double kMinCpuSavedRatio = 0.20;      // at least

TargetResult target(std::string name, std::string goal, std::string figure, double value,
                    bool pass) {
  return TargetResult{std::move(name), std::move(goal), std::move(figure), value, pass};
}

}  // namespace

std::vector<TargetResult> validate_targets(const Measurements& baseline,
                                           const Measurements& current) {
  std::vector<TargetResult> out;
  const double ratio_pct = current.hit_ratio * 100.0;
  out.push_back(target("hit ratio", fmt::format("> {:.0f}%", kMinHitRatio * 100),
                       fmt::format("{:.1f}%", ratio_pct), ratio_pct,
                       current.requests > 0 && current.hit_ratio > kMinHitRatio));
  out.push_back(target("hit time", fmt::format("< {:.0f} ms", kMaxHitTimeMs),
                       fmt::format("{:.3f} ms", current.mean_hit_time_ms),
                       current.mean_hit_time_ms, current.mean_hit_time_ms < kMaxHitTimeMs));
  out.push_back(target("cache memory", fmt::format("< {:.0f} MB", kMaxCacheMemoryMb),
                       fmt::format("{:.2f} MB", current.cache_memory_mb), current.cache_memory_mb,
                       current.cache_memory_mb < kMaxCacheMemoryMb));
  // What a cached request no longer pays: the uncached response time minus the hit time.
  const double saved_ms = baseline.mean_response_time_ms - current.mean_hit_time_ms;
  out.push_back(target("response time saved per cached request",
                       fmt::format(">= {:.0f} ms", kMinTimeSavedMs),
                       fmt::format("{:.1f} ms", saved_ms), saved_ms, saved_ms >= kMinTimeSavedMs));
  const bool cpu_known = baseline.cpu_seconds > 0;
  const double cpu_saved = cpu_known ? 1.0 - current.cpu_seconds / baseline.cpu_seconds : 0.0;
  out.push_back(target("CPU saved on repeated requests",
                       fmt::format(">= {:.0f}%", kMinCpuSavedRatio * 100),
                       cpu_known ? fmt::format("{:.1f}%", cpu_saved * 100) : "no baseline CPU",
                       cpu_saved * 100, cpu_known && cpu_saved >= kMinCpuSavedRatio));
  return out;
}

bool all_pass(const std::vector<TargetResult>& results) noexcept {
  for (const auto& r : results) {
    if (!r.pass) return false;
  }
  return !results.empty();
}

std::string format_targets(const std::vector<TargetResult>& results) {
  std::string out;
  std::size_t width = 0;
  for (const auto& r : results) width = std::max(width, r.name.size());
  std::size_t passed = 0;
  for (const auto& r : results) {
    passed += r.pass ? 1 : 0;
    out += fmt::format("{}  {:<{}}  {}  (goal {})\n", r.pass ? "PASS" : "FAIL", r.name, width,
                       r.figure, r.goal);
  }
  out += fmt::format("{} of {} targets met\n", passed, results.size());
  return out;
}

Measurements measurements_from(const PipelineStats& stats) {
  Measurements m;
  std::uint64_t hits = 0;
  std::uint64_t stale_served = 0;
  double hit_ns_sum = 0;
  std::uint64_t hit_count = 0;
  double compute_ns_sum = 0;
  std::uint64_t compute_count = 0;
  for (const auto& t : stats.types) {
    m.requests += t.requests;
    hits += t.hits;
    stale_served += t.stale_served;
    hit_ns_sum += t.hit_time.mean_ns * static_cast<double>(t.hit_time.count);
    hit_count += t.hit_time.count;
    compute_ns_sum += t.compute_time.mean_ns * static_cast<double>(t.compute_time.count);
    compute_count += t.compute_time.count;
  }
  m.hit_ratio = figures::or_zero(figures::request_hit_ratio(hits, stale_served, m.requests));
  if (hit_count > 0) m.mean_hit_time_ms = hit_ns_sum / static_cast<double>(hit_count) / 1e6;
  if (compute_count > 0) {
    m.mean_compute_time_ms = compute_ns_sum / static_cast<double>(compute_count) / 1e6;
  }
  // "Cache memory" is what the entries occupy (keys + values + overhead), the figure that
  // CACHE_MEMORY_LIMIT_MB bounds; the segment's reserved size is fixed at creation.
  if (stats.store) m.cache_memory_mb = static_cast<double>(stats.store->bytes_used) / (1u << 20);
  return m;
}

}  // namespace pipecache
