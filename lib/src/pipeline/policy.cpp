#include "pipeline/policy.hpp"

#include "util/hash.hpp"

#include <cmath>

#include <array>
#include <mutex>

namespace pipecache::detail {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::pair<std::string, RequestPolicy>> seed_policies() {
  // Stale windows are ours (the design gives only TTLs): whats_next_data is time-sensitive
  // and changes key every minute anyway, so none; the others tolerate a minute of staleness
  // in exchange for never stalling a burst of requests on an expiry.
  //
  // Triggers (the design's per-type lists): the changes each type's answers are built from.
  // What's Next is built from the calendar and the settings; event lists from the calendar;
  // settings from settings. `calendar_sync` (a sync brought new calendar data) and
  // `data_refresh` (the data was reloaded) change calendar data; `settings_update` is a
  // settings write. The seeded rules below add the design's other changes (settings_change,
  // layout_change, navigation_change), so a change reaches exactly the types built from it.
  RequestPolicy whats_next;
  whats_next.ttl = seconds(60);
  whats_next.time_bucket = seconds(60);  // keys carry the minute (the design)
  whats_next.invalidation_triggers = {"calendar_sync", "data_refresh", "settings_update"};
  RequestPolicy events;
  events.ttl = seconds(300);
  events.stale_for = seconds(60);
  events.batch_eligible = true;
  // Batch options: none named, so the config's batch_size / batch_timeout apply (the design's
  // database_query 10 / 50 ms by default, and BATCH_SIZE / BATCH_TIMEOUT_MS keep working).
  events.invalidation_triggers = {"calendar_sync", "data_refresh"};
  RequestPolicy settings;
  settings.ttl = seconds(600);
  settings.stale_for = seconds(60);
  settings.batch_eligible = true;
  settings.invalidation_triggers = {"settings_update"};
  return {{"whats_next_data", whats_next}, {"events_by_range", events}, {"settings_get", settings}};
}

RequestPolicy default_policy(const PipelineConfig& config) {
  RequestPolicy p;
  p.ttl = config.cache_ttl;
  p.stale_for = config.default_stale_for;
  return p;
}

std::map<std::string, std::vector<std::string>> seed_invalidation_rules() {
  return {
      {"data_refresh", {"whats_next_*", "events_by_range:*"}},
      {"settings_change", {"settings_*", "whats_next_*"}},
      {"layout_change", {"whats_next_*"}},
      {"navigation_change", {"whats_next_*"}},
  };
}

std::uint32_t rollout_basis_points(double percent) noexcept {
  if (!(percent > 0)) return 0;
  if (percent >= 100) return kRolloutAll;
  return static_cast<std::uint32_t>(std::lround(percent * 100));
}

bool in_rollout(std::string_view key, std::uint32_t basis_points) noexcept {
  if (basis_points >= kRolloutAll) return true;
  if (basis_points == 0) return false;
  // Any fixed seed other than the store's (0): a change of it re-deals every partial rollout.
  constexpr std::uint64_t kRolloutSeed = 0x726f6c6c6f7574;  // "rollout"
  return XXH3_64bits_withSeed(key.data(), key.size(), kRolloutSeed) % kRolloutAll < basis_points;
}

namespace {

std::atomic<std::uint64_t> g_table_versions{0};
std::uint64_t next_version() noexcept { return g_table_versions.fetch_add(1) + 1; }

// The last few answers of PolicyTable::find on this thread (a server asks for a handful of
// types): a shared_mutex round trip and a string hash cost ~60 ns of a ~500 ns hit.
struct FindMemo {
  const PolicyTable* table = nullptr;
  std::uint64_t version = 0;
  std::shared_ptr<const TypeState> state;
};
constexpr unsigned kMemoSlots = 4;
thread_local std::array<FindMemo, kMemoSlots> t_memo;
thread_local unsigned t_memo_next = 0;

}  // namespace

PolicyTable::PolicyTable(const PipelineConfig& config)
    : config_(config), version_(next_version()) {
  for (auto& [type, policy] : seed_policies()) {
    auto state = make_state(type, policy);
    states_.emplace(type, std::move(state));
  }
  for (const auto& [type, policy] : config.policies) {
    states_.insert_or_assign(type, make_state(type, policy));
  }
}

std::shared_ptr<TypeState> PolicyTable::make_state(std::string request_type,
                                                   RequestPolicy policy) const {
  auto s = std::make_shared<TypeState>();
  s->request_type = std::move(request_type);
  s->deduplicate = policy.deduplicate && config_.enable_request_deduplication;
  s->batch = policy.batch_eligible && config_.enable_request_batching;
  s->key_options.time_bucket = policy.time_bucket;
  s->key_options.max_length = config_.max_key_length;
  s->rollout_bp = rollout_basis_points(policy.rollout_percent);
  if (auto it = config_.batch_profiles.find(policy.batch_profile);
      !policy.batch_profile.empty() && it != config_.batch_profiles.end()) {
    s->batch_options = it->second;
  } else {
    s->batch_options = BatchProfile{config_.batch_size, config_.batch_timeout, BatchMerge::identical_keys};
  }
  s->policy = std::move(policy);
  return s;
}

std::shared_ptr<const TypeState> PolicyTable::find(std::string_view request_type) const {
  const std::uint64_t version = version_.load(std::memory_order_acquire);
  for (const auto& m : t_memo) {
    if (m.table == this && m.version == version && m.state->request_type == request_type) {
      return m.state;
    }
  }
  auto state = find_locked(request_type);
  t_memo[t_memo_next++ % kMemoSlots] = FindMemo{this, version, state};
  return state;
}

std::shared_ptr<const TypeState> PolicyTable::find_locked(std::string_view request_type) const {
  {
    std::shared_lock lock(mu_);
    if (auto it = states_.find(request_type); it != states_.end()) return it->second;
  }
  auto state = make_state(std::string(request_type), default_policy(config_));
  std::unique_lock lock(mu_);
  if (auto it = states_.find(request_type); it != states_.end()) return it->second;
  // Adding a type changes no earlier answer: the version (and the memos) stay valid.
  if (states_.size() < kMaxRememberedTypes) states_.emplace(std::string(request_type), state);
  return state;
}

void PolicyTable::set(std::string request_type, RequestPolicy policy) {
  auto state = make_state(request_type, std::move(policy));
  std::unique_lock lock(mu_);
  states_.insert_or_assign(std::move(request_type), std::move(state));
  version_.store(next_version(), std::memory_order_release);
}

std::vector<std::shared_ptr<const TypeState>> PolicyTable::all() const {
  std::shared_lock lock(mu_);
  std::vector<std::shared_ptr<const TypeState>> out;
  out.reserve(states_.size());
  for (const auto& [type, state] : states_) out.push_back(state);
  return out;
}

}  // namespace pipecache::detail
