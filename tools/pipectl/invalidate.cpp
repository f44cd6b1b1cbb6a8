// pipectl invalidate: remove every key matching a glob and print how many went.
//
// The count is printed alone on stdout so a hook can capture it (n=$(pipectl invalidate ...)).
// Zero matches is success: an invalidation hook must not fail just because nothing was cached.

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_invalidate(const Invocation& invocation) {
  auto parser = make_parser(
      "invalidate",
      "Remove every key matching GLOB ('*' any run, '?' one byte, '\\x' the byte x) and print "
      "how many were removed. '<request type>:*' for a registered request type is O(1). Quote "
      "the glob so the shell does not expand it.",
      "GLOB");
  add_format_options(parser, /*prometheus_allowed=*/false);
  add_positional(parser, {"glob"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, false);
  if (!parsed->count("glob")) throw UsageError("GLOB is missing (use 'pipectl clear' for all)");
  std::string glob = (*parsed)["glob"].as<std::string>();
  if (glob.empty()) throw UsageError("GLOB is empty");
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::write);
  std::size_t removed = cache.invalidate(glob);
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("glob", glob);
    j.member("removed", static_cast<std::uint64_t>(removed));
    j.end_object();
    write_stdout(j.finish());
  } else {
    write_stdout(fmt::format("{}\n", removed));
  }
  return 0;
}

}  // namespace pipectl
