// Configuration without code: the JSON file (PIPECACHE_CONFIG_FILE / from_file), the per-type
// variables (PIPECACHE_POLICY_*, PIPECACHE_BATCH_*, PIPECACHE_RULE_*), their precedence, and
// errors that name the file, the line and the field. Also what the pipeline does with them:
// percentage rollouts and per-type batch options.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

extern "C" char** environ;

// Removes every PIPECACHE_* variable (and the design's unprefixed names) for a test's scope.
struct CleanEnvironment {
  CleanEnvironment() { clear(); }
  ~CleanEnvironment() { clear(); }
  static void clear() {
    std::vector<std::string> names;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const std::string name = entry.substr(0, entry.find('='));
      if (name.rfind("PIPECACHE_", 0) == 0 || name == "CACHE_TTL_SECONDS" || name == "BATCH_SIZE" ||
          name == "BATCH_TIMEOUT_MS") {
        names.push_back(name);
      }
    }
    for (const auto& n : names) ::unsetenv(n.c_str());
  }
};

// A file in a temporary directory, removed with the object.
struct TempFile {
  explicit TempFile(const std::string& text) {
    char tmpl[] = "/tmp/pipecache-config-XXXXXX";
    const int fd = ::mkstemp(tmpl);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = tmpl;
    std::ofstream(path) << text;
  }
  ~TempFile() { std::remove(path.c_str()); }
  std::string path;
};

// The message of the Error reading `text` throws; "" when it loads.
std::string file_error(const std::string& text) {
  TempFile f(text);
  try {
    PipelineConfig::from_file(f.path);
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find(f.path) != std::string::npos);  // every error names the file
    return msg;
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const char* kFullFile = R"({
  "segment_name": "from-file",
  "cache_ttl": "120s",
  "batch_size": 7,
  "enable_request_deduplication": false,
  "batch_profiles": {
    "event_processing": { "batch_size": 4 },
    "bulk": { "batch_size": 50, "batch_timeout": "200ms", "merge": "none" }
  },
  "policies": {
    "events_by_range": { "ttl": "30s", "invalidation_triggers": ["calendar_sync", "import_done"] },
    "quote": { "stale_for": "5s", "batch_eligible": true, "batch_profile": "bulk", "rollout": "25%" }
  },
  "invalidation_rules": {
    "layout_change": [],
    "import_done": ["quote:*"]
  }
}
)";

}  // namespace

