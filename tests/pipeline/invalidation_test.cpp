// Invalidation: O(1) namespace invalidation seen by every process, the design's prefix
// spelling, scans for other globs, data-change rules and policy triggers.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include "pipeline/helpers.hpp"
#include "pipeline/invalidation.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

constexpr int kEntries = 300;

Params user(int i) { return {{"user", std::to_string(i)}, {"debug_time", "2024-05-01T10:00"}}; }

// Asks for every entry of `type` in a child process; returns how many were computed there.
int computes_in_child(const PipelineConfig& cfg, const std::string& type, int n) {
  const pid_t pid = testing::spawn([cfg, type, n] {
    Pipeline p(cfg);
    int computes = 0;
    for (int i = 0; i < n; ++i) {
      p.process_request(type, user(i), [&] {
        ++computes;
        return std::string("fresh");
      });
    }
    return computes > 250 ? 250 : computes;  // exit codes are one byte
  });
  const auto st = testing::wait_for(pid, 30s);
  REQUIRE(st.exited);
  return st.code;
}

void fill(Pipeline& p, const std::string& type, int n) {
  for (int i = 0; i < n; ++i) {
    p.process_request(type, user(i), [i] { return "v" + std::to_string(i); });
  }
}

std::uint64_t generation_of(Pipeline& p, std::string_view type) {
  return type_stats(p, type).generation;
}

}  // namespace

