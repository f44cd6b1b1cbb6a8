// tools/invalidate-on-sync.sh, the example hook a calendar sync runs, does what its header
// promises against a live segment: drops exactly the calendar-derived request types, and
// fails the sync job only when stale data could still be served.

#include <fstream>

#include <doctest/doctest.h>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipectl_test;
using testing::SegmentGuard;
using testing::unique_name;

namespace {

RunResult run_script(const std::vector<std::string>& args) {
  RunOptions o;
  o.env = {"PIPECTL=" + pipectl_path()};
  return run_program(env_path("PIPECTL_SYNC_SCRIPT"), args, o);
}

}  // namespace

TEST_SUITE("pipectl_script") {
  TEST_CASE("sync_hook_invalidates_calendar_types_only") {
    std::string name = unique_name("pctl-sync");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    for (int i = 0; i < 5; ++i) cache.put("whats_next_data:user=" + std::to_string(i), "v");
    for (int i = 0; i < 3; ++i) cache.put("events_by_range:from=" + std::to_string(i), "v");
    for (int i = 0; i < 2; ++i) cache.put("settings_get:user=" + std::to_string(i), "v");
    RunResult r = run_script({"--name", name});
    INFO(describe(r));
    CHECK(r.exit_code == 0);
    CHECK(r.err.find("whats_next_data:*: 5 removed") != std::string::npos);
    CHECK(r.err.find("events_by_range:*: 3 removed") != std::string::npos);
    auto left = cache.keys("*");
    CHECK(left.size() == 2);
    for (const auto& k : left) CHECK(k.key.rfind("settings_get:", 0) == 0);

    // Explicit globs replace the defaults.
    RunResult custom = run_script({"--name", name, "settings_get:*"});
    CHECK(custom.exit_code == 0);
    CHECK(cache.keys("*").empty());
  }

  TEST_CASE("sync_hook_succeeds_without_a_segment_and_fails_on_a_broken_one") {
    std::string missing = unique_name("pctl-sync-missing");
    RunResult r = run_script({"--name", missing});
    INFO(describe(r));
    CHECK(r.exit_code == 0);  // nothing cached, nothing stale
    CHECK(r.err.find("does not exist") != std::string::npos);

    std::string broken = unique_name("pctl-sync-broken");
    SegmentGuard guard(broken);
    {
      std::ofstream out(segment_file(broken), std::ios::binary);
      out << std::string(1 << 16, 'z');
    }
    RunResult b = run_script({"--name", broken});
    INFO(describe(b));
    CHECK(b.exit_code == 1);  // stale responses may be served: the sync job must alert
    CHECK(b.err.find(broken) != std::string::npos);

    RunResult usage = run_script({"--bogus"});
    CHECK(usage.exit_code == 2);
  }
}
