// pipectl disable / enable / rollout: a request type's runtime switch, kept in the segment.
//
// Every Pipeline on the segment reads the type's switch on each request of the type (one
// relaxed load: Namespace::cache_switch in layout.hpp), so workers obey at once, with no
// restart and no signal. The switch overrides the processes' own policies until cleared
// (`pipectl rollout TYPE --clear`). A rollout caches the keys whose stable hash falls in the
// share: a key is always or never cached, and 10% keeps the keys of 5%.
//
// The three subcommands share this file: they are one switch written three ways.

#include <optional>

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {
namespace {

double parse_percent_arg(const std::string& text) {
  std::string t = text;
  if (!t.empty() && t.back() == '%') t.pop_back();
  std::size_t used = 0;
  double v = -1;
  try {
    v = std::stod(t, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (t.empty() || used != t.size() || !(v >= 0 && v <= 100)) {
    throw UsageError(fmt::format("PERCENT '{}' is not a percentage from 0% to 100% (like 10%)", text));
  }
  return v;
}

// Sets (or clears) the switch and prints the state: "TYPE: 10% of keys cached".
int write_switch(const cxxopts::ParseResult& parsed, const Invocation& invocation,
                 const std::string& type, std::optional<double> percent) {
  const OutputFormat format = output_format(parsed, false);
  const std::string name = segment_name(parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::write);
  try {
    cache.set_type_switch(type, percent);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("request_type", type);
    j.key("switch_percent");
    if (percent) {
      j.value(*percent);
    } else {
      j.null();
    }
    j.end_object();
    write_stdout(j.finish());
  } else if (!percent) {
    write_stdout(fmt::format("{}: switch cleared (the workers' policies decide)\n", printable(type)));
  } else {
    write_stdout(fmt::format("{}: {:g}% of keys cached\n", printable(type), *percent));
  }
  return 0;
}

std::optional<cxxopts::ParseResult> parse_type_command(cxxopts::Options& parser,
                                                       const Invocation& invocation,
                                                       const std::vector<std::string>& positional) {
  add_format_options(parser, false);
  add_positional(parser, positional);
  auto parsed = parse_arguments(parser, invocation);
  if (parsed && !parsed->count("type")) throw UsageError("TYPE is missing");
  return parsed;
}

}  // namespace

int run_disable(const Invocation& invocation) {
  auto parser = make_parser("disable",
                            "Turn caching off for request type TYPE in every worker (within its "
                            "next request): its requests run their handler directly.",
                            "TYPE");
  auto parsed = parse_type_command(parser, invocation, {"type"});
  if (!parsed) return 0;
  return write_switch(*parsed, invocation, (*parsed)["type"].as<std::string>(), 0.0);
}

int run_enable(const Invocation& invocation) {
  auto parser = make_parser("enable",
                            "Cache every key of request type TYPE in every worker, whatever "
                            "their policies say ('rollout TYPE --clear' hands back to them).",
                            "TYPE");
  auto parsed = parse_type_command(parser, invocation, {"type"});
  if (!parsed) return 0;
  return write_switch(*parsed, invocation, (*parsed)["type"].as<std::string>(), 100.0);
}

int run_rollout(const Invocation& invocation) {
  auto parser = make_parser("rollout",
                            "Cache PERCENT of request type TYPE's keys in every worker (a stable "
                            "hash of the key decides, so a key is always or never cached). "
                            "--clear removes the switch: the workers' policies decide again.",
                            "TYPE [PERCENT]");
  parser.add_options()("clear", "remove the switch");
  auto parsed = parse_type_command(parser, invocation, {"type", "percent"});
  if (!parsed) return 0;
  const std::string type = (*parsed)["type"].as<std::string>();
  if (parsed->count("clear")) {
    if (parsed->count("percent")) throw UsageError("give PERCENT or --clear, not both");
    return write_switch(*parsed, invocation, type, std::nullopt);
  }
  if (!parsed->count("percent")) throw UsageError("PERCENT is missing (or --clear)");
  return write_switch(*parsed, invocation, type,
                      parse_percent_arg((*parsed)["percent"].as<std::string>()));
}

}  // namespace pipectl
