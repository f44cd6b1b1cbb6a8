#include <doctest/doctest.h>

#include <algorithm>
#include <thread>

#include "support/process.hpp"

using namespace pipecache;
using namespace std::chrono_literals;

namespace {
struct Fixture {
  testing::SegmentGuard guard;
  Cache cache;
  explicit Fixture(std::size_t budget = 4u << 20, std::size_t max_entries = 0)
      : guard(testing::unique_name("table")), cache(make(guard.name(), budget, max_entries)) {}
  static Cache make(const std::string& name, std::size_t budget, std::size_t max_entries) {
    auto o = testing::small_options(name, budget);
    o.max_entries = max_entries;
    return Cache::create(o);
  }
  void verify_clean() {
    auto r = cache.verify();
    for (auto& p : r.problems) MESSAGE(p);
    CHECK(r.ok());
  }
};
}  // namespace

TEST_SUITE("table") {
  TEST_CASE("hit_after_put_and_miss_before") {
    Fixture f;
    CHECK_FALSE(f.cache.get("k").has_value());
    f.cache.put("k", "value");
    CHECK(f.cache.get("k") == std::optional<std::string>("value"));
    auto s = f.cache.stats();
    CHECK(s.hits == 1);
    CHECK(s.misses == 1);
    CHECK(s.inserts == 1);
    CHECK(s.entries == 1);
    f.verify_clean();
  }

  TEST_CASE("put_replaces_and_counts_an_update") {
    Fixture f;
    f.cache.put("k", "one");
    f.cache.put("k", "two, longer than one");
    CHECK(f.cache.get("k") == std::optional<std::string>("two, longer than one"));
    CHECK(f.cache.stats().updates == 1);
    CHECK(f.cache.stats().entries == 1);
    f.verify_clean();
  }

  TEST_CASE("same_size_update_replaces_value_flags_and_ttl_and_keeps_the_accounting") {
    Fixture f;
    f.cache.put("k", std::string(1000, 'a'), 3'600'000ms, 1);
    f.cache.put("other", std::string(1000, 'o'));
    const auto before = f.cache.stats();
    f.cache.put("k", std::string(1000, 'b'), 30ms, 2);  // the block of the old value fits it
    std::string out;
    std::uint16_t flags = 0;
    REQUIRE(f.cache.get("k", out, flags));
    CHECK(out == std::string(1000, 'b'));
    CHECK(flags == 2);
    CHECK(f.cache.get("other") == std::optional<std::string>(std::string(1000, 'o')));
    auto s = f.cache.stats();
    CHECK(s.updates == 1);
    CHECK(s.entries == 2);
    CHECK(s.bytes_used == before.bytes_used);
    f.verify_clean();
    std::this_thread::sleep_for(80ms);  // the new TTL, not the old hour
    CHECK_FALSE(f.cache.get("k").has_value());
    f.cache.put("k", std::string(990, 'c'));  // a few bytes shorter: same block, also in place
    CHECK(f.cache.get("k") == std::optional<std::string>(std::string(990, 'c')));
    CHECK(f.cache.stats().bytes_used == before.bytes_used);
    f.verify_clean();
  }

  TEST_CASE("same_size_update_after_an_invalidation_is_visible") {
    Fixture f;
    f.cache.put("report:1", std::string(500, 'a'));
    CHECK(f.cache.invalidate("report:*") == 1);
    CHECK_FALSE(f.cache.get("report:1").has_value());
    f.cache.put("report:1", std::string(500, 'b'));  // the old entry is of an older generation
    CHECK(f.cache.get("report:1") == std::optional<std::string>(std::string(500, 'b')));
    CHECK(f.cache.invalidate("report:*") == 1);  // counted live again, exactly once
    f.verify_clean();
  }

  TEST_CASE("empty_and_binary_values_round_trip") {
    Fixture f;
    f.cache.put("empty", "");
    std::string bin("\0\1\2\xff", 4);
    f.cache.put(std::string("bin\0key", 7), bin);
    CHECK(f.cache.get("empty") == std::optional<std::string>(""));
    CHECK(f.cache.get(std::string("bin\0key", 7)) == std::optional<std::string>(bin));
    CHECK_FALSE(f.cache.get("bin").has_value());
  }

  TEST_CASE("get_reuses_the_callers_buffer_and_returns_flags") {
    Fixture f;
    f.cache.put("k", "abc", 0ms, 0x2a);
    std::string out = "previous content that is long";
    std::uint16_t flags = 0;
    REQUIRE(f.cache.get("k", out, flags));
    CHECK(out == "abc");
    CHECK(flags == 0x2a);
  }

  TEST_CASE("visit_reads_in_place") {
    Fixture f;
    f.cache.put("k", std::string(5000, 'q'));
    std::size_t seen = 0;
    CHECK(f.cache.visit("k", [&](std::string_view v) { seen = v.size(); }));
    CHECK(seen == 5000);
    CHECK_FALSE(f.cache.visit("absent", [&](std::string_view) { seen = 0; }));
    CHECK(seen == 5000);
  }

  TEST_CASE("ttl_expires_entries") {
    Fixture f;
    f.cache.put("short", "v", 30ms);
    f.cache.put("forever", "v", 0ms);
    CHECK(f.cache.get("short").has_value());
    std::this_thread::sleep_for(80ms);
    CHECK_FALSE(f.cache.get("short").has_value());
    CHECK(f.cache.get("forever").has_value());
    CHECK(f.cache.purge() == 1);
    CHECK(f.cache.stats().expirations == 1);
    CHECK(f.cache.stats().entries == 1);
    f.verify_clean();
  }

  TEST_CASE("default_ttl_applies_to_put_without_ttl") {
    testing::SegmentGuard g(testing::unique_name("table"));
    auto o = testing::small_options(g.name());
    o.default_ttl = 30ms;
    auto c = Cache::create(o);
    c.put("k", "v");
    CHECK(c.get("k").has_value());
    std::this_thread::sleep_for(80ms);
    CHECK_FALSE(c.get("k").has_value());
  }

  TEST_CASE("erase_removes_one_key") {
    Fixture f;
    f.cache.put("a", "1");
    f.cache.put("b", "2");
    CHECK(f.cache.erase("a"));
    CHECK_FALSE(f.cache.erase("a"));
    CHECK_FALSE(f.cache.get("a").has_value());
    CHECK(f.cache.get("b").has_value());
    f.verify_clean();
  }

  TEST_CASE("oversize_key_or_value_is_an_error_naming_the_segment") {
    Fixture f(1u << 20);
    CHECK(f.cache.max_value_size() == (1u << 20) / 8);
    CHECK_NOTHROW(f.cache.put("big", std::string(f.cache.max_value_size(), 'x')));
    CHECK(f.cache.get("big")->size() == f.cache.max_value_size());
    try {
      f.cache.put("bigger", std::string(f.cache.max_value_size() + 1, 'x'));
      FAIL("no error");
    } catch (const Error& e) {
      CHECK(std::string(e.what()).find(f.guard.name()) != std::string::npos);
      CHECK(std::string(e.what()).find("exceeds") != std::string::npos);
    }
    CHECK_THROWS_AS(f.cache.put(std::string(5000, 'k'), "v"), Error);
    CHECK_FALSE(f.cache.get(std::string(5000, 'k')).has_value());
  }

  TEST_CASE("byte_budget_holds_under_churn_and_eviction_keeps_hot_keys") {
    Fixture f(1u << 20);
    std::string v(1000, 'v');
    for (int i = 0; i < 100; ++i) f.cache.put("hot:" + std::to_string(i), v);
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < 100; ++i) CHECK(f.cache.get("hot:" + std::to_string(i)).has_value());
      for (int i = 0; i < 200; ++i) f.cache.put("cold:" + std::to_string(round * 200 + i), v);
      auto s = f.cache.stats();
      REQUIRE(s.bytes_used <= s.byte_budget);
    }
    auto s = f.cache.stats();
    CHECK(s.evictions > 2000);
    int hot = 0;
    for (int i = 0; i < 100; ++i) hot += f.cache.get("hot:" + std::to_string(i)).has_value();
    CHECK(hot >= 95);  // SIEVE: visited entries survive one-hit wonders
    f.verify_clean();
  }

  TEST_CASE("mixed_sizes_fill_the_budget_exactly") {
    Fixture f(1u << 20);
    for (int i = 0; i < 5000; ++i) f.cache.put("k" + std::to_string(i), std::string(10 + (i * 7919) % 20000, 'x'));
    auto s = f.cache.stats();
    CHECK(s.bytes_used <= s.byte_budget);
    CHECK(s.bytes_used > s.byte_budget * 7 / 10);  // fragmentation does not waste the budget
    CHECK(s.put_failures == 0);
    f.verify_clean();
  }

  TEST_CASE("max_entries_limits_the_count") {
    Fixture f(4u << 20, 50);
    for (int i = 0; i < 500; ++i) f.cache.put("k" + std::to_string(i), "v");
    CHECK(f.cache.stats().entries <= 50);
    CHECK(f.cache.stats().evictions >= 450);
    f.verify_clean();
  }

  TEST_CASE("invalidate_glob_removes_exactly_the_matches") {
    Fixture f;
    for (int i = 0; i < 50; ++i) {
      f.cache.put("whats_next_data:t=" + std::to_string(i), "a");
      f.cache.put("events_by_range:s=" + std::to_string(i), "b");
      f.cache.put("plain" + std::to_string(i), "c");
    }
    CHECK(f.cache.invalidate("events_by_range:s=1*") == 11);  // 1, 10..19: a partial scan
    CHECK(f.cache.invalidate("whats_next_data:*") == 50);     // O(1) generation bump
    CHECK(f.cache.invalidate("plain4?") == 10);
    CHECK(f.cache.invalidate("nothing*") == 0);
    CHECK_FALSE(f.cache.get("whats_next_data:t=3").has_value());
    CHECK(f.cache.get("events_by_range:s=2").has_value());
    CHECK_FALSE(f.cache.get("events_by_range:s=12").has_value());
    CHECK(f.cache.get("plain3").has_value());
    CHECK(f.cache.keys("whats_next_data:*").empty());
    CHECK(f.cache.keys("events_by_range:*").size() == 39);
    f.cache.put("whats_next_data:t=3", "new");  // a new generation is readable
    CHECK(f.cache.get("whats_next_data:t=3") == std::optional<std::string>("new"));
    CHECK(f.cache.invalidate("whats_next_data:*") == 1);
    f.verify_clean();
  }

  TEST_CASE("prefix_glob_spans_several_namespaces") {
    Fixture f;
    f.cache.put("whats_next_data:a", "1");
    f.cache.put("whats_next_view:b", "2");
    f.cache.put("settings:c", "3");
    CHECK(f.cache.invalidate("whats_next_*") == 2);
    CHECK(f.cache.get("settings:c").has_value());
    CHECK_FALSE(f.cache.get("whats_next_view:b").has_value());
  }

  TEST_CASE("clear_empties_everything") {
    Fixture f;
    for (int i = 0; i < 100; ++i) f.cache.put("k:" + std::to_string(i), "v");
    f.cache.clear();
    CHECK(f.cache.stats().entries == 0);
    CHECK(f.cache.stats().bytes_used == 0);
    CHECK_FALSE(f.cache.get("k:1").has_value());
    f.cache.put("k:1", "again");
    CHECK(f.cache.get("k:1").has_value());
    f.verify_clean();
  }

  TEST_CASE("keys_lists_size_ttl_and_age") {
    Fixture f;
    f.cache.put("a:1", "12345", 10s);
    f.cache.put("b:1", "x", 0ms);
    auto ks = f.cache.keys("a:*");
    REQUIRE(ks.size() == 1);
    CHECK(ks[0].key == "a:1");
    CHECK(ks[0].value_size == 5);
    REQUIRE(ks[0].ttl_left.has_value());
    CHECK(*ks[0].ttl_left <= 10s);
    CHECK(*ks[0].ttl_left > 5s);
    auto all = f.cache.keys("*");
    CHECK(all.size() == 2);
    CHECK(f.cache.keys("*", 1).size() == 1);
  }

  TEST_CASE("lease_is_exclusive_until_published") {
    Fixture f;
    auto a = f.cache.try_lease("k:1", 5s);
    CHECK(a.state == LeaseState::acquired);
    std::uint32_t seq = f.cache.lease_wake_seq("k:1");
    auto b = f.cache.try_lease("k:1", 5s);
    CHECK(b.state == LeaseState::held_by_other);
    CHECK(b.holder_pid == ::getpid());
    CHECK_FALSE(f.cache.get("k:1").has_value());  // a lease is not a value
    CHECK(f.cache.publish("k:1", "computed", 10s, 0, a.token));
    CHECK(f.cache.lease_wake_seq("k:1") != seq);
    CHECK(f.cache.get("k:1") == std::optional<std::string>("computed"));
    CHECK(f.cache.try_lease("k:1", 5s).state == LeaseState::acquired);  // next expiry's compute
    f.verify_clean();
  }

  TEST_CASE("late_lease_is_taken_over_and_stale_token_cannot_release_it") {
    Fixture f;
    auto a = f.cache.try_lease("k", 20ms);
    REQUIRE(a.state == LeaseState::acquired);
    std::this_thread::sleep_for(40ms);
    auto b = f.cache.try_lease("k", 5s);
    CHECK(b.state == LeaseState::taken_over);
    f.cache.release_lease("k", a.token);  // the late holder's release does not drop b's lease
    CHECK(f.cache.try_lease("k", 5s).state == LeaseState::held_by_other);
    f.cache.release_lease("k", b.token);
    CHECK(f.cache.try_lease("k", 5s).state == LeaseState::acquired);
  }

  TEST_CASE("namespace_metrics_are_recorded_per_type") {
    Fixture f;
    int ns = f.cache.namespace_id("whats_next_data");
    REQUIRE(ns > 0);
    CHECK(f.cache.namespace_id("whats_next_data") == ns);
    f.cache.record(ns, NsCounter::requests, 3);
    f.cache.record_time(ns, NsHistogram::hit_time, 1000);
    f.cache.record_time(ns, NsHistogram::hit_time, 3000);
    auto s = f.cache.stats();
    const NamespaceStats* found = nullptr;
    for (auto& n : s.namespaces)
      if (n.name == "whats_next_data") found = &n;
    REQUIRE(found);
    CHECK(found->counter(NsCounter::requests) == 3);
    CHECK(found->histogram(NsHistogram::hit_time).count == 2);
    CHECK(found->histogram(NsHistogram::hit_time).mean_ns() == doctest::Approx(2000));
    CHECK(f.cache.namespace_id("bad:name") == -1);
  }

  TEST_CASE("namespace_table_full_falls_back_to_scans") {
    Fixture f;
    for (int i = 0; i < 40; ++i) f.cache.put("type" + std::to_string(i) + ":k", "v");
    for (int i = 0; i < 40; ++i) CHECK(f.cache.get("type" + std::to_string(i) + ":k").has_value());
    CHECK(f.cache.invalidate("type39:*") == 1);
    CHECK(f.cache.invalidate("type1:*") == 1);
    CHECK_FALSE(f.cache.get("type39:k").has_value());
    f.verify_clean();
  }

  TEST_CASE("histogram_percentiles_interpolate") {
    Histogram h;
    for (int i = 0; i < 99; ++i) h.buckets[Histogram::bucket_for(1000)]++;
    h.buckets[Histogram::bucket_for(1'000'000)]++;
    CHECK(h.percentile_ns(0.5) >= 512);
    CHECK(h.percentile_ns(0.5) <= 1024);
    CHECK(h.percentile_ns(0.999) >= 524288);
  }

  TEST_CASE("threads_of_one_process_share_the_cache") {
    Fixture f;
    std::vector<std::thread> ts;
    std::atomic<int> bad{0};
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] {
        std::string out;
        for (int i = 0; i < 2000; ++i) {
          std::string k = "t:" + std::to_string((i * 7 + t) % 300);
          if (i % 3 == 0) f.cache.put(k, testing::make_value(k, i, 200));
          else if (f.cache.get(k, out) && !testing::check_value(k, out)) ++bad;
        }
      });
    for (auto& t : ts) t.join();
    CHECK(bad == 0);
    f.verify_clean();
  }
}

