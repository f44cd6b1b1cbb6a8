// Runtime switches, change rules and configuration drift: see control.hpp.
#include "store/control.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "lock/robust_mutex.hpp"
#include "util/clock.hpp"

namespace pipecache::detail {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;
constexpr std::uint64_t kRulesLockTimeoutNs = 2'000'000'000;
constexpr std::uint32_t kBasisPoints = 10000;

// The registry lock, for rules. Owner death: nothing of the rules to repair (layout.hpp).
class RulesLock {
 public:
  explicit RulesLock(Segment& seg) : m_(seg.header().registry_lock) {
    held_ = lock_or_repair(m_, kRulesLockTimeoutNs, [] {}) == LockResult::ok;
  }
  ~RulesLock() {
    if (held_) unlock_robust(m_);
  }
  RulesLock(const RulesLock&) = delete;
  RulesLock& operator=(const RulesLock&) = delete;
  bool held() const noexcept { return held_; }

 private:
  RobustMutex& m_;
  bool held_ = false;
};

std::string_view rule_name(const ChangeRule& r) {
  return {r.name, std::min<std::size_t>(r.name_len, kMaxChangeName)};
}

}  // namespace

std::uint32_t switch_word(std::optional<double> percent) {
  if (!percent) return 0;
  if (!(*percent >= 0 && *percent <= 100)) {
    throw Error(fmt::format("a switch must be between 0% and 100%, not {}%", *percent));
  }
  return kSwitchSet | static_cast<std::uint32_t>(std::lround(*percent * 100));
}

std::optional<double> switch_percent(std::uint32_t word) noexcept {
  if ((word & kSwitchSet) == 0) return std::nullopt;
  return static_cast<double>(std::min(word & ~kSwitchSet, kBasisPoints)) / 100.0;
}

void write_change_rule(Segment& seg, std::string_view change,
                       const std::vector<std::string>& patterns) {
  if (change.empty() || change.size() > kMaxChangeName) {
    throw Error(fmt::format("pipecache segment '{}': change name '{}' must have 1 to {} bytes",
                            seg.name(), change, kMaxChangeName));
  }
  std::string joined;
  for (const auto& p : patterns) {
    if (p.empty() || p.find('\n') != std::string::npos) {
      throw Error(fmt::format("pipecache segment '{}': rule '{}': empty pattern or one with a "
                              "newline", seg.name(), change));
    }
    joined += joined.empty() ? p : "\n" + p;
  }
  if (joined.size() > kMaxRuleBytes) {
    throw Error(fmt::format("pipecache segment '{}': rule '{}': its patterns take {} bytes, a "
                            "rule holds {}", seg.name(), change, joined.size(), kMaxRuleBytes));
  }
  ControlBlock& cb = seg.header().control;
  RulesLock lock(seg);
  if (!lock.held()) {
    throw Error(fmt::format("pipecache segment '{}': registry lock timeout", seg.name()),
                ErrorKind::system);
  }
  ChangeRule* same = nullptr;
  ChangeRule* free_slot = nullptr;
  for (ChangeRule& r : cb.rules) {
    const std::uint32_t st = r.state.load(std::memory_order_acquire);
    if (st == kRuleReady && rule_name(r) == change) same = &r;
    if (st != kRuleReady && free_slot == nullptr) free_slot = &r;  // free or left mid-write
  }
  ChangeRule* slot = same != nullptr ? same : free_slot;
  if (patterns.empty()) {
    if (same != nullptr) same->state.store(kRuleFree, std::memory_order_release);
  } else {
    if (slot == nullptr) {
      throw Error(fmt::format("pipecache segment '{}': no room for rule '{}' ({} rules at most)",
                              seg.name(), change, kMaxChangeRules), ErrorKind::no_space);
    }
    slot->state.store(kRuleWriting, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    std::memset(slot->name, 0, sizeof slot->name);
    std::memcpy(slot->name, change.data(), change.size());
    slot->name_len = static_cast<std::uint16_t>(change.size());
    std::memcpy(slot->patterns, joined.data(), joined.size());
    slot->patterns_len = static_cast<std::uint16_t>(joined.size());
    slot->state.store(kRuleReady, std::memory_order_release);
  }
  cb.rules_version.fetch_add(1, std::memory_order_release);
}

std::map<std::string, std::vector<std::string>> read_change_rules(Segment& seg) {
  std::map<std::string, std::vector<std::string>> out;
  RulesLock lock(seg);
  if (!lock.held()) {
    throw Error(fmt::format("pipecache segment '{}': registry lock timeout", seg.name()),
                ErrorKind::system);
  }
  for (const ChangeRule& r : seg.header().control.rules) {
    if (r.state.load(std::memory_order_acquire) != kRuleReady) continue;
    // Lengths are clamped: a hostile writer may set them, it must not move our reads.
    const std::string_view text(r.patterns, std::min<std::size_t>(r.patterns_len, kMaxRuleBytes));
    std::vector<std::string> patterns;
    std::size_t from = 0;
    while (from <= text.size()) {
      const std::size_t nl = std::min(text.find('\n', from), text.size());
      if (nl > from) patterns.emplace_back(text.substr(from, nl - from));
      from = nl + 1;
    }
    if (!patterns.empty()) out[std::string(rule_name(r))] = std::move(patterns);
  }
  return out;
}

std::string note_config_drift(Segment& seg, const Options& configured) {
  // What create() would have stored for these options, against what the segment holds.
  Geometry want;
  try {
    want = plan_geometry(configured);
  } catch (const Error&) {
    return "";  // options create() would refuse: nothing to compare
  }
  const Geometry& have = seg.geometry();
  std::string diff;
  auto add = [&diff](std::string part) { diff += diff.empty() ? part : "; " + part; };
  if (want.byte_budget != have.byte_budget) {
    add(fmt::format("byte budget {} configured, the segment has {}", want.byte_budget, have.byte_budget));
  }
  if (want.max_entries != have.max_entries) {
    add(fmt::format("max entries {} configured, the segment has {}", want.max_entries, have.max_entries));
  }
  if (want.default_ttl_ns != have.default_ttl_ns) {
    add(fmt::format("default TTL {} ms configured, the segment has {} ms",
                    want.default_ttl_ns / 1000000, have.default_ttl_ns / 1000000));
  }
  if (diff.empty()) return diff;
  ControlBlock& cb = seg.header().control;
  cb.drift_byte_budget.store(want.byte_budget, kRelaxed);
  cb.drift_max_entries.store(want.max_entries, kRelaxed);
  cb.drift_default_ttl_ns.store(want.default_ttl_ns, kRelaxed);
  cb.drift_pid.store(::getpid(), kRelaxed);
  cb.drift_unix_ms.store(realtime_ms(), kRelaxed);
  cb.drift_opens.fetch_add(1, kRelaxed);
  return diff;
}

ConfigDrift read_config_drift(const Segment& seg) {
  const ControlBlock& cb = seg.header().control;
  ConfigDrift d;
  d.opens = cb.drift_opens.load(kRelaxed);
  d.last_pid = cb.drift_pid.load(kRelaxed);
  d.last_unix_ms = cb.drift_unix_ms.load(kRelaxed);
  d.last_byte_budget = cb.drift_byte_budget.load(kRelaxed);
  d.last_max_entries = cb.drift_max_entries.load(kRelaxed);
  d.last_default_ttl = std::chrono::milliseconds(cb.drift_default_ttl_ns.load(kRelaxed) / 1000000);
  return d;
}

}  // namespace pipecache::detail
