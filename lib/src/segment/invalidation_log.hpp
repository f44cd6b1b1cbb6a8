// The segment's log of recent invalidations (layout.hpp: InvalidationLog, its seqlock rules).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include <pipecache/cache.hpp>

#include "segment/layout.hpp"

namespace pipecache::detail {

// Appends a record; never blocks, may drop the record (see layout.hpp).
void log_invalidation(InvalidationLog& log, std::string_view pattern, std::uint64_t removed,
                      bool clear) noexcept;

// The complete records, newest first. Records being written are skipped.
std::vector<InvalidationRecord> read_invalidations(const InvalidationLog& log);

}  // namespace pipecache::detail
