// pipecache itself, through its public API only (lib/include/pipecache/cache.hpp).
//   "pipecache"       get(key, out): a validated copy into the caller's reused buffer
//   "pipecache-visit" visit(key, reader): a view into the segment, no copy of the value;
//                     the checks run inside the reader (under the stripe lock)
// The parent creates a fresh segment per workload; each worker opens it by name after fork, as
// a prefork worker would. Every entry carries a TTL (kTtl), as a response cache's entries do,
// so each hit pays its expiry check; one hour, so nothing expires mid-run.
#pragma once

#include "systems/system.hpp"

#include <pipecache/cache.hpp>

#include <functional>
#include <optional>
#include <string>

namespace bench {

template <bool kVisit>
class PipecacheSystem {
 public:
  static constexpr const char* kName = kVisit ? "pipecache-visit" : "pipecache";
  static constexpr bool kZeroCopy = kVisit;
  static constexpr bool kRemote = false;
  static constexpr std::chrono::milliseconds kTtl{3'600'000};

  PipecacheSystem(const Dataset& data, const Environment& env)
      : name_(env.segment_prefix + (kVisit ? "-pcv-" : "-pc-") + data.workload.name) {
    pipecache::Cache::remove(name_);
    pipecache::Options options;
    options.name = name_;
    options.byte_budget = data.workload.byte_budget;
    options.default_ttl = std::chrono::milliseconds(0);
    pipecache::Cache cache = pipecache::Cache::create(options);
    preload(data, [&](std::string_view k, std::string_view v) {
      cache.put(k, v, kTtl, 0);
    });
  }
  ~PipecacheSystem() { pipecache::Cache::remove(name_); }
  PipecacheSystem(const PipecacheSystem&) = delete;
  PipecacheSystem& operator=(const PipecacheSystem&) = delete;

  class Client {
   public:
    Client(PipecacheSystem& system, const Dataset&) : cache_(pipecache::Cache::open(system.name_)) {}

    template <class F>
    bool read(std::uint32_t, std::string_view key, F&& on_value) {
      if constexpr (kVisit) {
        // One captured reference: fits std::function's local buffer, so no allocation a read.
        return cache_.visit(key, [&on_value](std::string_view v) { on_value(v); });
      } else {
        if (!cache_.get(key, buffer_)) return false;
        on_value(std::string_view(buffer_));
        return true;
      }
    }
    bool write(std::string_view key, std::string_view value) {
      return cache_.put(key, value, kTtl, 0);
    }
    pipecache::Cache& cache() { return cache_; }

   private:
    pipecache::Cache cache_;
    std::string buffer_;
  };

 private:
  std::string name_;
};

}  // namespace bench
