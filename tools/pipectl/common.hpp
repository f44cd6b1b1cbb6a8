// pipectl's shared part: how a subcommand parses its arguments, which segment it talks to, and
// how every failure becomes ONE line on stderr and ONE exit code.
//
// Exit codes are a contract with scripts (cron jobs, deploy and sync hooks), so they are decided
// here and nowhere else:
//   0  ok
//   1  not found (get / del of an absent key)
//   2  usage error (unknown option, malformed size, duration, number or segment name)
//   3  the segment cannot be used: missing, truncated, foreign, of another layout, failing
//      verification, already existing (create), or refusing a write (full)
//   4  done on this host, but the other hosts could not be told (invalidate --broadcast with
//      Redis unreachable)
// A subcommand reports a problem by throwing one of the exceptions below (or by letting a
// pipecache::Error escape); run_subcommand() is the single place that maps them.
#pragma once

#include "store_metrics.hpp"  // counter_name, counter_help

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <cxxopts.hpp>

#include <pipecache/cache.hpp>

namespace pipectl {

enum class ExitCode : int { ok = 0, not_found = 1, usage = 2, segment = 3, remote = 4 };

// Wrong invocation: the user can fix the command line.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The thing asked for is absent (a key). Not an error of the segment.
class NotFound : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The segment exists in a state this command cannot work with.
class SegmentProblem : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Done on this host, but the other hosts could not be told (Redis unreachable).
class RemoteProblem : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a subcommand is run with: the arguments after the subcommand's own name, and the
// segment name given before it (`pipectl --name X stats`), if any.
struct Invocation {
  std::string subcommand;
  std::vector<std::string> args;
  std::optional<std::string> global_name;
};

using SubcommandFn = int (*)(const Invocation&);

struct Subcommand {
  std::string_view name;
  std::string_view summary;
  SubcommandFn run;
};

// Every subcommand, in the order `pipectl --help` lists them.
const std::vector<Subcommand>& subcommands();

// Runs `command`, mapping its exceptions to an exit code and one stderr line. Never throws.
int run_subcommand(const Subcommand& command, const Invocation& invocation);

// The segment name the current subcommand works on, for error messages ("" before it is known).
const std::string& current_segment();

// A cxxopts parser for one subcommand with the options every subcommand has (--name, --help).
cxxopts::Options make_parser(std::string_view subcommand, std::string_view summary,
                             std::string_view positional_help);

// Declares the positional arguments, in order (each a single string; cxxopts would split a
// vector option on commas, and keys contain commas). Any further positional is a UsageError.
void add_positional(cxxopts::Options& parser, const std::vector<std::string>& names);

// Parses `invocation.args`. Returns nullopt after printing the help text when --help was given,
// so the caller just returns 0. Throws UsageError for anything cxxopts rejects and for
// positional arguments beyond those declared with add_positional.
std::optional<cxxopts::ParseResult> parse_arguments(cxxopts::Options& parser,
                                                    const Invocation& invocation);

// --name, else the name before the subcommand, else $PIPECACHE_NAME, else "default" (the
// library's default name). Validated: a bad name is a UsageError.
std::string segment_name(const cxxopts::ParseResult& parsed, const Invocation& invocation);

// Opens the segment for the current subcommand, trusting the owners of --owner (or
// $PIPECACHE_TRUSTED_OWNERS); any failure is a SegmentProblem. A read by root trusts every
// owner and says on stderr whose segment it is when not root's.
enum class Access { read, write };
// The owners trusted besides this user for the running subcommand: --owner, else
// $PIPECACHE_TRUSTED_OWNERS (UsageError naming an unknown user).
pipecache::Trust trusted_owners();
pipecache::Cache open_segment(const std::string& name, Access access);

// Argument parsers that turn malformed text into a UsageError naming the option.
std::uint64_t parse_size_arg(const std::string& text, std::string_view option);
std::chrono::milliseconds parse_duration_arg(const std::string& text, std::string_view option);
std::chrono::nanoseconds parse_duration_ns_arg(const std::string& text, std::string_view option);
std::uint64_t parse_count_arg(const std::string& text, std::string_view option);
unsigned parse_mode_arg(const std::string& text, std::string_view option);

// Output format chosen with --json / --format; commands that support only some of them say so.
enum class OutputFormat { text, json, prometheus };
OutputFormat output_format(const cxxopts::ParseResult& parsed, bool prometheus_allowed);
void add_format_options(cxxopts::Options& parser, bool prometheus_allowed);

// Writes bytes to stdout with no translation; throws on a write error. SIGPIPE keeps its
// default action, so `pipectl keys | head` ends quietly the way Unix filters do.
void write_stdout(std::string_view bytes);

// Human-readable helpers for text output.
// Figures (hit ratio, batch size, ...) come from <pipecache/figures.hpp>, NaN when undefined.
std::string percent(double ratio);                       // "97.3%" or "-" when NaN
std::string printable(std::string_view bytes);            // escapes control / non-ASCII bytes
std::string format_unix_ms(std::uint64_t unix_ms);        // "2026-11-27 09:30:01 UTC"
std::string format_ms(std::chrono::milliseconds d);       // "4m59s", "1.5s", "120ms"

}  // namespace pipectl
