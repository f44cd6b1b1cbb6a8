// pipectl invalidate: remove every key matching a glob and print how many went; with
// --broadcast, also tell every other host (their relays apply it).
//
// The count is printed alone on stdout so a hook can capture it (n=$(pipectl invalidate ...)).
// Zero matches is success: an invalidation hook must not fail just because nothing was cached.
// A broadcast Redis does not take still invalidates here, prints the count, says on stderr
// that the other hosts were not told, and exits 4: a sync job should alert, since the other
// hosts serve the old entries until their TTL (or their relay's flush once Redis is back).

#include <cstdlib>

#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/remote.hpp>

#include "commands.hpp"
#include "json_writer.hpp"

namespace pipectl {

int run_invalidate(const Invocation& invocation) {
  auto parser = make_parser(
      "invalidate",
      "Remove every key matching GLOB ('*' any run, '?' one byte, '\\x' the byte x) and print "
      "how many were removed. '<request type>:*' for a registered request type is O(1). Quote "
      "the glob so the shell does not expand it. With --broadcast, also publish it to every "
      "other host's pipecache-relay through Redis (exit 4 when Redis cannot be reached: "
      "invalidated here only).",
      "GLOB");
  add_format_options(parser, /*prometheus_allowed=*/false);
  add_broadcast_options(parser);
  add_positional(parser, {"glob"});
  auto parsed = parse_arguments(parser, invocation);
  if (!parsed) return 0;
  OutputFormat format = output_format(*parsed, false);
  if (!parsed->count("glob")) throw UsageError("GLOB is missing (use 'pipectl clear' for all)");
  std::string glob = (*parsed)["glob"].as<std::string>();
  if (glob.empty()) throw UsageError("GLOB is empty");
  const std::optional<BroadcastTarget> target = broadcast_target(*parsed);
  const bool broadcast = target.has_value();
  const std::string url = target ? target->url : std::string();
  const std::string channel = target ? target->channel : std::string();
  std::string name = segment_name(*parsed, invocation);
  std::size_t removed = 0;
  pipecache::BroadcastResult sent;
  if (broadcast && !pipecache::Cache::exists(name)) {
    // Nothing cached here, but the other hosts still need to hear it (a sync job may run on a
    // host that serves nothing).
    try {
      sent.problem = pipecache::publish_invalidation(glob, url, channel);
    } catch (const pipecache::Error& e) {
      throw UsageError(e.what());
    }
    sent.published = sent.problem.empty();
  } else {
    pipecache::Cache cache = open_segment(name, Access::write);
    if (broadcast) {
      try {
        sent = pipecache::broadcast_invalidation(cache, glob, url, channel);
      } catch (const pipecache::Error& e) {
        throw UsageError(e.what());  // the channel name
      }
      removed = sent.removed;
    } else {
      removed = cache.invalidate(glob);
    }
  }
  if (format == OutputFormat::json) {
    JsonWriter j;
    j.begin_object();
    j.member("segment", name);
    j.member("glob", glob);
    j.member("removed", static_cast<std::uint64_t>(removed));
    if (broadcast) {
      j.member("broadcast", sent.published);
      if (!sent.published) j.member("broadcast_problem", sent.problem);
    }
    j.end_object();
    write_stdout(j.finish());
  } else {
    write_stdout(fmt::format("{}\n", removed));
  }
  if (broadcast && !sent.published) {
    throw RemoteProblem(fmt::format("invalidated {} entries on this host only; NOT broadcast to "
                                    "the other hosts: {}",
                                    removed, sent.problem));
  }
  return 0;
}

void add_broadcast_options(cxxopts::Options& parser) {
  parser.add_options()
      ("broadcast", "also invalidate on every other host (through Redis)")
      ("redis", "Redis URL for --broadcast: redis://HOST[:PORT][/DB] or unix:///path "
                "(default: $PIPECACHE_REDIS_URL)", cxxopts::value<std::string>(), "URL")
      ("channel", "pub/sub channel for --broadcast",
       cxxopts::value<std::string>()->default_value(std::string(pipecache::kDefaultInvalidationChannel)),
       "NAME");
}

std::optional<BroadcastTarget> broadcast_target(const cxxopts::ParseResult& parsed) {
  if (!parsed.count("broadcast")) {
    if (parsed.count("redis")) throw UsageError("--redis is only used with --broadcast");
    return std::nullopt;
  }
  BroadcastTarget target;
  const char* env = std::getenv(std::string(pipecache::kRedisUrlVariable).c_str());
  if (parsed.count("redis")) target.url = parsed["redis"].as<std::string>();
  else if (env && *env) target.url = env;
  else throw UsageError("--broadcast needs --redis URL or $PIPECACHE_REDIS_URL");
  try {
    pipecache::validate_redis_url(target.url);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
  target.channel = parsed["channel"].as<std::string>();
  return target;
}

}  // namespace pipectl