TEST_SUITE("table") {
  TEST_CASE("renewed_lease_is_not_taken_over_after_its_first_deadline") {
    Fixture f;
    auto a = f.cache.try_lease("k", 30ms);
    REQUIRE(a.state == LeaseState::acquired);
    CHECK(f.cache.renew_lease("k", a.token, 5s));
    std::this_thread::sleep_for(60ms);
    CHECK(f.cache.try_lease("k", 5s).state == LeaseState::held_by_other);
    CHECK_FALSE(f.cache.renew_lease("k", a.token + 1, 5s));
    CHECK(f.cache.stats().entries == 1);
  }
  TEST_CASE("namespaces_lists_registered_types_and_segment_is_healthy") {
    Fixture f;
    f.cache.put("whats_next_data:x", "1");
    f.cache.put("settings:y", "2");
    auto ns = f.cache.namespaces();
    CHECK(std::find(ns.begin(), ns.end(), "whats_next_data") != ns.end());
    CHECK(std::find(ns.begin(), ns.end(), "settings") != ns.end());
    CHECK(f.cache.healthy());
  }
}

TEST_SUITE("table") {
  TEST_CASE("corrupted_key_length_never_reads_past_its_block") {
    Fixture f;
    f.cache.put("victim:k", "value");
    // Another writer of the segment sets the key length far beyond the block.
    auto ks = f.cache.keys("*");
    REQUIRE(ks.size() == 1);
    std::string path = Cache::path_of(f.guard.name());
    FILE* fp = std::fopen(path.c_str(), "r+b");
    REQUIRE(fp);
    std::vector<char> all(1 << 24);
    std::size_t n = std::fread(all.data(), 1, all.size(), fp);
    std::string_view hay(all.data(), n);
    std::size_t at = hay.find("victim:k");
    REQUIRE(at != std::string_view::npos);
    std::uint16_t huge = 60000;
    std::fseek(fp, static_cast<long>(at - 48 + 36), SEEK_SET);  // Entry::key_len
    std::fwrite(&huge, 2, 1, fp);
    std::fclose(fp);
    CHECK_FALSE(f.cache.get("victim:k").has_value());
    CHECK(f.cache.keys("*").empty());
    CHECK_FALSE(f.cache.verify().ok());
    f.cache.clear();  // the way out
    CHECK(f.cache.verify().ok());
  }
}

TEST_SUITE("table") {
  TEST_CASE("value_computed_across_an_invalidation_is_discarded") {
    Fixture f;
    auto a = f.cache.try_lease("whats_next_data:k", 5s);
    REQUIRE(a.state == LeaseState::acquired);
    f.cache.put("whats_next_data:other", "x");
    CHECK(f.cache.invalidate("whats_next_data:*") == 1);  // data changed mid-computation
    CHECK(f.cache.publish("whats_next_data:k", "old data", 10s, 0, a.token));
    CHECK_FALSE(f.cache.get("whats_next_data:k").has_value());
    CHECK(f.cache.try_lease("whats_next_data:k", 5s).state == LeaseState::acquired);  // recompute
    f.verify_clean();
  }
  TEST_CASE("value_computed_without_a_change_is_kept") {
    Fixture f;
    auto a = f.cache.try_lease("whats_next_data:k", 5s);
    f.cache.invalidate("settings:*");  // another namespace
    CHECK(f.cache.publish("whats_next_data:k", "v", 10s, 0, a.token));
    CHECK(f.cache.get("whats_next_data:k") == std::optional<std::string>("v"));
  }
}
