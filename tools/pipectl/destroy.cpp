// pipectl destroy: unlink the segment's name. Processes that have it mapped keep using their
// mapping until they exit (POSIX shm semantics); new opens fail or create a fresh segment.

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"

namespace pipectl {

int run_destroy(const Invocation& invocation) {
  auto parser = make_parser("destroy",
                            "Remove the segment's name from /dev/shm. Processes that have it "
                            "open keep their mapping until they exit. Exit status 3 if absent.",
                            "");
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  std::string name = segment_name(*parsed, invocation);
  bool removed = false;
  try {
    removed = pipecache::Cache::remove(name);
  } catch (const pipecache::Error& e) {
    throw SegmentProblem(e.what());
  }
  if (!removed) {
    throw SegmentProblem(fmt::format("segment '{}' does not exist ({})", name,
                                     pipecache::Cache::path_of(name)));
  }
  return 0;
}

}  // namespace pipectl
