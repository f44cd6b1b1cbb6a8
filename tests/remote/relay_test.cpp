// Many hosts on one machine: each "host" is its own segment with its own pipecache-relay, all
// talking to one real redis-server on a unix socket.
#include <doctest/doctest.h>

#include <signal.h>
#include <unistd.h>

#include <memory>
#include <thread>
#include <vector>

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>
#include <pipecache/remote.hpp>

#include "fixture.hpp"
#include "pipectl/run.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using pipecache::Cache;
using pipecache::RemoteCounter;
using remote_testing::eventually;
using remote_testing::RedisServer;
using remote_testing::Relay;

namespace {

// A host: a segment and its relay.
struct Host {
  testing::SegmentGuard guard;
  Cache cache;
  std::unique_ptr<Relay> relay;
  Host(const std::string& tag, const RedisServer& redis)
      : guard(testing::unique_name(tag)), cache(Cache::create(testing::small_options(guard.name()))) {
    relay = std::make_unique<Relay>(guard.name(), redis.url());
  }
  std::uint64_t counter(RemoteCounter c) const { return pipecache::remote_stats(cache).counter(c); }
  bool subscribed() const { return pipecache::remote_stats(cache).relay_connected; }
  bool has(const std::string& key) { return cache.get(key).has_value(); }
};

void fill(Cache& c) {
  for (const char* k : {"users:1", "users:2", "users:10", "other:1"}) c.put(k, "v");
}

}  // namespace

