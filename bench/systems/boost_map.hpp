// The naive shared design — what most people write first: Boost.Interprocess
// managed_shared_memory holding one boost::unordered_map of shared strings, guarded by one
// interprocess_mutex held for the lookup AND the copy of the value. Each worker opens the
// segment by name after fork.
//
// It has no budget and no eviction (W3 gets a segment large enough for all the data), and
// its mutex is not robust (DESIGN.md section 6): both are part of what it stands for.
#pragma once

#include "systems/system.hpp"

#include <memory>
#include <string>

namespace bench {

class BoostMapSystem {
 public:
  static constexpr const char* kName = "boost-map";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = false;
  BoostMapSystem(const Dataset& data, const Environment& env);
  ~BoostMapSystem();
  BoostMapSystem(const BoostMapSystem&) = delete;
  BoostMapSystem& operator=(const BoostMapSystem&) = delete;

  class Client {
   public:
    Client(BoostMapSystem& system, const Dataset& data);
    ~Client();
    template <class F>
    bool read(std::uint32_t, std::string_view key, F&& on_value) {
      if (!get(key, buffer_)) return false;
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view key, std::string_view value);

   private:
    bool get(std::string_view key, std::string& out);
    struct Attached;
    std::unique_ptr<Attached> attached_;
    std::string buffer_;
  };

 private:
  std::string name_;
};

}  // namespace bench