TEST_SUITE("pipeline_config_file") {

TEST_CASE("a_file_sets_fields_policies_profiles_and_rules") {
  CleanEnvironment env;
  TempFile f(kFullFile);
  const PipelineConfig c = PipelineConfig::from_file(f.path);
  CHECK(c.config_file == f.path);
  CHECK(c.segment_name == "from-file");
  CHECK(c.cache_ttl == 120s);
  CHECK(c.batch_size == 7);
  CHECK_FALSE(c.enable_request_deduplication);
  // A seeded profile keeps the fields the file does not give.
  CHECK(c.batch_profiles.at("event_processing").batch_size == 4);
  CHECK(c.batch_profiles.at("event_processing").batch_timeout == 30ms);
  CHECK(c.batch_profiles.at("database_query").batch_size == 10);
  CHECK(c.batch_profiles.at("bulk").batch_timeout == 200ms);
  CHECK(c.batch_profiles.at("bulk").merge == BatchMerge::none);
  // A seeded policy keeps the fields the file does not give (here stale_for and batching).
  const RequestPolicy& events = c.policies.at("events_by_range");
  CHECK(events.ttl == 30s);
  CHECK(events.stale_for == 60s);
  CHECK(events.batch_eligible);
  CHECK(events.invalidation_triggers == std::vector<std::string>{"calendar_sync", "import_done"});
  // A new type starts from the defaults, with the file's cache_ttl.
  const RequestPolicy& quote = c.policies.at("quote");
  CHECK(quote.ttl == 120s);
  CHECK(quote.stale_for == 5s);
  CHECK(quote.batch_profile == "bulk");
  CHECK(quote.rollout_percent == doctest::Approx(25.0));
  CHECK(c.invalidation_rules.at("layout_change").empty());
  CHECK(c.invalidation_rules.at("import_done") == std::vector<std::string>{"quote:*"});
}

TEST_CASE("the_pipeline_applies_the_file") {
  CleanEnvironment env;
  const std::string name = testing::unique_name("pl-cfgfile");
  testing::SegmentGuard guard(name);
  TempFile f(kFullFile);
  PipelineConfig c = PipelineConfig::from_file(f.path);
  c.segment_name = name;
  c.cache_memory_limit_mb = 4;
  Pipeline p(c);
  CHECK(p.policy("events_by_range").ttl == 30s);
  CHECK(p.policy("quote").batch_profile == "bulk");
  // The file's rule: import_done -> quote:*, and events_by_range's own trigger.
  const Params one{{"id", "1"}};
  int computes = 0;
  auto ask = [&](std::string_view type) {
    p.process_request(type, one, [&] {
      ++computes;
      return std::string("v");
    });
  };
  ask("events_by_range");
  ask("events_by_range");
  CHECK(computes == 1);
  p.handle_data_change("import_done");
  ask("events_by_range");
  CHECK(computes == 2);
  // layout_change's seeded rule was removed by the file: whats_next_data survives it.
  ask("whats_next_data");
  ask("whats_next_data");
  CHECK(computes == 3);
  p.handle_data_change("layout_change");
  ask("whats_next_data");
  CHECK(computes == 3);
  CHECK(p.invalidation_rules().count("layout_change") == 0);
}

TEST_CASE("the_environment_names_the_file_and_overrides_it") {
  CleanEnvironment env;
  TempFile f(kFullFile);
  ::setenv("PIPECACHE_CONFIG_FILE", f.path.c_str(), 1);
  ::setenv("PIPECACHE_BATCH_SIZE", "3", 1);
  ::setenv("PIPECACHE_POLICY_quote", "ttl=9s; rollout=50%", 1);
  ::setenv("PIPECACHE_POLICY_fresh_type", "ttl=2m; invalidation_triggers=a, b", 1);
  ::setenv("PIPECACHE_BATCH_bulk", "batch_size=20", 1);
  ::setenv("PIPECACHE_BATCH_tiny", "batch_size=2; batch_timeout=5ms; merge=identical_keys", 1);
  ::setenv("PIPECACHE_RULE_import_done", "quote:*, fresh_type:*", 1);
  ::setenv("PIPECACHE_RULE_data_refresh", "", 1);  // empty: removes the rule
  const PipelineConfig c = PipelineConfig::from_environment();
  CHECK(c.config_file == f.path);
  CHECK(c.segment_name == "from-file");
  CHECK(c.batch_size == 3);  // the variable beats the file
  // The variable changes only the fields it names: the rest come from the file.
  CHECK(c.policies.at("quote").ttl == 9s);
  CHECK(c.policies.at("quote").rollout_percent == doctest::Approx(50.0));
  CHECK(c.policies.at("quote").stale_for == 5s);
  CHECK(c.policies.at("quote").batch_profile == "bulk");
  CHECK(c.policies.at("fresh_type").ttl == 120s);
  CHECK(c.policies.at("fresh_type").invalidation_triggers == std::vector<std::string>{"a", "b"});
  CHECK(c.batch_profiles.at("bulk").batch_size == 20);
  CHECK(c.batch_profiles.at("bulk").batch_timeout == 200ms);
  CHECK(c.batch_profiles.at("tiny").batch_timeout == 5ms);
  CHECK(c.invalidation_rules.at("import_done") == std::vector<std::string>{"quote:*", "fresh_type:*"});
  CHECK(c.invalidation_rules.at("data_refresh").empty());
}

TEST_CASE("a_malformed_file_is_rejected_with_its_line_and_field") {
  CleanEnvironment env;
  // Syntax error: a missing comma after line 2.
  std::string msg = file_error("{\n  \"batch_size\": 4\n  \"cache_ttl\": \"1s\"\n}\n");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "syntax error"));
  // Unknown key, on line 3, inside a policy.
  msg = file_error("{\n  \"policies\": {\n    \"quote\": { \"tll\": \"5s\" }\n  }\n}\n");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "policies.quote.tll"));
  CHECK(contains(msg, "unknown field"));
  CHECK(contains(msg, "ttl"));  // the known fields are listed
  // Unknown top-level key.
  msg = file_error("{\n\n  \"cache_tll\": \"5s\"\n}");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "cache_tll"));
  // Malformed values, each on its own line.
  msg = file_error("{\n  \"batch_size\": 4,\n  \"batch_timeout\": 50\n}");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "batch_timeout"));
  CHECK(contains(msg, "no unit"));
  msg = file_error("{\n  \"batch_size\": -1\n}");
  CHECK(contains(msg, "line 2"));
  CHECK(contains(msg, "batch_size"));
  msg = file_error("{\n  \"enable_response_caching\": \"perhaps\"\n}");
  CHECK(contains(msg, "line 2"));
  CHECK(contains(msg, "enable_response_caching"));
  msg = file_error("{\"policies\": {\n \"q\": {\n  \"rollout\": \"150%\"}}}");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "policies.q.rollout"));
  msg = file_error("{\"policies\": {\"q\": {\n\"invalidation_triggers\": [\"a\",\n 7]}}}");
  CHECK(contains(msg, "line 3"));  // the element's line
  CHECK(contains(msg, "policies.q.invalidation_triggers"));
  msg = file_error("{\"batch_profiles\": {\"b\": {\"merge\": \"blend\"}}}");
  CHECK(contains(msg, "line 1"));
  CHECK(contains(msg, "batch_profiles.b.merge"));
  msg = file_error("{\n\"policies\": {\"q\": {\n\n \"batch_profile\": \"nowhere\"}}}");
  CHECK(contains(msg, "line 4"));
  CHECK(contains(msg, "nowhere"));
  msg = file_error("{\n\"policies\": 3}");
  CHECK(contains(msg, "line 2"));
  CHECK(contains(msg, "expected an object"));
  // A key given twice.
  msg = file_error("{\n  \"batch_size\": 4,\n  \"batch_size\": 5\n}");
  CHECK(contains(msg, "line 3"));
  CHECK(contains(msg, "given twice"));
  CHECK(contains(msg, "line 2"));
  // Not an object at all; empty file.
  CHECK(contains(file_error("[1, 2]"), "object"));
  CHECK(contains(file_error(""), "line 1"));
  // A file that cannot be read.
  try {
    PipelineConfig::from_file("/nonexistent/pipecache.json");
    FAIL("no error");
  } catch (const Error& e) {
    CHECK(contains(e.what(), "/nonexistent/pipecache.json"));
  }
}

