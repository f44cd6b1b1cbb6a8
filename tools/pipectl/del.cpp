// pipectl del: remove one key; exit status 1 when it was not there.

#include <fmt/core.h>

#include <pipecache/cache.hpp>

#include "commands.hpp"

namespace pipectl {

int run_del(const Invocation& invocation) {
  auto parser = make_parser("del",
                            "Remove KEY. Exit status 1 when the key was absent. The key is "
                            "taken literally; use 'invalidate' for globs.",
                            "KEY");
  add_positional(parser, {"key"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  if (!parsed->count("key")) throw UsageError("KEY is missing");
  std::string key = (*parsed)["key"].as<std::string>();
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::write);
  if (!cache.erase(key)) {
    throw NotFound(fmt::format("key '{}' not found in segment '{}'", printable(key), name));
  }
  return 0;
}

}  // namespace pipectl
