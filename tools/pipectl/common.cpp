#include "common.hpp"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <system_error>

#include <fmt/core.h>

#include <pipecache/units.hpp>

namespace pipectl {
namespace {

std::string g_segment;  // the name the running subcommand resolved, for error messages
std::string g_owners;   // --owner of the running subcommand, else $PIPECACHE_TRUSTED_OWNERS

// Errors are one line (scripts grep and log them); a multi-line library message is folded.
std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n' || c == '\r') {
      if (!out.empty() && out.back() != ' ') out += "; ";
    } else {
      out += c;
    }
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ';')) out.pop_back();
  return out;
}

// The library's messages already name the segment; ours might not, and a reader of a cron
// mail must know which segment failed.
std::string naming_segment(std::string_view message) {
  if (g_segment.empty() || message.find(g_segment) != std::string_view::npos) {
    return std::string(message);
  }
  return fmt::format("segment '{}': {}", g_segment, message);
}

void report(const Invocation& invocation, std::string_view message) {
  std::string line = one_line(message);
  std::fprintf(stderr, "pipectl %s: %s\n", invocation.subcommand.c_str(), line.c_str());
  std::fflush(stderr);
}

constexpr std::string_view kExtraPositional = "extra-arguments";

}  // namespace

const std::string& current_segment() { return g_segment; }

int run_subcommand(const Subcommand& command, const Invocation& invocation) {
  g_segment.clear();
  try {
    int rc = command.run(invocation);
    // Buffered output can still fail here (a full disk behind `> file`): a `get` whose value
    // did not arrive must not exit 0. 3 because the operation as asked did not happen.
    if (std::fflush(stdout) != 0) {
      report(invocation, fmt::format("writing to stdout: {}", std::strerror(errno)));
      return static_cast<int>(ExitCode::segment);
    }
    return rc;
  } catch (const UsageError& e) {
    report(invocation, fmt::format("{} (see 'pipectl {} --help')", naming_segment(e.what()),
                                   invocation.subcommand));
    return static_cast<int>(ExitCode::usage);
  } catch (const NotFound& e) {
    report(invocation, naming_segment(e.what()));
    return static_cast<int>(ExitCode::not_found);
  } catch (const SegmentProblem& e) {
    report(invocation, naming_segment(e.what()));
    return static_cast<int>(ExitCode::segment);
  } catch (const RemoteProblem& e) {
    report(invocation, naming_segment(e.what()));
    return static_cast<int>(ExitCode::remote);
  } catch (const pipecache::Error& e) {
    // Argument problems were converted to UsageError where they were parsed, so what is left
    // comes from the segment itself (corruption found mid-read, a refused write).
    report(invocation, naming_segment(e.what()));
    return static_cast<int>(ExitCode::segment);
  } catch (const std::exception& e) {
    report(invocation, naming_segment(e.what()));
    return static_cast<int>(ExitCode::segment);
  }
}

cxxopts::Options make_parser(std::string_view subcommand, std::string_view summary,
                             std::string_view positional_help) {
  cxxopts::Options parser(fmt::format("pipectl {}", subcommand), std::string(summary));
  parser.set_width(100);
  parser.positional_help(std::string(positional_help));
  parser.add_options()
      ("n,name", "segment name (default: $PIPECACHE_NAME, else \"default\")",
       cxxopts::value<std::string>(), "NAME")
      ("owner", "also trust segments owned by USER (names or uids, comma-separated; default: "
                "$PIPECACHE_TRUSTED_OWNERS). Root reads any owner's segment without it",
       cxxopts::value<std::string>(), "USER")
      ("h,help", "show this help");
  return parser;
}

void add_positional(cxxopts::Options& parser, const std::vector<std::string>& names) {
  auto adder = parser.add_options("positional");
  for (const auto& n : names) adder(n, "", cxxopts::value<std::string>());
  adder(std::string(kExtraPositional), "", cxxopts::value<std::vector<std::string>>());
  std::vector<std::string> all = names;
  all.emplace_back(kExtraPositional);
  parser.parse_positional(all);
}

std::optional<cxxopts::ParseResult> parse_arguments(cxxopts::Options& parser,
                                                    const Invocation& invocation) {
  std::vector<const char*> argv;
  std::string program = fmt::format("pipectl {}", invocation.subcommand);
  argv.push_back(program.c_str());
  for (const auto& a : invocation.args) argv.push_back(a.c_str());
  cxxopts::ParseResult parsed;
  try {
    parsed = parser.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const cxxopts::exceptions::exception& e) {
    throw UsageError(e.what());
  }
  if (parsed.count("help") != 0) {
    // Only the option groups a user can type; the positional group is described by the
    // usage line.
    std::vector<std::string> groups;
    for (const auto& g : parser.groups()) {
      if (g != "positional") groups.push_back(g);
    }
    std::fputs(parser.help(groups).c_str(), stdout);
    return std::nullopt;
  }
  if (parsed.count(std::string(kExtraPositional)) != 0) {
    const auto& extra = parsed[std::string(kExtraPositional)].as<std::vector<std::string>>();
    throw UsageError(fmt::format("unexpected argument '{}'", extra.empty() ? "" : extra.front()));
  }
  // Resolved now, before the subcommand checks its other arguments, so that even their
  // errors name the segment the command was meant for.
  (void)segment_name(parsed, invocation);
  return parsed;
}

