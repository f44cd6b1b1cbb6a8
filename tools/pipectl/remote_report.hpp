// The many-hosts figures of a segment (pipecache/remote.hpp: relay, publishers, second tier)
// in pipectl's text and JSON reports; the Prometheus families are in store_metrics.hpp.
#pragma once

#include <string>

#include <pipecache/remote.hpp>

#include "json_writer.hpp"

namespace pipectl {

// Lines for `pipectl stats`, empty when the segment never had a relay or a remote figure.
std::string remote_text(const pipecache::RemoteStats& r);
// The "remote" member of `pipectl stats --format json` (null when inactive).
void remote_json(JsonWriter& j, const pipecache::RemoteStats& r);

}  // namespace pipectl
