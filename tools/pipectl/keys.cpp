// pipectl keys: list the keys matching a glob, with value size, TTL left and age.
//
// The walk locks one stripe at a time (Cache::keys), so workers are never blocked for longer
// than one stripe's scan, and the listing is not a snapshot: keys written during the walk may
// or may not appear.

#include <algorithm>
#include <cstdio>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_keys(const Invocation& invocation) {
  auto parser = make_parser("keys",
                            "List keys matching GLOB ('*' any run, '?' one byte, '\\x' the "
                            "byte x; default '*') with value size, TTL left and age, sorted "
                            "by key.",
                            "[GLOB]");
  parser.add_options()("l,limit", "list at most N keys (default: all)",
                       cxxopts::value<std::string>(), "N");
  add_format_options(parser, /*prometheus_allowed=*/false);
  add_positional(parser, {"glob"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, false);
  std::string glob = parsed->count("glob") ? (*parsed)["glob"].as<std::string>() : "*";
  if (glob.empty()) throw UsageError("GLOB is empty (use '*' for every key)");
  std::size_t limit = static_cast<std::size_t>(-1);
  if (parsed->count("limit")) {
    std::uint64_t n = parse_count_arg((*parsed)["limit"].as<std::string>(), "--limit");
    if (n == 0) throw UsageError("--limit: must be at least 1");
    limit = static_cast<std::size_t>(n);
  }
  std::string name = segment_name(*parsed, invocation);
  pipecache::Cache cache = open_segment(name, Access::read);

  // One more than asked tells whether the listing was cut short, without a second walk.
  std::size_t ask = limit == static_cast<std::size_t>(-1) ? limit : limit + 1;
  std::vector<pipecache::KeyInfo> keys = cache.keys(glob, ask);
  // Cache::keys stays inside the segment but trusts each entry's recorded key length; a key
  // longer than the segment accepts can only come from a damaged entry header. Printing it
  // would dump a run of arena bytes as a "key", so report the damage instead.
  for (const auto& k : keys) {
    if (k.key.size() > cache.max_key_size()) {
      throw SegmentProblem(fmt::format(
          "segment '{}' holds an entry with a {}-byte key (the limit is {}): it is corrupt; "
          "'pipectl verify' lists the damage",
          name, k.key.size(), cache.max_key_size()));
    }
  }
  bool truncated = keys.size() > limit;
  if (truncated) keys.resize(limit);
  std::sort(keys.begin(), keys.end(),
            [](const auto& a, const auto& b) { return a.key < b.key; });

  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("glob", glob);
    j.member("count", static_cast<std::uint64_t>(keys.size()));
    j.member("truncated", truncated);
    j.key("keys").begin_array();
    for (const auto& k : keys) {
      j.begin_object();
      j.member("key", k.key);
      j.member("value_size", k.value_size);
      j.key("ttl_left_ms");
      if (k.ttl_left) {
        j.value(static_cast<std::int64_t>(k.ttl_left->count()));
      } else {
        j.null();
      }
      j.member("age_s", static_cast<std::int64_t>(k.age.count()));
      j.member("lease", k.lease);
      j.member("flags", static_cast<unsigned>(k.flags));
      j.end_object();
    }
    j.end_array();
    j.end_object();
    write_stdout(j.finish());
    return 0;
  }

  std::string out = fmt::format("{:>10} {:>9} {:>10}  {}\n", "TTL", "AGE", "SIZE", "KEY");
  for (const auto& k : keys) {
    std::string ttl = k.lease      ? std::string("computing")
                      : k.ttl_left ? format_ms(*k.ttl_left)
                                   : std::string("never");
    out += fmt::format("{:>10} {:>9} {:>10}  {}\n", ttl,
                       format_ms(std::chrono::duration_cast<std::chrono::milliseconds>(k.age)),
                       k.lease ? std::string("-") : fmt::format("{}", k.value_size),
                       printable(k.key));
  }
  write_stdout(out);
  if (truncated) {
    std::fflush(stdout);
    std::fprintf(stderr, "pipectl keys: more keys match '%s' than --limit %zu shows\n",
                 printable(glob).c_str(), limit);
  }
  return 0;
}

}  // namespace pipectl
