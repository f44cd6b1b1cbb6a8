// The validator as the design writes it: each target passing and failing at its threshold
// exactly, targets not measured left out, the baseline file's errors naming file, line and
// field, the pipeline's own memory measured, and `pipectl validate` on a live segment.
#include <pipecache/pipeline.hpp>
#include <pipecache/validator.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "helpers.hpp"
#include "pipectl/run.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using pipectl_test::pipectl;

namespace {

// A run that meets every target with room to spare.
Measurements good_baseline() {
  Measurements b;
  b.mean_response_time_ms = 250;
  b.cpu_seconds = 10;
  b.batch_time_per_request_ms = 1.0;
  b.process_memory_mb = 40;
  return b;
}
Measurements good_current() {
  Measurements c;
  c.requests = 1000;
  c.hit_ratio = 0.9;
  c.mean_hit_time_ms = 0.01;
  c.cache_memory_mb = 12;
  c.cpu_seconds = 3;
  c.batchable_requests = 100;
  c.batch_joined = 90;
  c.batch_time_per_request_ms = 0.5;
  c.process_memory_mb = 42;
  c.bodies_compared = 500;
  return c;
}

const TargetResult& find(const std::vector<TargetResult>& r, const std::string& prefix) {
  for (const auto& t : r) {
    if (t.name.rfind(prefix, 0) == 0) return t;
  }
  FAIL("no target " << prefix);
  return r.front();
}

// Judges `current` changed by `change` against `baseline` changed by `change_base`.
template <typename F, typename G>
bool passes(const std::string& target, F change, G change_base) {
  Measurements b = good_baseline();
  Measurements c = good_current();
  change(c);
  change_base(b);
  const auto r = validate_targets(b, c);
  const TargetResult& t = find(r, target);
  CHECK_MESSAGE(t.measured, target);
  return t.pass;
}
template <typename F>
bool passes(const std::string& target, F change) {
  return passes(target, change, [](Measurements&) {});
}

std::string write_file(const std::string& text) {
  char path[] = "/tmp/pipecache-baseline-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(path) << text;
  return path;
}

std::string load_error(const std::string& text, std::string* path_out = nullptr) {
  const std::string path = write_file(text);
  if (path_out != nullptr) *path_out = path;
  std::string what;
  try {
    load_baseline_file(path);
  } catch (const Error& e) {
    what = e.what();
  }
  std::remove(path.c_str());
  return what;
}

}  // namespace

