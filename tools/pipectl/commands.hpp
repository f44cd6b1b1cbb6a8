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
int run_clear(const Invocation& invocation);
int run_inspect(const Invocation& invocation);
int run_verify(const Invocation& invocation);
int run_create(const Invocation& invocation);
int run_destroy(const Invocation& invocation);
int run_serve(const Invocation& invocation);

}  // namespace pipectl
