// A latency histogram that is plain old data, so a forked child can hand it to its parent
// through a pipe as raw bytes.
//
// Log-linear buckets: exact below 32 ns, then 16 buckets per power of two (at most 6.25%
// relative error), up to 2^40 ns. That is finer than the log2 pipecache::Histogram the
// library keeps in its segment, which is too coarse to tell 150 ns from 250 ns.
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

namespace bench {

class LatencyHistogram {
 public:
  static constexpr unsigned kSubBits = 4;
  static constexpr unsigned kSub = 1u << kSubBits;          // buckets per power of two
  static constexpr unsigned kLinear = 2 * kSub;             // values below this are exact
  static constexpr unsigned kMaxExponent = 40;
  static constexpr unsigned kBuckets = kLinear + (kMaxExponent - kSubBits) * kSub;

  void add(std::uint64_t ns) noexcept {
    ++counts_[index_of(ns)];
    ++count_;
    if (ns > max_) max_ = ns;
  }
  std::uint64_t count() const noexcept { return count_; }
  std::uint64_t max() const noexcept { return max_; }
  // Quantile q in [0, 1], interpolated inside its bucket (never above the largest sample);
  // 0 when empty.
  double percentile_ns(double q) const noexcept;
  LatencyHistogram& operator+=(const LatencyHistogram& other) noexcept;

  static unsigned index_of(std::uint64_t ns) noexcept {
    if (ns < kLinear) return static_cast<unsigned>(ns);
    unsigned exponent = 63u - static_cast<unsigned>(__builtin_clzll(ns));  // >= kSubBits + 1
    if (exponent > kMaxExponent) return kBuckets - 1;
    unsigned mantissa = static_cast<unsigned>(ns >> (exponent - kSubBits)) & (kSub - 1);
    return kLinear + (exponent - kSubBits - 1) * kSub + mantissa;
  }
  static std::uint64_t lower_bound_of(unsigned index) noexcept;
  static std::uint64_t width_of(unsigned index) noexcept;

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t count_ = 0;
  std::uint64_t max_ = 0;
};
static_assert(std::is_trivially_copyable_v<LatencyHistogram>);

}  // namespace bench
