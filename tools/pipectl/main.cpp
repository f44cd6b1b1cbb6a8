// pipectl: inspect and control a pipecache shared-memory segment while workers use it.
// This file only finds the subcommand; everything else is in the subcommand's own file.

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include "commands.hpp"
#include "common.hpp"

#ifndef PIPECACHE_VERSION
#define PIPECACHE_VERSION "unknown"
#endif

namespace pipectl {

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> kAll = {
      {"stats", "counters, hit ratio, memory and per-request-type latency", run_stats},
      {"top", "live view refreshed every second", run_top},
      {"keys", "list keys matching a glob with size, TTL left and age", run_keys},
      {"get", "print a key's value to stdout as raw bytes", run_get},
      {"set", "store a value (argument or stdin)", run_set},
      {"del", "remove one key", run_del},
      {"invalidate", "remove every key matching a glob", run_invalidate},
      {"change", "apply the segment's rule for a named change (data_refresh...)", run_change},
      {"rules", "list the change rules kept in the segment", run_rules},
      {"disable", "turn caching off for a request type in every worker", run_disable},
      {"enable", "cache every key of a request type in every worker", run_enable},
      {"rollout", "cache a percentage of a request type's keys in every worker", run_rollout},
      {"validate", "judge the segment's figures against the design's targets", run_validate},
      {"clear", "remove every key", run_clear},
      {"inspect", "segment layout: sizes, stripes, arena, process slots", run_inspect},
      {"verify", "check every structural invariant of the segment", run_verify},
      {"create", "create a segment", run_create},
      {"destroy", "remove a segment's name", run_destroy},
      {"serve", "HTTP: Prometheus /metrics, JSON /api/stats, live status page", run_serve},
  };
  return kAll;
}

namespace {

void print_usage(std::FILE* out) {
  std::string text =
      "Usage: pipectl [--name NAME] SUBCOMMAND [OPTIONS] [ARGS]\n"
      "Inspect and control a pipecache shared-memory segment (/dev/shm/pipecache.NAME).\n\n"
      "Subcommands:\n";
  for (const auto& c : subcommands()) text += fmt::format("  {:<11} {}\n", c.name, c.summary);
  text +=
      "\n"
      "The segment is --name NAME, else $PIPECACHE_NAME, else \"default\".\n"
      "'pipectl SUBCOMMAND --help' describes each subcommand; 'man pipectl' all of them.\n\n"
      "Exit status: 0 ok, 1 not found, 2 usage error, 3 segment missing, corrupt,\n"
      "incompatible or refusing the operation.\n";
  std::fputs(text.c_str(), out);
}

int usage_error(std::string_view message) {
  std::fprintf(stderr, "pipectl: %.*s (see 'pipectl --help')\n",
               static_cast<int>(message.size()), message.data());
  return static_cast<int>(ExitCode::usage);
}

}  // namespace
}  // namespace pipectl

int main(int argc, char** argv) {
  using namespace pipectl;
  Invocation invocation;
  int i = 1;
  // Options before the subcommand: only the segment name, help and version, so that
  // `pipectl --name web stats` reads like `pipectl stats --name web`.
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-h" || a == "--help") {
      print_usage(stdout);
      return 0;
    }
    if (a == "--version") {
      std::printf("pipectl %s\n", PIPECACHE_VERSION);
      return 0;
    }
    if (a == "-n" || a == "--name") {
      if (i + 1 >= argc) return usage_error(fmt::format("{} needs a segment name", a));
      invocation.global_name = argv[++i];
    } else if (a.substr(0, 7) == "--name=") {
      invocation.global_name = std::string(a.substr(7));
    } else if (!a.empty() && a[0] == '-') {
      return usage_error(fmt::format("unknown option '{}' before the subcommand", a));
    } else {
      break;
    }
  }
  if (i >= argc) {
    print_usage(stderr);
    return static_cast<int>(ExitCode::usage);
  }
  std::string_view name = argv[i];
  if (name == "help") {
    // `pipectl help stats` is `pipectl stats --help`.
    if (i + 1 >= argc) {
      print_usage(stdout);
      return 0;
    }
    name = argv[i + 1];
    invocation.args = {"--help"};
  } else {
    invocation.args.assign(argv + i + 1, argv + argc);
  }
  for (const auto& command : subcommands()) {
    if (command.name == name) {
      invocation.subcommand = std::string(name);
      return run_subcommand(command, invocation);
    }
  }
  return usage_error(fmt::format("unknown subcommand '{}'", name));
}
