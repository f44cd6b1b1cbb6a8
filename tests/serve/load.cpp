// A live segment under load for the `pipectl serve` tests: one process runs requests of three
// request types through a Pipeline (skewed keys, so hit ratios differ by type; handlers that
// take time, so compute latency shows), puts filler entries that make the store evict, and
// invalidates one type every couple of seconds (recent invalidations appear). Rate-limited
// (at most ~20k requests/s) so it shares a small CI machine; runs until SIGTERM or --seconds.
// Usage: serve_load SEGMENT [SECONDS]   (prints "ready" once the first requests are cached)
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include <pipecache/pipeline.hpp>

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

std::string busy_value(std::size_t bytes, unsigned micros) {
  std::this_thread::sleep_for(std::chrono::microseconds(micros));
  return std::string(bytes, 'v');
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: serve_load SEGMENT [SECONDS]\n");
    return 2;
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 1e9;
  std::signal(SIGTERM, on_signal);
  std::signal(SIGINT, on_signal);

  pipecache::PipelineConfig config;
  config.segment_name = argv[1];
  config.cache_max_size = 0;
  config.cache_memory_limit_mb = 2;  // small: the filler below makes it evict
  config.enable_request_batching = false;
  pipecache::Pipeline pipeline(config);
  for (auto [type, ttl] : {std::pair{"user_profile", 30}, {"search", 5}, {"feed", 10}}) {
    pipecache::RequestPolicy policy;
    policy.ttl = std::chrono::seconds(ttl);
    pipeline.set_policy(type, policy);
  }
  pipecache::Cache* cache = pipeline.cache();
  if (cache == nullptr) {
    std::fprintf(stderr, "serve_load: segment '%s' unavailable\n", argv[1]);
    return 1;
  }

  std::mt19937_64 rng(42);
  // Skew: user_profile keys from 200 (mostly hits), search from 20000 (mostly misses), feed
  // from 2000.
  std::geometric_distribution<unsigned> users(0.02), feeds(0.002);
  std::uniform_int_distribution<unsigned> searches(0, 19999);
  const auto start = std::chrono::steady_clock::now();
  auto last_invalidation = start;
  std::uint64_t n = 0;
  unsigned invalidations = 0;
  bool announced = false;
  while (!g_stop) {
    const auto now = std::chrono::steady_clock::now();
    if (std::chrono::duration<double>(now - start).count() > seconds) break;
    for (int i = 0; i < 100; ++i, ++n) {
      const unsigned u = users(rng) % 200, f = feeds(rng) % 2000, s = searches(rng);
      pipeline.process_request("user_profile", {{"id", std::to_string(u)}},
                               [] { return busy_value(300, 50); });
      if (n % 2 == 0) {
        pipeline.process_request("feed", {{"id", std::to_string(f)}},
                                 [] { return busy_value(2000, 200); });
      }
      if (n % 5 == 0) {
        pipeline.process_request("search", {{"q", std::to_string(s)}},
                                 [] { return busy_value(800, 400); });
      }
      if (n % 3 == 0) {
        // Filler outside the request types, sized so a few-MiB budget fills within a second
        // and then evicts steadily.
        cache->put("blob:" + std::to_string(n % 50000), std::string(8000, 'b'));
      }
    }
    if (now - last_invalidation > std::chrono::seconds(2)) {
      pipeline.invalidate(++invalidations % 2 == 0 ? "feed:*" : "search:*");
      last_invalidation = now;
    }
    if (!announced) {
      std::printf("ready\n");
      std::fflush(stdout);
      announced = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return 0;
}
