#include "store_metrics.hpp"

#include <cmath>
#include <iterator>
#include <vector>

#include <fmt/format.h>

namespace pipectl {

using pipecache::Histogram;
using pipecache::NamespaceStats;
using pipecache::NsCounter;
using pipecache::NsHistogram;
using pipecache::Stats;

std::string_view counter_name(pipecache::NsCounter counter) {
  // Spelled once here so text, JSON and Prometheus outputs cannot drift apart.
  static constexpr std::string_view kNames[] = {
      "requests",          "hits",           "misses",          "stale_served",
      "computes",          "dedup_waits",    "lease_takeovers", "fallbacks",
      "compute_failures",  "batches",        "batched_requests", "batchable_requests",
      "batch_joined",      "batch_failures", "batch_fallbacks", "batch_wait_ns",
      "bypassed",          "batch_run_ns",
  };
  static_assert(std::size(kNames) == pipecache::kNsCounters,
                "a counter was added to pipecache::NsCounter: name it here");
  return kNames[static_cast<unsigned>(counter)];
}

std::string_view counter_help(pipecache::NsCounter counter) {
  static constexpr std::string_view kHelp[] = {
      "Requests of the type.",
      "Requests answered with a fresh cached value.",
      "Requests that found no usable cached value.",
      "Requests answered with a stale value while one process refreshes it.",
      "Handler runs that computed a value.",
      "Requests that waited for another process computing the same key.",
      "Leases taken over from a dead or late holder.",
      "Requests answered without the cache (segment unavailable, full, value too large...).",
      "Handler runs that threw.",
      "Batch handler invocations.",
      "Requests answered by a batch handler.",
      "Misses of a batch-eligible type sent to the batcher.",
      "Requests that joined a batch of 2 or more.",
      "Batch handler failures (threw or returned the wrong count).",
      "Requests re-run alone after a batch failure.",
      "Total time requests waited in a batch window.",
      "Requests a rollout share or runtime switch kept out of the cache.",
      "Total time batch handlers ran, their fallbacks included.",
  };
  static_assert(std::size(kHelp) == pipecache::kNsCounters,
                "a counter was added to pipecache::NsCounter: describe it here");
  return kHelp[static_cast<unsigned>(counter)];
}

namespace {

// Latency is exposed as Prometheus HISTOGRAMS, not summaries: the segment keeps log2 bucket
// counts, which map one-to-one onto cumulative `le` buckets with no estimation, and histograms
// aggregate across hosts and time windows (histogram_quantile over sum(rate(..._bucket))),
// while summary quantiles computed here could be neither summed nor re-windowed. The price is
// 40 series per histogram; a textfile collector or scrape handles that easily.
void prometheus_histogram(PrometheusWriter& p, const Labels& labels, const Histogram& h) {
  std::uint64_t cumulative = 0;
  // Bucket i holds integer nanosecond samples in [2^i, 2^(i+1)), i.e. <= 2^(i+1) - 1 ns:
  // that is the exact inclusive `le` bound. The last bucket also takes everything larger
  // (it is open-ended), so it is only represented by +Inf.
  for (unsigned i = 0; i + 1 < Histogram::kBuckets; ++i) {
    cumulative += h.buckets[i];
    double bound_ns = std::ldexp(1.0, static_cast<int>(i) + 1) - 1.0;
    p.bucket(labels, bound_ns / 1e9, cumulative);
  }
  p.bucket(labels, HUGE_VAL, h.count);
  p.sample("_sum", labels, static_cast<double>(h.sum_ns) / 1e9);
  p.sample("_count", labels, h.count);
}

}  // namespace

void write_store_metrics(PrometheusWriter& p, const std::string& name, const Stats& s) {
  write_store_metrics(p, std::vector<SegmentStats>{{name, s}});
}

void write_store_metrics(PrometheusWriter& p, const std::vector<SegmentStats>& segments) {
  using Type = PrometheusWriter::Type;
  // Every series carries segment="<name>": a host may run several segments, and one scrape
  // (pipectl serve) or the textfile collector merges them. A family is declared once with the
  // samples of every segment under it (invariant 1 of PrometheusWriter).
  std::vector<Labels> segment_labels;
  for (const SegmentStats& seg : segments) segment_labels.push_back({{"segment", seg.name}});
  // In the 0.0.4 text format a counter's TYPE line names the sample itself, _total included
  // (only OpenMetrics strips the suffix from the family name).
  auto counter = [&](std::string_view family, std::string_view help,
                     std::uint64_t Stats::*field) {
    p.family(fmt::format("{}_total", family), Type::counter, help);
    for (std::size_t i = 0; i < segments.size(); ++i) {
      p.sample("", segment_labels[i], segments[i].stats.*field);
    }
  };
  auto gauge = [&](std::string_view family, std::string_view help, std::uint64_t Stats::*field,
                   double scale = 1.0) {
    p.family(family, Type::gauge, help);
    for (std::size_t i = 0; i < segments.size(); ++i) {
      p.sample("", segment_labels[i], static_cast<double>(segments[i].stats.*field) * scale);
    }
  };
  counter("pipecache_hits", "Lookups that found a live value.", &Stats::hits);
  counter("pipecache_misses", "Lookups that found no live value.", &Stats::misses);
  counter("pipecache_inserts", "Puts that stored a new key.", &Stats::inserts);
  counter("pipecache_updates", "Puts that replaced the value of an existing key.",
          &Stats::updates);
  counter("pipecache_evictions", "Entries removed to make room (byte budget or max entries).",
          &Stats::evictions);
  counter("pipecache_expirations", "Expired entries reclaimed.", &Stats::expirations);
  counter("pipecache_invalidations", "Entries removed by erase, invalidate or clear.",
          &Stats::invalidations);
  counter("pipecache_put_failures", "Writes dropped: no room could be made, or lock timeout.",
          &Stats::put_failures);
  counter("pipecache_lock_recoveries",
          "Robust mutexes found with a dead owner and repaired.", &Stats::lock_recoveries);
  gauge("pipecache_entries", "Entries stored.", &Stats::entries);
  gauge("pipecache_max_entries", "Entry limit fixed at creation (0 = only the byte budget).",
        &Stats::max_entries);
  gauge("pipecache_used_bytes", "Bytes of entries (headers, keys, values, alignment).",
        &Stats::bytes_used);
  gauge("pipecache_budget_bytes", "Byte budget fixed at creation.", &Stats::byte_budget);
  gauge("pipecache_arena_bytes", "Memory holding entries (budget plus fragmentation slack).",
        &Stats::arena_bytes);
  gauge("pipecache_free_bytes", "Arena bytes in free blocks.", &Stats::free_bytes);
  gauge("pipecache_largest_free_block_bytes", "Largest free block of the arena.",
        &Stats::largest_free_block);
  gauge("pipecache_fragmented_bytes",
        "Free bytes in blocks smaller than the largest allowed entry.",
        &Stats::fragmented_bytes);
  gauge("pipecache_segment_bytes", "Size of the shared-memory segment.", &Stats::segment_bytes);
  gauge("pipecache_attached_processes", "Processes holding a process slot.",
        &Stats::attached_processes);
  gauge("pipecache_start_time_seconds", "Creation time of the segment, Unix seconds.",
        &Stats::created_unix_ms, 1e-3);
  gauge("pipecache_uptime_seconds", "Seconds since the segment was created.", &Stats::uptime_ms,
        1e-3);

  // Per request type: one family per counter, labelled type="<request type>". A family only
  // exists when some segment has request types.
  struct TypeSeries {
    Labels labels;
    const NamespaceStats* ns;
  };
  std::vector<TypeSeries> types;
  for (const SegmentStats& seg : segments) {
    for (const NamespaceStats& ns : seg.stats.namespaces) {
      types.push_back({{{"segment", seg.name}, {"type", ns.name}}, &ns});
    }
  }
  if (types.empty()) return;
  for (unsigned c = 0; c < pipecache::kNsCounters; ++c) {
    auto counter_id = static_cast<NsCounter>(c);
    std::string_view stem = counter_name(counter_id);
    bool is_time = counter_id == NsCounter::batch_wait_ns || counter_id == NsCounter::batch_run_ns;
    std::string family =
        is_time ? fmt::format("pipecache_request_{}_seconds", stem.substr(0, stem.size() - 3))
                : (counter_id == NsCounter::requests ? std::string("pipecache_requests")
                                                     : fmt::format("pipecache_request_{}", stem));
    p.family(family + "_total", Type::counter,
             is_time ? std::string_view(counter_id == NsCounter::batch_wait_ns
                                            ? "Total time requests waited in a batch window, seconds."
                                            : "Total time batch handlers ran, their fallbacks included, seconds.")
                     : counter_help(counter_id));
    for (const TypeSeries& t : types) {
      std::uint64_t v = t.ns->counters[c];
      if (is_time) {
        p.sample("", t.labels, static_cast<double>(v) / 1e9);
      } else {
        p.sample("", t.labels, v);
      }
    }
  }
  p.family("pipecache_request_entries", Type::gauge, "Entries stored per request type.");
  for (const TypeSeries& t : types) p.sample("", t.labels, static_cast<double>(t.ns->entries));
  p.family("pipecache_request_generation", Type::gauge,
           "Invalidation generation of the request type (bumped by '<type>:*').");
  for (const TypeSeries& t : types) {
    p.sample("", t.labels, static_cast<double>(t.ns->generation));
  }
  p.family("pipecache_hit_duration_seconds", Type::histogram,
           "Time to answer a request from the cache.");
  for (const TypeSeries& t : types) {
    prometheus_histogram(p, t.labels, t.ns->histogram(NsHistogram::hit_time));
  }
  p.family("pipecache_compute_duration_seconds", Type::histogram,
           "Time to compute a missed response (the handler).");
  for (const TypeSeries& t : types) {
    prometheus_histogram(p, t.labels, t.ns->histogram(NsHistogram::compute_time));
  }
}

void write_remote_metrics(PrometheusWriter& p, const std::string& name,
                          const pipecache::RemoteStats& r) {
  if (!r.active()) return;
  using Type = PrometheusWriter::Type;
  const Labels seg = {{"segment", name}};
  for (unsigned i = 0; i < pipecache::kRemoteCounterCount; ++i) {
    const auto c = static_cast<pipecache::RemoteCounter>(i);
    p.family(fmt::format("pipecache_remote_{}_total", pipecache::remote_counter_name(c)),
             Type::counter, pipecache::remote_counter_help(c));
    p.sample("", seg, r.counters[i]);
  }
  p.family("pipecache_relay_up", Type::gauge,
           "1 while the segment's relay runs and is subscribed to Redis, else 0.");
  p.sample("", seg, r.relay_connected ? 1.0 : 0.0);
  p.family("pipecache_relay_lag_seconds", Type::histogram,
           "Time from an invalidation's publication on one host to its application here.");
  prometheus_histogram(p, seg, r.lag);
}

}  // namespace pipectl
