// pipectl stats: the segment's counters and per-request-type metrics, as text, JSON or the
// Prometheus text exposition format.
//
// Cache::stats() sums per-process / per-stripe counters without stopping writers, so the
// figures are a consistent-enough snapshot (each counter exact at some instant during the
// call), never a global atomic cut: hits + misses can differ from a request count read a
// microsecond apart. Good enough for monitoring; the tests compare after writers stop.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/figures.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"
#include "json_writer.hpp"
#include "prometheus.hpp"
#include "remote_report.hpp"
#include "stats_report.hpp"
#include "store_metrics.hpp"

namespace pipectl {
namespace {

namespace figures = pipecache::figures;
using pipecache::Histogram;
using pipecache::NamespaceStats;
using pipecache::NsCounter;
using pipecache::NsHistogram;
using pipecache::Stats;

// Quantiles shown for latency in text and JSON. p99 is what the issue asks for; p50 and p999
// frame it (a median far below p99 means a long tail, p999 shows how long).
constexpr double kQuantiles[] = {0.5, 0.9, 0.99, 0.999};
constexpr std::string_view kQuantileNames[] = {"p50_ns", "p90_ns", "p99_ns", "p999_ns"};

std::string latency(double ns) {
  if (std::isnan(ns) || ns <= 0) return "-";
  return pipecache::format_duration(std::chrono::nanoseconds(static_cast<std::int64_t>(ns)));
}

// Only types that have batched anything: most types never do, and a block of dashes for each
// would bury the ones that did.
std::string text_batching(const Stats& s) {
  std::string t;
  for (const NamespaceStats& ns : s.namespaces) {
    const std::uint64_t batches = ns.counter(NsCounter::batches);
    if (batches == 0) continue;
    if (t.empty()) {
      // "formed%" is the formation efficiency: batchable requests that joined a batch of 2+.
      t += fmt::format("\n{:<24} {:>9} {:>10} {:>8} {:>8} {:>10} {:>9} {:>9}\n", "batching",
                       "batches", "batchable", "avg size", "formed%", "mean wait", "failures",
                       "fallbacks");
    }
    const double average_size = figures::average_batch_size(ns);
    t += fmt::format("{:<24} {:>9} {:>10} {:>8} {:>8} {:>10} {:>9} {:>9}\n", printable(ns.name),
                     batches, ns.counter(NsCounter::batchable_requests),
                     std::isnan(average_size) ? std::string("-")
                                              : fmt::format("{:.1f}", average_size),
                     percent(figures::batch_formation(ns)),
                     latency(figures::mean_batch_wait_ns(ns)),
                     ns.counter(NsCounter::batch_failures), ns.counter(NsCounter::batch_fallbacks));
  }
  return t;
}

// Types with a runtime switch or requests kept out of the cache by one (or by a rollout).
std::string text_switches(const Stats& s) {
  std::string t;
  for (const NamespaceStats& ns : s.namespaces) {
    const std::uint64_t bypassed = ns.counter(NsCounter::bypassed);
    if (!ns.switch_percent && bypassed == 0) continue;
    if (t.empty()) t += fmt::format("\n{:<24} {:>12} {:>10}\n", "switch", "cached keys", "bypassed");
    std::string state = "policy";
    if (ns.switch_percent) {
      state = *ns.switch_percent == 0     ? std::string("disabled")
              : *ns.switch_percent == 100 ? std::string("enabled")
                                          : fmt::format("{:g}%", *ns.switch_percent);
    }
    t += fmt::format("{:<24} {:>12} {:>10}\n", printable(ns.name), state, bypassed);
  }
  return t;
}

std::string text_report(const std::string& name, const Stats& s) {
  std::string t;
  auto line = [&t](std::string_view label, const std::string& value) {
    t += fmt::format("{:<14} {}\n", label, value);
  };
  line("segment", fmt::format("{}  ({})", name, pipecache::Cache::path_of(name)));
  line("uptime", fmt::format("{}  (created {})", format_ms(std::chrono::milliseconds(s.uptime_ms)),
                             format_unix_ms(s.created_unix_ms)));
  line("processes", fmt::format("{} attached", s.attached_processes));
  line("lookups", fmt::format("hits {}  misses {}  hit ratio {}", s.hits, s.misses,
                              percent(figures::lookup_hit_ratio(s))));
  line("writes", fmt::format("inserts {}  updates {}  put failures {}", s.inserts, s.updates,
                             s.put_failures));
  line("removals", fmt::format("evictions {}  expirations {}  invalidations {}", s.evictions,
                               s.expirations, s.invalidations));
  // An O(1) invalidation (a whole type or namespace) leaves its entries in place until they
  // are reclaimed: they hold memory but no lookup can return them, so they are named apart.
  std::string entries = s.max_entries == 0 ? fmt::format("{}", s.entries)
                                           : fmt::format("{} of max {}", s.entries, s.max_entries);
  if (s.stale_entries > 0)
    entries += fmt::format("  ({} live, {} invalidated: unreachable, reclaimed as space is needed)",
                           s.entries - std::min(s.stale_entries, s.entries), s.stale_entries);
  line("entries", entries);
  line("memory", fmt::format("{} used of {} budget ({})", pipecache::format_size(s.bytes_used),
                             pipecache::format_size(s.byte_budget),
                             percent(figures::budget_used(s))));
  line("arena", fmt::format("{}  free {}  largest free block {}  fragmented {} ({})",
                            pipecache::format_size(s.arena_bytes),
                            pipecache::format_size(s.free_bytes),
                            pipecache::format_size(s.largest_free_block),
                            pipecache::format_size(s.fragmented_bytes),
                            percent(figures::fragmentation(s))));
  line("segment size", pipecache::format_size(s.segment_bytes));
  line("lock repairs", fmt::format("{}", s.lock_recoveries));
  if (s.config_drift.opens > 0) {
    // Opens that asked for another size than the segment has (and got the segment's).
    const auto& d = s.config_drift;
    line("config drift",
         fmt::format("{} opens configured differently; last pid {} at {}: budget {}, max "
                     "entries {}, default TTL {} (to resize: create a new segment and switch)",
                     d.opens, d.last_pid, format_unix_ms(d.last_unix_ms),
                     pipecache::format_size(d.last_byte_budget), d.last_max_entries,
                     format_ms(d.last_default_ttl)));
  }
  if (s.namespaces.empty()) {
    t += "\nno request types recorded yet\n";
    return t;
  }
  // hit% counts stale answers as hits (answered from the cache); "stale" shows how many.
  t += fmt::format("\n{:<24} {:>10} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}\n",
                   "request type", "requests", "hit%", "stale", "computes", "failures",
                   "hit avg", "hit p99", "compute avg", "compute p99", "entries");
  for (const NamespaceStats& ns : s.namespaces) {
    const Histogram& hit = ns.histogram(NsHistogram::hit_time);
    const Histogram& compute = ns.histogram(NsHistogram::compute_time);
    std::uint64_t requests = ns.counter(NsCounter::requests);
    t += fmt::format("{:<24} {:>10} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>11} {:>11} {:>8}\n",
                     printable(ns.name), requests, percent(figures::request_hit_ratio(ns)),
                     ns.counter(NsCounter::stale_served), ns.counter(NsCounter::computes),
                     ns.counter(NsCounter::compute_failures),
                     latency(figures::mean_ns(hit)), latency(hit.percentile_ns(0.99)),
                     latency(figures::mean_ns(compute)), latency(compute.percentile_ns(0.99)),
                     ns.entries);
  }
  t += text_batching(s);
  t += text_switches(s);
  return t;
}

void json_histogram(JsonWriter& j, const Histogram& h) {
  j.begin_object();
  j.member("count", h.count);
  j.member("sum_ns", h.sum_ns);
  j.member("mean_ns", figures::mean_ns(h));
  for (std::size_t q = 0; q < std::size(kQuantiles); ++q) {
    j.key(kQuantileNames[q]);
    if (h.count == 0) {
      j.null();
    } else {
      j.value(h.percentile_ns(kQuantiles[q]));
    }
  }
  j.end_object();
}

}  // namespace

void write_stats_json(JsonWriter& j, const std::string& name, const Stats& s,
                      const std::vector<pipecache::InvalidationRecord>* invalidations,
                      const pipecache::RemoteStats* remote) {
  j.begin_object();
  j.member("segment", name);
  j.member("path", pipecache::Cache::path_of(name));
  j.member("hits", s.hits);
  j.member("misses", s.misses);
  j.member("hit_ratio", figures::lookup_hit_ratio(s));
  j.member("inserts", s.inserts);
  j.member("updates", s.updates);
  j.member("evictions", s.evictions);
  j.member("expirations", s.expirations);
  j.member("invalidations", s.invalidations);
  j.member("put_failures", s.put_failures);
  j.member("lock_recoveries", s.lock_recoveries);
  j.member("entries", s.entries);
  j.member("stale_entries", s.stale_entries);
  j.member("max_entries", s.max_entries);
  j.member("bytes_used", s.bytes_used);
  j.member("byte_budget", s.byte_budget);
  j.member("arena_bytes", s.arena_bytes);
  j.member("free_bytes", s.free_bytes);
  j.member("largest_free_block", s.largest_free_block);
  j.member("fragmented_bytes", s.fragmented_bytes);
  j.member("fragmentation", figures::fragmentation(s));
  j.member("attached_processes", s.attached_processes);
  j.member("segment_bytes", s.segment_bytes);
  j.member("created_unix_ms", s.created_unix_ms);
  j.member("uptime_ms", s.uptime_ms);
  j.key("config_drift").begin_object();
  j.member("opens", s.config_drift.opens);
  j.member("last_pid", static_cast<std::int64_t>(s.config_drift.last_pid));
  j.member("last_unix_ms", s.config_drift.last_unix_ms);
  j.member("last_byte_budget", s.config_drift.last_byte_budget);
  j.member("last_max_entries", s.config_drift.last_max_entries);
  j.member("last_default_ttl_ms", static_cast<std::uint64_t>(s.config_drift.last_default_ttl.count()));
  j.end_object();
  j.key("request_types").begin_array();
  for (const NamespaceStats& ns : s.namespaces) {
    j.begin_object();
    j.member("name", ns.name);
    j.member("id", ns.id);
    j.member("generation", ns.generation);
    j.member("entries", ns.entries);
    j.member("hit_ratio", figures::request_hit_ratio(ns));
    j.key("switch_percent");  // the runtime switch; null = none (the policies decide)
    if (ns.switch_percent) {
      j.value(*ns.switch_percent);
    } else {
      j.null();
    }
    j.key("counters").begin_object();
    for (unsigned c = 0; c < pipecache::kNsCounters; ++c) {
      j.member(counter_name(static_cast<NsCounter>(c)), ns.counters[c]);
    }
    j.end_object();
    j.key("hit_time");
    json_histogram(j, ns.histogram(NsHistogram::hit_time));
    j.key("compute_time");
    json_histogram(j, ns.histogram(NsHistogram::compute_time));
    // Derived batch figures; null for a type that never batched (the raw counters are above).
    // Undefined figures (NaN, figures.hpp) are written as null by JsonWriter.
    j.key("batching");
    if (ns.counter(NsCounter::batches) == 0) {
      j.null();
    } else {
      j.begin_object();
      j.member("average_batch_size", figures::average_batch_size(ns));
      j.member("formation_efficiency", figures::batch_formation(ns));
      j.member("mean_wait_ns", figures::mean_batch_wait_ns(ns));
      j.end_object();
    }
    j.end_object();
  }
  j.end_array();
  if (invalidations) {
    j.key("recent_invalidations").begin_array();
    for (const pipecache::InvalidationRecord& r : *invalidations) {
      j.begin_object();
      j.member("pattern", r.pattern);
      j.member("unix_ms", r.unix_ms);
      j.member("removed", r.removed);
      j.member("clear", r.clear);
      j.end_object();
    }
    j.end_array();
  }
  if (remote) {
    j.key("remote");
    remote_json(j, *remote);
  }
  j.end_object();
}

namespace {

std::string json_report(const std::string& name, const Stats& s,
                        const std::vector<pipecache::InvalidationRecord>& invalidations,
                        const pipecache::RemoteStats& remote) {
  JsonWriter j;
  write_stats_json(j, name, s, &invalidations, &remote);
  return j.finish();
}

std::string prometheus_report(const std::string& name, const Stats& s,
                              const pipecache::RemoteStats& remote) {
  PrometheusWriter p;
  write_store_metrics(p, name, s);
  write_remote_metrics(p, name, remote);
  return p.text();
}

}  // namespace

int run_stats(const Invocation& invocation) {
  auto parser = make_parser("stats", "Print the segment's counters, memory use and the metrics "
                                     "of each request type.", "");
  add_format_options(parser, /*prometheus_allowed=*/true);
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, true);
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  Stats s = cache.stats();
  const pipecache::RemoteStats remote = pipecache::remote_stats(cache);
  switch (format) {
    case OutputFormat::text: write_stdout(text_report(name, s) + remote_text(remote)); break;
    case OutputFormat::json:
      write_stdout(json_report(name, s, cache.recent_invalidations(), remote));
      break;
    case OutputFormat::prometheus: write_stdout(prometheus_report(name, s, remote)); break;
  }
  return 0;
}

}  // namespace pipectl
