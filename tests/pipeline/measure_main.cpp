// Figures of the pipeline (an ordinary program, not a test):
//   1. publish -> waiters: 8 processes wait on one missing key while a 9th holds its lease;
//      from the end of the holder's handler (its publish follows at once) to the return of
//      the holder's process_request (= the publish, including the futex wake of 8
//      processes), of the first waiter and of the last waiter. Waiters stay alive until all
//      have answered: an exiting process would steal CPU from those still to run.
//   2. the per-request cost of process_request on a hit against a bare Cache::get of the
//      same key (1 KiB value, reused output string), in one process.
// Usage: pipeline_measure [rounds=20] [hit_iterations=2000000]
// On a shared machine, `chrt -f 10 pipeline_measure` keeps other work from preempting it.
#include <pipecache/pipeline.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <initializer_list>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

using namespace pipecache;
using namespace std::chrono_literals;

namespace {

std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

constexpr int kWaiters = 8;

struct Board {
  std::atomic<int> ready{0};
  std::atomic<int> holder_in_handler{0};
  std::atomic<std::int64_t> handler_end{0};
  std::atomic<std::int64_t> holder_return{0};  // process_request returned in the holder
  std::atomic<std::int64_t> done[kWaiters]{};
  std::atomic<int> wrong{0};
  std::atomic<int> finished{0};  // waiters that recorded their return
  std::atomic<int> may_exit{0};  // set once every waiter has recorded its return
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

struct WakeFigures {
  std::vector<double> first_us;  // handler end -> first waiter returned
  std::vector<double> last_us;   // handler end -> last waiter returned
  std::vector<double> holder_us;  // handler end -> the holder's process_request returned
};

WakeFigures publish_to_waiters(const PipelineConfig& cfg, int rounds) {
  auto* b = static_cast<Board*>(::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE,
                                       MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  WakeFigures out;
  for (int r = 0; r < rounds; ++r) {
    new (b) Board();
    const Params params{{"round", std::to_string(r)}};
    std::vector<pid_t> pids;
    // The holder: holds the lease before any waiter starts, then computes for 300 ms after the
    // last waiter has started, so that all of them are asleep on the lease when it publishes.
    pids.push_back(::fork());
    if (pids.back() == 0) {
      Pipeline p(cfg);
      p.process_request("measure", params, [&] {
        b->holder_in_handler.store(1);
        while (b->ready.load() < kWaiters) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(300ms);
        b->handler_end.store(now_ns());
        return std::string(1024, 'm');
      });
      b->holder_return.store(now_ns());
      ::_exit(0);
    }
    while (b->holder_in_handler.load() == 0) std::this_thread::sleep_for(1ms);
    for (int i = 0; i < kWaiters; ++i) {
      pids.push_back(::fork());
      if (pids.back() == 0) {
        Pipeline p(cfg);
        b->ready.fetch_add(1);
        const auto v = p.process_request("measure", params, [] { return std::string("dup"); });
        b->done[i].store(now_ns());
        if (v.size() != 1024) b->wrong.fetch_add(1);
        b->finished.fetch_add(1);
        // Exit only when all have answered: a process exit costs ~100 us of CPU (unmapping),
        // which would otherwise delay the waiters still to run on the 2 cores.
        while (b->may_exit.load() == 0) std::this_thread::sleep_for(1ms);
        ::_exit(0);
      }
    }
    while (b->finished.load() < kWaiters) std::this_thread::sleep_for(1ms);
    b->may_exit.store(1);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
    std::int64_t last = 0;
    std::int64_t first = INT64_MAX;
    for (int i = 0; i < kWaiters; ++i) {
      last = std::max(last, b->done[i].load());
      first = std::min(first, b->done[i].load());
    }
    if (b->wrong.load() != 0) std::fprintf(stderr, "round %d: %d wrong values\n", r, b->wrong.load());
    out.last_us.push_back(static_cast<double>(last - b->handler_end.load()) / 1000.0);
    out.holder_us.push_back(static_cast<double>(b->holder_return.load() - b->handler_end.load()) / 1000.0);
    out.first_us.push_back(static_cast<double>(first - b->handler_end.load()) / 1000.0);
  }
  ::munmap(b, sizeof(Board));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
  const long iterations = argc > 2 ? std::atol(argv[2]) : 2'000'000;
  PipelineConfig cfg;
  cfg.segment_name = "measure-pipeline-" + std::to_string(::getpid());
  cfg.cache_memory_limit_mb = 16;
  cfg.cache_max_size = 0;

  {
    Pipeline owner(cfg);
    if (!owner.cache_available()) {
      std::fprintf(stderr, "segment unavailable\n");
      return 1;
    }
    auto wake = publish_to_waiters(cfg, rounds);
    for (auto* v : {&wake.first_us, &wake.last_us, &wake.holder_us}) std::sort(v->begin(), v->end());
    std::printf("handler end -> holder's process_request returned (publish): median %.1f us\n",
                median(wake.holder_us));
    std::printf("handler end -> first of %d waiters returned: median %.1f us, min %.1f us, max %.1f us"
                " (%d rounds)\n",
                kWaiters, median(wake.first_us), wake.first_us.front(), wake.first_us.back(), rounds);
    std::printf("handler end -> last of %d waiters returned:  median %.1f us, min %.1f us, max %.1f us"
                "\n",
                kWaiters, median(wake.last_us), wake.last_us.front(), wake.last_us.back());

    const Params params{{"from", "2024-01-01"}, {"to", "2024-02-01"}, {"user", "17"}};
    owner.warm("events_by_range", params, [] { return std::string(1024, 'v'); });
    Cache& cache = *owner.cache();
    const std::string key = owner.cache_key("events_by_range", params);
    std::string out;
    std::size_t sink = 0;
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = now_ns();
      for (long i = 0; i < iterations; ++i) {
        cache.get(key, out);
        sink += out.size();
      }
      const double get_ns = static_cast<double>(now_ns() - t0) / static_cast<double>(iterations);
      t0 = now_ns();
      for (long i = 0; i < iterations; ++i) sink += cache.get(key)->size();
      const double get_alloc_ns =
          static_cast<double>(now_ns() - t0) / static_cast<double>(iterations);
      t0 = now_ns();
      for (long i = 0; i < iterations; ++i) {
        sink += owner.process_request("events_by_range", params, [] { return std::string(); }).size();
      }
      const double pr_ns = static_cast<double>(now_ns() - t0) / static_cast<double>(iterations);
      std::printf("hit, 1 KiB value: Cache::get(key, out) %.0f ns/op, Cache::get(key) %.0f ns/op, "
                  "process_request %.0f ns/op; overhead %.0f ns over get(key, out), %.0f ns over "
                  "get(key)\n",
                  get_ns, get_alloc_ns, pr_ns, pr_ns - get_ns, pr_ns - get_alloc_ns);
    }
    if (sink == 0) std::printf("?\n");
  }
  Cache::remove(cfg.segment_name);
  return 0;
}
