// The pipeline's stored value format ("envelope").
//
// A value stored by the pipeline is the handler's bytes followed by an 8-byte trailer: the
// CLOCK_MONOTONIC time (ns, native byte order: one host) until which it is fresh. The store
// keeps it for ttl + stale_for, so between fresh_until and the store's expiry the value is
// stale: served while one process refreshes it. The trailer (not a header) lets a hit drop
// it with a resize instead of moving the payload.
//
// Entry flags (within kUserFlagsMask; the store keeps them, never interprets them):
//   kFlagEnvelope     the value carries the trailer. A value without it (put by another
//                     client through Cache::put) is served as fresh, as it is.
//   kFlagUncacheable  a marker with no payload: the last computed value could not be stored
//                     (too large, or no room). Waiters compute directly instead of queueing
//                     behind a lease that will never yield a value.
#pragma once

#include <pipecache/cache.hpp>

#include "util/clock.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace pipecache::detail {

inline constexpr std::uint16_t kFlagEnvelope = 0x01;
inline constexpr std::uint16_t kFlagUncacheable = 0x02;
static_assert(((kFlagEnvelope | kFlagUncacheable) & ~kUserFlagsMask) == 0);

inline constexpr std::size_t kTrailerBytes = sizeof(std::int64_t);
inline constexpr std::int64_t kForever = INT64_MAX;

// fresh_until for a value computed at `now` with `ttl` (0 = never expires).
inline std::int64_t fresh_until(std::int64_t now, std::chrono::milliseconds ttl) noexcept {
  if (ttl.count() <= 0) return kForever;
  return now + std::chrono::duration_cast<std::chrono::nanoseconds>(ttl).count();
}

inline std::string seal(std::string_view payload, std::int64_t fresh_until_ns) {
  std::string out;
  out.reserve(payload.size() + kTrailerBytes);
  out.append(payload);
  char trailer[kTrailerBytes];
  std::memcpy(trailer, &fresh_until_ns, kTrailerBytes);
  out.append(trailer, kTrailerBytes);
  return out;
}

enum class ValueState { fresh, stale, uncacheable, malformed };

// Strips the trailer from `value` in place (when flagged) and classifies it at time `now`.
inline ValueState open_sealed(std::string& value, std::uint16_t flags, std::int64_t now) noexcept {
  if (flags & kFlagUncacheable) return ValueState::uncacheable;
  if (!(flags & kFlagEnvelope)) return ValueState::fresh;
  if (value.size() < kTrailerBytes) return ValueState::malformed;
  std::int64_t until;
  std::memcpy(&until, value.data() + value.size() - kTrailerBytes, kTrailerBytes);
  value.resize(value.size() - kTrailerBytes);
  return now < until ? ValueState::fresh : ValueState::stale;
}

// The store's TTL for a value: kept through the stale window. 0 = never expires.
inline std::chrono::milliseconds store_ttl(std::chrono::milliseconds ttl,
                                           std::chrono::milliseconds stale_for) noexcept {
  if (ttl.count() <= 0) return std::chrono::milliseconds(0);
  return ttl + std::max(stale_for, std::chrono::milliseconds(0));
}

}  // namespace pipecache::detail
