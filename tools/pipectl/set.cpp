// pipectl set: store a value given as an argument or read from stdin.

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"

namespace pipectl {
namespace {

std::string read_all_stdin() {
  std::string data;
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return data;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw UsageError(fmt::format("reading the value from stdin: {}", std::strerror(errno)));
    }
    data.append(buf, static_cast<std::size_t>(n));
  }
}

}  // namespace

int run_set(const Invocation& invocation) {
  auto parser = make_parser("set",
                            "Store VALUE under KEY. With '-' or no VALUE the value is read "
                            "from stdin, byte for byte. Put '--' before a VALUE that starts "
                            "with '-'.",
                            "KEY [VALUE|-]");
  parser.add_options()("t,ttl",
                       "time to live: 300, 5m, 100ms, 2h; 0 = never expires (default: the "
                       "segment's default TTL)",
                       cxxopts::value<std::string>(), "DURATION");
  add_positional(parser, {"key", "value"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  if (!parsed->count("key")) throw UsageError("KEY is missing");
  std::string key = (*parsed)["key"].as<std::string>();
  if (key.empty()) throw UsageError("KEY is empty");
  std::optional<std::chrono::milliseconds> ttl;
  if (parsed->count("ttl")) {
    ttl = parse_duration_arg((*parsed)["ttl"].as<std::string>(), "--ttl");
    if (ttl->count() < 0) throw UsageError("--ttl: must not be negative");
  }
  std::string name = segment_name(*parsed, invocation);
  // Open before reading stdin: a missing segment is reported without waiting for input.
  pipecache::Cache cache = open_segment(name, Access::write);
  std::string value;
  if (!parsed->count("value") || (*parsed)["value"].as<std::string>() == "-") {
    value = read_all_stdin();
  } else {
    value = (*parsed)["value"].as<std::string>();
  }
  // Checked here so that an oversize key or value is the user's mistake (exit 2) with the
  // limit in the message, not a refusal of the segment.
  if (key.size() > cache.max_key_size()) {
    throw UsageError(fmt::format("KEY is {} bytes; segment '{}' takes keys up to {} bytes",
                                 key.size(), name, cache.max_key_size()));
  }
  if (value.size() > cache.max_value_size()) {
    throw UsageError(fmt::format("value is {}; segment '{}' takes values up to {}",
                                 pipecache::format_size(value.size()), name,
                                 pipecache::format_size(cache.max_value_size())));
  }
  // The void put(key, value) cannot report a dropped write, so the default TTL is looked up
  // and the reporting overload used. (A Cache::default_ttl() accessor would spare inspect().)
  if (!ttl) ttl = cache.inspect().default_ttl;
  bool stored = cache.put(key, value, *ttl, 0);
  if (!stored) {
    throw SegmentProblem(fmt::format(
        "segment '{}' refused the write of '{}' ({}): no room could be made or a lock timed out",
        name, printable(key), pipecache::format_size(value.size())));
  }
  return 0;
}

}  // namespace pipectl
