#include "common/histogram.hpp"

#include "common/clock.hpp"

#include <algorithm>
#include <vector>

namespace bench {

std::uint64_t LatencyHistogram::lower_bound_of(unsigned index) noexcept {
  if (index < kLinear) return index;
  unsigned exponent = (index - kLinear) / kSub + kSubBits + 1;
  unsigned mantissa = (index - kLinear) % kSub;
  return static_cast<std::uint64_t>(kSub + mantissa) << (exponent - kSubBits);
}

std::uint64_t LatencyHistogram::width_of(unsigned index) noexcept {
  if (index < kLinear) return 1;
  unsigned exponent = (index - kLinear) / kSub + kSubBits + 1;
  return std::uint64_t{1} << (exponent - kSubBits);
}

double LatencyHistogram::percentile_ns(double q) const noexcept {
  if (count_ == 0) return 0;
  double rank = std::clamp(q, 0.0, 1.0) * static_cast<double>(count_);
  double seen = 0;
  for (unsigned i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    double next = seen + static_cast<double>(counts_[i]);
    if (next >= rank) {
      double inside = (rank - seen) / static_cast<double>(counts_[i]);
      double value = static_cast<double>(lower_bound_of(i)) + inside * static_cast<double>(width_of(i));
      return std::min(value, static_cast<double>(max_));
    }
    seen = next;
  }
  return static_cast<double>(max_);
}

LatencyHistogram& LatencyHistogram::operator+=(const LatencyHistogram& other) noexcept {
  for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  max_ = std::max(max_, other.max_);
  return *this;
}

std::uint64_t measure_clock_overhead_ns() {
  // 101 rounds of 1000 pairs: the median round is robust against a preemption in one round.
  std::vector<std::uint64_t> rounds;
  for (int round = 0; round < 101; ++round) {
    std::uint64_t total = 0;
    for (int i = 0; i < 1000; ++i) {
      std::uint64_t a = now_ns();
      std::uint64_t b = now_ns();
      total += b - a;
    }
    rounds.push_back(total / 1000);
  }
  std::nth_element(rounds.begin(), rounds.begin() + 50, rounds.end());
  return rounds[50];
}

}  // namespace bench
