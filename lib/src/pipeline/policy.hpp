// Per-request-type policies and the state the pipeline caches per type.
//
// A TypeState is immutable once published (set_policy replaces the whole object), except its
// namespace id, which is resolved lazily against the open segment. Readers hold a
// shared_ptr, so a concurrent set_policy never invalidates a state in use.
//
// Locking: PolicyTable::mu_ guards states_ (shared for lookups, exclusive for changes).
// Lookups on the request path skip the lock through a per-thread memo of recent answers,
// valid while the table's version is unchanged. Versions come from one process-wide counter,
// so a memo can never match a different (later) table at the same address.
#pragma once

#include <pipecache/pipeline.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace pipecache::detail {

// Rollout shares are kept in basis points (1/100 of a percent): 10000 = every key.
inline constexpr std::uint32_t kRolloutAll = 10000;
// Cache::type_switch_word: this bit set = a runtime switch holding basis points below it.
inline constexpr std::uint32_t kSwitchSetBit = 0x80000000u;
std::uint32_t rollout_basis_points(double percent) noexcept;
// Whether `key` is inside a share of `basis_points`: a hash of the key alone (seeded apart
// from the store's hash, so the share does not follow stripes), so one key is always in or
// always out, and a share of s keeps the keys of every smaller share.
bool in_rollout(std::string_view key, std::uint32_t basis_points) noexcept;

struct TypeState {
  std::string request_type;
  RequestPolicy policy;
  bool deduplicate = true;  // policy and config agree
  bool batch = false;       // policy and config agree
  KeyOptions key_options;
  std::uint32_t rollout_bp = kRolloutAll;  // policy.rollout_percent in basis points
  BatchProfile batch_options;              // the policy's profile, else the config's options
  // Namespace id in the segment of one Pipeline generation (its count of opens, from 1):
  // generation << 32 | uint32(id), id -1 when the segment's namespace table is full; an id of
  // another generation (0: none yet) is unresolved. Relaxed: one word, and any thread
  // resolving it in one generation gets the same id.
  mutable std::atomic<std::uint64_t> ns_id{0};
};

// The design's seed policies (DESIGN.md section 4), with their invalidation triggers.
std::vector<std::pair<std::string, RequestPolicy>> seed_policies();
// The policy of a type nobody configured: the config's TTL and stale window.
RequestPolicy default_policy(const PipelineConfig& config);
// The design's seed rules: change type -> patterns for Pipeline::invalidate.
std::map<std::string, std::vector<std::string>> seed_invalidation_rules();

class PolicyTable {
 public:
  explicit PolicyTable(const PipelineConfig& config);

  // The state for the type: its policy, or the config's default policy for unknown types.
  std::shared_ptr<const TypeState> find(std::string_view request_type) const;
  void set(std::string request_type, RequestPolicy policy);
  std::vector<std::shared_ptr<const TypeState>> all() const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  std::shared_ptr<TypeState> make_state(std::string request_type, RequestPolicy policy) const;

  // Unknown types get a remembered default state (so their namespace id is resolved once)
  // up to this many; beyond it, a fresh state per request (a bug upstream, not a leak here).
  static constexpr std::size_t kMaxRememberedTypes = 4096;

  std::shared_ptr<const TypeState> find_locked(std::string_view request_type) const;

  PipelineConfig config_;
  // Changes with every change of states_ (release, after the change; acquire by readers).
  std::atomic<std::uint64_t> version_;
  mutable std::shared_mutex mu_;
  mutable std::unordered_map<std::string, std::shared_ptr<TypeState>, Hash, std::equal_to<>>
      states_;  // GUARDED_BY(mu_)
};

}  // namespace pipecache::detail
