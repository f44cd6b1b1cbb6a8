// JSON files whose errors name their line: the configuration file (config_file.cpp) and the
// validator's baseline file (validator.cpp) are read through these.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <string>

namespace pipecache::detail {

// A document and the line (1-based) of every object key and array element, by path: keys
// and indexes joined by '.' ("policies.quote.ttl", "invalidation_rules.x.0").
struct JsonWithLines {
  nlohmann::json doc;
  std::map<std::string, unsigned> lines;
  std::string duplicate;  // path of the first key given twice, "" when none
  unsigned duplicate_line = 0;
};

// Parses `text`; a syntax error throws Error("<label> line L: <what is wrong>").
JsonWithLines parse_json_with_lines(const std::string& label, const std::string& text);

// The whole file; Error("<label>: cannot be read: <errno text>") when it cannot be.
std::string read_text_file(const std::string& label, const std::string& path);

}  // namespace pipecache::detail
