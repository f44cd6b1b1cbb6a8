#include "systems/boost_map.hpp"

#include <boost/container/string.hpp>
#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>
#include <boost/unordered_map.hpp>

#include <functional>

namespace bench {
namespace {

namespace bip = boost::interprocess;
using SegmentManager = bip::managed_shared_memory::segment_manager;
using CharAllocator = bip::allocator<char, SegmentManager>;
using ShmString = boost::container::basic_string<char, std::char_traits<char>, CharAllocator>;

// Hash and equality that also accept a std::string_view, so a lookup does not build a shared
// string (boost::unordered_map's find(key, hash, eq) overload) — the one courtesy we grant.
struct ShmHash {
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
  std::size_t operator()(const ShmString& s) const noexcept {
    return (*this)(std::string_view(s.data(), s.size()));
  }
};
struct ShmEqual {
  bool operator()(const ShmString& a, const ShmString& b) const noexcept { return a == b; }
  bool operator()(std::string_view a, const ShmString& b) const noexcept {
    return a == std::string_view(b.data(), b.size());
  }
};

using Entry = std::pair<const ShmString, ShmString>;
using EntryAllocator = bip::allocator<Entry, SegmentManager>;
using ShmMap = boost::unordered_map<ShmString, ShmString, ShmHash, ShmEqual, EntryAllocator>;

struct Shared {
  explicit Shared(SegmentManager* manager) : map(0, ShmHash{}, ShmEqual{}, EntryAllocator(manager)) {}
  bip::interprocess_mutex mutex;
  ShmMap map;
};

constexpr const char* kObjectName = "bench-map";

bool put_locked(bip::managed_shared_memory& segment, Shared& shared, std::string_view key,
                std::string_view value) {
  bip::scoped_lock<bip::interprocess_mutex> lock(shared.mutex);
  auto it = shared.map.find(key, ShmHash{}, ShmEqual{});
  if (it != shared.map.end()) {
    it->second.assign(value.begin(), value.end());
    return true;
  }
  CharAllocator chars(segment.get_segment_manager());
  shared.map.emplace(ShmString(key.begin(), key.end(), chars),
                     ShmString(value.begin(), value.end(), chars));
  return true;
}

}  // namespace

struct BoostMapSystem::Client::Attached {
  bip::managed_shared_memory segment;
  Shared* shared = nullptr;
};

BoostMapSystem::BoostMapSystem(const Dataset& data, const Environment& env)
    : name_(env.segment_prefix + "-boost-" + data.workload.name) {
  bip::shared_memory_object::remove(name_.c_str());
  // All the data (no eviction) plus the allocator's and the map's own overhead, with room.
  std::size_t bytes = data.workload.keys * (data.workload.value_size + 256) * 3 / 2 + (16u << 20);
  bip::managed_shared_memory segment(bip::create_only, name_.c_str(), bytes);
  Shared* shared = segment.construct<Shared>(kObjectName)(segment.get_segment_manager());
  shared->map.reserve(data.workload.keys);
  preload(data, [&](std::string_view k, std::string_view v) { put_locked(segment, *shared, k, v); });
}

BoostMapSystem::~BoostMapSystem() { bip::shared_memory_object::remove(name_.c_str()); }

BoostMapSystem::Client::Client(BoostMapSystem& system, const Dataset&)
    : attached_(std::make_unique<Attached>()) {
  attached_->segment = bip::managed_shared_memory(bip::open_only, system.name_.c_str());
  attached_->shared = attached_->segment.find<Shared>(kObjectName).first;
  if (attached_->shared == nullptr) throw std::runtime_error("boost map object missing");
}

BoostMapSystem::Client::~Client() = default;

bool BoostMapSystem::Client::get(std::string_view key, std::string& out) {
  Shared& shared = *attached_->shared;
  bip::scoped_lock<bip::interprocess_mutex> lock(shared.mutex);
  auto it = shared.map.find(key, ShmHash{}, ShmEqual{});
  if (it == shared.map.end()) return false;
  out.assign(it->second.data(), it->second.size());
  return true;
}

bool BoostMapSystem::Client::write(std::string_view key, std::string_view value) {
  return put_locked(attached_->segment, *attached_->shared, key, value);
}

}  // namespace bench
