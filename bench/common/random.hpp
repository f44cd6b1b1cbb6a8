// Deterministic randomness for workloads and traces: every run with the same seed issues the
// same operations, so two systems (or two commits) see exactly the same request stream.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace bench {

// SplitMix64: tiny state, passes BigCrush, and cheap enough that generating the operation
// streams before the timed loop takes a few milliseconds.
class SplitMix64 {
 public:
  explicit SplitMix64(std::uint64_t seed) noexcept : state_(seed) {}
  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by multiply-shift (Lemire); the bias is below 2^-32 for our n.
  std::uint64_t below(std::uint64_t n) noexcept {
    return static_cast<std::uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  // Uniform in [0, 1) with 53 random bits.
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Standard normal by Box-Muller (one of the pair is dropped: simplicity over speed).
  double normal() noexcept {
    double u1 = unit();
    double u2 = unit();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  }

 private:
  std::uint64_t state_;
};

// Zipf(alpha) over ranks 0..n-1 (rank 0 the most popular): P(k) proportional to 1/(k+1)^alpha.
// An explicit CDF with binary search is exact for any alpha (including alpha < 1, where the
// usual rejection-inversion shortcuts need care) and costs ~100 ns a draw, which is paid
// before the timed loop, never inside it.
class ZipfSampler {
 public:
  ZipfSampler(std::uint64_t n, double alpha);
  std::uint64_t sample(SplitMix64& rng) const;

 private:
  std::vector<double> cdf_;
};

}  // namespace bench
