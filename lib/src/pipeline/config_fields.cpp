// The configuration's named fields: see config_fields.hpp.
#include "pipeline/config_fields.hpp"

#include "pipeline/policy.hpp"

#include <pipecache/units.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <functional>
#include <limits>
#include <set>

namespace pipecache::detail {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// A field's reader: parses `value` into the target. Each table below lists a section's fields.
template <typename Target>
using Setter = std::function<void(Target&, const FieldValue&, const Origin&, std::string_view)>;
template <typename Target>
using FieldTable = std::vector<std::pair<std::string_view, Setter<Target>>>;

const std::string& scalar(const FieldValue& v, const Origin& o, std::string_view path) {
  if (v.is_list) field_error(o, path, "expected a single value, not a list");
  if (trim(v.text).empty()) field_error(o, path, "empty value");
  return v.text;
}

// Runs a units.hpp parser, re-wording its error under the origin and field.
template <typename Parse>
auto parse_as(const FieldValue& v, const Origin& o, std::string_view path, Parse parse) {
  const std::string& text = scalar(v, o, path);
  try {
    return parse(text);
  } catch (const Error& e) {
    field_error(o, path, e.what());
  }
}

bool flag(const FieldValue& v, const Origin& o, std::string_view path) {
  return parse_as(v, o, path, [&](const std::string& t) { return parse_bool(t, "value"); });
}

// A duration must carry its unit here ("50ms", "300s"): a bare 50 would be seconds by
// parse_duration's rule, and "batch_timeout": 50 meaning 50 s is a trap not worth keeping.
std::chrono::milliseconds duration(const FieldValue& v, const Origin& o, std::string_view path) {
  const std::string& t = scalar(v, o, path);
  const std::string_view s = trim(t);
  if (!s.empty() && std::isdigit(static_cast<unsigned char>(s.back()))) {
    field_error(o, path, fmt::format("'{}' has no unit: write a duration like \"50ms\", "
                                     "\"300s\" or \"5m\"", t));
  }
  return parse_as(v, o, path, [&](const std::string& text) { return parse_duration(text, "value"); });
}

std::uint64_t count(const FieldValue& v, const Origin& o, std::string_view path, std::uint64_t min,
                    std::uint64_t max) {
  const std::string_view t = trim(scalar(v, o, path));
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (ec != std::errc() || end != t.data() + t.size()) {
    field_error(o, path, fmt::format("'{}' is not a whole number", v.text));
  }
  if (n < min || n > max) field_error(o, path, fmt::format("{} is not between {} and {}", n, min, max));
  return n;
}

std::string name_value(const FieldValue& v, const Origin& o, std::string_view path) {
  return std::string(trim(scalar(v, o, path)));
}

std::vector<std::string> list(const FieldValue& v, const Origin& o, std::string_view path) {
  std::vector<std::string> out = v.is_list ? v.items : split_list(v.text);
  for (auto& item : out) {
    item = std::string(trim(item));
    if (item.empty()) field_error(o, path, "an empty name in the list");
  }
  return out;
}

const FieldTable<RequestPolicy>& policy_fields() {
  using P = RequestPolicy;
  static const FieldTable<P> t = {
      {"ttl", [](P& p, auto& v, auto& o, auto path) { p.ttl = duration(v, o, path); }},
      {"stale_for", [](P& p, auto& v, auto& o, auto path) { p.stale_for = duration(v, o, path); }},
      {"deduplicate", [](P& p, auto& v, auto& o, auto path) { p.deduplicate = flag(v, o, path); }},
      {"batch_eligible",
       [](P& p, auto& v, auto& o, auto path) { p.batch_eligible = flag(v, o, path); }},
      {"invalidation_triggers",
       [](P& p, auto& v, auto& o, auto path) { p.invalidation_triggers = list(v, o, path); }},
      {"time_bucket",
       [](P& p, auto& v, auto& o, auto path) {
         p.time_bucket = std::chrono::duration_cast<std::chrono::seconds>(duration(v, o, path));
       }},
      {"batch_profile",
       [](P& p, auto& v, auto& o, auto path) { p.batch_profile = name_value(v, o, path); }},
      {"rollout",
       [](P& p, auto& v, auto& o, auto path) {
         p.rollout_percent = parse_percent(scalar(v, o, path), o, path);
       }},
  };
  return t;
}

const FieldTable<BatchProfile>& profile_fields() {
  using B = BatchProfile;
  static const FieldTable<B> t = {
      {"batch_size", [](B& b, auto& v, auto& o, auto path) { b.batch_size = count(v, o, path, 1, 1'000'000); }},
      {"batch_timeout", [](B& b, auto& v, auto& o, auto path) { b.batch_timeout = duration(v, o, path); }},
      {"merge",
       [](B& b, auto& v, auto& o, auto path) {
         const std::string m = name_value(v, o, path);
         if (m == "identical_keys") b.merge = BatchMerge::identical_keys;
         else if (m == "none") b.merge = BatchMerge::none;
         else field_error(o, path, fmt::format("'{}' is not identical_keys or none", m));
       }},
  };
  return t;
}

const FieldTable<PipelineConfig>& config_fields() {
  using C = PipelineConfig;
  static const FieldTable<C> t = {
      {"segment_name",
       [](C& c, auto& v, auto& o, auto path) {
         const std::string n = name_value(v, o, path);
         try {
           Cache::validate_name(n);
         } catch (const Error& e) {
           field_error(o, path, e.what());
         }
         c.segment_name = n;
       }},
      {"enable_response_caching",
       [](C& c, auto& v, auto& o, auto path) { c.enable_response_caching = flag(v, o, path); }},
      {"cache_ttl", [](C& c, auto& v, auto& o, auto path) { c.cache_ttl = duration(v, o, path); }},
      {"cache_max_size",
       [](C& c, auto& v, auto& o, auto path) {
         c.cache_max_size = count(v, o, path, 0, std::numeric_limits<std::uint32_t>::max());
       }},
      {"cache_memory_limit_mb",
       [](C& c, auto& v, auto& o, auto path) { c.cache_memory_limit_mb = count(v, o, path, 1, 1u << 20); }},
      {"enable_request_batching",
       [](C& c, auto& v, auto& o, auto path) { c.enable_request_batching = flag(v, o, path); }},
      {"batch_size",
       [](C& c, auto& v, auto& o, auto path) { c.batch_size = count(v, o, path, 1, 1'000'000); }},
      {"batch_timeout", [](C& c, auto& v, auto& o, auto path) { c.batch_timeout = duration(v, o, path); }},
      {"enable_request_deduplication",
       [](C& c, auto& v, auto& o, auto path) { c.enable_request_deduplication = flag(v, o, path); }},
      {"lease_time", [](C& c, auto& v, auto& o, auto path) { c.lease_time = duration(v, o, path); }},
      {"dedup_max_wait",
       [](C& c, auto& v, auto& o, auto path) { c.dedup_max_wait = duration(v, o, path); }},
      {"default_stale_for",
       [](C& c, auto& v, auto& o, auto path) { c.default_stale_for = duration(v, o, path); }},
      {"max_key_length",
       [](C& c, auto& v, auto& o, auto path) { c.max_key_length = count(v, o, path, 64, 1u << 16); }},
  };
  return t;
}

template <typename Target>
void set_field(const FieldTable<Target>& table, Target& target, std::string_view name,
               const FieldValue& value, const Origin& origin, std::string_view path) {
  for (const auto& [field, setter] : table) {
    if (field == name) {
      setter(target, value, origin, path);
      return;
    }
  }
  std::string known;
  for (const auto& [field, setter] : table) known += fmt::format("{}{}", known.empty() ? "" : ", ", field);
  field_error(origin, path, fmt::format("unknown field (known: {})", known));
}

}  // namespace

