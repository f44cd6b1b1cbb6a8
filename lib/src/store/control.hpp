// What the processes configure beside the store, kept in the segment (layout.hpp,
// ControlBlock and Namespace::cache_switch): per-type runtime switches, change rules, and the
// record of opens configured differently from the segment (configuration drift).
//
// Locking: switches are single atomic words (no lock). Rules are read and written under the
// registry lock with the kRuleWriting protocol of layout.hpp, so a writer killed mid-rule
// needs no repair: its rule is skipped until somebody writes that change again.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pipecache/cache.hpp>

#include "segment/segment.hpp"

namespace pipecache::detail {

// Switch words (Namespace::cache_switch): 0 = none, else kSwitchSet | basis points.
std::uint32_t switch_word(std::optional<double> percent);  // Error outside 0..100
std::optional<double> switch_percent(std::uint32_t word) noexcept;

// Stores the rule (empty patterns: removes it). Error when a pattern holds '\n', the change
// name or the patterns are too long, or every rule slot is taken.
void write_change_rule(Segment& seg, std::string_view change, const std::vector<std::string>& patterns);
std::map<std::string, std::vector<std::string>> read_change_rules(Segment& seg);

// Compares what an opener configured with the opened segment; when they differ, counts it in
// the segment, records it as the last drift, and returns the difference in words ("" when
// none).
std::string note_config_drift(Segment& seg, const Options& configured);
ConfigDrift read_config_drift(const Segment& seg);

}  // namespace pipecache::detail