TEST_CASE("malformed_per_type_variables_name_the_variable_and_field") {
  CleanEnvironment env;
  auto error_of = [](const char* var, const char* value) -> std::string {
    CleanEnvironment::clear();
    ::setenv(var, value, 1);
    try {
      PipelineConfig::from_environment();
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  };
  std::string msg = error_of("PIPECACHE_POLICY_quote", "ttl=fast");
  CHECK(contains(msg, "PIPECACHE_POLICY_quote"));
  CHECK(contains(msg, "ttl"));
  msg = error_of("PIPECACHE_POLICY_quote", "ttl");
  CHECK(contains(msg, "name=value"));
  msg = error_of("PIPECACHE_POLICY_quote", "color=red");
  CHECK(contains(msg, "unknown field"));
  msg = error_of("PIPECACHE_POLICY_quote", "ttl=1s; ttl=2s");
  CHECK(contains(msg, "twice"));
  msg = error_of("PIPECACHE_POLICY_quote", "batch_profile=nowhere");
  CHECK(contains(msg, "nowhere"));
  msg = error_of("PIPECACHE_BATCH_bulk", "batch_size=0");
  CHECK(contains(msg, "PIPECACHE_BATCH_bulk"));
  msg = error_of("PIPECACHE_CONFIG_FILE", "/nonexistent/x.json");
  CHECK(contains(msg, "/nonexistent/x.json"));
}

TEST_CASE("set_policy_rejects_what_validate_rejects") {
  const std::string name = testing::unique_name("pl-setpol");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  RequestPolicy bad;
  bad.rollout_percent = 101;
  CHECK_THROWS_AS(p.set_policy("t", bad), Error);
  bad.rollout_percent = 100;
  bad.batch_profile = "nowhere";
  CHECK_THROWS_AS(p.set_policy("t", bad), Error);
  bad.batch_profile = "event_processing";
  CHECK_NOTHROW(p.set_policy("t", bad));
}

// A rollout of N% caches the keys whose stable hash falls in the share: about N% of them,
// the same keys in every process, always.
TEST_CASE("a_percentage_rollout_caches_the_expected_share_of_keys") {
  const std::string name = testing::unique_name("pl-rollout");
  testing::SegmentGuard guard(name);
  const PipelineConfig cfg = small_config(name);
  Pipeline p(cfg);
  RequestPolicy pol;
  pol.ttl = 600s;
  pol.rollout_percent = 30;
  p.set_policy("quote", pol);
  constexpr int kKeys = 4000;
  auto pass = [](Pipeline& pl, std::vector<char>* computed) {
    int computes = 0;
    for (int i = 0; i < kKeys; ++i) {
      pl.process_request("quote", {{"id", std::to_string(i)}}, [&] {
        ++computes;
        if (computed != nullptr) (*computed)[i] = 1;
        return std::string("v");
      });
    }
    return computes;
  };
  CHECK(pass(p, nullptr) == kKeys);  // all miss the first time
  std::vector<char> second(kKeys, 0);
  const int recomputed = pass(p, &second);
  const int cached = kKeys - recomputed;
  // Binomial(4000, 0.3): sd ~29 keys; 5 sd either side.
  CHECK(cached > 1200 - 145);
  CHECK(cached < 1200 + 145);
  // Stable: a third pass recomputes exactly the same keys.
  std::vector<char> third(kKeys, 0);
  CHECK(pass(p, &third) == recomputed);
  CHECK(third == second);
  // Another process with the same policy hits exactly the cached keys.
  const pid_t pid = testing::spawn([cfg, pol, &pass, recomputed] {
    Pipeline child(cfg);
    child.set_policy("quote", pol);
    return pass(child, nullptr) == recomputed ? 0 : 1;
  });
  const auto st = testing::wait_for(pid, 60s);
  CHECK(st.exited);
  CHECK(st.code == 0);
  // 0% and 100% are exact.
  pol.rollout_percent = 0;
  p.set_policy("quote", pol);
  CHECK(pass(p, nullptr) == kKeys);
  pol.rollout_percent = 100;
  p.set_policy("quote", pol);
  pass(p, nullptr);
  CHECK(pass(p, nullptr) == 0);
}

TEST_CASE("a_type_batches_with_its_profile") {
  const std::string name = testing::unique_name("pl-profile");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_timeout = 5s;  // the config's own window: never used by the profiled type
  cfg.batch_profiles["event_processing"].batch_timeout = 5s;  // size decides, not time
  Pipeline p(cfg);
  RequestPolicy pol;
  pol.ttl = 60s;
  pol.batch_eligible = true;
  pol.batch_profile = "event_processing";  // the design's 5 per batch
  p.set_policy("event_digest", pol);
  std::mutex mu;
  std::vector<std::size_t> sizes;
  p.register_batch_handler("event_digest", [&](const std::vector<Params>& batch) {
    {
      std::lock_guard lock(mu);
      sizes.push_back(batch.size());
    }
    return std::vector<std::string>(batch.size(), "batched");
  });
  std::latch start(10);
  std::vector<std::thread> threads;
  for (int i = 0; i < 10; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      CHECK(p.process_request("event_digest", {{"id", std::to_string(i)}}, [] {
        return std::string("single");
      }) == "batched");
    });
  }
  for (auto& t : threads) t.join();
  CHECK(sizes == std::vector<std::size_t>{5, 5});
}

