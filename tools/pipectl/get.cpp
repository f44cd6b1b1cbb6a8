// pipectl get: a key's value to stdout, byte for byte (no newline added), so that
// `pipectl get k > file` round-trips what `pipectl set k - < file` stored.

#include <pipecache/cache.hpp>

#include <fmt/core.h>

#include "commands.hpp"

namespace pipectl {

int run_get(const Invocation& invocation) {
  auto parser = make_parser("get",
                            "Print the value stored under KEY to stdout as raw bytes. Exit "
                            "status 1 when the key is absent or expired.",
                            "KEY");
  add_positional(parser, {"key"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  if (!parsed->count("key")) throw UsageError("KEY is missing");
  std::string key = (*parsed)["key"].as<std::string>();
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);
  std::string value;
  std::uint16_t flags = 0;
  if (!cache.get(key, value, flags)) {
    throw NotFound(fmt::format("key '{}' not found in segment '{}'", printable(key), name));
  }
  write_stdout(value);
  return 0;
}

}  // namespace pipectl
