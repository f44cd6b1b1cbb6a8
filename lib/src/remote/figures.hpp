// The segment's remote block (layout.hpp: RemoteBlock): this host's origin id and the
// relay's, publishers' and second tier's figures. Every function here is a relaxed atomic
// operation on the segment: safe from any thread and process, never blocking.
#pragma once

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "segment/layout.hpp"

namespace pipecache::detail {

// The remote block of the segment `cache` maps (defined in cache.cpp, which owns Cache::Impl).
RemoteBlock& remote_block(const Cache& cache) noexcept;

// This segment's id in invalidation messages: random, non-zero, set once for the segment's
// life by whichever process asks first.
std::uint64_t origin_of(const Cache& cache) noexcept;

void count_remote(const Cache& cache, RemoteCounter counter, std::uint64_t delta = 1) noexcept;
void record_lag(const Cache& cache, std::uint64_t lag_ns) noexcept;

// CLOCK_REALTIME in ns: the only clock two hosts share (approximately), so message lag is
// measured in it.
std::uint64_t realtime_ns() noexcept;

// Invalidates `pattern` in `cache` as Pipeline::invalidate does (plan_invalidation: the
// namespace forms are O(1) generation bumps; other globs scan). Returns entries removed.
std::size_t apply_invalidation(Cache& cache, std::string_view pattern);

// One log line to stderr, "<time> <who>[pid]: <text>", written with one write(2) so lines of
// concurrent processes do not interleave.
void log_line(std::string_view who, std::string_view text) noexcept;

}  // namespace pipecache::detail
