// Cache keys of the request pipeline: "<request_type>:<canonical params>[|t=<bucket>]".
//
// Canonical params are "name=value" pairs joined by '&', in name order (Params is a sorted
// map, so the order in which a caller filled it never matters). Names and values are
// percent-escaped: every byte outside [A-Za-z0-9] and "-_.~:,/+@" becomes %XX (upper-case
// hex). Invariants that make the encoding injective and glob-safe:
//   1. '%' '=' '&' '|' '#' never appear unescaped inside a name or value, so the separators
//      are unambiguous and parse_canonical_params(canonical_params(p)) == p for every p.
//   2. '*' '?' '\' are always escaped, so a glob written for `pipectl keys` never meets a
//      wildcard character inside a key.
//   3. The request type is escaped the same way plus ':', so the namespace (the bytes before
//      the first ':') is exactly the escaped request type.
// Time-bucketed types get "|t=<unix seconds of the bucket start>" unless the params contain
// kDebugTimeParam, which pins the time. A key longer than the limit becomes
// "<type>:#<32 hex digits of XXH3-128 of the full key>": the namespace stays readable and
// '#' cannot start a canonical param string (invariant 1), so hashed and plain keys never meet.
//
// Thread-safety: pure functions.
#pragma once

#include <pipecache/export.hpp>

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace pipecache {

using Params = std::map<std::string, std::string>;

// A parameter that pins the time of a time-bucketed request (no bucket is added).
inline constexpr std::string_view kDebugTimeParam = "debug_time";

PIPECACHE_API std::string escape_key_component(std::string_view text);
// The type with ':' escaped as well (invariant 3).
PIPECACHE_API std::string escape_request_type(std::string_view request_type);
PIPECACHE_API std::string canonical_params(const Params& params);
// Inverse of canonical_params; nullopt for text it could not have produced.
PIPECACHE_API std::optional<Params> parse_canonical_params(std::string_view text);

struct KeyOptions {
  std::chrono::seconds time_bucket{0};  // 0 = not time-bucketed
  std::size_t max_length = 250;         // longer keys are hashed (see above); >= 64
};

PIPECACHE_API std::string make_cache_key(std::string_view request_type, const Params& params,
                           std::chrono::system_clock::time_point now, const KeyOptions& options);

// The start of the bucket that `now` falls in (now itself when bucket is 0).
PIPECACHE_API std::chrono::system_clock::time_point bucket_start(std::chrono::system_clock::time_point now,
                                                   std::chrono::seconds bucket);

}  // namespace pipecache