TEST_SUITE("pipeline_validator") {

TEST_CASE("every_target_passes_on_a_good_run") {
  const auto r = validate_targets(good_baseline(), good_current());
  REQUIRE(r.size() == 9);
  for (const auto& t : r) CHECK_MESSAGE(t.pass, t.name);
  CHECK(all_pass(r));
  CHECK(format_targets(r).find("9 of 9 targets met") != std::string::npos);
}

TEST_CASE("each_target_passes_and_fails_at_the_design_threshold_exactly") {
  // At least 80%: 80.0% passes, 79.9% does not.
  CHECK(passes("hit ratio", [](Measurements& c) { c.hit_ratio = 0.8; }));
  CHECK(passes("hit ratio", [](Measurements& c) { c.hit_ratio = 800.0 / 1000.0; }));
  CHECK_FALSE(passes("hit ratio", [](Measurements& c) { c.hit_ratio = 0.799; }));
  // Less than 10 ms.
  CHECK(passes("hit time", [](Measurements& c) { c.mean_hit_time_ms = 9.999; }));
  CHECK_FALSE(passes("hit time", [](Measurements& c) { c.mean_hit_time_ms = 10.0; }));
  // Less than 50 MB.
  CHECK(passes("cache memory", [](Measurements& c) { c.cache_memory_mb = 49.99; }));
  CHECK_FALSE(passes("cache memory", [](Measurements& c) { c.cache_memory_mb = 50.0; }));
  // At least 100 ms saved per cached request.
  CHECK(passes("response time saved", [](Measurements& c) { c.mean_hit_time_ms = 0; },
               [](Measurements& b) { b.mean_response_time_ms = 100; }));
  CHECK_FALSE(passes("response time saved", [](Measurements& c) { c.mean_hit_time_ms = 0.2; },
                     [](Measurements& b) { b.mean_response_time_ms = 100; }));
  // At least 20% CPU saved: 1 - 0.8 / 1.0 is 0.19999999999999996 in binary and must pass.
  CHECK(passes("CPU saved", [](Measurements& c) { c.cpu_seconds = 0.8; },
               [](Measurements& b) { b.cpu_seconds = 1.0; }));
  CHECK(passes("CPU saved", [](Measurements& c) { c.cpu_seconds = 8; }));
  CHECK_FALSE(passes("CPU saved", [](Measurements& c) { c.cpu_seconds = 8.01; }));
  // More than 70% of batchable requests joined a batch.
  CHECK(passes("batch formation", [](Measurements& c) { c.batch_joined = 71; }));
  CHECK_FALSE(passes("batch formation", [](Measurements& c) { c.batch_joined = 70; }));
  // At least 20% less processing time than one by one.
  CHECK(passes("batch processing time", [](Measurements& c) { c.batch_time_per_request_ms = 0.8; }));
  CHECK_FALSE(passes("batch processing time", [](Measurements& c) { c.batch_time_per_request_ms = 0.81; }));
  // Pipeline overhead under 10 MB.
  CHECK(passes("pipeline overhead", [](Measurements& c) { c.process_memory_mb = 49.99; }));
  CHECK_FALSE(passes("pipeline overhead", [](Measurements& c) { c.process_memory_mb = 50.0; }));
  // Zero accuracy change.
  CHECK(passes("accuracy", [](Measurements& c) { c.bodies_differing = 0; }));
  CHECK_FALSE(passes("accuracy", [](Measurements& c) { c.bodies_differing = 1; }));
}

TEST_CASE("a_failing_run_fails_and_says_which") {
  Measurements c = good_current();
  c.bodies_differing = 2;
  const auto r = validate_targets(good_baseline(), c);
  CHECK_FALSE(all_pass(r));
  const std::string text = format_targets(r);
  CHECK(text.find("FAIL  accuracy (bodies compared)") != std::string::npos);
  CHECK(text.find("2 of 500 differ") != std::string::npos);
  CHECK(text.find("8 of 9 targets met") != std::string::npos);
}

TEST_CASE("targets_not_measured_are_listed_and_left_out") {
  Measurements b = good_baseline();
  b.process_memory_mb = 0;
  Measurements c = good_current();
  c.batchable_requests = 0;
  c.batch_time_per_request_ms = 0;
  c.bodies_compared = 0;
  const auto r = validate_targets(b, c);
  CHECK_FALSE(find(r, "batch formation").measured);
  CHECK_FALSE(find(r, "batch processing").measured);
  CHECK_FALSE(find(r, "pipeline overhead").measured);
  CHECK_FALSE(find(r, "accuracy").measured);
  CHECK(all_pass(r));
  CHECK(format_targets(r).find("5 of 5 targets met (4 not measured)") != std::string::npos);
  // The core targets are never skipped: no baseline CPU is a failure.
  b.cpu_seconds = 0;
  CHECK_FALSE(all_pass(validate_targets(b, c)));
}

TEST_CASE("pipeline_overhead_is_measured_as_process_memory_with_against_without") {
  const double without = process_memory_mb();
  REQUIRE(without > 0);
  const std::string name = testing::unique_name("pl-overhead");
  testing::SegmentGuard guard(name);
  Measurements b = good_baseline();
  Measurements c = good_current();
  {
    Pipeline p(small_config(name));
    const std::string body(1024, 'x');
    for (int i = 0; i < 2000; ++i) {
      p.process_request("events_by_range", {{"from", std::to_string(i % 500)}, {"to", "9"}},
                        [&] { return body; });
    }
    c.process_memory_mb = process_memory_mb();
  }
  b.process_memory_mb = without;
  const auto results = validate_targets(b, c);  // find() returns a reference into it
  const TargetResult& t = find(results, "pipeline overhead");
  MESSAGE("pipeline overhead: " << t.figure);
  CHECK(t.measured);
  CHECK(t.pass);
}

TEST_CASE("baseline_file_is_read_and_its_errors_name_file_line_and_field") {
  const std::string ok = write_file(R"({
  "baseline": {"mean_response_time_ms": 250, "cpu_seconds": 10,
               "batch_time_per_request_ms": 1.5},
  "current": {"cpu_seconds": 2.5, "process_memory_mb": 41.5, "bodies_compared": 300}
})");
  const BaselineFile f = load_baseline_file(ok);
  std::remove(ok.c_str());
  CHECK(f.baseline.mean_response_time_ms == 250);
  CHECK(f.baseline.batch_time_per_request_ms == 1.5);
  CHECK(f.current.cpu_seconds == 2.5);
  CHECK(f.current.bodies_compared == 300);
  Measurements from_segment;
  from_segment.hit_ratio = 0.9;
  const Measurements merged = merge_measurements(from_segment, f.current);
  CHECK(merged.hit_ratio == 0.9);
  CHECK(merged.process_memory_mb == 41.5);

  std::string path;
  std::string e = load_error("{\n  \"baseline\": {\n    \"cpu_second\": 3\n  }\n}\n", &path);
  CHECK(e.find("baseline file " + path + " line 3: field baseline.cpu_second: unknown field") == 0);
  e = load_error("{\"baseline\": {},\n \"current\": {\"cpu_seconds\": \"fast\"}}", &path);
  CHECK(e.find("baseline file " + path + " line 2: field current.cpu_seconds: expected a non-negative number") == 0);
  e = load_error("{\"baseline\": {\"bodies_compared\": 2.5}}", &path);
  CHECK(e.find("line 1: field baseline.bodies_compared: expected a whole number") != std::string::npos);
  e = load_error("{\"baseline\": {\"cpu_seconds\": -1}}");
  CHECK(e.find("expected a non-negative number") != std::string::npos);
  e = load_error("{\"baseline\": {},\n\"later\": 1}", &path);
  CHECK(e.find("line 2: field later: unknown section") != std::string::npos);
  e = load_error("{\"baseline\": {\n\"cpu_seconds\": 1,,\n}}", &path);
  CHECK(e.find("baseline file " + path + " line 2: ") == 0);
  e = load_error("{\"current\": {}}");
  CHECK(e.find("no \"baseline\" section") != std::string::npos);
  CHECK(load_error("{}").find("no \"baseline\"") != std::string::npos);
}

