// pipectl inspect: the segment's layout and the shape of its contents — sizes, stripes and how
// evenly entries spread over them, arena use and fragmentation, process slots.

#include <algorithm>
#include <cmath>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/figures.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {
namespace {

struct Spread {
  std::uint64_t min = 0, max = 0;
  double mean = 0, stddev = 0;
};

Spread spread_of(const std::vector<std::uint64_t>& v) {
  Spread s;
  if (v.empty()) return s;
  s.min = *std::min_element(v.begin(), v.end());
  s.max = *std::max_element(v.begin(), v.end());
  double sum = 0;
  for (auto x : v) sum += static_cast<double>(x);
  s.mean = sum / static_cast<double>(v.size());
  double sq = 0;
  for (auto x : v) sq += (static_cast<double>(x) - s.mean) * (static_cast<double>(x) - s.mean);
  s.stddev = std::sqrt(sq / static_cast<double>(v.size()));
  return s;
}

// 0 rather than undefined when nothing is free: no free memory is scattered.
double fragmentation(const pipecache::SegmentInfo& info) {
  return pipecache::figures::or_zero(
      pipecache::figures::free_outside_largest_block(info.largest_free_block, info.free_bytes));
}

// Up to kBins equal-width bins between min and max: enough to see a skewed hash or a hot
// stripe at a glance, few enough for a terminal.
constexpr std::uint64_t kBins = 8;
constexpr std::size_t kBarWidth = 40;

std::string stripe_histogram(const std::vector<std::uint64_t>& per_stripe, const Spread& s) {
  if (per_stripe.empty()) return {};
  std::uint64_t width = std::max<std::uint64_t>(1, (s.max - s.min + kBins) / kBins);
  std::uint64_t bins = (s.max - s.min) / width + 1;
  std::vector<std::uint64_t> counts(bins, 0);
  for (auto x : per_stripe) ++counts[(x - s.min) / width];
  std::uint64_t most = *std::max_element(counts.begin(), counts.end());
  std::string out;
  for (std::uint64_t b = 0; b < bins; ++b) {
    std::uint64_t lo = s.min + b * width, hi = lo + width - 1;
    std::string range = width == 1 ? fmt::format("{}", lo) : fmt::format("{}-{}", lo, hi);
    std::size_t bar = most == 0 ? 0 : static_cast<std::size_t>(counts[b] * kBarWidth / most);
    if (counts[b] != 0 && bar == 0) bar = 1;
    out += fmt::format("  {:>15} entries | {:<{}} {} stripes\n", range, std::string(bar, '#'),
                       kBarWidth, counts[b]);
  }
  return out;
}

std::string text_report(const pipecache::SegmentInfo& info) {
  using pipecache::format_size;
  Spread spread = spread_of(info.entries_per_stripe);
  std::uint64_t entries = 0;
  for (auto x : info.entries_per_stripe) entries += x;
  std::string t;
  auto line = [&t](std::string_view label, const std::string& value) {
    t += fmt::format("{:<18} {}\n", label, value);
  };
  line("segment", fmt::format("{}  ({})", info.name, info.path));
  line("layout", fmt::format("version {}  fingerprint {:#018x}", info.layout_version,
                             info.fingerprint));
  line("created", format_unix_ms(info.created_unix_ms));
  line("mode", fmt::format("{:04o}", info.permissions));
  line("owner", fmt::format("{} (uid {})  file mode {:04o}", info.owner, info.owner_uid, info.mode));
  line("segment size", format_size(info.segment_bytes));
  line("byte budget", format_size(info.byte_budget));
  line("max entries", info.max_entries == 0 ? std::string("unlimited (byte budget only)")
                                            : fmt::format("{}", info.max_entries));
  line("default ttl", info.default_ttl.count() == 0 ? std::string("never expires")
                                                    : format_ms(info.default_ttl));
  line("stripes", fmt::format("{}  buckets {} ({} per stripe)", info.stripes, info.buckets,
                              info.stripes == 0 ? 0 : info.buckets / info.stripes));
  line("arena", fmt::format("{}  used {} in {} blocks ({} of budget)", format_size(info.arena_bytes),
                            format_size(info.bytes_used), info.used_blocks,
                            percent(pipecache::figures::budget_used(info.bytes_used, info.byte_budget))));
  line("free", fmt::format("{} in {} blocks  largest {}  fragmentation {}",
                           format_size(info.free_bytes), info.free_blocks,
                           format_size(info.largest_free_block), percent(fragmentation(info))));
  line("entries", fmt::format("{}  per stripe min {} max {} mean {:.2f} stddev {:.2f}", entries,
                              spread.min, spread.max, spread.mean, spread.stddev));
  t += stripe_histogram(info.entries_per_stripe, spread);
  std::size_t alive = static_cast<std::size_t>(
      std::count_if(info.processes.begin(), info.processes.end(),
                    [](const auto& p) { return p.alive; }));
  line("process slots", fmt::format("{} of {} occupied, {} by live processes",
                                    info.processes.size(), info.process_slots, alive));
  for (const auto& p : info.processes) {
    t += fmt::format("  slot {:>3}  pid {:>8}  {}\n", p.slot, p.pid,
                     p.alive ? "alive" : "dead (slot will be reclaimed)");
  }
  line("namespace slots", fmt::format("{}", info.namespace_slots));
  return t;
}

std::string json_report(const pipecache::SegmentInfo& info) {
  Spread spread = spread_of(info.entries_per_stripe);
  JsonWriter j;
  j.begin_object();
  j.member("segment", info.name);
  j.member("path", info.path);
  j.member("layout_version", info.layout_version);
  j.member("fingerprint", info.fingerprint);
  j.member("created_unix_ms", info.created_unix_ms);
  j.member("permissions", info.permissions);
  j.member("owner", info.owner);
  j.member("owner_uid", info.owner_uid);
  j.member("mode", info.mode);
  j.member("segment_bytes", info.segment_bytes);
  j.member("arena_bytes", info.arena_bytes);
  j.member("byte_budget", info.byte_budget);
  j.member("max_entries", info.max_entries);
  j.member("default_ttl_ms", static_cast<std::int64_t>(info.default_ttl.count()));
  j.member("stripes", info.stripes);
  j.member("buckets", info.buckets);
  j.member("bytes_used", info.bytes_used);
  j.member("used_blocks", info.used_blocks);
  j.member("free_bytes", info.free_bytes);
  j.member("free_blocks", info.free_blocks);
  j.member("largest_free_block", info.largest_free_block);
  j.member("fragmentation", fragmentation(info));
  j.key("entries_per_stripe").begin_object();
  j.member("min", spread.min);
  j.member("max", spread.max);
  j.member("mean", spread.mean);
  j.member("stddev", spread.stddev);
  j.key("counts").begin_array();
  for (auto x : info.entries_per_stripe) j.value(x);
  j.end_array();
  j.end_object();
  j.member("process_slots", info.process_slots);
  j.key("processes").begin_array();
  for (const auto& p : info.processes) {
    j.begin_object();
    j.member("slot", p.slot);
    j.member("pid", p.pid);
    j.member("alive", p.alive);
    j.end_object();
  }
  j.end_array();
  j.member("namespace_slots", info.namespace_slots);
  j.end_object();
  return j.finish();
}

}  // namespace

int run_inspect(const Invocation& invocation) {
  auto parser = make_parser("inspect",
                            "Describe the segment's layout: sizes, layout version, stripes and "
                            "entries per stripe, arena use and fragmentation, process slots.",
                            "");
  add_format_options(parser, /*prometheus_allowed=*/false);
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, false);
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  pipecache::SegmentInfo info = cache.inspect();
  write_stdout(format == OutputFormat::json ? json_report(info) : text_report(info));
  return 0;
}

}  // namespace pipectl
