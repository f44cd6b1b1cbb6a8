// The Pipeline in one process: hits, policies, warming, the batching seam, stats, validator.
#include <pipecache/pipeline.hpp>
#include <pipecache/validator.hpp>

#include <doctest/doctest.h>

#include "pipeline/helpers.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

TEST_SUITE("pipeline_basic") {

TEST_CASE("second_request_is_a_hit") {
  const std::string name = testing::unique_name("pl-hit");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  int computes = 0;
  auto handler = [&] { ++computes; return std::string("body"); };
  CHECK(p.process_request("events_by_range", {{"from", "1"}, {"to", "2"}}, handler) == "body");
  CHECK(p.process_request("events_by_range", {{"to", "2"}, {"from", "1"}}, handler) == "body");
  CHECK(p.process_request("events_by_range", {{"from", "1"}, {"to", "3"}}, handler) == "body");
  CHECK(computes == 2);
  const auto t = type_stats(p, "events_by_range");
  CHECK(t.requests == 3);
  CHECK(t.hits == 1);
  CHECK(t.misses == 2);
  CHECK(t.computes == 2);
  CHECK(t.compute_time.count == 2);
  CHECK(t.hit_ratio() == doctest::Approx(1.0 / 3));
  // One hit in kHitTimeSampleEvery (8) is timed: 17 hits give 2 or 3 samples.
  for (int i = 0; i < 16; ++i) p.process_request("events_by_range", {{"from", "1"}, {"to", "2"}}, handler);
  const auto timed = type_stats(p, "events_by_range").hit_time;
  CHECK(timed.count >= 2);
  CHECK(timed.count <= 3);
  CHECK(timed.mean_ns > 0);
  CHECK(timed.p99_ns >= timed.p50_ns);
  CHECK(computes == 2);
  const auto st = p.stats();
  REQUIRE(st.store.has_value());
  CHECK(st.store->entries >= 2);
  CHECK(p.cache()->get(p.cache_key("events_by_range", {{"from", "1"}, {"to", "2"}})).has_value());
}

TEST_CASE("seeded_policies_follow_the_design") {
  const std::string name = testing::unique_name("pl-policy");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.cache_ttl = 123s;
  Pipeline p(cfg);
  CHECK(p.policy("whats_next_data").ttl == 60s);
  CHECK_FALSE(p.policy("whats_next_data").batch_eligible);
  CHECK(p.policy("whats_next_data").time_bucket == 60s);
  CHECK(p.policy("events_by_range").ttl == 300s);
  CHECK(p.policy("events_by_range").batch_eligible);
  CHECK(p.policy("settings_get").ttl == 600s);
  CHECK(p.policy("settings_get").batch_eligible);
  CHECK(p.policy("something_else").ttl == 123s);
  RequestPolicy mine;
  mine.ttl = 5s;
  p.set_policy("something_else", mine);
  CHECK(p.policy("something_else").ttl == 5s);
  // whats_next_data keys carry the minute unless debug_time pins them.
  CHECK(p.cache_key("whats_next_data", {{"u", "1"}}).find("|t=") != std::string::npos);
  CHECK(p.cache_key("whats_next_data", {{"u", "1"}, {"debug_time", "x"}}).find("|t=") ==
        std::string::npos);
  CHECK(p.cache_key("events_by_range", {{"u", "1"}}) == "events_by_range:u=1");
}

TEST_CASE("warm_stores_ahead_of_demand") {
  const std::string name = testing::unique_name("pl-warm");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  p.warm("settings_get", {{"user", "5"}}, [] { return std::string("warmed"); });
  int computes = 0;
  CHECK(p.process_request("settings_get", {{"user", "5"}}, [&] {
    ++computes;
    return std::string("late");
  }) == "warmed");
  CHECK(computes == 0);
}

TEST_CASE("warm_ahead_fills_the_next_time_buckets") {
  const std::string name = testing::unique_name("pl-warmahead");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  std::vector<std::chrono::system_clock::time_point> buckets;
  const std::size_t stored = p.warm_ahead("whats_next_data", {{"user", "5"}}, [&](auto bucket) {
    buckets.push_back(bucket);
    return "for-" + std::to_string(bucket.time_since_epoch().count());
  });
  CHECK(stored == 4);
  REQUIRE(buckets.size() == 4);
  CHECK(buckets[1] - buckets[0] == 1min);
  CHECK(buckets[3] - buckets[0] == 5min);
  CHECK(p.cache()->keys("whats_next_data:*").size() == 4);
  // The current bucket is answered from the warmed value.
  int computes = 0;
  const auto v = p.process_request("whats_next_data", {{"user", "5"}}, [&] {
    ++computes;
    return std::string("late");
  });
  CHECK(v.rfind("for-", 0) == 0);
  CHECK(computes == 0);
  // A type without a time bucket is warmed once.
  CHECK(p.warm_ahead("settings_get", {}, [](auto) { return std::string("s"); }) == 1);
}

TEST_CASE("only_batch_eligible_types_go_through_their_batch_handler") {
  const std::string name = testing::unique_name("pl-batch");
  testing::SegmentGuard guard(name);
  // One value per params, naming the type's id: a value computed alone says "alone".
  auto batch_of = [](std::string tag) {
    return [tag](const std::vector<Params>& batch) {
      std::vector<std::string> out;
      for (const Params& params : batch) out.push_back(tag + params.at("id"));
      return out;
    };
  };
  Pipeline p(small_config(name));
  REQUIRE(p.policy("events_by_range").batch_eligible);
  REQUIRE(!p.policy("whats_next_data").batch_eligible);
  p.register_batch_handler("events_by_range", batch_of("batched-"));
  p.register_batch_handler("whats_next_data", batch_of("batched-"));
  CHECK(p.process_request("events_by_range", {{"id", "1"}}, [] { return std::string("alone"); }) ==
        "batched-1");
  CHECK(p.process_request("whats_next_data", {{"id", "1"}}, [] { return std::string("alone"); }) ==
        "alone");
  // Batching disabled by config: the batch handler is never called.
  const std::string name2 = testing::unique_name("pl-batchoff");
  testing::SegmentGuard guard2(name2);
  PipelineConfig cfg = small_config(name2);
  cfg.enable_request_batching = false;
  Pipeline q(cfg);
  q.register_batch_handler("events_by_range", batch_of("batched-"));
  CHECK(q.process_request("events_by_range", {{"id", "1"}}, [] { return std::string("alone"); }) ==
        "alone");
}

TEST_CASE("raw_values_put_by_other_clients_are_served") {
  const std::string name = testing::unique_name("pl-raw");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  const std::string key = p.cache_key("settings_get", {{"user", "1"}});
  p.cache()->put(key, "from-elsewhere");
  CHECK(p.process_request("settings_get", {{"user", "1"}}, [] { return std::string("x"); }) ==
        "from-elsewhere");
}

TEST_CASE("validator_reads_figures_from_a_live_pipeline") {
  // Figures read from a live pipeline.
  const std::string name = testing::unique_name("pl-validate");
  testing::SegmentGuard guard(name);
  Pipeline p(small_config(name));
  for (int i = 0; i < 10; ++i) p.process_request("settings_get", {}, [] { return std::string("v"); });
  const Measurements m = measurements_from(p.stats());
  CHECK(m.requests == 10);
  CHECK(m.hit_ratio == doctest::Approx(0.9));
  CHECK(m.cache_memory_mb > 0);
}

}  // TEST_SUITE
