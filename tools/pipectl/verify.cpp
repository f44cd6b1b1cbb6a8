// pipectl verify: check every structural invariant of the segment (Cache::verify: bounds,
// links, byte accounting, counts) while workers keep using it, stripe by stripe.

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_verify(const Invocation& invocation) {
  auto parser = make_parser("verify",
                            "Check every structural invariant of the segment. Prints each "
                            "problem on its own line and exits with status 3 if there is any.",
                            "");
  add_format_options(parser, /*prometheus_allowed=*/false);
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, false);
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  pipecache::VerifyReport report = cache.verify();
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("ok", report.ok());
    j.member("entries_checked", report.entries_checked);
    j.member("blocks_checked", report.blocks_checked);
    j.key("problems").begin_array();
    for (const auto& p : report.problems) j.value(p);
    j.end_array();
    j.end_object();
    write_stdout(j.finish());
  } else {
    std::string out;
    for (const auto& p : report.problems) out += fmt::format("problem: {}\n", p);
    if (report.ok()) {
      out += fmt::format("ok: segment '{}': {} entries, {} blocks checked\n", name,
                         report.entries_checked, report.blocks_checked);
    }
    write_stdout(out);
  }
  if (!report.ok()) {
    throw SegmentProblem(fmt::format("segment '{}' failed verification: {} problem{} (first: {})",
                                     name, report.problems.size(),
                                     report.problems.size() == 1 ? "" : "s",
                                     report.problems.front()));
  }
  return 0;
}

}  // namespace pipectl
