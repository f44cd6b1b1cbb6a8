// Cache keys: canonical form, injectivity of the escaping, time buckets, hashing.
#include <pipecache/keys.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

using namespace pipecache;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;

namespace {

const system_clock::time_point kNoon{seconds(1'790'000'000 - 1'790'000'000 % 3600 + 12 * 3600)};

std::string key_of(std::string_view type, const Params& p, std::size_t max_length = 250) {
  return make_cache_key(type, p, kNoon, KeyOptions{seconds(0), max_length});
}

}  // namespace

TEST_SUITE("pipeline_keys") {

TEST_CASE("key_golden_pins_the_canonical_form") {
  // Changing the key format orphans every cached entry: it must be a decision.
  CHECK(key_of("events_by_range", {{"to", "2024-01-02"}, {"from", "2024-01-01"}}) ==
        "events_by_range:from=2024-01-01&to=2024-01-02");
  CHECK(key_of("settings_get", {}) == "settings_get:");
  CHECK(key_of("t", {{"a b", "x=y&z%"}}) == "t:a%20b=x%3Dy%26z%25");
  CHECK(key_of("t", {{"glob", "*?\\"}}) == "t:glob=%2A%3F%5C");
  CHECK(key_of("a:b", {{"k", "10:30"}}) == "a%3Ab:k=10:30");
  // The hash of over-long keys (XXH3-128 of the full key) is pinned too.
  CHECK(key_of("events_by_range", {{"q", std::string(300, 'x')}}, 100) ==
        "events_by_range:#db2a1d399e7726b6879482cb848986e5");
}

TEST_CASE("param_order_never_matters") {
  std::vector<std::pair<std::string, std::string>> pairs = {
      {"user", "17"}, {"from", "2024-01-01"}, {"to", "2024-02-01"}, {"tz", "Europe/Paris"},
      {"lang", "fr"}};
  std::mt19937 rng(7);
  const std::string reference = key_of("events_by_range", Params(pairs.begin(), pairs.end()));
  for (int i = 0; i < 50; ++i) {
    std::shuffle(pairs.begin(), pairs.end(), rng);
    Params p;
    for (const auto& [k, v] : pairs) p.emplace(k, v);
    CHECK(key_of("events_by_range", p) == reference);
  }
}

TEST_CASE("escaping_edge_cases_do_not_collide") {
  const std::vector<Params> maps = {
      {{"a", "b=c"}},
      {{"a=b", "c"}},
      {{"a", "b&c=d"}},
      {{"a", "b"}, {"c", "d"}},
      {{"a", "b,c"}},
      {{"a", "b"}, {",c", ""}},
      {{"a", "%3D"}},
      {{"a", "="}},
      {{"a", "%"}},
      {{"a", "%25"}},
      {{"a", ""}},
      {{"", "a"}},
      {{"", ""}},
      {},
      {{"a", "b|t=60"}},
      {{"a", "#x"}},
      {{"a&b", ""}},
      {{"a", ""}, {"b", ""}},
  };
  std::set<std::string> keys;
  for (const auto& m : maps) {
    const std::string k = key_of("t", m);
    CHECK_MESSAGE(keys.insert(k).second, "collision on " << k);
    const auto back = parse_canonical_params(k.substr(2));
    REQUIRE(back.has_value());
    CHECK(*back == m);
  }
}

TEST_CASE("distinct_random_param_maps_give_distinct_keys") {
  // Names and values drawn from the bytes that matter to the encoding.
  const std::string alphabet = "a=&%,|#:*?\\ 2F\x01\xff";
  std::mt19937 rng(12345);
  auto random_text = [&] {
    std::string s;
    const int n = static_cast<int>(rng() % 4);
    for (int i = 0; i < n; ++i) s += alphabet[rng() % alphabet.size()];
    return s;
  };
  std::map<std::string, Params> seen;
  int distinct_maps = 0;
  for (int i = 0; i < 20000; ++i) {
    Params p;
    const int n = static_cast<int>(rng() % 4);
    for (int j = 0; j < n; ++j) p[random_text()] = random_text();
    const std::string k = key_of("t", p);
    auto [it, inserted] = seen.emplace(k, p);
    if (inserted) {
      ++distinct_maps;
    } else {
      REQUIRE_MESSAGE(it->second == p, "two maps share the key " << k);
    }
    const auto back = parse_canonical_params(k.substr(2));
    REQUIRE(back.has_value());
    REQUIRE(*back == p);
    // Invariant 2: no glob wildcard ever appears in a key.
    REQUIRE(k.find_first_of("*?\\") == std::string::npos);
  }
  CHECK(distinct_maps > 10000);
}

TEST_CASE("parse_rejects_text_the_encoder_never_produces") {
  CHECK_FALSE(parse_canonical_params("a").has_value());       // no '='
  CHECK_FALSE(parse_canonical_params("a=%4").has_value());    // short escape
  CHECK_FALSE(parse_canonical_params("a=%41").has_value());   // 'A' is written plain
  CHECK_FALSE(parse_canonical_params("a=%3d").has_value());   // lower-case hex
  CHECK_FALSE(parse_canonical_params("b=1&a=2").has_value()); // not in name order
  CHECK_FALSE(parse_canonical_params("a=1&a=2").has_value()); // duplicate name
  CHECK(parse_canonical_params("").value().empty());
}

TEST_CASE("time_bucket_is_the_minute_unless_debug_time_pins_it") {
  const KeyOptions bucketed{seconds(60), 250};
  const Params p{{"user", "3"}};
  const auto t0 = kNoon;
  const std::string k0 = make_cache_key("whats_next_data", p, t0, bucketed);
  CHECK(make_cache_key("whats_next_data", p, t0 + seconds(59), bucketed) == k0);
  CHECK(make_cache_key("whats_next_data", p, t0 + seconds(60), bucketed) != k0);
  CHECK(make_cache_key("whats_next_data", p, t0 - seconds(1), bucketed) != k0);
  CHECK(k0.rfind("whats_next_data:user=3|t=", 0) == 0);

  Params pinned = p;
  pinned[std::string(kDebugTimeParam)] = "2024-05-01T10:00";
  const std::string kp = make_cache_key("whats_next_data", pinned, t0, bucketed);
  CHECK(make_cache_key("whats_next_data", pinned, t0 + minutes(30), bucketed) == kp);
  CHECK(kp.find("|t=") == std::string::npos);

  CHECK(bucket_start(t0 + seconds(61), seconds(60)) == t0 + seconds(60));
}

TEST_CASE("long_keys_are_hashed_keeping_the_type_prefix") {
  Params big{{"q", std::string(400, 'x')}};
  const std::string k = key_of("events_by_range", big, 100);
  CHECK(k.size() <= 100);
  CHECK(k.rfind("events_by_range:#", 0) == 0);
  CHECK(k == key_of("events_by_range", big, 100));  // deterministic
  Params other{{"q", std::string(399, 'x') + "y"}};
  CHECK(key_of("events_by_range", other, 100) != k);
  // Short keys are left readable.
  CHECK(key_of("events_by_range", {{"q", "x"}}, 100) == "events_by_range:q=x");
  // A type too long to keep readable still yields a bounded key.
  const std::string huge_type(300, 't');
  CHECK(key_of(huge_type, {}, 100).size() <= 100);
}

}  // TEST_SUITE
