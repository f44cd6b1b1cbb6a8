// One function per subcommand, each in its own file (stats.cpp, top.cpp, ...). Each parses its
// own arguments with make_parser() and reports failures by throwing (see common.hpp).
#pragma once

#include "common.hpp"

namespace pipectl {

int run_stats(const Invocation& invocation);
int run_top(const Invocation& invocation);
int run_keys(const Invocation& invocation);
int run_get(const Invocation& invocation);
int run_set(const Invocation& invocation);
int run_del(const Invocation& invocation);
int run_invalidate(const Invocation& invocation);
int run_change(const Invocation& invocation);
int run_rules(const Invocation& invocation);
int run_disable(const Invocation& invocation);
int run_enable(const Invocation& invocation);
int run_rollout(const Invocation& invocation);
int run_validate(const Invocation& invocation);
int run_clear(const Invocation& invocation);
int run_inspect(const Invocation& invocation);
int run_verify(const Invocation& invocation);
int run_create(const Invocation& invocation);
int run_destroy(const Invocation& invocation);
int run_serve(const Invocation& invocation);

// --broadcast / --redis / --channel, shared by invalidate and change.
void add_broadcast_options(cxxopts::Options& parser);
struct BroadcastTarget {
  std::string url;
  std::string channel;
};
// The target when --broadcast was given, nullopt otherwise; UsageError for a missing or
// invalid URL, or --redis without --broadcast.
std::optional<BroadcastTarget> broadcast_target(const cxxopts::ParseResult& parsed);

}  // namespace pipectl