TEST_SUITE("pipeline_invalidation") {

TEST_CASE("patterns_map_onto_namespace_invalidations") {
  using pipecache::detail::NamespaceList;
  using pipecache::detail::plan_invalidation;
  int asked = 0;
  auto known = [&] {
    ++asked;
    return NamespaceList{{"whats_next_data", "whats_next_v2", "events_by_range", "settings_get"},
                         false};
  };
  auto plan = plan_invalidation("whats_next_data:*", known);
  CHECK(plan.namespace_globs == std::vector<std::string>{"whats_next_data:*"});
  CHECK_FALSE(plan.scan);
  CHECK(asked == 0);  // the store's own O(1) form needs no list

  plan = plan_invalidation("whats_next_*", known);
  CHECK(plan.namespace_globs == std::vector<std::string>{"whats_next_data:*", "whats_next_v2:*"});
  CHECK_FALSE(plan.scan);

  plan = plan_invalidation("*_by_*:*", known);
  CHECK(plan.namespace_globs == std::vector<std::string>{"events_by_range:*"});

  plan = plan_invalidation("nothing_*", known);
  CHECK(plan.namespace_globs.empty());
  CHECK_FALSE(plan.scan);

  for (const char* scanned : {"events_by_range:from=1*", "*", "*user=3*", "settings_get:a=?"}) {
    plan = plan_invalidation(scanned, known);
    CHECK_MESSAGE(plan.scan, std::string(scanned));
    CHECK(plan.namespace_globs.empty());
  }

  // A full namespace table: some type may have no namespace, so a scan runs as well.
  auto full = [] { return NamespaceList{{"whats_next_data"}, true}; };
  plan = plan_invalidation("whats_next_*", full);
  CHECK(plan.namespace_globs == std::vector<std::string>{"whats_next_data:*"});
  CHECK(plan.scan);
}

TEST_CASE("namespace_invalidation_is_seen_by_every_process") {
  const std::string name = testing::unique_name("pl-inv");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline p(cfg);
  fill(p, "whats_next_data", kEntries);
  fill(p, "events_by_range", 20);
  REQUIRE(computes_in_child(cfg, "whats_next_data", kEntries) == 0);  // all shared hits

  const auto gen_before = generation_of(p, "whats_next_data");
  const std::size_t removed = p.invalidate("whats_next_*");  // the design's spelling
  CHECK(removed == kEntries);
  CHECK(generation_of(p, "whats_next_data") == gen_before + 1);  // O(1): a generation bump
  CHECK(generation_of(p, "events_by_range") == 0);

  // Another process now misses every whats_next_data key, and still hits events_by_range.
  CHECK(computes_in_child(cfg, "whats_next_data", kEntries) == 250);
  CHECK(computes_in_child(cfg, "events_by_range", 20) == 0);

  // The store's own spelling bumps it again.
  p.invalidate("whats_next_data:*");
  CHECK(generation_of(p, "whats_next_data") == gen_before + 2);
  CHECK(computes_in_child(cfg, "whats_next_data", 10) == 10);
}

TEST_CASE("type_globs_select_namespaces_and_other_globs_scan") {
  const std::string name = testing::unique_name("pl-invglob");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  fill(p, "events_by_range", 20);
  fill(p, "events_by_user", 20);
  fill(p, "settings_get", 5);
  const auto range0 = generation_of(p, "events_by_range");
  const auto user0 = generation_of(p, "events_by_user");
  const auto settings0 = generation_of(p, "settings_get");

  CHECK(p.invalidate("events_by_*:*") == 40);
  CHECK(generation_of(p, "events_by_range") == range0 + 1);
  CHECK(generation_of(p, "events_by_user") == user0 + 1);
  CHECK(generation_of(p, "settings_get") == settings0);

  // A glob on the params scans: only the matching keys go, the generation stays.
  fill(p, "events_by_range", 20);
  CHECK(p.invalidate("events_by_range:*user=1*") == 11);  // 1, 10..19
  CHECK(generation_of(p, "events_by_range") == range0 + 1);
  int computes = 0;
  p.process_request("events_by_range", user(2), [&] { ++computes; return std::string(); });
  p.process_request("events_by_range", user(1), [&] { ++computes; return std::string(); });
  CHECK(computes == 1);
  CHECK(p.invalidate("nothing_like_this_*") == 0);
}

// Generations of the three seeded types, relative to a starting point.
struct Generations {
  std::uint64_t whats_next, events, settings;
  static Generations of(Pipeline& p) {
    return {generation_of(p, "whats_next_data"), generation_of(p, "events_by_range"),
            generation_of(p, "settings_get")};
  }
  Generations since(const Generations& start) const {
    return {whats_next - start.whats_next, events - start.events, settings - start.settings};
  }
};

TEST_CASE("data_change_rules_invalidate_the_seeded_types") {
  const std::string name = testing::unique_name("pl-rules");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  fill(p, "whats_next_data", 3);
  fill(p, "events_by_range", 3);
  fill(p, "settings_get", 3);
  const Generations g0 = Generations::of(p);

  p.handle_data_change("settings_change");
  Generations d = Generations::of(p).since(g0);
  CHECK(d.settings == 1);
  CHECK(d.whats_next == 1);
  CHECK(d.events == 0);

  p.handle_data_change("data_refresh");
  d = Generations::of(p).since(g0);
  CHECK(d.whats_next == 2);
  CHECK(d.events == 1);
  CHECK(d.settings == 1);

  p.handle_data_change("layout_change");
  p.handle_data_change("navigation_change");
  d = Generations::of(p).since(g0);
  CHECK(d.whats_next == 4);
  CHECK(d.events == 1);

  p.handle_data_change("unknown_change");  // no rule: nothing happens
  CHECK(Generations::of(p).since(g0).whats_next == 4);
}

// Each change the design names, and what it must invalidate (and nothing else): the seeded
// policies' triggers plus the seeded rules.
TEST_CASE("every_trigger_of_the_design_invalidates_exactly_its_types") {
  const std::string name = testing::unique_name("pl-trig");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline p(cfg);
  struct Expect {
    const char* change;
    int whats_next, events, settings;
  };
  const Expect table[] = {
      {"calendar_sync", 1, 1, 0},    {"data_refresh", 1, 1, 0},   {"settings_update", 1, 0, 1},
      {"settings_change", 1, 0, 1},  {"layout_change", 1, 0, 0},  {"navigation_change", 1, 0, 0},
      {"no_such_change", 0, 0, 0},
  };
  for (const Expect& e : table) {
    INFO(e.change);
    fill(p, "whats_next_data", 3);
    fill(p, "events_by_range", 3);
    fill(p, "settings_get", 3);
    fill(p, "unrelated_type", 3);
    const Generations g0 = Generations::of(p);
    const auto other0 = generation_of(p, "unrelated_type");
    p.handle_data_change(e.change);
    const Generations d = Generations::of(p).since(g0);
    CHECK(d.whats_next == static_cast<std::uint64_t>(e.whats_next));
    CHECK(d.events == static_cast<std::uint64_t>(e.events));
    CHECK(d.settings == static_cast<std::uint64_t>(e.settings));
    CHECK(generation_of(p, "unrelated_type") == other0);
    // End to end: another process now recomputes exactly the invalidated types.
    CHECK(computes_in_child(cfg, "whats_next_data", 3) == 3 * e.whats_next);
    CHECK(computes_in_child(cfg, "events_by_range", 3) == 3 * e.events);
    CHECK(computes_in_child(cfg, "settings_get", 3) == 3 * e.settings);
    CHECK(computes_in_child(cfg, "unrelated_type", 3) == 0);
  }
  // The seeded policies carry the lists.
  using V = std::vector<std::string>;
  CHECK(p.policy("whats_next_data").invalidation_triggers ==
        V{"calendar_sync", "data_refresh", "settings_update"});
  CHECK(p.policy("events_by_range").invalidation_triggers == V{"calendar_sync", "data_refresh"});
  CHECK(p.policy("settings_get").invalidation_triggers == V{"settings_update"});
}

TEST_CASE("rules_and_policy_triggers_are_configurable") {
  const std::string name = testing::unique_name("pl-rules2");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  p.set_invalidation_rule("layout_change", {"events_by_range:*"});
  RequestPolicy pol;
  pol.ttl = 60s;
  pol.invalidation_triggers = {"price_change"};
  p.set_policy("quote", pol);
  fill(p, "whats_next_data", 2);
  fill(p, "events_by_range", 2);
  fill(p, "quote", 2);
  const Generations g0 = Generations::of(p);
  const auto quote0 = generation_of(p, "quote");

  p.handle_data_change("layout_change");
  const Generations d = Generations::of(p).since(g0);
  CHECK(d.events == 1);
  CHECK(d.whats_next == 0);  // the seeded rule was replaced

  p.handle_data_change("price_change");
  CHECK(generation_of(p, "quote") == quote0 + 1);

  p.set_invalidation_rule("layout_change", {});
  CHECK(p.invalidation_rules().count("layout_change") == 0);
  CHECK(p.invalidation_rules().count("data_refresh") == 1);
}

}  // TEST_SUITE
