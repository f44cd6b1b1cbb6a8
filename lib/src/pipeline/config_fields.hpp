// The named fields of the pipeline's configuration, shared by its two textual sources: the
// JSON file (config_file.cpp) and the environment (config.cpp). One vocabulary, one parser
// per field, so `ttl` means the same thing in `PIPECACHE_POLICY_quote="ttl=30s"` and in
// `{"policies": {"quote": {"ttl": "30s"}}}`.
//
// Every error names where the value came from (`Origin`: a file and line, or a variable) and
// the field, in that order: "config file /etc/x.json line 12: field policies.quote.ttl: ...".
#pragma once

#include <pipecache/pipeline.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace pipecache::detail {

// Where a value was written, for messages: "config file F line L" or "environment variable V".
struct Origin {
  std::string where;
};

// A value as written: a scalar's text (JSON true/false/numbers as their JSON spelling), or a
// list of strings.
struct FieldValue {
  std::string text;
  std::vector<std::string> items;
  bool is_list = false;
};

[[noreturn]] void field_error(const Origin& origin, std::string_view field, std::string_view why);

// Each sets one named field (unknown name: field_error "unknown field", listing the known).
// `path` is the field's full name for messages ("policies.quote.ttl").
void set_config_field(PipelineConfig& config, std::string_view name, const FieldValue& value,
                      const Origin& origin, std::string_view path);
void set_policy_field(RequestPolicy& policy, std::string_view name, const FieldValue& value,
                      const Origin& origin, std::string_view path);
void set_profile_field(BatchProfile& profile, std::string_view name, const FieldValue& value,
                       const Origin& origin, std::string_view path);

// The policy a type starts from before a file or variable changes some of its fields: the
// one already configured, else the seed, else the config's default for unknown types.
RequestPolicy base_policy(const PipelineConfig& config, const std::string& request_type);

// "a=1; b=x,y" -> {{"a","1"}, {"b","x,y"}}; field_error on a part without '=' or a name
// given twice. Whitespace around names and values is dropped.
std::vector<std::pair<std::string, std::string>> split_spec(std::string_view spec,
                                                            const Origin& origin);
// "x, y ,z" -> {"x","y","z"} (empty parts dropped).
std::vector<std::string> split_list(std::string_view text);

// "10%", "10", "12.5" -> 12.5 (0..100); field_error otherwise.
double parse_percent(std::string_view text, const Origin& origin, std::string_view path);

}  // namespace pipecache::detail
