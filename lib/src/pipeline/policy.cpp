#include "pipeline/policy.hpp"

#include <array>
#include <mutex>

namespace pipecache::detail {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<std::pair<std::string, RequestPolicy>> seed_policies() {
  // Stale windows are ours (the design gives only TTLs): whats_next_data is time-sensitive
  // and changes key every minute anyway, so none; the others tolerate a minute of staleness
  // in exchange for never stalling a burst of requests on an expiry.
  RequestPolicy whats_next{seconds(60), milliseconds(0), true, false, {}, seconds(60)};
  RequestPolicy events{seconds(300), seconds(60), true, true, {}, seconds(0)};
  RequestPolicy settings{seconds(600), seconds(60), true, true, {}, seconds(0)};
  return {{"whats_next_data", whats_next}, {"events_by_range", events}, {"settings_get", settings}};
}

std::map<std::string, std::vector<std::string>> seed_invalidation_rules() {
  return {
      {"data_refresh", {"whats_next_*", "events_by_range:*"}},
      {"settings_change", {"settings_*", "whats_next_*"}},
      {"layout_change", {"whats_next_*"}},
      {"navigation_change", {"whats_next_*"}},
  };
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
}

std::shared_ptr<TypeState> PolicyTable::make_state(std::string request_type,
                                                   RequestPolicy policy) const {
  auto s = std::make_shared<TypeState>();
  s->request_type = std::move(request_type);
  s->deduplicate = policy.deduplicate && config_.enable_request_deduplication;
  s->batch = policy.batch_eligible && config_.enable_request_batching;
  s->key_options.time_bucket = policy.time_bucket;
  s->key_options.max_length = config_.max_key_length;
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
  RequestPolicy def{config_.cache_ttl, config_.default_stale_for, true, false, {}, seconds(0)};
  auto state = make_state(std::string(request_type), std::move(def));
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
