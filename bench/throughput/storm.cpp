#include "throughput/storm.hpp"

#include "common/clock.hpp"

#include <pipecache/pipeline.hpp>

#include <fmt/format.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <new>
#include <thread>

namespace bench {
namespace {

constexpr unsigned kMaxRounds = 400;
constexpr unsigned kMaxKeys = 8;
constexpr unsigned kMaxProcesses = 16;
constexpr std::size_t kValueBytes = 1024;
constexpr const char* kType = "storm";

struct WorkerFigures {
  LatencyHistogram waiter_after_publish;
  LatencyHistogram request;
  std::uint64_t requests = 0, waiters = 0, late_hits = 0, wrong = 0, fallbacks = 0;
  std::uint64_t max_waiter_ns = 0;
  char error[200] = {};
};

// Shared by the coordinator and the workers (MAP_SHARED | MAP_ANONYMOUS, built before fork).
// Every field is written by workers and read by the coordinator after the round it belongs to.
struct Board {
  std::atomic<std::uint32_t> ready{0};     // workers attached
  std::atomic<std::uint32_t> go_round{0};  // workers may run round go_round - 1
  std::atomic<std::uint32_t> finished{0};  // worker-rounds completed
  std::atomic<std::uint32_t> computes[kMaxRounds][kMaxKeys];
  std::atomic<std::uint64_t> published_ns[kMaxRounds][kMaxKeys];
  WorkerFigures figures[kMaxProcesses];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

std::string storm_value(std::uint32_t round, std::uint32_t key) {
  std::string v(kValueBytes, 's');
  std::memcpy(v.data(), &round, 4);
  std::memcpy(v.data() + 4, &key, 4);
  return v;
}

bool is_value_of(std::string_view v, std::uint32_t round, std::uint32_t key) {
  if (v.size() != kValueBytes) return false;
  std::uint32_t r, k;
  std::memcpy(&r, v.data(), 4);
  std::memcpy(&k, v.data() + 4, 4);
  return r == round && k == key;
}

pipecache::RequestPolicy storm_policy(const StormSettings& storm) {
  pipecache::RequestPolicy policy;
  policy.ttl = storm.ttl;
  policy.stale_for = std::chrono::milliseconds(0);
  policy.deduplicate = true;
  return policy;
}

[[noreturn]] void storm_worker(Board& board, unsigned process, unsigned rounds,
                               const pipecache::PipelineConfig& config, const StormSettings& storm) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  WorkerFigures& f = board.figures[process];
  try {
    pipecache::Pipeline pipeline(config);
    pipeline.set_policy(kType, storm_policy(storm));
    if (!pipeline.cache_available()) throw std::runtime_error("segment unavailable");
    board.ready.fetch_add(1);
    for (std::uint32_t r = 0; r < rounds; ++r) {
      for (unsigned spins = 0; board.go_round.load(std::memory_order_acquire) <= r; ++spins)
        if (spins % 256 == 255) sched_yield();  // 4 workers on 2 cores: let the others run
      for (std::uint32_t k = 0; k < storm.keys; ++k) {
        bool computed = false;
        std::uint64_t t0 = now_ns();
        std::string v = pipeline.process_request(kType, {{"k", std::to_string(k)}}, [&] {
          computed = true;
          board.computes[r][k].fetch_add(1);
          std::this_thread::sleep_for(storm.compute);
          std::string value = storm_value(r, k);
          board.published_ns[r][k].store(now_ns(), std::memory_order_release);
          return value;
        });
        std::uint64_t t1 = now_ns();
        ++f.requests;
        f.request.add(t1 - t0);
        if (!is_value_of(v, r, k)) ++f.wrong;
        if (computed) continue;
        std::uint64_t published = board.published_ns[r][k].load(std::memory_order_acquire);
        if (published != 0 && t0 < published) {
          ++f.waiters;
          std::uint64_t after = t1 > published ? t1 - published : 0;
          f.waiter_after_publish.add(after);
          f.max_waiter_ns = std::max(f.max_waiter_ns, after);
        } else {
          ++f.late_hits;
        }
      }
      board.finished.fetch_add(1, std::memory_order_release);
    }
    f.fallbacks = pipeline.stats().local_fallback_total();
  } catch (const std::exception& e) {
    std::snprintf(f.error, sizeof f.error, "%s", e.what());
    board.ready.fetch_add(1);
    board.finished.fetch_add(kMaxRounds * 4);  // unblock the coordinator
  }
  _exit(0);
}

// Waits (sleeping) until pred() or the deadline; false on timeout.
template <class Pred>
bool wait_until(Pred pred, std::uint64_t deadline_ns) {
  while (!pred()) {
    if (now_ns() > deadline_ns) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

StormResult run_one(const RunSettings& settings, const Environment& env, unsigned processes,
                    const StormSettings& storm) {
  StormResult result;
  result.processes = processes;
  result.keys = storm.keys;
  const double round_ms = static_cast<double>((storm.ttl + storm.expiry_margin).count() +
                                              storm.keys * storm.compute.count() + 2);
  result.rounds = static_cast<unsigned>(std::clamp(
      settings.seconds * settings.repetitions * 1000.0 / round_ms, 10.0, double{kMaxRounds}));

  pipecache::PipelineConfig config;
  config.segment_name = fmt::format("{}-storm{}", env.segment_prefix, processes);
  config.cache_memory_limit_mb = 8;
  config.cache_max_size = 0;
  config.enable_request_batching = false;
  config.dedup_max_wait = std::chrono::seconds(2);
  config.lease_time = std::chrono::seconds(2);
  pipecache::Cache::remove(config.segment_name);

  void* mapping = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) {
    result.error = "mmap failed";
    return result;
  }
  Board& board = *new (mapping) Board();
  std::vector<pid_t> pids;
  {
    pipecache::Pipeline owner(config);  // creates the segment before the workers race for it
    if (!owner.cache_available()) result.error = "segment unavailable";
    std::fflush(nullptr);
    for (unsigned p = 0; p < processes && result.error.empty(); ++p) {
      pid_t pid = ::fork();
      if (pid == 0) storm_worker(board, p, result.rounds, config, storm);
      if (pid > 0) pids.push_back(pid);
    }
    const std::uint64_t grace = 30'000'000'000ull;
    if (result.error.empty() &&
        !wait_until([&] { return board.ready.load() >= processes; }, now_ns() + grace))
      result.error = "a storm worker did not get ready";
    for (std::uint32_t r = 0; r < result.rounds && result.error.empty(); ++r) {
      if (!wait_until([&] { return board.finished.load() >= r * processes; }, now_ns() + grace)) {
        result.error = fmt::format("round {} did not finish (hung worker?)", r);
        break;
      }
      std::this_thread::sleep_for(storm.ttl + storm.expiry_margin);
      board.go_round.store(r + 1, std::memory_order_release);
    }
    if (result.error.empty() &&
        !wait_until([&] { return board.finished.load() >= result.rounds * processes; },
                    now_ns() + grace))
      result.error = "the last round did not finish";
    if (!result.error.empty())
      for (pid_t pid : pids) ::kill(pid, SIGKILL);
    for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  }
  pipecache::Cache::remove(config.segment_name);

  LatencyHistogram waiters, requests;
  for (unsigned p = 0; p < processes; ++p) {
    const WorkerFigures& f = board.figures[p];
    if (result.error.empty() && f.error[0] != '\0') result.error = f.error;
    waiters += f.waiter_after_publish;
    requests += f.request;
    result.requests += f.requests;
    result.waiters += f.waiters;
    result.late_hits += f.late_hits;
    result.wrong_values += f.wrong;
    result.fallbacks += f.fallbacks;
    result.waiter_max_ns = std::max(result.waiter_max_ns, static_cast<double>(f.max_waiter_ns));
  }
  for (unsigned r = 0; r < result.rounds; ++r)
    for (unsigned k = 0; k < storm.keys; ++k) {
      std::uint64_t c = board.computes[r][k].load();
      result.computes += c;
      result.storms_not_once += c != 1;
      result.max_computes = std::max(result.max_computes, c);
    }
  result.storms = std::uint64_t{result.rounds} * storm.keys;
  result.waiter_p50_ns = waiters.percentile_ns(0.5);
  result.waiter_p99_ns = waiters.percentile_ns(0.99);
  result.request_p50_ns = requests.percentile_ns(0.5);
  result.request_p99_ns = requests.percentile_ns(0.99);
  board.~Board();
  ::munmap(mapping, sizeof(Board));
  return result;
}

}  // namespace

std::vector<StormResult> run_storm(const RunSettings& settings, const Environment& env,
                                   const std::vector<unsigned>& process_counts,
                                   const StormSettings& storm) {
  std::vector<StormResult> results;
  for (unsigned p : process_counts) {
    if (p == 0 || p > kMaxProcesses || storm.keys > kMaxKeys) continue;
    results.push_back(run_one(settings, env, p, storm));
  }
  return results;
}

}  // namespace bench