TEST_CASE("pipectl_validate_judges_a_segment_against_a_baseline_file") {
  const std::string name = testing::unique_name("pl-validate-cli");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  // 1 miss then 4 hits on one key: 80.0% exactly.
  for (int i = 0; i < 5; ++i) p.process_request("settings_get", {}, [] { return std::string("v"); });
  const std::string good = write_file(R"({"baseline": {"mean_response_time_ms": 250, "cpu_seconds": 10},
    "current": {"cpu_seconds": 8}})");
  auto r = pipectl({"validate", "--name", name, "--baseline", good});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("PASS  hit ratio") != std::string::npos);
  CHECK(r.out.find("80.0%") != std::string::npos);
  CHECK(r.out.find("5 of 5 targets met (4 not measured)") != std::string::npos);
  r = pipectl({"validate", "--name", name, "--baseline", good, "--json"});
  CHECK(r.exit_code == 0);
  const auto j = nlohmann::json::parse(r.out);
  CHECK(j["all_pass"] == true);
  CHECK(j["targets"].size() == 9);
  CHECK(j["targets"][0]["figure"] == "80.0%");

  const std::string bad = write_file(R"({"baseline": {"mean_response_time_ms": 250, "cpu_seconds": 10},
    "current": {"cpu_seconds": 8.5}})");
  r = pipectl({"validate", "--name", name, "--baseline", bad});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("FAIL  CPU saved") != std::string::npos);

  const std::string broken = write_file("{\"baseline\": {\n\"cpu\": 1}}");
  r = pipectl({"validate", "--name", name, "--baseline", broken});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("line 2: field baseline.cpu: unknown field") != std::string::npos);
  for (const auto& f : {good, bad, broken}) std::remove(f.c_str());
}

}  // TEST_SUITE
