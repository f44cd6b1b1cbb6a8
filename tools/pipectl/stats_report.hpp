// The JSON form of a segment's statistics: one writer shared by `pipectl stats --json` and
// `pipectl serve`'s /api/stats, so a script and the status page read the same fields.
#pragma once

#include <string>
#include <vector>

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

#include "json_writer.hpp"

namespace pipectl {

// Writes one JSON object (segment, counters, memory, request_types...) as the next value of `j`;
// with `invalidations`, also "recent_invalidations": [{pattern, unix_ms, removed, clear}];
// with `remote`, also "remote" (the relay's, publishers' and second tier's figures, or null).
void write_stats_json(JsonWriter& j, const std::string& name, const pipecache::Stats& s,
                      const std::vector<pipecache::InvalidationRecord>* invalidations = nullptr,
                      const pipecache::RemoteStats* remote = nullptr);

}  // namespace pipectl
