// pipecache — the figures derived from raw counters, each defined once.
//
// `pipectl stats`, `pipectl top`, the status page and its JSON, the pipeline's
// RequestTypeStats and the Batcher's BatcherStats all compute a hit ratio, a batch size, a
// batch formation or a mean through these functions, so no two outputs can disagree about what
// a figure means. `/metrics` exports only the raw counters (Prometheus derives ratios itself
// with rate(), over the window the reader chooses); its series are the inputs named here.
//
// Semantics
//   1. Every figure is a quotient of counters. Its inputs may be totals since creation or the
//      difference of two snapshots (pipectl top): the same definition serves both.
//   2. A figure whose denominator is 0 is undefined and returned as NaN (std::isnan): pipectl
//      prints it as "-", JSON as null. 0 would claim "no hits" where there were no lookups.
//      APIs documented as "0 when there were none" (RequestTypeStats, BatcherStats) wrap the
//      figure in or_zero().
//   3. The request figures count a stale answer as answered from the cache: the handler did
//      not run for that request.
#pragma once

#include <pipecache/cache.hpp>

#include <cstdint>
#include <limits>

namespace pipecache::figures {

// part / whole; NaN when whole is 0.
constexpr double ratio(std::uint64_t part, std::uint64_t whole) noexcept {
  return whole == 0 ? std::numeric_limits<double>::quiet_NaN()
                    : static_cast<double>(part) / static_cast<double>(whole);
}

// The figure, or 0 where it is undefined (semantics 2).
constexpr double or_zero(double figure) noexcept { return figure != figure ? 0.0 : figure; }

// Store lookups (Cache::get and friends) that found a value: hits / (hits + misses).
constexpr double lookup_hit_ratio(std::uint64_t hits, std::uint64_t misses) noexcept {
  return ratio(hits, hits + misses);
}

// Requests of a type answered from the cache, fresh or stale: (hits + stale_served) / requests.
constexpr double request_hit_ratio(std::uint64_t hits, std::uint64_t stale_served,
                                   std::uint64_t requests) noexcept {
  return ratio(hits + stale_served, requests);
}

// Requests per batch. Each request of a batch is answered either by the batch handler
// (batched_requests) or alone after its batch failed (batch_fallbacks), never both.
constexpr double average_batch_size(std::uint64_t batched_requests, std::uint64_t batch_fallbacks,
                                    std::uint64_t batches) noexcept {
  return ratio(batched_requests + batch_fallbacks, batches);
}

// Share of the requests handed to a batcher that joined a batch of 2 or more (the design's
// target for a batch-eligible type under load is > 0.7).
constexpr double batch_formation(std::uint64_t joined, std::uint64_t batchable_requests) noexcept {
  return ratio(joined, batchable_requests);
}

// Mean time a batched request waited for its window to close, in ns.
constexpr double mean_batch_wait_ns(std::uint64_t batch_wait_ns, std::uint64_t batched_requests,
                                    std::uint64_t batch_fallbacks) noexcept {
  return ratio(batch_wait_ns, batched_requests + batch_fallbacks);
}

// Mean time a batch handler ran per request it answered (the batch's run time spread over its
// requests, fallbacks included), in ns. The design's "batch time per request".
constexpr double mean_batch_run_ns(std::uint64_t batch_run_ns, std::uint64_t batched_requests,
                                   std::uint64_t batch_fallbacks) noexcept {
  return ratio(batch_run_ns, batched_requests + batch_fallbacks);
}

// Mean of a latency histogram, in ns.
constexpr double mean_ns(std::uint64_t sum_ns, std::uint64_t count) noexcept {
  return ratio(sum_ns, count);
}

// Entry bytes (keys + values + overhead) against the budget fixed at creation.
constexpr double budget_used(std::uint64_t bytes_used, std::uint64_t byte_budget) noexcept {
  return ratio(bytes_used, byte_budget);
}

// Free arena bytes in blocks too small for the largest entry, against all free bytes.
constexpr double fragmentation(std::uint64_t fragmented_bytes, std::uint64_t free_bytes) noexcept {
  return ratio(fragmented_bytes, free_bytes);
}

// External fragmentation as `pipectl inspect` shows it: the share of free bytes NOT in the
// largest free block (0: one block holds all free memory; near 1: it is scattered in crumbs).
// Unlike fragmentation() it needs no entry size limit, only the free list's shape.
constexpr double free_outside_largest_block(std::uint64_t largest_free_block,
                                            std::uint64_t free_bytes) noexcept {
  return free_bytes == 0 ? ratio(0, 0)
                         : 1.0 - static_cast<double>(largest_free_block) /
                                     static_cast<double>(free_bytes);
}

// The same figures read from the store's snapshots.
inline double lookup_hit_ratio(const Stats& s) noexcept { return lookup_hit_ratio(s.hits, s.misses); }
inline double budget_used(const Stats& s) noexcept { return budget_used(s.bytes_used, s.byte_budget); }
inline double fragmentation(const Stats& s) noexcept {
  return fragmentation(s.fragmented_bytes, s.free_bytes);
}
inline double mean_ns(const Histogram& h) noexcept { return mean_ns(h.sum_ns, h.count); }

inline double request_hit_ratio(const NamespaceStats& ns) noexcept {
  return request_hit_ratio(ns.counter(NsCounter::hits), ns.counter(NsCounter::stale_served),
                           ns.counter(NsCounter::requests));
}
inline double average_batch_size(const NamespaceStats& ns) noexcept {
  return average_batch_size(ns.counter(NsCounter::batched_requests),
                            ns.counter(NsCounter::batch_fallbacks), ns.counter(NsCounter::batches));
}
inline double batch_formation(const NamespaceStats& ns) noexcept {
  return batch_formation(ns.counter(NsCounter::batch_joined),
                         ns.counter(NsCounter::batchable_requests));
}
inline double mean_batch_run_ns(const NamespaceStats& ns) noexcept {
  return mean_batch_run_ns(ns.counter(NsCounter::batch_run_ns),
                           ns.counter(NsCounter::batched_requests),
                           ns.counter(NsCounter::batch_fallbacks));
}
inline double mean_batch_wait_ns(const NamespaceStats& ns) noexcept {
  return mean_batch_wait_ns(ns.counter(NsCounter::batch_wait_ns),
                            ns.counter(NsCounter::batched_requests),
                            ns.counter(NsCounter::batch_fallbacks));
}

}  // namespace pipecache::figures