TEST_SUITE("remote_relay") {
  // `pipectl destroy` then a new segment under the same name: the relay notices within about
  // a second (SegmentWatch) and applies the other hosts' invalidations to the new one.
  TEST_CASE("relay_reopens_a_segment_destroyed_and_created_again") {
    RedisServer redis;
    Host a("sa", redis), b("sb", redis);
    REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
    REQUIRE(Cache::remove(b.guard.name()));
    Cache fresh = Cache::create(testing::small_options(b.guard.name()));
    CHECK_FALSE(pipecache::remote_stats(fresh).relay_connected);
    REQUIRE(eventually([&] { return pipecache::remote_stats(fresh).relay_connected; }));
    fresh.put("users:1", "v");
    fresh.put("users:2", "v");
    auto sent = pipecache::broadcast_invalidation(a.cache, "users:1", redis.url());
    CHECK(sent.published);
    REQUIRE(eventually([&] { return !fresh.get("users:1").has_value(); }));
    CHECK(fresh.get("users:2").has_value());
    CHECK(pipecache::remote_stats(fresh).counter(RemoteCounter::messages_applied) == 1);
    CHECK(b.relay->alive());
  }

  TEST_CASE("broadcast_reaches_every_other_host_and_only_what_the_pattern_matches") {
    RedisServer redis;
    Host a("ra", redis), b("rb", redis), c("rc", redis);
    REQUIRE(eventually([&] { return a.subscribed() && b.subscribed() && c.subscribed(); }));
    for (Host* h : {&a, &b, &c}) fill(h->cache);
    const auto gen_before = b.cache.stats().namespaces;

    // A key glob: a scan on each host, removing users:1 and users:10 but not users:2.
    auto sent = pipecache::broadcast_invalidation(a.cache, "users:1*", redis.url());
    CHECK(sent.published);
    CHECK(sent.removed == 2);
    for (Host* h : {&b, &c}) {
      REQUIRE(eventually([&] { return h->counter(RemoteCounter::messages_applied) == 1; }));
      CHECK_FALSE(h->has("users:1"));
      CHECK_FALSE(h->has("users:10"));
      CHECK(h->has("users:2"));
      CHECK(h->has("other:1"));
      CHECK(h->counter(RemoteCounter::entries_invalidated) == 2);
    }
    // The publisher's own relay skips the message (it was applied at the source).
    REQUIRE(eventually([&] { return a.counter(RemoteCounter::messages_own) == 1; }));
    CHECK(a.counter(RemoteCounter::messages_applied) == 0);
    CHECK(a.counter(RemoteCounter::publishes) == 1);

    // A namespace: O(1) on every host (the type's generation moves), other types untouched.
    sent = pipecache::broadcast_invalidation(b.cache, "users:*", redis.url());
    CHECK(sent.published);
    for (Host* h : {&a, &c}) {
      REQUIRE(eventually([&] { return !h->has("users:2"); }));
      CHECK(h->has("other:1"));
    }
    std::uint64_t users_generation = 0;
    for (const auto& ns : c.cache.stats().namespaces)
      if (ns.name == "users") users_generation = ns.generation;
    CHECK(users_generation >= 1);
    const auto lag = pipecache::remote_stats(c.cache).lag;
    CHECK(lag.count == 2);
    CHECK(lag.percentile_ns(0.99) < 1e9);  // loopback: far under a second (the bench measures)
  }

  TEST_CASE("redis_killed_and_restarted_local_caching_goes_on_relays_survive_and_flush") {
    RedisServer redis;
    Host a("ka", redis), b("kb", redis);
    REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
    REQUIRE(b.counter(RemoteCounter::flushes) == 1);  // the first subscription flushes too

    redis.kill_hard();
    REQUIRE(eventually([&] { return !b.subscribed(); }));
    // Local caching goes on while Redis is down.
    b.cache.put("users:9", "cached while Redis was down");
    CHECK(b.has("users:9"));
    a.cache.put("users:9", "x");
    // A broadcast still invalidates locally and says it could not publish.
    auto sent = pipecache::broadcast_invalidation(a.cache, "users:*", redis.url(), pipecache::kDefaultInvalidationChannel, 300ms);
    CHECK_FALSE(sent.published);
    CHECK_FALSE(sent.problem.empty());
    CHECK(sent.removed == 1);
    CHECK(a.counter(RemoteCounter::publish_failures) == 1);
    CHECK(b.has("users:9"));  // missed: b could not hear it

    redis.start();  // same socket
    REQUIRE(eventually([&] { return b.subscribed() && a.subscribed(); }));
    CHECK(a.relay->alive());
    CHECK(b.relay->alive());
    CHECK(b.counter(RemoteCounter::reconnects) == 1);
    CHECK(b.counter(RemoteCounter::flushes) == 2);
    CHECK(b.counter(RemoteCounter::flushed_entries) >= 1);
    CHECK_FALSE(b.has("users:9"));  // the flush dropped what might have missed an invalidation

    // Broadcasts work again.
    b.cache.put("users:10", "v");
    sent = pipecache::broadcast_invalidation(a.cache, "users:*", redis.url());
    CHECK(sent.published);
    CHECK(eventually([&] { return !b.has("users:10"); }));
  }

  TEST_CASE("sigterm_stops_the_relay_at_once_connected_or_not") {
    RedisServer redis;
    Host h("st", redis);
    REQUIRE(eventually([&] { return h.subscribed(); }));
    int code = -1;
    auto took = h.relay->terminate(&code, 2s);
    CHECK(took.count() >= 0);
    CHECK(took < 500ms);
    CHECK(code == 0);
    CHECK_FALSE(pipecache::remote_stats(h.cache).relay_connected);

    // Redis gone: the relay is between reconnection attempts, and still stops at once.
    redis.kill_hard();
    Relay again(h.guard.name(), redis.url());
    // Attached (so its SIGTERM handler is installed: a slow start, as under ASan on a busy
    // machine, would otherwise meet the default action), then between reconnection attempts.
    REQUIRE(eventually([&] { return pipecache::remote_stats(h.cache).relay_pid == again.pid(); }));
    std::this_thread::sleep_for(300ms);
    took = again.terminate(&code, 2s);
    CHECK(took.count() >= 0);
    CHECK(took < 500ms);
    CHECK(code == 0);
  }

  TEST_CASE("relay_waits_for_its_segment_and_rejects_bad_arguments") {
    RedisServer redis;
    testing::SegmentGuard g(testing::unique_name("late"));
    Relay relay(g.name(), redis.url());
    std::this_thread::sleep_for(200ms);
    CHECK(relay.alive());  // no segment yet: it waits
    Cache cache = Cache::create(testing::small_options(g.name()));
    CHECK(eventually([&] { return pipecache::remote_stats(cache).relay_connected; }));

    auto r = pipectl_test::run_program(remote_testing::env_path("PIPECACHE_RELAY"),
                                       {"--name", g.name(), "--redis", "http://x"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("unknown scheme") != std::string::npos);
    r = pipectl_test::run_program(remote_testing::env_path("PIPECACHE_RELAY"), {"--name", g.name()},
                                  {.input = {}, .env = {"PIPECACHE_REDIS_URL="}});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("PIPECACHE_REDIS_URL") != std::string::npos);
  }

  TEST_CASE("pipectl_invalidate_broadcast_and_stats_show_the_relay") {
    RedisServer redis;
    Host a("pa", redis), b("pb", redis);
    REQUIRE(eventually([&] { return a.subscribed() && b.subscribed(); }));
    fill(a.cache);
    fill(b.cache);
    auto r = pipectl_test::pipectl({"invalidate", "--name", a.guard.name(), "--broadcast", "users:*"},
                                   {.input = {}, .env = {"PIPECACHE_REDIS_URL=" + redis.url()}});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "3\n");
    CHECK(eventually([&] { return !b.has("users:2"); }));
    CHECK(b.has("other:1"));

    r = pipectl_test::pipectl({"stats", "--name", b.guard.name()});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("subscribed since") != std::string::npos);
    CHECK(r.out.find("applied 1") != std::string::npos);
    r = pipectl_test::pipectl({"stats", "--name", b.guard.name(), "--format", "prometheus"});
    CHECK(r.out.find("pipecache_remote_messages_applied_total{segment=\"" + b.guard.name() + "\"} 1") != std::string::npos);
    CHECK(r.out.find("pipecache_relay_up{segment=\"" + b.guard.name() + "\"} 1") != std::string::npos);
    CHECK(r.out.find("pipecache_relay_lag_seconds_count") != std::string::npos);
    r = pipectl_test::pipectl({"stats", "--name", b.guard.name(), "--json"});
    CHECK(r.out.find("\"messages_applied\": 1") != std::string::npos);

    // Redis down: invalidated here, said so, exit 4.
    redis.kill_hard();
    r = pipectl_test::pipectl({"invalidate", "--name", a.guard.name(), "--broadcast",
                               "--redis", redis.url(), "other:*"});
    CHECK(r.exit_code == 4);
    CHECK(r.out == "1\n");
    CHECK(r.err.find("NOT broadcast") != std::string::npos);
    CHECK_FALSE(a.has("other:1"));
    // Without a URL: a usage error, nothing done.
    r = pipectl_test::pipectl({"invalidate", "--name", a.guard.name(), "--broadcast", "x:*"},
                              {.input = {}, .env = {"PIPECACHE_REDIS_URL="}});
    CHECK(r.exit_code == 2);
  }

  TEST_CASE("pipectl_change_broadcast_applies_the_segments_rule_on_every_host") {
    RedisServer redis;
    Host b("cb", redis);
    REQUIRE(eventually([&] { return b.subscribed(); }));
    // Host A's workers published their change rules into A's segment (no Redis of their own).
    testing::SegmentGuard ga(testing::unique_name("cbA"));
    pipecache::PipelineConfig config;
    config.segment_name = ga.name();
    config.cache_memory_limit_mb = 4;
    pipecache::Pipeline p(config);
    REQUIRE(p.cache() != nullptr);
    b.cache.put("settings_page:x", "v");
    b.cache.put("whats_next_data:y", "v");
    b.cache.put("events_by_range:z", "v");
    const pipectl_test::RunOptions with_redis{.input = {}, .env = {"PIPECACHE_REDIS_URL=" + redis.url()}};

    // A rule A does not hold: exit 1, nothing published, B untouched.
    auto r = pipectl_test::pipectl({"change", "--name", ga.name(), "--broadcast", "no_such_change"}, with_redis);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("no rule for change 'no_such_change'") != std::string::npos);
    CHECK(b.has("settings_page:x"));

    // settings_change (seeded: settings_*, whats_next_*) reaches B through its relay.
    r = pipectl_test::pipectl({"change", "--name", ga.name(), "--broadcast", "settings_change"}, with_redis);
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    CHECK(r.out == "0\n");  // A itself held none of them
    CHECK(eventually([&] { return !b.has("settings_page:x") && !b.has("whats_next_data:y"); }));
    CHECK(b.has("events_by_range:z"));

    // Redis gone: A is invalidated all the same, the exit status and message say B is not.
    redis.kill_hard();
    p.cache()->put("settings_page:a", "v");
    r = pipectl_test::pipectl({"change", "--name", ga.name(), "--broadcast", "--redis", redis.url(),
                               "settings_change"});
    CHECK(r.exit_code == 4);
    CHECK(r.out == "1\n");
    CHECK(r.err.find("NOT broadcast") != std::string::npos);
    CHECK_FALSE(p.cache()->get("settings_page:a").has_value());
  }

  TEST_CASE("sync_hook_broadcasts_even_from_a_host_without_a_segment") {
    RedisServer redis;
    Host b("sy", redis);
    REQUIRE(eventually([&] { return b.subscribed(); }));
    b.cache.put("whats_next_data:a", "v");
    b.cache.put("events_by_range:b", "v");
    b.cache.put("settings_get:c", "v");
    const std::string missing = testing::unique_name("nosegment");
    const pipectl_test::RunOptions opts{.input = {}, .env = {"PIPECTL=" + pipectl_test::pipectl_path(),
                                                            "PIPECACHE_REDIS_URL=" + redis.url()}};
    auto r = pipectl_test::run_program(remote_testing::env_path("PIPECTL_SYNC_SCRIPT"),
                                       {"--name", missing}, opts);
    CHECK(r.exit_code == 0);
    CHECK(eventually([&] { return !b.has("whats_next_data:a") && !b.has("events_by_range:b"); }));
    CHECK(b.has("settings_get:c"));
    // Redis gone: the hook fails so the sync job alerts.
    redis.kill_hard();
    r = pipectl_test::run_program(remote_testing::env_path("PIPECTL_SYNC_SCRIPT"),
                                  {"--name", b.guard.name(), "settings_get:*"}, opts);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("NOT broadcast") != std::string::npos);
    CHECK_FALSE(b.has("settings_get:c"));  // this host is invalidated all the same
  }

  TEST_CASE("pipeline_publishes_invalidate_and_data_changes_without_waiting_for_redis") {
    RedisServer redis;
    Host b("pl", redis);
    REQUIRE(eventually([&] { return b.subscribed(); }));
    testing::SegmentGuard ga(testing::unique_name("plA"));
    pipecache::PipelineConfig config;
    config.segment_name = ga.name();
    config.cache_memory_limit_mb = 4;
    config.redis_url = redis.url();
    pipecache::Pipeline p(config);
    REQUIRE(p.cache() != nullptr);

    b.cache.put("settings_page:x", "v");
    b.cache.put("whats_next_data:y", "v");
    b.cache.put("events_by_range:z", "v");
    p.handle_data_change("settings_change");  // seeded rule: settings_*, whats_next_*
    CHECK(eventually([&] { return !b.has("settings_page:x") && !b.has("whats_next_data:y"); }));
    CHECK(b.has("events_by_range:z"));
    p.invalidate("events_by_range:*");
    CHECK(eventually([&] { return !b.has("events_by_range:z"); }));
    CHECK(eventually([&] { return pipecache::remote_stats(*p.cache()).counter(RemoteCounter::publishes) == 3; }));

    // Redis hung (stopped, socket open): invalidate returns at once; the publish fails later,
    // counted, on the publisher's thread.
    redis.pause();
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 20; ++i) p.invalidate("events_by_range:*");
    CHECK(std::chrono::steady_clock::now() - start < 1s);  // 20 calls, each far under a Redis timeout
    CHECK(eventually([&] { return pipecache::remote_stats(*p.cache()).counter(RemoteCounter::publish_failures) >= 1; }));
    redis.resume();
  }
}
