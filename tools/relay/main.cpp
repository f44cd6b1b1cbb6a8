// pipecache-relay: applies the other hosts' invalidations to this host's segment (one relay
// per host). Everything it does is pipecache::run_relay (lib/src/remote/relay.cpp); this file
// reads the command line and turns SIGTERM / SIGINT into a readable pipe, which the relay
// watches in every wait: it stops at once, without waiting out a Redis timeout.
//
// Exit status: 0 stopped by a signal, 2 usage error (bad option, name, URL or channel),
// 1 anything else (no hiredis in this build).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include <cxxopts.hpp>
#include <fmt/core.h>

#include <pipecache/remote.hpp>

#ifndef PIPECACHE_VERSION
#define PIPECACHE_VERSION "unknown"
#endif

namespace {

int g_stop_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int) {
  const int saved = errno;
  const char b = 1;
  [[maybe_unused]] auto n = ::write(g_stop_pipe[1], &b, 1);
  errno = saved;
}

int usage(const std::string& message) {
  std::fprintf(stderr, "pipecache-relay: %s (see 'pipecache-relay --help')\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options(
      "pipecache-relay",
      "Applies the invalidations other hosts publish on a Redis channel to this host's pipecache "
      "segment, skipping its own host's. Reconnects with back-off; after every (re)subscription "
      "it invalidates the whole segment, since messages may have been missed. SIGTERM stops it.");
  options.add_options()
      ("n,name", "segment name (default: $PIPECACHE_NAME, else \"default\")", cxxopts::value<std::string>())
      ("redis", "redis://HOST[:PORT][/DB] or unix:///path/to/redis.sock (default: $PIPECACHE_REDIS_URL)",
       cxxopts::value<std::string>())
      ("channel", "pub/sub channel", cxxopts::value<std::string>()->default_value(
           std::string(pipecache::kDefaultInvalidationChannel)))
      ("max-backoff", "longest wait between reconnection attempts, in ms",
       cxxopts::value<long>()->default_value("5000"))
      ("version", "print the version")
      ("h,help", "print this help");
  cxxopts::ParseResult parsed;
  try {
    parsed = options.parse(argc, argv);
  } catch (const std::exception& e) {
    return usage(e.what());
  }
  if (parsed.count("help")) {
    std::fputs(options.help().c_str(), stdout);
    std::fputs("\nExit status: 0 stopped by SIGTERM/SIGINT, 1 failure, 2 usage error.\n", stdout);
    return 0;
  }
  if (parsed.count("version")) {
    std::printf("pipecache-relay %s\n", PIPECACHE_VERSION);
    return 0;
  }
  if (!parsed.unmatched().empty()) return usage(fmt::format("unexpected argument '{}'", parsed.unmatched()[0]));

  pipecache::RelayOptions o;
  const char* env_name = std::getenv("PIPECACHE_NAME");
  o.segment = parsed.count("name") ? parsed["name"].as<std::string>() : (env_name && *env_name ? env_name : "default");
  const char* env_url = std::getenv(std::string(pipecache::kRedisUrlVariable).c_str());
  if (parsed.count("redis")) o.redis_url = parsed["redis"].as<std::string>();
  else if (env_url && *env_url) o.redis_url = env_url;
  else return usage("no Redis: give --redis URL or set PIPECACHE_REDIS_URL");
  o.channel = parsed["channel"].as<std::string>();
  const long max_backoff = parsed["max-backoff"].as<long>();
  if (max_backoff < 100 || max_backoff > 600000) return usage("--max-backoff must be 100..600000 ms");
  o.max_backoff = std::chrono::milliseconds(max_backoff);

  try {
    pipecache::Cache::validate_name(o.segment);
    pipecache::validate_redis_url(o.redis_url);
  } catch (const std::exception& e) {
    return usage(e.what());
  }

  if (::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::perror("pipecache-relay: pipe");
    return 1;
  }
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a Redis socket closed under a write is an error, not a death

  try {
    pipecache::run_relay(o, g_stop_pipe[0]);
  } catch (const pipecache::Error& e) {
    std::fprintf(stderr, "pipecache-relay: %s\n", e.what());
    return e.kind() == pipecache::ErrorKind::invalid_argument && pipecache::redis_supported() ? 2 : 1;
  }
  return 0;
}
