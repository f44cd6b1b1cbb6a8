#include <doctest/doctest.h>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

using namespace pipecache;
using namespace std::chrono_literals;

TEST_SUITE("util") {
  TEST_CASE("sizes_take_kib_multiples") {
    CHECK(parse_size("4096", "x") == 4096);
    CHECK(parse_size("512K", "x") == 512u << 10);
    CHECK(parse_size("64M", "x") == 64u << 20);
    CHECK(parse_size("1g", "x") == 1ull << 30);
    CHECK(parse_size("2MiB", "x") == 2u << 20);
    CHECK(parse_size(" 3 KB ", "x") == 3u << 10);
  }
  TEST_CASE("malformed_sizes_name_the_setting_and_the_text") {
    for (const char* bad : {"", "M", "12Q", "-5", "1.5M", "99999999999999999999", "17179869184T"}) {
      CAPTURE(bad);
      try {
        parse_size(bad, "CACHE_MEMORY_LIMIT");
        FAIL("no error");
      } catch (const Error& e) {
        CHECK(std::string(e.what()).find("CACHE_MEMORY_LIMIT") != std::string::npos);
      }
    }
  }
  TEST_CASE("durations_default_to_seconds") {
    CHECK(parse_duration("300", "x") == 300s);
    CHECK(parse_duration("5m", "x") == 5min);
    CHECK(parse_duration("100ms", "x") == 100ms);
    CHECK(parse_duration("2h", "x") == 2h);
    CHECK(parse_duration("1d", "x") == 24h);
    CHECK(parse_duration("500us", "x") == 1ms);  // never rounded down to "no TTL"
    CHECK(parse_duration_ns("250us", "x") == 250us);
    CHECK(parse_duration("0", "x") == 0ms);
  }
  TEST_CASE("malformed_durations_throw") {
    for (const char* bad : {"", "m", "5 parsecs", "-1s", "1.5s", "99999999999999999999d"}) {
      CAPTURE(bad);
      CHECK_THROWS_AS(parse_duration(bad, "TTL"), Error);
    }
  }
  TEST_CASE("booleans_accept_the_usual_spellings_only") {
    CHECK(parse_bool("true", "x"));
    CHECK(parse_bool("ON", "x"));
    CHECK(parse_bool("1", "x"));
    CHECK_FALSE(parse_bool("no", "x"));
    CHECK_FALSE(parse_bool("0", "x"));
    CHECK_THROWS_AS(parse_bool("maybe", "x"), Error);
  }
  TEST_CASE("formatting_is_human_readable") {
    CHECK(format_size(512) == "512 B");
    CHECK(format_size(64u << 20) == "64.0 MiB");
    CHECK(format_duration(1500us) == "1.50 ms");
  }
}
