// Many hosts on loopback: how fast an invalidation reaches another host's segment, and what a
// second-tier hit costs next to a local hit and a compute. Starts its own redis-server on a
// unix socket in a temporary directory (stopped by PID at exit); each "host" is a segment,
// host B's relay runs on a thread of this process (the same run_relay pipecache-relay runs).
//
//   remote_bench [--iterations N] [--compute-us U]
//
// Checks its own results: every broadcast must have removed the entry on host B, every tier
// hit must return the value host A stored; a failed check exits 1.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <cxxopts.hpp>
#include <fmt/core.h>

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>
#include <pipecache/remote.hpp>

#include "remote/endpoint.hpp"
#include "remote/figures.hpp"
#include "remote/redis.hpp"
#include "remote/scripts.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace d = pipecache::detail;

double ns_between(Clock::time_point a, Clock::time_point b) {
  return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(b - a).count());
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "remote_bench: FAILED: %s\n", why.c_str());
  std::exit(1);
}

struct Redis {
  std::string dir, url;
  pid_t pid = -1;
  Redis() {
    char tmpl[] = "/tmp/pipecache-bench-redis-XXXXXX";
    if (!::mkdtemp(tmpl)) fail("mkdtemp");
    dir = tmpl;
    const std::string sock = dir + "/redis.sock";
    url = "unix://" + sock;
    pid = ::fork();
    if (pid == 0) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock.c_str(),
               "--save", "", "--appendonly", "no", "--dir", dir.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const auto e = d::parse_redis_url(url);
    for (int i = 0; i < 500; ++i) {
      std::string problem;
      auto c = d::RedisConnection::connect(e, 200ms, problem);
      if (c && c->command({"PING"}, problem)) return;
      std::this_thread::sleep_for(10ms);
    }
    fail("redis-server did not start (apt-get install redis-server)");
  }
  ~Redis() {
    ::kill(pid, SIGTERM);
    ::waitpid(pid, nullptr, 0);
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

struct Segment {
  std::string name;
  pipecache::Cache cache;
  explicit Segment(const std::string& tag)
      : name(fmt::format("bench-remote-{}-{}", tag, ::getpid())),
        cache(pipecache::Cache::create([&] {
          pipecache::Options o;
          o.name = name;
          o.byte_budget = 32u << 20;
          return o;
        }())) {}
  ~Segment() { pipecache::Cache::remove(name); }
};

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options options("remote_bench", "Propagation latency and second-tier cost on loopback");
  options.add_options()
      ("iterations", "broadcasts and tier lookups measured", cxxopts::value<int>()->default_value("2000"))
      ("compute-us", "cost of the stand-in handler (a database query), microseconds",
       cxxopts::value<int>()->default_value("1000"))
      ("h,help", "help");
  const auto args = options.parse(argc, argv);
  if (args.count("help")) {
    std::fputs(options.help().c_str(), stdout);
    return 0;
  }
  const int n = std::max(args["iterations"].as<int>(), 10);
  const int compute_us = args["compute-us"].as<int>();
  ::signal(SIGPIPE, SIG_IGN);

  Redis redis;
  Segment a("a"), b("b");

  // Host B's relay.
  int stop[2];
  if (::pipe(stop) != 0) fail("pipe");
  pipecache::RelayOptions ro;
  ro.segment = b.name;
  ro.redis_url = redis.url;
  ro.log = [](std::string_view) {};
  std::thread relay([&] { pipecache::run_relay(ro, stop[0]); });
  for (int i = 0; i < 1000 && !pipecache::remote_stats(b.cache).relay_connected; ++i)
    std::this_thread::sleep_for(5ms);
  if (!pipecache::remote_stats(b.cache).relay_connected) fail("relay did not subscribe");

  // 1. Propagation: host A publishes "k:*" on a kept connection (as a Pipeline's publisher
  // thread does); the clock stops when host B's get misses.
  std::string problem;
  auto conn = d::RedisConnection::connect(d::parse_redis_url(redis.url), 1s, problem);
  if (!conn) fail(problem);
  const std::uint64_t origin = d::origin_of(a.cache);
  std::vector<double> propagation;
  propagation.reserve(static_cast<std::size_t>(n));
  std::string out;
  for (int i = 0; i < n; ++i) {
    b.cache.put("k:x", "v");
    const auto t0 = Clock::now();
    const std::string msg = d::format_message({origin, d::realtime_ns(), "k:*"});
    if (!conn->command({"EVAL", d::kInvalidateScript, "0", pipecache::kDefaultInvalidationChannel, msg, "k"}, problem))
      fail(problem);
    const auto deadline = t0 + 1s;
    while (b.cache.get("k:x", out)) {
      if (Clock::now() > deadline) fail(fmt::format("broadcast {} did not reach host B within 1 s", i));
    }
    propagation.push_back(ns_between(t0, Clock::now()));
  }
  const double p50 = percentile(propagation, 0.5), p99 = percentile(propagation, 0.99);
  const auto relay_lag = pipecache::remote_stats(b.cache).lag;
  std::printf("propagation, broadcast on A -> entry gone on B (%d broadcasts, loopback, unix socket)\n", n);
  std::printf("  p50 %.0f us   p99 %.0f us   max %.0f us   (goal p99 < 5 ms: p99 is %.3fx the goal)\n",
              p50 / 1e3, p99 / 1e3, percentile(propagation, 1.0) / 1e3, p99 / 5e6);
  std::printf("  relay's own lag histogram (publication -> applied): p50 %.0f us  p99 %.0f us\n",
              relay_lag.percentile_ns(0.5) / 1e3, relay_lag.percentile_ns(0.99) / 1e3);

  // 2. Second tier. Host A computes n keys (stored in Redis); host C (a fresh segment) then
  // misses each locally and finds it in the tier.
  auto tier_config = [&](const std::string& segment) {
    pipecache::PipelineConfig c;
    c.segment_name = segment;
    c.cache_memory_limit_mb = 32;
    c.cache_max_size = 0;  // the default (1000 entries) would evict the keys of a large run
    c.redis_url = redis.url;
    return c;
  };
  pipecache::RequestPolicy policy;
  policy.ttl = 300s;
  policy.second_tier = true;
  const std::string seg_a2 = a.name + "-p", seg_c = a.name + "-c", seg_d = a.name + "-d";
  auto value_of = [](int k) { return fmt::format("{{\"report\":{},\"rows\":\"{}\"}}", k, std::string(900, 'x')); };
  auto slow = [&](int k) {
    const auto until = Clock::now() + std::chrono::microseconds(compute_us);
    while (Clock::now() < until) {
    }
    return value_of(k);
  };
  {
    pipecache::Pipeline pa(tier_config(seg_a2));
    pa.set_policy("report", policy);
    for (int k = 0; k < n; ++k) pa.process_request("report", {{"id", std::to_string(k)}}, [&] { return value_of(k); });
  }
  pipecache::Pipeline pc(tier_config(seg_c));
  pc.set_policy("report", policy);
  std::vector<double> tier_hit;
  for (int k = 0; k < n; ++k) {
    const auto t0 = Clock::now();
    const std::string v = pc.process_request("report", {{"id", std::to_string(k)}}, [&] { return std::string("computed"); });
    tier_hit.push_back(ns_between(t0, Clock::now()));
    if (v != value_of(k)) fail(fmt::format("tier hit {} returned another value", k));
  }
  if (pipecache::remote_stats(*pc.cache()).counter(pipecache::RemoteCounter::tier_hits) != static_cast<std::uint64_t>(n))
    fail("not every lookup was a tier hit");
  // Local hits of the same keys on host C.
  std::vector<double> local_hit;
  for (int round = 0; round < 5; ++round) {
    for (int k = 0; k < n; ++k) {
      const auto t0 = Clock::now();
      const std::string v = pc.process_request("report", {{"id", std::to_string(k)}}, [&] { return std::string("computed"); });
      local_hit.push_back(ns_between(t0, Clock::now()));
      if (v != value_of(k)) fail("local hit returned another value");
    }
  }
  // A compute without the tier: host D, tier off, the stand-in handler.
  pipecache::PipelineConfig plain = tier_config(seg_d);
  plain.redis_url.clear();
  pipecache::Pipeline pd(plain);
  pipecache::RequestPolicy local_policy = policy;
  local_policy.second_tier = false;
  pd.set_policy("report", local_policy);
  std::vector<double> computed;
  const int computes = std::min(n, 500);
  for (int k = 0; k < computes; ++k) {
    const auto t0 = Clock::now();
    const std::string v = pd.process_request("report", {{"id", std::to_string(k)}}, [&] { return slow(k); });
    computed.push_back(ns_between(t0, Clock::now()));
    if (v != value_of(k)) fail("compute returned another value");
  }
  const double hit50 = percentile(local_hit, 0.5), tier50 = percentile(tier_hit, 0.5),
               comp50 = percentile(computed, 0.5);
  std::printf("\nsecond tier, 1 KiB values (%d keys)\n", n);
  std::printf("  local hit         p50 %8.2f us   p99 %8.2f us\n", hit50 / 1e3, percentile(local_hit, 0.99) / 1e3);
  std::printf("  tier hit          p50 %8.2f us   p99 %8.2f us   (%.0fx a local hit)\n", tier50 / 1e3,
              percentile(tier_hit, 0.99) / 1e3, tier50 / hit50);
  std::printf("  compute (%d us)  p50 %8.2f us   p99 %8.2f us   (a tier hit costs %.3fx a compute)\n",
              compute_us, comp50 / 1e3, percentile(computed, 0.99) / 1e3, tier50 / comp50);
  for (const auto& s : {seg_a2, seg_c, seg_d}) pipecache::Cache::remove(s);

  [[maybe_unused]] auto w = ::write(stop[1], "x", 1);
  relay.join();
  return 0;
}
