// The throughput workloads (W1-W4, bench/README.md), and the operation streams they issue.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct Workload {
  std::string name;         // "W1"
  std::string description;  // one line for the table and the README
  std::size_t keys = 0;
  std::size_t value_size = 0;
  double get_fraction = 1.0;  // the rest are puts
  double zipf_alpha = 0;      // 0 = uniform
  // Byte budget given to the systems that have one (pipecache, memcached -m, Redis
  // maxmemory). Budget-less systems (the limit, the naive Boost map) hold everything.
  std::size_t byte_budget = 0;
  bool evicts = false;  // budget below the data: misses are expected, not an error
};

// W1/W2/W3 as bench/README.md defines them. `evict_budget` is W3's budget (bench/run passes the same
// figure to the memcached instance it starts for W3, so all systems get the same budget).
std::vector<Workload> standard_workloads(std::size_t evict_budget);

// One operation: a key index, and whether it is a put. Packed so a stream of 2^20 operations
// is 4 MiB and is walked sequentially (the prefetcher hides it; every system pays the same).
struct Op {
  std::uint32_t bits;
  static constexpr std::uint32_t kPutBit = 1u << 31;
  std::uint32_t index() const noexcept { return bits & ~kPutBit; }
  bool is_put() const noexcept { return (bits & kPutBit) != 0; }
};

inline constexpr std::size_t kStreamOps = std::size_t{1} << 20;  // a power of two: cheap wrap

// The stream of process `process` (0-based) for `workload`, fixed by `seed`. Each process
// gets its own stream so two processes do not march over the same keys in lock step.
std::vector<Op> make_stream(const Workload& workload, unsigned process, std::uint64_t seed);

// Preload order for a Zipf workload: least popular first, so that under a budget the most
// popular keys are the ones left resident (the state a warm cache would be in).
std::vector<std::uint32_t> preload_order(const Workload& workload);

}  // namespace bench
