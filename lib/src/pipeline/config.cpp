// PipelineConfig: defaults, validation and the environment variables.
//
// Each field has a prefixed variable (PIPECACHE_...) and, for the design's original settings,
// the unprefixed name, read only when the prefixed one is absent. Every error names the
// variable and its value so that a misconfigured worker says exactly what to fix.
#include <pipecache/pipeline.hpp>
#include <pipecache/remote.hpp>
#include <pipecache/units.hpp>

#include "pipeline/config_fields.hpp"

#include <fmt/format.h>

#include "remote/endpoint.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <limits>
#include <memory>
#include <optional>

extern char** environ;

namespace pipecache {
namespace detail {
struct ConfigFile;
std::shared_ptr<ConfigFile> open_config_file(const std::string& path);
void apply_file_globals(PipelineConfig& c, const ConfigFile& f);
void apply_file_sections(PipelineConfig& c, const ConfigFile& f);
}  // namespace detail

namespace {

struct EnvValue {
  std::string variable;
  std::string text;
};

// The prefixed variable, else the design's name (when it has one).
std::optional<EnvValue> lookup(const char* prefixed, const char* design_name) {
  if (const char* v = std::getenv(prefixed)) return EnvValue{prefixed, v};
  if (design_name != nullptr) {
    if (const char* v = std::getenv(design_name)) return EnvValue{design_name, v};
  }
  return std::nullopt;
}

[[noreturn]] void fail(const EnvValue& env, std::string_view why) {
  throw Error(fmt::format("environment variable {}='{}': {}", env.variable, env.text, why));
}

// Runs a units.hpp parser, re-wording its error so the message always names the variable
// and its value, whatever the parser says.
template <typename Parse>
auto parse_named(const EnvValue& env, Parse parse) {
  if (env.text.empty()) fail(env, "empty value");
  try {
    return parse(env.text, env.variable);
  } catch (const Error& e) {
    fail(env, e.what());
  }
}

std::uint64_t parse_count(const EnvValue& env, std::uint64_t min, std::uint64_t max) {
  const std::string& t = env.text;
  if (t.empty()) fail(env, "empty value");
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec == std::errc::result_out_of_range) fail(env, "number too large");
  if (ec != std::errc() || end != t.data() + t.size()) fail(env, "expected a whole number");
  if (v < min || v > max) fail(env, fmt::format("must be between {} and {}", min, max));
  return v;
}

std::chrono::milliseconds parse_positive_duration(const EnvValue& env) {
  const auto d = parse_named(env, [](std::string_view t, std::string_view w) {
    return parse_duration(t, w);
  });
  if (d.count() <= 0) fail(env, "must be a positive duration");
  return d;
}

// *_MS variables: a bare number is milliseconds; a number with a unit is taken as written.
std::chrono::milliseconds parse_milliseconds(const EnvValue& env) {
  const std::string& t = env.text;
  if (!t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
    return std::chrono::milliseconds(parse_count(env, 0, 86'400'000));
  }
  return parse_named(env, [](std::string_view text, std::string_view w) {
    return parse_duration(text, w);
  });
}

bool parse_flag(const EnvValue& env) {
  return parse_named(env, [](std::string_view t, std::string_view w) { return parse_bool(t, w); });
}

// Variables PIPECACHE_<family>_<name>, in the order the environment lists them.
std::vector<EnvValue> family(std::string_view prefix) {
  std::vector<EnvValue> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string_view entry(*e);
    const std::size_t eq = entry.find('=');
    if (eq == std::string_view::npos || entry.compare(0, prefix.size(), prefix) != 0) continue;
    out.push_back(EnvValue{std::string(entry.substr(0, eq)), std::string(entry.substr(eq + 1))});
  }
  return out;
}

std::string member_name(const EnvValue& env, std::string_view prefix) {
  std::string name = env.variable.substr(prefix.size());
  if (name.empty()) fail(env, "the variable names no type (PIPECACHE_POLICY_<type>)");
  return name;
}

