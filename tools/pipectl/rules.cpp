// pipectl rules: the change rules kept in the segment (what `pipectl change` applies).

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_rules(const Invocation& invocation) {
  auto parser = make_parser("rules",
                            "List the change rules the workers keep in the segment: each change "
                            "and the patterns 'pipectl change CHANGE' invalidates.",
                            "");
  add_format_options(parser, false);
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  const OutputFormat format = output_format(*parsed, false);
  const std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  const auto rules = cache.change_rules();
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.key("rules").begin_object();
    for (const auto& [change, patterns] : rules) {
      j.key(change).begin_array();
      for (const auto& p : patterns) j.value(p);
      j.end_array();
    }
    j.end_object();
    j.end_object();
    write_stdout(j.finish());
    return 0;
  }
  if (rules.empty()) {
    write_stdout("no change rules (no pipeline has published any to this segment)\n");
    return 0;
  }
  std::string t;
  for (const auto& [change, patterns] : rules) {
    std::string list;
    for (const auto& p : patterns) list += fmt::format("{}{}", list.empty() ? "" : "  ", printable(p));
    t += fmt::format("{:<24} {}\n", printable(change), list);
  }
  write_stdout(t);
  return 0;
}

}  // namespace pipectl
