// Clocks. CLOCK_MONOTONIC is one time line for every process of the host (DESIGN.md §6), so
// expiry and lease deadlines stored in the segment are comparable across processes.
// The hot path uses CLOCK_MONOTONIC_COARSE (~7 ns a call, 4 ms resolution): TTLs are
// checked to within one tick, which is far below any TTL a response cache uses.
#pragma once

#include <time.h>

#include <cstdint>

namespace pipecache::detail {

inline std::uint64_t to_ns(const timespec& ts) {
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}
inline std::uint64_t mono_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return to_ns(ts);
}
inline std::uint64_t coarse_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return to_ns(ts);
}
// The same two clocks as signed ns, for the pipeline's envelope deadlines (an int64 trailer in
// each value, kForever = INT64_MAX). The coarse one is behind, never ahead: a value judged with
// it is fresh a few ms longer.
inline std::int64_t monotonic_ns() { return static_cast<std::int64_t>(mono_ns()); }
inline std::int64_t monotonic_coarse_ns() { return static_cast<std::int64_t>(coarse_ns()); }
std::uint64_t realtime_ms();
// The coarse clock can lag the fine one by one tick; deadlines set from one and checked
// against the other allow for it.
inline constexpr std::uint64_t kCoarseSlackNs = 10'000'000;

}  // namespace pipecache::detail