// PIPECACHE_BATCH_<profile>, PIPECACHE_POLICY_<type>, PIPECACHE_RULE_<change>: after the
// file's sections, so the environment wins.
void read_environment_sections(PipelineConfig& c) {
  for (const EnvValue& env : family("PIPECACHE_BATCH_")) {
    if (env.variable == "PIPECACHE_BATCH_SIZE" || env.variable == "PIPECACHE_BATCH_TIMEOUT_MS") continue;
    const detail::Origin origin{fmt::format("environment variable {}", env.variable)};
    const std::string name = member_name(env, "PIPECACHE_BATCH_");
    BatchProfile profile;
    if (auto it = c.batch_profiles.find(name); it != c.batch_profiles.end()) profile = it->second;
    for (const auto& [field, text] : detail::split_spec(env.text, origin)) {
      detail::set_profile_field(profile, field, detail::FieldValue{text, {}, false}, origin, field);
    }
    c.batch_profiles[name] = profile;
  }
  for (const EnvValue& env : family("PIPECACHE_POLICY_")) {
    const detail::Origin origin{fmt::format("environment variable {}", env.variable)};
    const std::string type = member_name(env, "PIPECACHE_POLICY_");
    RequestPolicy policy = detail::base_policy(c, type);
    for (const auto& [field, text] : detail::split_spec(env.text, origin)) {
      detail::set_policy_field(policy, field, detail::FieldValue{text, {}, false}, origin, field);
    }
    c.policies[type] = std::move(policy);
  }
  for (const EnvValue& env : family("PIPECACHE_RULE_")) {
    // An empty value removes the rule (the one place an empty value means something).
    c.invalidation_rules[member_name(env, "PIPECACHE_RULE_")] = detail::split_list(env.text);
  }
}

void read_environment_globals(PipelineConfig& c) {
  if (auto e = lookup("PIPECACHE_NAME", nullptr)) {
    if (e->text.empty()) fail(*e, "empty value");
    try {
      Cache::validate_name(e->text);
    } catch (const Error& err) {
      fail(*e, err.what());
    }
    c.segment_name = e->text;
  }
  if (auto e = lookup("PIPECACHE_ENABLE_RESPONSE_CACHING", "ENABLE_RESPONSE_CACHING")) {
    c.enable_response_caching = parse_flag(*e);
  }
  if (auto e = lookup("PIPECACHE_CACHE_TTL_SECONDS", "CACHE_TTL_SECONDS")) {
    // A bare number is seconds (parse_duration's default unit); "5m" is accepted too.
    c.cache_ttl = parse_positive_duration(*e);
  }
  if (auto e = lookup("PIPECACHE_CACHE_MAX_SIZE", "CACHE_MAX_SIZE")) {
    c.cache_max_size = parse_count(*e, 0, std::numeric_limits<std::uint32_t>::max());
  }
  if (auto e = lookup("PIPECACHE_CACHE_MEMORY_LIMIT_MB", "CACHE_MEMORY_LIMIT_MB")) {
    // 1 MiB .. 1 TiB: below 1 MiB the segment's fixed parts do not fit.
    c.cache_memory_limit_mb = parse_count(*e, 1, 1u << 20);
  }
  if (auto e = lookup("PIPECACHE_ENABLE_REQUEST_BATCHING", "ENABLE_REQUEST_BATCHING")) {
    c.enable_request_batching = parse_flag(*e);
  }
  if (auto e = lookup("PIPECACHE_BATCH_SIZE", "BATCH_SIZE")) {
    c.batch_size = parse_count(*e, 1, 1'000'000);
  }
  if (auto e = lookup("PIPECACHE_BATCH_TIMEOUT_MS", "BATCH_TIMEOUT_MS")) {
    c.batch_timeout = parse_milliseconds(*e);
  }
  if (auto e = lookup("PIPECACHE_ENABLE_REQUEST_DEDUPLICATION", "ENABLE_REQUEST_DEDUPLICATION")) {
    c.enable_request_deduplication = parse_flag(*e);
  }
  if (auto e = lookup("PIPECACHE_LEASE_TIME", nullptr)) c.lease_time = parse_positive_duration(*e);
  if (auto e = lookup("PIPECACHE_DEDUP_MAX_WAIT", nullptr)) {
    c.dedup_max_wait = parse_positive_duration(*e);
  }
  if (auto e = lookup("PIPECACHE_STALE_FOR", nullptr)) {
    c.default_stale_for = parse_named(*e, [](std::string_view t, std::string_view w) {
      return parse_duration(t, w);
    });
  }
  if (auto e = lookup("PIPECACHE_MAX_KEY_LENGTH", nullptr)) {
    c.max_key_length = parse_count(*e, 64, 1u << 16);
  }
  if (auto e = lookup("PIPECACHE_TRUSTED_OWNERS", nullptr)) {
    try {
      c.trust = Trust::parse(e->text);
    } catch (const Error& err) {
      fail(*e, err.what());
    }
  }
  if (auto e = lookup("PIPECACHE_REDIS_URL", nullptr)) {
    try {
      validate_redis_url(e->text);
    } catch (const Error& err) {
      fail(*e, err.what());
    }
    c.redis_url = e->text;
  }
  if (auto e = lookup("PIPECACHE_REDIS_CHANNEL", nullptr)) {
    if (e->text.empty()) fail(*e, "empty value");
    c.redis_channel = e->text;
  }
  if (auto e = lookup("PIPECACHE_REDIS_TIMEOUT", nullptr)) c.redis_timeout = parse_positive_duration(*e);
}

}  // namespace

