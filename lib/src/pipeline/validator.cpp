// The design's targets for the response cache, checked against measured figures.
// Judging rules (as printed, "at least" vs "less/more than"): validator.hpp.
#include <pipecache/cache.hpp>
#include <pipecache/figures.hpp>
#include <pipecache/pipeline.hpp>
#include <pipecache/validator.hpp>

#include "pipeline/json_file.hpp"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <string_view>

namespace pipecache {
namespace {

// The design's goals.
constexpr double kMinHitRatioPct = 80.0;        // at least
constexpr double kMaxHitTimeMs = 10.0;          // strictly less
constexpr double kMaxCacheMemoryMb = 50.0;      // strictly less
constexpr double kMinTimeSavedMs = 100.0;       // at least
constexpr double kMinCpuSavedPct = 20.0;        // at least
constexpr double kMinFormationPct = 70.0;       // strictly more
constexpr double kMinBatchTimeSavedPct = 20.0;  // at least
constexpr double kMaxOverheadMb = 10.0;         // strictly less

// A figure as printed with `decimals` (the value judged, so the verdict matches the text).
double as_printed(double v, int decimals) {
  const double scale = std::pow(10.0, decimals);
  return std::round(v * scale) / scale;
}

TargetResult judged(std::string name, std::string goal, double value, int decimals,
                    std::string_view unit, bool pass) {
  return TargetResult{std::move(name), std::move(goal),
                      fmt::format("{:.{}f}{}", value, decimals, unit), value, pass, true};
}

TargetResult not_measured(std::string name, std::string goal, std::string why) {
  return TargetResult{std::move(name), std::move(goal), std::move(why), 0, false, false};
}

}  // namespace

std::vector<TargetResult> validate_targets(const Measurements& baseline,
                                           const Measurements& current) {
  std::vector<TargetResult> out;
  const double ratio = as_printed(current.hit_ratio * 100.0, 1);
  out.push_back(judged("hit ratio", fmt::format(">= {:.0f}%", kMinHitRatioPct), ratio, 1, "%",
                       current.requests > 0 && ratio >= kMinHitRatioPct));
  const double hit_ms = as_printed(current.mean_hit_time_ms, 3);
  out.push_back(judged("hit time", fmt::format("< {:.0f} ms", kMaxHitTimeMs), hit_ms, 3, " ms",
                       hit_ms < kMaxHitTimeMs));
  const double mem = as_printed(current.cache_memory_mb, 2);
  out.push_back(judged("cache memory", fmt::format("< {:.0f} MB", kMaxCacheMemoryMb), mem, 2,
                       " MB", mem < kMaxCacheMemoryMb));
  // What a cached request no longer pays: the uncached response time minus the hit time.
  const double saved_ms = as_printed(baseline.mean_response_time_ms - current.mean_hit_time_ms, 1);
  out.push_back(judged("response time saved per cached request",
                       fmt::format(">= {:.0f} ms", kMinTimeSavedMs), saved_ms, 1, " ms",
                       saved_ms >= kMinTimeSavedMs));
  if (baseline.cpu_seconds > 0) {
    const double saved = as_printed((1.0 - current.cpu_seconds / baseline.cpu_seconds) * 100, 1);
    out.push_back(judged("CPU saved on repeated requests",
                         fmt::format(">= {:.0f}%", kMinCpuSavedPct), saved, 1, "%",
                         saved >= kMinCpuSavedPct));
  } else {
    // Always judged (the design's core target): unknown is a failure, not a skip.
    out.push_back(TargetResult{"CPU saved on repeated requests",
                               fmt::format(">= {:.0f}%", kMinCpuSavedPct), "no baseline CPU", 0,
                               false, true});
  }

  const std::string formation_goal = fmt::format("> {:.0f}%", kMinFormationPct);
  if (current.batchable_requests > 0) {
    const double pct = as_printed(static_cast<double>(current.batch_joined) * 100.0 /
                                      static_cast<double>(current.batchable_requests), 1);
    out.push_back(judged("batch formation", formation_goal, pct, 1, "%", pct > kMinFormationPct));
  } else {
    out.push_back(not_measured("batch formation", formation_goal, "no batchable requests"));
  }
  const std::string batch_time_goal = fmt::format(">= {:.0f}% less than one by one",
                                                  kMinBatchTimeSavedPct);
  if (current.batch_time_per_request_ms > 0 && baseline.batch_time_per_request_ms > 0) {
    const double saved = as_printed(
        (1.0 - current.batch_time_per_request_ms / baseline.batch_time_per_request_ms) * 100, 1);
    out.push_back(judged("batch processing time saved", batch_time_goal, saved, 1, "%",
                         saved >= kMinBatchTimeSavedPct));
  } else {
    out.push_back(not_measured("batch processing time saved", batch_time_goal,
                               current.batch_time_per_request_ms > 0
                                   ? "no baseline time per request"
                                   : "no batched requests"));
  }
  const std::string overhead_goal = fmt::format("< {:.0f} MB", kMaxOverheadMb);
  if (current.process_memory_mb > 0 && baseline.process_memory_mb > 0) {
    const double mb = as_printed(current.process_memory_mb - baseline.process_memory_mb, 2);
    out.push_back(judged("pipeline overhead (process memory)", overhead_goal, mb, 2, " MB",
                         mb < kMaxOverheadMb));
  } else {
    out.push_back(not_measured("pipeline overhead (process memory)", overhead_goal,
                               "process memory not measured"));
  }
  if (current.bodies_compared > 0) {
    const auto differing = current.bodies_differing;
    out.push_back(TargetResult{"accuracy (bodies compared)", "0 differ",
                               fmt::format("{} of {} differ", differing, current.bodies_compared),
                               static_cast<double>(differing), differing == 0, true});
  } else {
    out.push_back(not_measured("accuracy (bodies compared)", "0 differ", "no bodies compared"));
  }
  return out;
}

bool all_pass(const std::vector<TargetResult>& results) noexcept {
  bool any = false;
  for (const auto& r : results) {
    if (!r.measured) continue;
    if (!r.pass) return false;
    any = true;
  }
  return any;
}

std::string format_targets(const std::vector<TargetResult>& results) {
  std::string out;
  std::size_t width = 0;
  for (const auto& r : results) width = std::max(width, r.name.size());
  std::size_t passed = 0;
  std::size_t judged_count = 0;
  for (const auto& r : results) {
    passed += r.pass ? 1 : 0;
    judged_count += r.measured ? 1 : 0;
    out += fmt::format("{}  {:<{}}  {}  (goal {})\n", r.measured ? (r.pass ? "PASS" : "FAIL") : "----",
                       r.name, width, r.measured ? r.figure : "not measured: " + r.figure, r.goal);
  }
  out += fmt::format("{} of {} targets met", passed, judged_count);
  if (judged_count < results.size()) {
    out += fmt::format(" ({} not measured)", results.size() - judged_count);
  }
  out += "\n";
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
  std::uint64_t batched_requests = 0;
  std::uint64_t batch_fallbacks = 0;
  std::uint64_t batch_run_ns = 0;
  for (const auto& t : stats.types) {
    m.requests += t.requests;
    hits += t.hits;
    stale_served += t.stale_served;
    hit_ns_sum += t.hit_time.mean_ns * static_cast<double>(t.hit_time.count);
    hit_count += t.hit_time.count;
    compute_ns_sum += t.compute_time.mean_ns * static_cast<double>(t.compute_time.count);
    compute_count += t.compute_time.count;
    m.batchable_requests += t.batchable_requests;
    m.batch_joined += t.batch_joined;
    batched_requests += t.batched_requests;
    batch_fallbacks += t.batch_fallbacks;
    batch_run_ns += t.batch_run_ns;
  }
  m.hit_ratio = figures::or_zero(figures::request_hit_ratio(hits, stale_served, m.requests));
  if (hit_count > 0) m.mean_hit_time_ms = hit_ns_sum / static_cast<double>(hit_count) / 1e6;
  if (compute_count > 0) {
    m.mean_compute_time_ms = compute_ns_sum / static_cast<double>(compute_count) / 1e6;
  }
  m.batch_time_per_request_ms =
      figures::or_zero(figures::mean_batch_run_ns(batch_run_ns, batched_requests, batch_fallbacks)) / 1e6;
  // "Cache memory" is what the entries occupy (keys + values + overhead), the figure that
  // CACHE_MEMORY_LIMIT_MB bounds; the segment's reserved size is fixed at creation.
  if (stats.store) m.cache_memory_mb = static_cast<double>(stats.store->bytes_used) / (1u << 20);
  return m;
}

double process_memory_mb() noexcept {
  try {
    std::ifstream in("/proc/self/status");
    std::string line;
    double rss_kb = -1;
    double shmem_kb = 0;
    while (std::getline(in, line)) {
      if (line.rfind("VmRSS:", 0) == 0) rss_kb = std::strtod(line.c_str() + 6, nullptr);
      if (line.rfind("RssShmem:", 0) == 0) shmem_kb = std::strtod(line.c_str() + 9, nullptr);
    }
    return rss_kb < 0 ? 0.0 : (rss_kb - shmem_kb) / 1024.0;
  } catch (...) {
    return 0.0;
  }
}

namespace {

// Measurements' fields by their JSON name (the struct's member names).
struct MeasurementField {
  std::string_view name;
  double Measurements::*real = nullptr;
  std::uint64_t Measurements::*count = nullptr;
};
constexpr MeasurementField kMeasurementFields[] = {
    {"requests", nullptr, &Measurements::requests},
    {"hit_ratio", &Measurements::hit_ratio, nullptr},
    {"mean_hit_time_ms", &Measurements::mean_hit_time_ms, nullptr},
    {"mean_response_time_ms", &Measurements::mean_response_time_ms, nullptr},
    {"mean_compute_time_ms", &Measurements::mean_compute_time_ms, nullptr},
    {"cache_memory_mb", &Measurements::cache_memory_mb, nullptr},
    {"cpu_seconds", &Measurements::cpu_seconds, nullptr},
    {"batchable_requests", nullptr, &Measurements::batchable_requests},
    {"batch_joined", nullptr, &Measurements::batch_joined},
    {"batch_time_per_request_ms", &Measurements::batch_time_per_request_ms, nullptr},
    {"process_memory_mb", &Measurements::process_memory_mb, nullptr},
    {"bodies_compared", nullptr, &Measurements::bodies_compared},
    {"bodies_differing", nullptr, &Measurements::bodies_differing},
};

}  // namespace

BaselineFile load_baseline_file(const std::string& path) {
  const std::string label = "baseline file " + path;
  const detail::JsonWithLines parsed =
      detail::parse_json_with_lines(label, detail::read_text_file(label, path));
  auto line_of = [&](const std::string& key) {
    const auto it = parsed.lines.find(key);
    return it == parsed.lines.end() ? 1u : it->second;
  };
  auto fail = [&](const std::string& field, const std::string& why) {
    throw Error(fmt::format("{} line {}: field {}: {}", label, line_of(field), field, why));
  };
  if (!parsed.duplicate.empty()) fail(parsed.duplicate, "given twice");
  if (!parsed.doc.is_object()) {
    throw Error(fmt::format("{} line 1: expected a JSON object at the top", label));
  }
  BaselineFile out;
  bool has_baseline = false;
  for (const auto& [section, fields] : parsed.doc.items()) {
    Measurements* m = nullptr;
    if (section == "baseline") m = &out.baseline, has_baseline = true;
    else if (section == "current") m = &out.current;
    else fail(section, "unknown section (known: baseline, current)");
    if (!fields.is_object()) fail(section, fmt::format("expected an object, found {}", fields.type_name()));
    for (const auto& [key, value] : fields.items()) {
      const std::string field = section + "." + key;
      const MeasurementField* known = nullptr;
      for (const auto& f : kMeasurementFields) {
        if (f.name == key) known = &f;
      }
      if (known == nullptr) {
        std::string names;
        for (const auto& f : kMeasurementFields) names += fmt::format("{}{}", names.empty() ? "" : ", ", f.name);
        fail(field, fmt::format("unknown field (known: {})", names));
      }
      if (!value.is_number() || value.get<double>() < 0 || !std::isfinite(value.get<double>())) {
        fail(field, fmt::format("expected a non-negative number, found {}", value.dump()));
      }
      if (known->real != nullptr) {
        m->*(known->real) = value.get<double>();
      } else {
        if (!value.is_number_integer()) fail(field, fmt::format("expected a whole number, found {}", value.dump()));
        m->*(known->count) = value.get<std::uint64_t>();
      }
      if (key == "hit_ratio" && value.get<double>() > 1) fail(field, "a ratio is 0..1");
    }
  }
  if (!has_baseline) throw Error(fmt::format("{} line 1: no \"baseline\" section", label));
  return out;
}

Measurements merge_measurements(const Measurements& from_stats, const Measurements& from_file) {
  Measurements m = from_stats;
  for (const auto& f : kMeasurementFields) {
    if (f.real != nullptr && from_file.*(f.real) != 0) m.*(f.real) = from_file.*(f.real);
    if (f.count != nullptr && from_file.*(f.count) != 0) m.*(f.count) = from_file.*(f.count);
  }
  return m;
}

}  // namespace pipecache