void field_error(const Origin& origin, std::string_view field, std::string_view why) {
  throw Error(fmt::format("{}: field {}: {}", origin.where, field, why));
}

void set_config_field(PipelineConfig& config, std::string_view name, const FieldValue& value,
                      const Origin& origin, std::string_view path) {
  set_field(config_fields(), config, name, value, origin, path);
}

void set_policy_field(RequestPolicy& policy, std::string_view name, const FieldValue& value,
                      const Origin& origin, std::string_view path) {
  set_field(policy_fields(), policy, name, value, origin, path);
}

void set_profile_field(BatchProfile& profile, std::string_view name, const FieldValue& value,
                       const Origin& origin, std::string_view path) {
  set_field(profile_fields(), profile, name, value, origin, path);
}

RequestPolicy base_policy(const PipelineConfig& config, const std::string& request_type) {
  if (auto it = config.policies.find(request_type); it != config.policies.end()) return it->second;
  for (auto& [type, policy] : seed_policies()) {
    if (type == request_type) return policy;
  }
  return default_policy(config);
}

std::vector<std::pair<std::string, std::string>> split_spec(std::string_view spec,
                                                            const Origin& origin) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string, std::less<>> seen;
  while (!spec.empty()) {
    const std::size_t end = std::min(spec.find(';'), spec.size());
    const std::string_view part = trim(spec.substr(0, end));
    spec.remove_prefix(std::min(end + 1, spec.size()));
    if (part.empty()) continue;
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos) {
      field_error(origin, part, "expected name=value (parts separated by ';')");
    }
    std::string name(trim(part.substr(0, eq)));
    if (name.empty()) field_error(origin, part, "a value without a field name");
    if (!seen.insert(name).second) field_error(origin, name, "given twice");
    out.emplace_back(std::move(name), std::string(trim(part.substr(eq + 1))));
  }
  return out;
}

std::vector<std::string> split_list(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find(','), text.size());
    const std::string_view item = trim(text.substr(0, end));
    if (!item.empty()) out.emplace_back(item);
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return out;
}

double parse_percent(std::string_view text, const Origin& origin, std::string_view path) {
  std::string_view t = trim(text);
  if (!t.empty() && t.back() == '%') t = trim(t.substr(0, t.size() - 1));
  double v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size() || !std::isfinite(v)) {
    field_error(origin, path, fmt::format("'{}' is not a percentage like 10% or 12.5", text));
  }
  if (v < 0 || v > 100) field_error(origin, path, fmt::format("{}% is not between 0% and 100%", v));
  return v;
}

}  // namespace pipecache::detail
