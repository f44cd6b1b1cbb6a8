// The segment's figures as Prometheus families: the ONE place that spells their names, labels
// and units, shared by `pipectl stats --format prometheus` and the example server's /metrics
// (which compiles this file in), so a dashboard reads either.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

#include "prometheus.hpp"

namespace pipectl {

// Names of the per-request-type counters in output (JSON keys, Prometheus metric stems).
// Indexed by pipecache::NsCounter; the order of that enum is the segment's layout order.
std::string_view counter_name(pipecache::NsCounter counter);

// One line describing a per-request-type counter (Prometheus HELP, man page wording).
std::string_view counter_help(pipecache::NsCounter counter);

// Appends every store and per-request-type family of `s`, each series labelled
// segment="<name>" (and type="<request type>").
void write_store_metrics(PrometheusWriter& p, const std::string& name, const pipecache::Stats& s);

// The same for several segments in one document (pipectl serve --all): each family once, with
// the series of every segment.
struct SegmentStats {
  std::string name;
  pipecache::Stats stats;
};
void write_store_metrics(PrometheusWriter& p, const std::vector<SegmentStats>& segments);
// Appends the relay's, publishers' and second tier's families (pipecache/remote.hpp), labelled
// segment="<name>"; nothing for a segment that never had a relay or a remote figure.
void write_remote_metrics(PrometheusWriter& p, const std::string& name,
                          const pipecache::RemoteStats& r);

}  // namespace pipectl
