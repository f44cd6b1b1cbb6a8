// pipectl create: create a segment with the given budget and limits.

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"

namespace pipectl {

int run_create(const Invocation& invocation) {
  auto parser = make_parser(
      "create",
      "Create the segment /dev/shm/pipecache.NAME. Its whole size is reserved up front, so a "
      "too small /dev/shm fails here (exit 3) rather than later. Fails (exit 3) if it exists.",
      "");
  parser.add_options()
      ("b,budget", "byte budget for keys + values + per-entry overhead: 512, 64M, 1G "
                   "(K/M/G are KiB multiples; default 64M)",
       cxxopts::value<std::string>(), "SIZE")
      ("max-entries", "entry limit (default 0: only the byte budget limits)",
       cxxopts::value<std::string>(), "N")
      ("stripes", "lock stripes, a power of two (default: derived from the size)",
       cxxopts::value<std::string>(), "N")
      ("t,ttl", "default time to live: 300, 5m, 100ms, 2h; 0 = never expires (default 5m)",
       cxxopts::value<std::string>(), "DURATION")
      ("mode", "file mode of the segment, octal (default 0600)",
       cxxopts::value<std::string>(), "MODE");
  add_positional(parser, {});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  pipecache::Options options;
  options.name = segment_name(*parsed, invocation);
  if (parsed->count("budget")) {
    options.byte_budget = parse_size_arg((*parsed)["budget"].as<std::string>(), "--budget");
    if (options.byte_budget == 0) throw UsageError("--budget: must be more than 0");
  }
  if (parsed->count("max-entries")) {
    options.max_entries =
        parse_count_arg((*parsed)["max-entries"].as<std::string>(), "--max-entries");
  }
  if (parsed->count("stripes")) {
    std::uint64_t stripes = parse_count_arg((*parsed)["stripes"].as<std::string>(), "--stripes");
    if (stripes == 0 || (stripes & (stripes - 1)) != 0 || stripes > (1u << 20)) {
      throw UsageError(fmt::format("--stripes: {} is not a power of two up to 2^20", stripes));
    }
    options.stripes = static_cast<unsigned>(stripes);
  }
  if (parsed->count("ttl")) {
    options.default_ttl = parse_duration_arg((*parsed)["ttl"].as<std::string>(), "--ttl");
    if (options.default_ttl.count() < 0) throw UsageError("--ttl: must not be negative");
  }
  if (parsed->count("mode")) {
    options.permissions = parse_mode_arg((*parsed)["mode"].as<std::string>(), "--mode");
  }
  if (pipecache::Cache::exists(options.name)) {
    throw SegmentProblem(fmt::format("segment '{}' already exists ({}); 'pipectl destroy' first",
                                     options.name, pipecache::Cache::path_of(options.name)));
  }
  try {
    pipecache::Cache::create(options);
  } catch (const pipecache::Error& e) {
    // Options the library refuses (budget below its minimum, stripes beyond 65536) are the
    // caller's mistake: exit 2. Everything else (exists, no room, permission) is exit 3.
    if (e.kind() == pipecache::ErrorKind::invalid_argument) throw UsageError(e.what());
    throw SegmentProblem(e.what());
  }
  return 0;
}

}  // namespace pipectl
