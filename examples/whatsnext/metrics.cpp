// GET /metrics: the segment's figures in Prometheus text format.
//
// The family names, labels and units are those of `pipectl stats --format prometheus`
// (tools/pipectl/stats.cpp), so one dashboard reads either: a node_exporter textfile written
// by pipectl, or this endpoint. pipectl's report builder is internal to pipectl; its writer
// (tools/pipectl/prometheus.hpp, which enforces the format's invariants) is compiled in here.
#include "server.hpp"

#include "prometheus.hpp"  // tools/pipectl

#include <fmt/format.h>

#include <cmath>

namespace whatsnext {
namespace {

using pipecache::Histogram;
using pipecache::NamespaceStats;
using pipecache::NsCounter;
using pipecache::NsHistogram;
using pipectl::Labels;
using Type = pipectl::PrometheusWriter::Type;

// pipectl's counter_name(): the same spelling, in NsCounter order.
constexpr std::string_view kCounterNames[] = {
    "requests",         "hits",           "misses",           "stale_served",
    "computes",         "dedup_waits",    "lease_takeovers",  "fallbacks",
    "compute_failures", "batches",        "batched_requests", "batchable_requests",
    "batch_joined",     "batch_failures", "batch_fallbacks",  "batch_wait_ns",
};
static_assert(std::size(kCounterNames) == pipecache::kNsCounters,
              "a counter was added to pipecache::NsCounter: name it here and in pipectl");

// Log2 buckets map one-to-one onto cumulative `le` buckets (as pipectl does it).
void histogram(pipectl::PrometheusWriter& p, const Labels& labels, const Histogram& h) {
  std::uint64_t cumulative = 0;
  for (unsigned i = 0; i + 1 < Histogram::kBuckets; ++i) {
    cumulative += h.buckets[i];
    p.bucket(labels, (std::ldexp(1.0, static_cast<int>(i) + 1) - 1.0) / 1e9, cumulative);
  }
  p.bucket(labels, HUGE_VAL, h.count);
  p.sample("_sum", labels, static_cast<double>(h.sum_ns) / 1e9);
  p.sample("_count", labels, h.count);
}

void store_families(pipectl::PrometheusWriter& p, const std::string& name,
                    const pipecache::Stats& s) {
  const Labels seg = {{"segment", name}};
  auto counter = [&](std::string_view family, std::string_view help, std::uint64_t v) {
    p.family(fmt::format("{}_total", family), Type::counter, help);
    p.sample("", seg, v);
  };
  auto gauge = [&](std::string_view family, std::string_view help, std::uint64_t v) {
    p.family(family, Type::gauge, help);
    p.sample("", seg, static_cast<double>(v));
  };
  counter("pipecache_hits", "Lookups that found a live value.", s.hits);
  counter("pipecache_misses", "Lookups that found no live value.", s.misses);
  counter("pipecache_inserts", "Puts that stored a new key.", s.inserts);
  counter("pipecache_updates", "Puts that replaced the value of an existing key.", s.updates);
  counter("pipecache_evictions", "Entries removed to make room (byte budget or max entries).",
          s.evictions);
  counter("pipecache_expirations", "Expired entries reclaimed.", s.expirations);
  counter("pipecache_invalidations", "Entries removed by erase, invalidate or clear.",
          s.invalidations);
  counter("pipecache_put_failures", "Writes dropped: no room could be made, or lock timeout.",
          s.put_failures);
  counter("pipecache_lock_recoveries", "Robust mutexes found with a dead owner and repaired.",
          s.lock_recoveries);
  gauge("pipecache_entries", "Entries stored.", s.entries);
  gauge("pipecache_max_entries", "Entry limit fixed at creation (0 = only the byte budget).",
        s.max_entries);
  gauge("pipecache_used_bytes", "Bytes of entries (headers, keys, values, alignment).",
        s.bytes_used);
  gauge("pipecache_budget_bytes", "Byte budget fixed at creation.", s.byte_budget);
  gauge("pipecache_arena_bytes", "Memory holding entries (budget plus fragmentation slack).",
        s.arena_bytes);
  gauge("pipecache_free_bytes", "Arena bytes in free blocks.", s.free_bytes);
  gauge("pipecache_largest_free_block_bytes", "Largest free block of the arena.",
        s.largest_free_block);
  gauge("pipecache_fragmented_bytes", "Free bytes in blocks smaller than the largest allowed entry.",
        s.fragmented_bytes);
  gauge("pipecache_segment_bytes", "Size of the shared-memory segment.", s.segment_bytes);
  gauge("pipecache_attached_processes", "Processes holding a process slot.", s.attached_processes);
  p.family("pipecache_start_time_seconds", Type::gauge,
           "Creation time of the segment, Unix seconds.");
  p.sample("", seg, static_cast<double>(s.created_unix_ms) / 1000.0);
  p.family("pipecache_uptime_seconds", Type::gauge, "Seconds since the segment was created.");
  p.sample("", seg, static_cast<double>(s.uptime_ms) / 1000.0);

  if (s.namespaces.empty()) return;
  std::vector<Labels> labels;
  for (const NamespaceStats& ns : s.namespaces) {
    labels.push_back({{"segment", name}, {"type", ns.name}});
  }
  for (unsigned c = 0; c < pipecache::kNsCounters; ++c) {
    const auto id = static_cast<NsCounter>(c);
    const bool is_time = id == NsCounter::batch_wait_ns;
    const std::string family =
        is_time ? "pipecache_request_batch_wait_seconds"
                : (id == NsCounter::requests ? std::string("pipecache_requests")
                                             : fmt::format("pipecache_request_{}", kCounterNames[c]));
    p.family(family + "_total", Type::counter,
             is_time ? std::string("Total time requests waited in a batch window, seconds.")
                     : fmt::format("Per request type counter '{}'.", kCounterNames[c]));
    for (std::size_t k = 0; k < s.namespaces.size(); ++k) {
      const std::uint64_t v = s.namespaces[k].counters[c];
      if (is_time) {
        p.sample("", labels[k], static_cast<double>(v) / 1e9);
      } else {
        p.sample("", labels[k], v);
      }
    }
  }
  p.family("pipecache_request_entries", Type::gauge, "Entries stored per request type.");
  for (std::size_t k = 0; k < s.namespaces.size(); ++k) {
    p.sample("", labels[k], static_cast<double>(s.namespaces[k].entries));
  }
  p.family("pipecache_request_generation", Type::gauge,
           "Invalidation generation of the request type (bumped by '<type>:*').");
  for (std::size_t k = 0; k < s.namespaces.size(); ++k) {
    p.sample("", labels[k], static_cast<double>(s.namespaces[k].generation));
  }
  p.family("pipecache_hit_duration_seconds", Type::histogram,
           "Time to answer a request from the cache.");
  for (std::size_t k = 0; k < s.namespaces.size(); ++k) {
    histogram(p, labels[k], s.namespaces[k].histogram(NsHistogram::hit_time));
  }
  p.family("pipecache_compute_duration_seconds", Type::histogram,
           "Time to compute a missed response (the handler).");
  for (std::size_t k = 0; k < s.namespaces.size(); ++k) {
    histogram(p, labels[k], s.namespaces[k].histogram(NsHistogram::compute_time));
  }
}

}  // namespace

std::string render_metrics(const pipecache::Pipeline& pipeline) {
  const pipecache::PipelineStats stats = pipeline.stats();
  pipectl::PrometheusWriter p;
  // Not in pipectl (which needs a segment to run at all): whether this worker uses the cache,
  // and why it answered without it.
  const Labels seg = {{"segment", stats.segment_name}};
  p.family("pipecache_cache_available", Type::gauge,
           "1 when this worker uses the shared segment, 0 when it computes every answer.");
  p.sample("", seg, stats.cache_available ? 1.0 : 0.0);
  p.family("pipecache_process_fallbacks_total", Type::counter,
           "Requests this worker answered without the cache, by cause.");
  for (unsigned c = 0; c < pipecache::kFallbackCauses; ++c) {
    const std::string_view cause = pipecache::fallback_cause_name(static_cast<pipecache::FallbackCause>(c));
    p.sample("", {{"segment", stats.segment_name}, {"cause", cause}}, stats.local_fallbacks[c]);
  }
  if (stats.store) store_families(p, stats.segment_name, *stats.store);
  return p.text();
}

}  // namespace whatsnext
