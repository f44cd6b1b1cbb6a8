// GET /metrics: the segment's figures in Prometheus text format.
//
// The family names, labels and units are those of `pipectl stats --format prometheus`
// (tools/pipectl/stats.cpp), so one dashboard reads either: a node_exporter textfile written
// by pipectl, or this endpoint. Both call pipectl::write_store_metrics (compiled in here with
// pipectl's writer, which enforces the format's invariants).
#include "server.hpp"

#include "prometheus.hpp"     // tools/pipectl
#include "store_metrics.hpp"  // tools/pipectl

namespace whatsnext {
namespace {

using pipectl::Labels;
using Type = pipectl::PrometheusWriter::Type;

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
  if (stats.store) pipectl::write_store_metrics(p, stats.segment_name, *stats.store);
  return p.text();
}

}  // namespace whatsnext