PipelineConfig PipelineConfig::from_environment() {
  PipelineConfig c;
  std::shared_ptr<detail::ConfigFile> file;
  if (auto e = lookup("PIPECACHE_CONFIG_FILE", nullptr)) {
    if (e->text.empty()) fail(*e, "empty value");
    file = detail::open_config_file(e->text);
    c.config_file = e->text;
    detail::apply_file_globals(c, *file);
  }
  read_environment_globals(c);
  if (file) detail::apply_file_sections(c, *file);
  read_environment_sections(c);
  c.validate();
  return c;
}

std::map<std::string, BatchProfile> PipelineConfig::seed_batch_profiles() {
  using std::chrono::milliseconds;
  return {
      {"database_query", BatchProfile{10, milliseconds(50), BatchMerge::identical_keys}},
      {"event_processing", BatchProfile{5, milliseconds(30), BatchMerge::identical_keys}},
  };
}

void PipelineConfig::validate() const {
  auto bad = [](std::string_view field, std::string_view why) {
    throw Error(fmt::format("pipeline configuration: {} {}", field, why));
  };
  try {
    Cache::validate_name(segment_name);
  } catch (const Error& e) {
    bad("segment_name", e.what());
  }
  if (cache_ttl.count() <= 0) bad("cache_ttl", "must be positive");
  if (cache_memory_limit_mb == 0) bad("cache_memory_limit_mb", "must be at least 1");
  if (cache_memory_limit_mb > (std::size_t{1} << 20)) bad("cache_memory_limit_mb", "is over 1 TiB");
  if (batch_size == 0) bad("batch_size", "must be at least 1");
  if (batch_timeout.count() < 0) bad("batch_timeout", "must not be negative");
  if (lease_time.count() <= 0) bad("lease_time", "must be positive");
  if (dedup_max_wait.count() <= 0) bad("dedup_max_wait", "must be positive");
  if (default_stale_for.count() < 0) bad("default_stale_for", "must not be negative");
  if (max_key_length < 64) bad("max_key_length", "must be at least 64");
  for (const auto& [name, profile] : batch_profiles) {
    const std::string field = fmt::format("batch_profiles.{}", name);
    if (name.empty()) bad("batch_profiles", "has an empty name");
    if (profile.batch_size == 0) bad(field + ".batch_size", "must be at least 1");
    if (profile.batch_timeout.count() < 0) bad(field + ".batch_timeout", "must not be negative");
  }
  for (const auto& [type, p] : policies) {
    const std::string field = fmt::format("policies.{}", type);
    if (type.empty()) bad("policies", "has an empty request type");
    if (p.ttl.count() < 0) bad(field + ".ttl", "must not be negative");
    if (p.stale_for.count() < 0) bad(field + ".stale_for", "must not be negative");
    if (p.time_bucket.count() < 0) bad(field + ".time_bucket", "must not be negative");
    if (!(p.rollout_percent >= 0 && p.rollout_percent <= 100)) {
      bad(field + ".rollout", "must be between 0% and 100%");
    }
    if (!p.batch_profile.empty() && batch_profiles.count(p.batch_profile) == 0) {
      bad(field + ".batch_profile", fmt::format("names no batch profile ('{}')", p.batch_profile));
    }
  }
  for (const auto& [change, patterns] : invalidation_rules) {
    if (change.empty()) bad("invalidation_rules", "has an empty change name");
    for (const auto& p : patterns) {
      if (p.empty()) bad(fmt::format("invalidation_rules.{}", change), "has an empty pattern");
    }
  }
  if (!redis_url.empty()) {
    try {
      validate_redis_url(redis_url);
    } catch (const Error& e) {
      bad("redis_url", e.what());
    }
  }
  try {
    detail::validate_channel(redis_channel);
  } catch (const Error& e) {
    bad("redis_channel", e.what());
  }
  if (redis_timeout.count() <= 0) bad("redis_timeout", "must be positive");
}

}  // namespace pipecache
