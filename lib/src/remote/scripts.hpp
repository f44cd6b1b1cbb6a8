// The Lua scripts pipecache runs in Redis, and the keys they use. Each is one round trip and
// atomic in Redis (a script runs alone), which is what keeps the second tier's invariants
// without a lock of ours:
//
//   pipecache:tier:types              set of request types that used the second tier
//   pipecache:tier:{T}:gen            generation of type T (absent = "0"), INCRed by an
//                                     invalidation of T: O(1) however many values T has
//   pipecache:tier:{T}:<g>:v:<key>    a value of generation g (PX = the type's TTL)
//   pipecache:tier:{T}:<g>:l:<key>    the lease of the host computing it (SET NX PX)
//
// The {T} hash tag puts every key of a type in one Redis Cluster slot. The scripts build value
// and lease keys from the generation they read, which Cluster tolerates only because all of
// them share that slot (docs/scaling.md).
#pragma once

#include <string>
#include <string_view>

namespace pipecache::detail {

// KEYS[1] gen key. ARGV: 1 key prefix "pipecache:tier:{T}:", 2 cache key, 3 lease ms, 4 token.
// Returns {g, value} on a hit; {g, nil, 1} when the caller now holds the lease; {g, nil, 0,
// pttl} while another host holds it.
inline constexpr std::string_view kTierLookupScript = R"lua(
local g = redis.call('GET', KEYS[1]) or '0'
local v = redis.call('GET', ARGV[1] .. g .. ':v:' .. ARGV[2])
if v then return {g, v} end
local lk = ARGV[1] .. g .. ':l:' .. ARGV[2]
if redis.call('SET', lk, ARGV[4], 'NX', 'PX', ARGV[3]) then return {g, false, 1} end
return {g, false, 0, redis.call('PTTL', lk)}
)lua";

// KEYS[1] gen key, KEYS[2] types set. ARGV: 1 prefix, 2 cache key, 3 generation of the lease,
// 4 token, 5 value (absent: only release the lease), 6 TTL ms, 7 type name.
// Drops the caller's lease; stores the value unless the type was invalidated since the lease
// was taken (the value was computed from superseded data). Returns 1 when stored.
inline constexpr std::string_view kTierStoreScript = R"lua(
local lk = ARGV[1] .. ARGV[3] .. ':l:' .. ARGV[2]
if redis.call('GET', lk) == ARGV[4] then redis.call('DEL', lk) end
if ARGV[5] == nil then return 0 end
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[3] then return 0 end
redis.call('SET', ARGV[1] .. ARGV[3] .. ':v:' .. ARGV[2], ARGV[5], 'PX', ARGV[6])
redis.call('SADD', KEYS[2], ARGV[7])
return 1
)lua";

// No KEYS. ARGV: 1 channel, 2 message, 3 type whose generation to bump ("" = every type in
// the types set). Bumps the tier generations THEN publishes: a host that hears the message
// and misses can no longer read a value of the old generation.
inline constexpr std::string_view kInvalidateScript = R"lua(
if ARGV[3] ~= '' then
  redis.call('INCR', 'pipecache:tier:{' .. ARGV[3] .. '}:gen')
else
  for _, t in ipairs(redis.call('SMEMBERS', 'pipecache:tier:types')) do
    redis.call('INCR', 'pipecache:tier:{' .. t .. '}:gen')
  end
end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
)lua";

inline constexpr std::string_view kTierTypesKey = "pipecache:tier:types";

inline std::string tier_prefix(std::string_view type) {
  std::string p = "pipecache:tier:{";
  p += type;
  p += "}:";
  return p;
}

// The one type an invalidation pattern is confined to ("T:..." with no glob character in T),
// or "" when it may reach any type.
inline std::string_view pattern_type(std::string_view pattern) {
  const auto colon = pattern.find(':');
  if (colon == std::string_view::npos || colon == 0) return {};
  const std::string_view t = pattern.substr(0, colon);
  if (t.find_first_of("*?[\\") != std::string_view::npos) return {};
  return t;
}

}  // namespace pipecache::detail
