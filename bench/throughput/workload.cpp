#include "throughput/workload.hpp"

#include "common/random.hpp"

#include <numeric>

namespace bench {

std::vector<Workload> standard_workloads(std::size_t evict_budget) {
  std::vector<Workload> w(3);
  w[0].name = "W1";
  w[0].description = "get hit, 10k keys, 1 KiB values, uniform";
  w[0].keys = 10'000;
  w[0].value_size = 1024;
  // 10k * (32 B key + 1 KiB + overhead) ~ 11 MB: 64 MiB leaves no room for eviction.
  w[0].byte_budget = 64u << 20;

  w[1].name = "W2";
  w[1].description = "get hit, 10k keys, 16 KiB values, uniform";
  w[1].keys = 10'000;
  w[1].value_size = 16 * 1024;
  w[1].byte_budget = 256u << 20;  // data ~165 MB

  w[2].name = "W3";
  w[2].description = "90% get / 10% put, Zipf 0.99, 100k keys, 1 KiB, budget < data";
  w[2].keys = 100'000;
  w[2].value_size = 1024;
  w[2].get_fraction = 0.9;
  w[2].zipf_alpha = 0.99;
  w[2].byte_budget = evict_budget;  // data ~106 MB; 32 MiB by default
  w[2].evicts = true;
  return w;
}

std::vector<Op> make_stream(const Workload& workload, unsigned process, std::uint64_t seed) {
  SplitMix64 rng(seed * 0x100000001b3ull + process);
  std::vector<Op> ops(kStreamOps);
  if (workload.zipf_alpha > 0) {
    ZipfSampler zipf(workload.keys, workload.zipf_alpha);
    for (Op& op : ops) op.bits = static_cast<std::uint32_t>(zipf.sample(rng));
  } else {
    for (Op& op : ops) op.bits = static_cast<std::uint32_t>(rng.below(workload.keys));
  }
  if (workload.get_fraction < 1.0)
    for (Op& op : ops)
      if (rng.unit() >= workload.get_fraction) op.bits |= Op::kPutBit;
  return ops;
}

std::vector<std::uint32_t> preload_order(const Workload& workload) {
  std::vector<std::uint32_t> order(workload.keys);
  std::iota(order.rbegin(), order.rend(), 0u);  // rank keys-1 first, rank 0 (hottest) last
  return order;
}

}  // namespace bench
