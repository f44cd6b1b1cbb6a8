// pipectl clear: remove every entry (the segment, its counters and its request types stay).

#include <pipecache/cache.hpp>

#include "commands.hpp"

namespace pipectl {

int run_clear(const Invocation& invocation) {
  auto parser = make_parser("clear",
                            "Remove every entry of the segment. Counters, request types and "
                            "the segment itself stay; 'destroy' removes the segment.",
                            "");
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::write);
  if (!cache.clear())
    throw pipecache::Error("segment '" + name + "': not cleared: a lock stayed held by a live process past the timeout "
                           "(a stopped worker?); nothing was removed",
                           pipecache::ErrorKind::system);
  return 0;
}

}  // namespace pipectl
