// pipectl validate: the design's targets judged on a segment's figures and a baseline file.
//
// The segment gives what it counts (hit ratio, hit time, cache memory, batch formation and
// batch handler time per request); the baseline file gives the uncached run's figures and
// what a segment cannot know about the current run (CPU seconds, process memory, bodies
// compared): pipecache::load_baseline_file describes it. Exit 0 when every measured target
// is met, 1 when one is not, 2 for a bad baseline file (its message names the line).

#include <fmt/core.h>

#include <pipecache/pipeline.hpp>
#include <pipecache/validator.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_validate(const Invocation& invocation) {
  auto parser = make_parser(
      "validate",
      "Judge the segment's figures against the design's targets (hit ratio >= 80%, hit time "
      "< 10 ms, cache memory < 50 MB, >= 100 ms and >= 20% CPU saved, batch formation > 70%, "
      ">= 20% batch time saved, pipeline overhead < 10 MB, no body changed). FILE is JSON: "
      "{\"baseline\": {...}, \"current\": {...}} of Measurements fields (README). Exit 1 when "
      "a target is missed.",
      "");
  add_format_options(parser, false);
  parser.add_options()("baseline", "the baseline file (required)", cxxopts::value<std::string>(), "FILE");
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  const OutputFormat format = output_format(*parsed, false);
  if (!parsed->count("baseline")) throw UsageError("--baseline FILE is missing");
  pipecache::BaselineFile file;
  try {
    file = pipecache::load_baseline_file((*parsed)["baseline"].as<std::string>());
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
  const std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  const pipecache::Measurements current = pipecache::merge_measurements(
      pipecache::measurements_from(pipecache::pipeline_stats_of(name, cache.stats())),
      file.current);
  const auto results = pipecache::validate_targets(file.baseline, current);
  const bool pass = pipecache::all_pass(results);
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("all_pass", pass);
    j.key("targets").begin_array();
    for (const auto& r : results) {
      j.begin_object();
      j.member("name", r.name);
      j.member("goal", r.goal);
      j.member("figure", r.figure);
      j.member("value", r.value);
      j.member("measured", r.measured);
      j.member("pass", r.pass);
      j.end_object();
    }
    j.end_array();
    j.end_object();
    write_stdout(j.finish());
  } else {
    write_stdout(pipecache::format_targets(results));
  }
  return pass ? 0 : 1;
}

}  // namespace pipectl
