// The plain-text parts: Redis URLs and the invalidation message format.
#include <doctest/doctest.h>

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

#include "remote/endpoint.hpp"
#include "remote/scripts.hpp"

using namespace pipecache::detail;

TEST_SUITE("remote_unit") {
  TEST_CASE("redis_urls_parse_or_name_the_problem") {
    auto e = parse_redis_url("redis://cache.internal:6380/2");
    CHECK(e.host == "cache.internal");
    CHECK(e.port == 6380);
    CHECK(e.db == 2);
    e = parse_redis_url("redis://10.0.0.1");
    CHECK(e.port == 6379);
    CHECK(e.db == 0);
    e = parse_redis_url("redis://[::1]:7000/");
    CHECK(e.host == "::1");
    CHECK(e.port == 7000);
    e = parse_redis_url("unix:///run/redis/redis.sock?db=3");
    CHECK(e.unix_path == "/run/redis/redis.sock");
    CHECK(e.db == 3);
    for (const char* bad : {"", "http://x", "redis://", "redis://h:0", "redis://h:99999",
                            "redis://h/x", "unix://relative.sock", "redis://u:p@h",
                            "unix:///s?x=1"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(parse_redis_url(bad), pipecache::Error);
    }
    try {
      parse_redis_url("redis://h:99999");
    } catch (const pipecache::Error& err) {
      CHECK(std::string(err.what()).find("redis://h:99999") != std::string::npos);
      CHECK(std::string(err.what()).find("port") != std::string::npos);
    }
  }

  TEST_CASE("messages_round_trip_and_foreign_ones_are_refused") {
    InvalidationMessage m{0x0123456789abcdefull, 1764000000123456789ull, "users:with space*"};
    auto back = parse_message(format_message(m));
    REQUIRE(back);
    CHECK(back->origin == m.origin);
    CHECK(back->published_unix_ns == m.published_unix_ns);
    CHECK(back->pattern == m.pattern);
    for (const char* bad : {"", "hello", "pc1 ", "pc1 zz 1 x", "pc1 0123456789abcdef x y",
                            "pc1 0123456789abcdef 12 ", "pc2 0123456789abcdef 12 x"}) {
      CAPTURE(bad);
      CHECK_FALSE(parse_message(bad));
    }
  }

  TEST_CASE("an_invalidation_reaches_one_tier_type_or_all") {
    CHECK(pattern_type("users:*") == "users");
    CHECK(pattern_type("users:1*") == "users");
    CHECK(pattern_type("whats_next_*") == "");
    CHECK(pattern_type("user*:*") == "");
    CHECK(pattern_type("*") == "");
    CHECK(pattern_type(":x") == "");
  }

  TEST_CASE("channels_are_checked") {
    CHECK_NOTHROW(validate_channel("pipecache:invalidate"));
    CHECK_THROWS_AS(validate_channel(""), pipecache::Error);
    CHECK_THROWS_AS(validate_channel("a b"), pipecache::Error);
  }
}
