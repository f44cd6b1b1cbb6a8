// What every benchmarked system provides. The runner (throughput/runner.hpp) is a template
// over the system type, so the hot loop has no virtual call and each system is measured with
// the same loop.
//
//   class X {
//    public:
//     static constexpr const char* kName;      // column in the table
//     static constexpr bool kZeroCopy;         // reads a view of the stored bytes, no copy
//     static constexpr bool kRemote;           // a server process holds the data (no warm-up)
//     X(const Dataset&, const Environment&);   // in the parent, before fork: build the shared
//                                              // state and preload every key; throws
//                                              // SkipSystem when the system is not available
//     class Client {                           // in each forked worker process
//      public:
//       Client(X&, const Dataset&);            // attach / connect (own per-process state)
//       template <class F> bool read(std::uint32_t index, std::string_view key, F&& on_value);
//                                              // false on a miss; otherwise calls on_value
//                                              // once with the value (checked by the caller)
//       bool write(std::string_view key, std::string_view value);  // false = dropped
//     };
//   };
//
// A system that cannot be measured says why through SkipSystem; the table reports it as
// skipped. Nothing is ever substituted for a missing peer.
#pragma once

#include "common/values.hpp"
#include "throughput/workload.hpp"

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bench {

struct SkipSystem : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Environment {
  std::string memcached_socket;        // for workloads whose data fits
  std::string memcached_evict_socket;  // started with -m = the evicting workload's budget
  std::string redis_socket;
  std::string segment_prefix;          // unique per bench process: runs never collide
};

struct Dataset {
  const Workload& workload;
  const std::vector<std::string>& keys;
  const ValueFactory& values;
};

// Puts every key once, in preload_order, through `put(key, value)`. Version = key index, so
// preloaded bodies vary from key to key.
template <class Put>
void preload(const Dataset& data, Put&& put) {
  std::string value;
  for (std::uint32_t index : preload_order(data.workload)) {
    data.values.make(index, index, value);
    put(std::string_view(data.keys[index]), std::string_view(value));
  }
}

}  // namespace bench