std::string segment_name(const cxxopts::ParseResult& parsed, const Invocation& invocation) {
  std::string name;
  if (parsed.count("name") != 0) {
    name = parsed["name"].as<std::string>();
  } else if (invocation.global_name) {
    name = *invocation.global_name;
  } else if (const char* env = std::getenv("PIPECACHE_NAME"); env != nullptr && *env != 0) {
    name = env;
  } else {
    name = "default";
  }
  try {
    pipecache::Cache::validate_name(name);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
  g_segment = name;
  g_owners.clear();
  if (parsed.count("owner") != 0) {
    g_owners = parsed["owner"].as<std::string>();
  } else if (const char* env = std::getenv("PIPECACHE_TRUSTED_OWNERS"); env != nullptr) {
    g_owners = env;
  }
  return name;
}

pipecache::Trust trusted_owners() {
  try {
    return pipecache::Trust::parse(g_owners);
  } catch (const pipecache::Error& e) {
    throw UsageError(fmt::format("--owner: {}", e.what()));
  }
}

pipecache::Cache open_segment(const std::string& name, Access access) {
  pipecache::Trust trust = trusted_owners();
  // Root may read anybody's segment (an administrator inspecting workers that run as
  // www-data); writing to it still needs --owner, so that a slip of --name cannot change a
  // stranger's cache.
  trust.any_owner = access == Access::read && ::geteuid() == 0;
  try {
    pipecache::Cache cache = pipecache::Cache::open(name, trust);
    if (access == Access::read && trust.any_owner) {
      pipecache::SegmentInfo info = cache.inspect();
      if (info.owner_uid != ::geteuid())
        std::fprintf(stderr, "pipectl: segment '%s' belongs to %s (uid %u), mode %04o\n", name.c_str(),
                     info.owner.c_str(), info.owner_uid, info.mode);
    }
    return cache;
  } catch (const std::exception& e) {
    throw SegmentProblem(e.what());
  }
}

std::uint64_t parse_size_arg(const std::string& text, std::string_view option) {
  try {
    return pipecache::parse_size(text, option);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
}

std::chrono::milliseconds parse_duration_arg(const std::string& text, std::string_view option) {
  try {
    return pipecache::parse_duration(text, option);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
}

std::chrono::nanoseconds parse_duration_ns_arg(const std::string& text,
                                               std::string_view option) {
  try {
    return pipecache::parse_duration_ns(text, option);
  } catch (const pipecache::Error& e) {
    throw UsageError(e.what());
  }
}

std::uint64_t parse_count_arg(const std::string& text, std::string_view option) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    throw UsageError(fmt::format("{}: '{}' is not a whole number", option, text));
  }
  return value;
}

unsigned parse_mode_arg(const std::string& text, std::string_view option) {
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 8);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value > 0777) {
    throw UsageError(fmt::format("{}: '{}' is not an octal file mode (e.g. 0640)", option, text));
  }
  return value;
}

void add_format_options(cxxopts::Options& parser, bool prometheus_allowed) {
  parser.add_options()("json", "print JSON");
  if (prometheus_allowed) {
    parser.add_options()("format", "output format: text, json or prometheus",
                         cxxopts::value<std::string>(), "FORMAT");
  }
}

OutputFormat output_format(const cxxopts::ParseResult& parsed, bool prometheus_allowed) {
  OutputFormat format = OutputFormat::text;
  bool json_flag = parsed.count("json") != 0;
  if (prometheus_allowed && parsed.count("format") != 0) {
    std::string f = parsed["format"].as<std::string>();
    if (f == "text") {
      format = OutputFormat::text;
    } else if (f == "json") {
      format = OutputFormat::json;
    } else if (f == "prometheus") {
      format = OutputFormat::prometheus;
    } else {
      throw UsageError(fmt::format("--format: '{}' is not one of text, json, prometheus", f));
    }
    if (json_flag && format != OutputFormat::json) {
      throw UsageError(fmt::format("--json contradicts --format {}", f));
    }
  }
  if (json_flag) format = OutputFormat::json;
  return format;
}

void write_stdout(std::string_view bytes) {
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), stdout) != bytes.size()) {
    throw std::system_error(errno, std::generic_category(), "writing to stdout");
  }
}

std::string percent(double r) {
  if (std::isnan(r)) return "-";
  return fmt::format("{:.1f}%", r * 100.0);
}

std::string printable(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string format_unix_ms(std::uint64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  if (gmtime_r(&t, &tm) == nullptr) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string format_ms(std::chrono::milliseconds d) {
  auto ms = d.count();
  if (ms < 0) return "-" + format_ms(std::chrono::milliseconds(-ms));
  if (ms < 1000) return fmt::format("{}ms", ms);
  if (ms < 60'000) return fmt::format("{:.1f}s", static_cast<double>(ms) / 1000.0);
  auto s = ms / 1000;
  if (s < 3600) return fmt::format("{}m{:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{:02}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace pipectl
