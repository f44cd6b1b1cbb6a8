#include "common/random.hpp"

#include <algorithm>

namespace bench {

ZipfSampler::ZipfSampler(std::uint64_t n, double alpha) : cdf_(n) {
  double sum = 0;
  for (std::uint64_t k = 0; k < n; ++k) {
    sum += 1.0 / std::pow(static_cast<double>(k + 1), alpha);
    cdf_[k] = sum;
  }
  for (double& c : cdf_) c /= sum;
}

std::uint64_t ZipfSampler::sample(SplitMix64& rng) const {
  double u = rng.unit();
  auto it = std::upper_bound(cdf_.begin(), cdf_.end(), u);
  if (it == cdf_.end()) --it;  // u within rounding of 1.0
  return static_cast<std::uint64_t>(it - cdf_.begin());
}

}  // namespace bench
