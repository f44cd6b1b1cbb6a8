// The limit: a process-local std::unordered_map<std::string, std::string>, lookup plus copy
// of the value into the caller's buffer. No sharing, no lock, no validation — what a worker
// gets from a cache of its own, and the ceiling a shared cache is measured against.
// Each worker builds its own map after fork, as each worker of a prefork server would.
#pragma once

#include "systems/system.hpp"

#include <string>
#include <unordered_map>

namespace bench {

class LocalMapSystem {
 public:
  static constexpr const char* kName = "limit";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = false;
  LocalMapSystem(const Dataset&, const Environment&) {}

  class Client {
   public:
    Client(LocalMapSystem&, const Dataset& data) {
      map_.reserve(data.workload.keys);
      preload(data, [&](std::string_view k, std::string_view v) { map_[std::string(k)] = v; });
    }
    template <class F>
    bool read(std::uint32_t, std::string_view key, F&& on_value) {
      // std::string key construction per lookup would cost more than the lookup; libstdc++ 12
      // has no heterogeneous find for unordered_map, so reuse one buffer.
      lookup_key_.assign(key);
      auto it = map_.find(lookup_key_);
      if (it == map_.end()) return false;
      buffer_.assign(it->second);
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view key, std::string_view value) {
      lookup_key_.assign(key);
      map_[lookup_key_].assign(value);
      return true;
    }

   private:
    std::unordered_map<std::string, std::string> map_;
    std::string lookup_key_;
    std::string buffer_;
  };
};

// The stricter limit: the same map looked up with the std::string key already in hand (the
// Dataset's prebuilt key), so neither a key copy nor an allocation is in the loop: only hash,
// probe, compare and the copy of the value. This is what a worker holding its keys as
// std::string pays; a shared cache that gets close to it has nothing left to shave but the
// validation a shared segment needs.
class PrebuiltKeyMapSystem {
 public:
  static constexpr const char* kName = "limit-prebuilt";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = false;
  PrebuiltKeyMapSystem(const Dataset&, const Environment&) {}

  class Client {
   public:
    Client(PrebuiltKeyMapSystem&, const Dataset& data) : keys_(data.keys) {
      map_.reserve(data.workload.keys);
      preload(data, [&](std::string_view k, std::string_view v) { map_[std::string(k)] = v; });
    }
    template <class F>
    bool read(std::uint32_t index, std::string_view, F&& on_value) {
      auto it = map_.find(keys_[index]);
      if (it == map_.end()) return false;
      buffer_.assign(it->second);
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view key, std::string_view value) {  // as the limit's (W3)
      write_key_.assign(key);
      map_[write_key_].assign(value);
      return true;
    }

   private:
    const std::vector<std::string>& keys_;
    std::unordered_map<std::string, std::string> map_;
    std::string write_key_;
    std::string buffer_;
  };
};

// Not a cache: copies the value of index i out of a flat array, no lookup. The floor any
// copying read pays; W2's goal ("within 1.2x of a bare memcpy") is read against it.
class MemcpySystem {
 public:
  static constexpr const char* kName = "memcpy";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = false;
  MemcpySystem(const Dataset& data, const Environment&) {
    if (data.workload.get_fraction < 1.0) throw SkipSystem("read-only baseline");
  }

  class Client {
   public:
    Client(MemcpySystem&, const Dataset& data) {
      values_.resize(data.workload.keys);
      for (std::uint32_t i = 0; i < values_.size(); ++i) data.values.make(i, i, values_[i]);
    }
    template <class F>
    bool read(std::uint32_t index, std::string_view, F&& on_value) {
      buffer_.assign(values_[index]);
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view, std::string_view) { return false; }

   private:
    std::vector<std::string> values_;
    std::string buffer_;
  };
};

}  // namespace bench
