// Parsing and printing of sizes and durations, shared by pipectl and the pipeline's
// environment configuration so that both accept exactly the same spellings.
//
// Sizes: a whole number with an optional suffix K, M, G, T (KiB multiples; "KB", "KiB", "MB",
// "MiB"... accepted, case-insensitive), e.g. "512", "64M", "1G". Durations: a whole number
// with an optional unit ns, us, ms, s, m, h, d (no unit = seconds), e.g. "300", "5m", "100ms".
// Malformed or overflowing text throws pipecache::Error naming `what` and the text.
#pragma once

#include <pipecache/export.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace pipecache {

PIPECACHE_API std::uint64_t parse_size(std::string_view text, std::string_view what);
PIPECACHE_API std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what);
// Like parse_duration but keeps sub-millisecond precision.
PIPECACHE_API std::chrono::nanoseconds parse_duration_ns(std::string_view text, std::string_view what);
// "true/false/1/0/yes/no/on/off" (case-insensitive); anything else throws naming `what`.
PIPECACHE_API bool parse_bool(std::string_view text, std::string_view what);

PIPECACHE_API std::string format_size(std::uint64_t bytes);                 // "64.0 MiB"
PIPECACHE_API std::string format_duration(std::chrono::nanoseconds d);      // "1.25 ms"

}  // namespace pipecache
