// pipectl change: apply the segment's rule for a named change ("data_refresh happened").
//
// The rule is the one the workers published into the segment (their invalidation rules and
// their policies' triggers), applied by the same code a worker's handle_data_change runs
// (pipecache::apply_data_change), so a script needs to know the change's name, not its
// patterns. Prints how many entries went. Exit 1 when the segment holds no rule of that name
// (`pipectl rules` lists them). With --broadcast, each pattern of the rule is also published
// to the other hosts' relays (exit 4, as for invalidate, when Redis does not take them: this
// host is invalidated, the others are not).

#include <fmt/core.h>

#include <pipecache/pipeline.hpp>
#include <pipecache/remote.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_change(const Invocation& invocation) {
  auto parser = make_parser("change",
                            "Apply the rule the workers keep in the segment for change CHANGE "
                            "(e.g. data_refresh, calendar_sync): invalidate every pattern it "
                            "names, and print how many entries were removed.",
                            "CHANGE");
  add_format_options(parser, false);
  add_broadcast_options(parser);
  add_positional(parser, {"change"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  if (!parsed->count("change")) throw UsageError("CHANGE is missing");
  const OutputFormat format = output_format(*parsed, false);
  const std::string change = (*parsed)["change"].as<std::string>();
  const std::optional<BroadcastTarget> target = broadcast_target(*parsed);
  const std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::write);
  const std::optional<std::size_t> removed = pipecache::apply_data_change(cache, change);
  if (!removed) {
    std::string known;
    for (const auto& [rule, patterns] : cache.change_rules()) {
      known += fmt::format("{}{}", known.empty() ? "" : ", ", rule);
    }
    throw NotFound(fmt::format("segment '{}' holds no rule for change '{}' (rules: {})", name,
                               printable(change), known.empty() ? "none" : known));
  }
  // The rule as applied (a worker may rewrite it meanwhile: the other hosts' own workers
  // publish theirs, so a pattern list read a moment later is as good).
  std::string problem;
  if (target) {
    const auto rules = cache.change_rules();
    if (const auto it = rules.find(change); it != rules.end()) {
      for (const auto& pattern : it->second) {
        std::string p;
        try {
          p = pipecache::publish_invalidation(pattern, target->url, target->channel);
        } catch (const pipecache::Error& e) {
          throw UsageError(e.what());  // the channel name
        }
        if (!p.empty() && problem.empty()) problem = fmt::format("'{}': {}", pattern, p);
      }
    }
  }
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("change", change);
    j.member("removed", static_cast<std::uint64_t>(*removed));
    if (target) {
      j.member("broadcast", problem.empty());
      if (!problem.empty()) j.member("broadcast_problem", problem);
    }
    j.end_object();
    write_stdout(j.finish());
  } else {
    write_stdout(fmt::format("{}\n", *removed));
  }
  if (!problem.empty()) {
    throw RemoteProblem(fmt::format("change '{}': invalidated {} entries on this host only; NOT "
                                    "broadcast to the other hosts: {}",
                                    printable(change), *removed, problem));
  }
  return 0;
}

}  // namespace pipectl