TEST_CASE("merge_none_gives_every_request_its_own_slot") {
  const std::string name = testing::unique_name("pl-merge");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_profiles["separate"] = BatchProfile{4, std::chrono::milliseconds(5000), BatchMerge::none};
  cfg.batch_profiles["shared"] = BatchProfile{4, std::chrono::milliseconds(300), BatchMerge::identical_keys};
  Pipeline p(cfg);
  for (const char* profile : {"separate", "shared"}) {
    INFO(profile);
    RequestPolicy pol;
    pol.ttl = 60s;
    pol.deduplicate = false;  // so that identical requests all reach the batch
    pol.batch_eligible = true;
    pol.batch_profile = profile;
    const std::string type = std::string("t_") + profile;
    p.set_policy(type, pol);
    std::mutex mu;
    std::vector<std::size_t> sizes;
    p.register_batch_handler(type, [&](const std::vector<Params>& batch) {
      std::lock_guard lock(mu);
      sizes.push_back(batch.size());
      return std::vector<std::string>(batch.size(), "b");
    });
    std::latch start(4);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        start.arrive_and_wait();
        p.process_request(type, {{"id", "same"}}, [] { return std::string("s"); });
      });
    }
    for (auto& t : threads) t.join();
    std::lock_guard lock(mu);
    if (std::string(profile) == "separate") {
      CHECK(sizes == std::vector<std::size_t>{4});  // four slots fill the batch at once
    } else {
      CHECK(sizes == std::vector<std::size_t>{1});  // one shared slot, closed by its window
    }
  }
}

}  // TEST_SUITE
