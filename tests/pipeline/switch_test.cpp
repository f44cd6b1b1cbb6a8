// What the processes configure in the segment: the per-type runtime switch (pipectl disable /
// enable / rollout) obeyed by forked workers within a second, change rules published by the
// pipelines and applied by name (pipectl change, pipectl rules, the sync script), and
// configuration drift counted and shown.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "helpers.hpp"
#include "pipectl/run.hpp"
#include "support/process.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;
using pipectl_test::pipectl;

namespace {

constexpr int kWorkers = 3;

// What each forked worker reports: when it last ran its handler (a bypass once the type is
// disabled; nothing while its one key is cached), and how many requests it made.
struct WorkerBoard {
  std::atomic<std::int64_t> last_handler_ns[kWorkers];
  std::atomic<std::int64_t> first_handler_after_ns[kWorkers];
  std::atomic<std::int64_t> watch_from_ns{0};  // 0 = not watching
  std::atomic<std::uint64_t> requests[kWorkers];
  std::atomic<bool> stop{false};
};

// A worker: asks for one key of `type` in a loop, as a prefork worker serving a hot route.
void worker_loop(const PipelineConfig& cfg, WorkerBoard* board, int me) {
  Pipeline p(cfg);
  const Params params{{"layout", "4x8"}, {"debug_time", "2024-05-01T10:00"}};
  while (!board->stop.load()) {
    p.process_request("whats_next_data", params, [&] {
      const std::int64_t now = now_ns();
      board->last_handler_ns[me].store(now);
      const std::int64_t from = board->watch_from_ns.load();
      std::int64_t unset = 0;
      if (from != 0 && now >= from) board->first_handler_after_ns[me].compare_exchange_strong(unset, now);
      return std::string("view");
    });
    board->requests[me].fetch_add(1);
    ::usleep(200);
  }
}

nlohmann::json stats_json(const std::string& name) {
  const auto r = pipectl({"stats", "--name", name, "--json"});
  REQUIRE(r.exit_code == 0);
  return nlohmann::json::parse(r.out);
}

const nlohmann::json* type_json(const nlohmann::json& stats, const std::string& type) {
  for (const auto& t : stats["request_types"]) {
    if (t["name"] == type) return &t;
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("pipeline_switch") {

TEST_CASE("pipectl_disable_is_obeyed_by_forked_workers_within_a_second") {
  const std::string name = testing::unique_name("pl-switch");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline parent(cfg);  // creates the segment
  auto* board = shared_block<WorkerBoard>();
  std::vector<pid_t> pids;
  for (int i = 0; i < kWorkers; ++i) {
    pids.push_back(testing::spawn([cfg, board, i] {
      worker_loop(cfg, board, i);
      return 0;
    }));
  }
  // Every worker is serving, and the key is cached: nobody runs the handler any more.
  REQUIRE(eventually([&] {
    for (int i = 0; i < kWorkers; ++i) {
      if (board->requests[i].load() < 20) return false;
    }
    return true;
  }, 10s));
  const std::int64_t quiet_since = now_ns();
  ::usleep(100'000);
  for (int i = 0; i < kWorkers; ++i) CHECK(board->last_handler_ns[i].load() < quiet_since);

  // Disable: each worker's next requests run the handler directly.
  const std::int64_t t0 = now_ns();
  board->watch_from_ns.store(t0);
  const auto off = pipectl({"disable", "whats_next_data", "--name", name});
  REQUIRE(off.exit_code == 0);
  CHECK(off.out.find("0% of keys cached") != std::string::npos);
  REQUIRE(eventually([&] {
    for (int i = 0; i < kWorkers; ++i) {
      if (board->first_handler_after_ns[i].load() == 0) return false;
    }
    return true;
  }, 5s));
  for (int i = 0; i < kWorkers; ++i) {
    const double took_ms = static_cast<double>(board->first_handler_after_ns[i].load() - t0) / 1e6;
    INFO("worker " << i << " obeyed after " << took_ms << " ms");
    CHECK(took_ms < 1000.0);
  }
  // Shown in stats: the switch, and the requests kept out of the cache.
  nlohmann::json st = stats_json(name);
  const nlohmann::json* t = type_json(st, "whats_next_data");
  REQUIRE(t != nullptr);
  CHECK((*t)["switch_percent"] == 0.0);
  CHECK((*t)["counters"]["bypassed"].get<std::uint64_t>() > 0);
  const auto text = pipectl({"stats", "--name", name});
  CHECK(text.out.find("disabled") != std::string::npos);

  // Enable: within a second the workers are back on the cache (no handler runs any more).
  const auto on = pipectl({"enable", "whats_next_data", "--name", name});
  REQUIRE(on.exit_code == 0);
  const std::int64_t t1 = now_ns();
  ::usleep(1'000'000);
  const std::int64_t settled = now_ns();
  ::usleep(200'000);
  for (int i = 0; i < kWorkers; ++i) {
    const std::int64_t last = board->last_handler_ns[i].load();
    INFO("worker " << i << " last handler run " << (last - t1) / 1e6 << " ms after enable");
    CHECK(last < settled);
  }
  board->stop.store(true);
  for (pid_t pid : pids) CHECK(testing::wait_for(pid, 10s).exited);
  free_block(board);

  // Cleared: the policies decide again.
  CHECK(pipectl({"rollout", "whats_next_data", "--clear", "--name", name}).exit_code == 0);
  CHECK(type_json(stats_json(name), "whats_next_data")->at("switch_percent").is_null());
  // Bad input: a percentage out of range, or a missing one.
  CHECK(pipectl({"rollout", "whats_next_data", "150%", "--name", name}).exit_code == 2);
  CHECK(pipectl({"rollout", "whats_next_data", "--name", name}).exit_code == 2);
  CHECK(pipectl({"disable", "--name", name}).exit_code == 2);
}

TEST_CASE("a_runtime_rollout_caches_the_expected_share_and_overrides_the_policy") {
  const std::string name = testing::unique_name("pl-roll");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  RequestPolicy pol;
  pol.ttl = 600s;
  p.set_policy("quote", pol);  // the policy caches everything
  REQUIRE(pipectl({"rollout", "quote", "10%", "--name", name}).exit_code == 0);
  constexpr int kKeys = 4000;
  auto pass = [&] {
    int computes = 0;
    for (int i = 0; i < kKeys; ++i) {
      p.process_request("quote", {{"id", std::to_string(i)}}, [&] {
        ++computes;
        return std::string("v");
      });
    }
    return computes;
  };
  CHECK(pass() == kKeys);
  const int cached = kKeys - pass();
  // Binomial(4000, 0.1): sd ~19 keys; 5 sd either side.
  CHECK(cached > 400 - 95);
  CHECK(cached < 400 + 95);
  const RequestTypeStats t = type_stats(p, "quote");
  CHECK(t.switch_percent == std::optional<double>(10.0));
  CHECK(t.bypassed == static_cast<std::uint64_t>(2 * kKeys - 2 * cached));
  CHECK(t.requests == static_cast<std::uint64_t>(2 * cached));  // bypassed: not requests
}

TEST_CASE("change_rules_live_in_the_segment_and_pipectl_change_applies_them") {
  const std::string name = testing::unique_name("pl-chg");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline p(cfg);
  p.set_invalidation_rule("import_done", {"quote:*"});
  // The seeded rules and triggers, merged, as the worker would apply them.
  const auto rules = p.cache()->change_rules();
  using V = std::vector<std::string>;
  CHECK(rules.at("calendar_sync") == V{"events_by_range:*", "whats_next_data:*"});
  CHECK(rules.at("data_refresh") == V{"events_by_range:*", "whats_next_*", "whats_next_data:*"});
  CHECK(rules.at("settings_update") == V{"settings_get:*", "whats_next_data:*"});
  CHECK(rules.at("import_done") == V{"quote:*"});
  const auto listed = pipectl({"rules", "--name", name});
  CHECK(listed.exit_code == 0);
  CHECK(listed.out.find("calendar_sync") != std::string::npos);
  CHECK(listed.out.find("import_done") != std::string::npos);

  auto fill = [&] {
    for (const char* type : {"whats_next_data", "events_by_range", "settings_get", "quote"}) {
      for (int i = 0; i < 4; ++i) {
        p.process_request(type, {{"id", std::to_string(i)}, {"debug_time", "2024-05-01T10:00"}},
                          [] { return std::string("v"); });
      }
    }
  };
  fill();
  auto r = pipectl({"change", "calendar_sync", "--name", name});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "8\n");  // 4 whats_next_data + 4 events_by_range
  CHECK(type_stats(p, "settings_get").entries == 4);
  CHECK(type_stats(p, "quote").entries == 4);
  r = pipectl({"change", "import_done", "--name", name});
  CHECK(r.out == "4\n");
  r = pipectl({"change", "no_such_change", "--name", name});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("calendar_sync") != std::string::npos);  // the known rules are named

  // Another process with only the seeded configuration applies the published rule too.
  fill();
  const pid_t pid = testing::spawn([cfg] {
    Pipeline other(cfg);
    other.handle_data_change("import_done");
    return 0;
  });
  CHECK(testing::wait_for(pid, 30s).exited);
  CHECK(type_stats(p, "quote").entries == 0);
  CHECK(type_stats(p, "whats_next_data").entries == 4);

  // Removing the rule removes it from the segment.
  p.set_invalidation_rule("import_done", {});
  CHECK(p.cache()->change_rules().count("import_done") == 0);

  // The sync script names the change.
  pipectl_test::RunOptions o;
  o.env = {"PIPECTL=" + pipectl_test::pipectl_path()};
  fill();
  const auto sync = pipectl_test::run_program(pipectl_test::env_path("PIPECTL_SYNC_SCRIPT"),
                                              {"--name", name}, o);
  CHECK(sync.exit_code == 0);
  CHECK(sync.err.find("change calendar_sync: 8 removed") != std::string::npos);
}

TEST_CASE("configuration_drift_is_logged_once_counted_and_shown") {
  const std::string name = testing::unique_name("pl-drift");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);  // 4 MiB
  Pipeline first(cfg);
  CHECK(first.cache()->stats().config_drift.opens == 0);
  cfg.cache_memory_limit_mb = 8;
  cfg.cache_ttl = 42s;
  char log_path[] = "/tmp/pipecache-drift-XXXXXX";
  const int fd = ::mkstemp(log_path);
  REQUIRE(fd >= 0);
  ::close(fd);
  const pid_t pid = testing::spawn([cfg, &log_path] {
    if (std::freopen(log_path, "w", stderr) == nullptr) return 2;
    Pipeline second(cfg);
    Pipeline third(cfg);  // the same process: one more count, the same line not repeated
    const bool ok = second.cache_available() && third.cache_available();
    std::fflush(stderr);  // the child ends with _exit: a file-backed stderr may be buffered
    return ok ? 0 : 1;
  });
  CHECK(testing::wait_for(pid, 30s).code == 0);
  std::string log;
  {
    std::FILE* f = std::fopen(log_path, "r");
    REQUIRE(f != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) log.append(buf, n);
    std::fclose(f);
    std::remove(log_path);
  }
  INFO(log);
  std::size_t lines = 0;
  for (auto at = log.find("another configuration"); at != std::string::npos;
       at = log.find("another configuration", at + 1)) {
    ++lines;
  }
  CHECK(lines == 1);
  CHECK(log.find("byte budget 8388608 configured, the segment has 4194304") != std::string::npos);
  const Stats st = first.cache()->stats();
  CHECK(st.config_drift.opens == 2);
  CHECK(st.config_drift.last_pid == pid);
  CHECK(st.config_drift.last_byte_budget == 8u << 20);
  CHECK(st.config_drift.last_default_ttl == 42s);
  CHECK(st.byte_budget == 4u << 20);  // the segment's stands
  const auto text = pipectl({"stats", "--name", name});
  CHECK(text.out.find("config drift") != std::string::npos);
  CHECK(text.out.find("2 opens configured differently") != std::string::npos);
  CHECK(stats_json(name)["config_drift"]["opens"] == 2);
}

}  // TEST_SUITE
