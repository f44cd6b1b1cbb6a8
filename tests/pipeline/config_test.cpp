// PipelineConfig::from_environment: every variable, its design alias, malformed forms.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

using namespace pipecache;
using namespace std::chrono_literals;

namespace {

const std::vector<std::string> kAllVariables = {
    "PIPECACHE_NAME",
    "PIPECACHE_ENABLE_RESPONSE_CACHING", "ENABLE_RESPONSE_CACHING",
    "PIPECACHE_CACHE_TTL_SECONDS", "CACHE_TTL_SECONDS",
    "PIPECACHE_CACHE_MAX_SIZE", "CACHE_MAX_SIZE",
    "PIPECACHE_CACHE_MEMORY_LIMIT_MB", "CACHE_MEMORY_LIMIT_MB",
    "PIPECACHE_ENABLE_REQUEST_BATCHING", "ENABLE_REQUEST_BATCHING",
    "PIPECACHE_BATCH_SIZE", "BATCH_SIZE",
    "PIPECACHE_BATCH_TIMEOUT_MS", "BATCH_TIMEOUT_MS",
    "PIPECACHE_ENABLE_REQUEST_DEDUPLICATION", "ENABLE_REQUEST_DEDUPLICATION",
    "PIPECACHE_LEASE_TIME", "PIPECACHE_DEDUP_MAX_WAIT", "PIPECACHE_STALE_FOR",
    "PIPECACHE_MAX_KEY_LENGTH", "PIPECACHE_TRUSTED_OWNERS",
};

// Clears every variable the config reads, for the scope of a test.
struct CleanEnvironment {
  CleanEnvironment() { clear(); }
  ~CleanEnvironment() { clear(); }
  static void clear() {
    for (const auto& v : kAllVariables) ::unsetenv(v.c_str());
  }
};

PipelineConfig with(const std::string& var, const std::string& value) {
  CleanEnvironment::clear();
  ::setenv(var.c_str(), value.c_str(), 1);
  return PipelineConfig::from_environment();
}

// The message of the Error from_environment throws; "" if it does not throw.
std::string error_for(const std::string& var, const std::string& value) {
  try {
    with(var, value);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void check_rejected(const std::string& var, const std::vector<std::string>& bad_values) {
  for (const auto& bad : bad_values) {
    const std::string msg = error_for(var, bad);
    INFO(var << "='" << bad << "' -> " << msg);
    CHECK_FALSE(msg.empty());
    CHECK(msg.find(var) != std::string::npos);
    CHECK(msg.find("'" + bad + "'") != std::string::npos);
  }
}

}  // namespace

TEST_SUITE("pipeline_config") {

TEST_CASE("defaults_match_the_design") {
  CleanEnvironment env;
  const PipelineConfig c = PipelineConfig::from_environment();
  CHECK(c.enable_response_caching);
  CHECK(c.cache_ttl == 300s);
  CHECK(c.cache_max_size == 1000);
  CHECK(c.cache_memory_limit_mb == 50);
  CHECK(c.enable_request_batching);
  CHECK(c.batch_size == 10);
  CHECK(c.batch_timeout == 50ms);
  CHECK(c.enable_request_deduplication);
}

TEST_CASE("each_prefixed_variable_is_read") {
  CleanEnvironment env;
  CHECK(with("PIPECACHE_NAME", "web-1").segment_name == "web-1");
  CHECK_FALSE(with("PIPECACHE_ENABLE_RESPONSE_CACHING", "false").enable_response_caching);
  CHECK(with("PIPECACHE_ENABLE_RESPONSE_CACHING", "1").enable_response_caching);
  CHECK(with("PIPECACHE_CACHE_TTL_SECONDS", "120").cache_ttl == 120s);
  CHECK(with("PIPECACHE_CACHE_TTL_SECONDS", "5m").cache_ttl == 300s);
  CHECK(with("PIPECACHE_CACHE_MAX_SIZE", "5000").cache_max_size == 5000);
  CHECK(with("PIPECACHE_CACHE_MAX_SIZE", "0").cache_max_size == 0);
  CHECK(with("PIPECACHE_CACHE_MEMORY_LIMIT_MB", "128").cache_memory_limit_mb == 128);
  CHECK_FALSE(with("PIPECACHE_ENABLE_REQUEST_BATCHING", "no").enable_request_batching);
  CHECK(with("PIPECACHE_BATCH_SIZE", "25").batch_size == 25);
  CHECK(with("PIPECACHE_BATCH_TIMEOUT_MS", "75").batch_timeout == 75ms);
  CHECK(with("PIPECACHE_BATCH_TIMEOUT_MS", "1s").batch_timeout == 1000ms);
  CHECK(with("PIPECACHE_BATCH_TIMEOUT_MS", "0").batch_timeout == 0ms);
  CHECK_FALSE(with("PIPECACHE_ENABLE_REQUEST_DEDUPLICATION", "off").enable_request_deduplication);
  CHECK(with("PIPECACHE_LEASE_TIME", "3s").lease_time == 3s);
  CHECK(with("PIPECACHE_DEDUP_MAX_WAIT", "500ms").dedup_max_wait == 500ms);
  CHECK(with("PIPECACHE_STALE_FOR", "30s").default_stale_for == 30s);
  CHECK(with("PIPECACHE_MAX_KEY_LENGTH", "128").max_key_length == 128);
}

TEST_CASE("design_names_are_honoured_when_the_prefixed_one_is_absent") {
  CleanEnvironment env;
  CHECK_FALSE(with("ENABLE_RESPONSE_CACHING", "false").enable_response_caching);
  CHECK(with("CACHE_TTL_SECONDS", "42").cache_ttl == 42s);
  CHECK(with("CACHE_MAX_SIZE", "7").cache_max_size == 7);
  CHECK(with("CACHE_MEMORY_LIMIT_MB", "9").cache_memory_limit_mb == 9);
  CHECK_FALSE(with("ENABLE_REQUEST_BATCHING", "false").enable_request_batching);
  CHECK(with("BATCH_SIZE", "3").batch_size == 3);
  CHECK(with("BATCH_TIMEOUT_MS", "20").batch_timeout == 20ms);
  CHECK_FALSE(with("ENABLE_REQUEST_DEDUPLICATION", "0").enable_request_deduplication);

  // Both set: the prefixed one wins, and the design name's bad value is not even read.
  CleanEnvironment::clear();
  ::setenv("PIPECACHE_BATCH_SIZE", "4", 1);
  ::setenv("BATCH_SIZE", "garbage", 1);
  CHECK(PipelineConfig::from_environment().batch_size == 4);
}

TEST_CASE("trusted_owners_are_read_by_name_or_uid_and_unknown_users_are_named") {
  CleanEnvironment env;
  CHECK(with("PIPECACHE_TRUSTED_OWNERS", "root,1234").trust.owners == std::vector<std::uint32_t>{0, 1234});
  CHECK(with("PIPECACHE_TRUSTED_OWNERS", "").trust.owners.empty());
  CHECK(PipelineConfig::from_environment().trust.owners.empty());
  check_rejected("PIPECACHE_TRUSTED_OWNERS", {"no-such-user-here", "root,nobody-at-all"});
}

TEST_CASE("malformed_values_name_the_variable_and_value") {
  CleanEnvironment env;
  check_rejected("PIPECACHE_NAME", {"", "bad name", "a/b", std::string(100, 'n')});
  for (const char* v : {"PIPECACHE_ENABLE_RESPONSE_CACHING", "ENABLE_RESPONSE_CACHING",
                        "PIPECACHE_ENABLE_REQUEST_BATCHING", "ENABLE_REQUEST_BATCHING",
                        "PIPECACHE_ENABLE_REQUEST_DEDUPLICATION", "ENABLE_REQUEST_DEDUPLICATION"}) {
    check_rejected(v, {"", "maybe", "2", "tru"});
  }
  for (const char* v : {"PIPECACHE_CACHE_TTL_SECONDS", "CACHE_TTL_SECONDS"}) {
    check_rejected(v, {"", "abc", "-5", "0", "10 parsecs", "99999999999999999999999"});
  }
  for (const char* v : {"PIPECACHE_CACHE_MAX_SIZE", "CACHE_MAX_SIZE"}) {
    check_rejected(v, {"", "many", "-1", "1.5", "10k", "99999999999999999999999"});
  }
  for (const char* v : {"PIPECACHE_CACHE_MEMORY_LIMIT_MB", "CACHE_MEMORY_LIMIT_MB"}) {
    check_rejected(v, {"", "0", "lots", "-3", "50MB", "9999999999"});
  }
  for (const char* v : {"PIPECACHE_BATCH_SIZE", "BATCH_SIZE"}) {
    check_rejected(v, {"", "0", "ten", "-1", "3.0"});
  }
  for (const char* v : {"PIPECACHE_BATCH_TIMEOUT_MS", "BATCH_TIMEOUT_MS"}) {
    check_rejected(v, {"", "soon", "-50", "50xs", "99999999999"});
  }
  check_rejected("PIPECACHE_LEASE_TIME", {"", "0", "forever", "-1s"});
  check_rejected("PIPECACHE_DEDUP_MAX_WAIT", {"", "0", "x"});
  check_rejected("PIPECACHE_STALE_FOR", {"", "stale"});
  check_rejected("PIPECACHE_MAX_KEY_LENGTH", {"", "10", "long"});
}

TEST_CASE("invalid_configuration_is_rejected_by_the_constructor") {
  PipelineConfig c;
  c.segment_name = "not a valid name";
  CHECK_THROWS_AS(Pipeline{c}, Error);
  c = PipelineConfig{};
  c.batch_size = 0;
  CHECK_THROWS_AS(c.validate(), Error);
  c = PipelineConfig{};
  c.cache_memory_limit_mb = 0;
  CHECK_THROWS_AS(c.validate(), Error);
  c = PipelineConfig{};
  c.lease_time = 0ms;
  CHECK_THROWS_AS(c.validate(), Error);
  CHECK_NOTHROW(PipelineConfig{}.validate());
}

}  // TEST_SUITE
