// Monotonic time for the benchmarks. CLOCK_MONOTONIC through the vDSO costs ~20-35 ns here,
// which is why the runners time only one operation in kSampleEvery (see throughput/runner.hpp)
// and subtract the clock's own cost, measured at start-up, from every sample.
#pragma once

#include <time.h>

#include <cstdint>

namespace bench {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

// Median cost of a back-to-back pair of now_ns() calls: what a timed sample adds to the
// operation it measures.
std::uint64_t measure_clock_overhead_ns();

}  // namespace bench
