// bench/batching — the proof of request batching on a real SQLite query.
//
// Several client threads ask `events_by_range` (one calendar, a day or a week view) against a
// generated calendar database. Two modes run side by side in one process, alternating rounds:
//   single  — each client thread answers its request with one SQL query on its own connection
//             (what the pipeline does without batching);
//   batched — each client calls pipecache::Batcher::load(); the dispatcher answers up to
//             --batch ranges with ONE query (a VALUES table of ranges joined to events).
// "Processing time" is the time spent in the query handler per request (thread CPU time, and
// wall time), the figure the design's target (>= 20% less) refers to. The whole-process CPU
// per request (clients, batcher machinery, wake-ups included) and the latency seen by clients
// (which includes the batch window) are reported beside it, so the price is visible too.
// Formation efficiency = requests that joined a batch of 2+ / requests given to the batcher.
// Every round's answers are compared with the first single round: exit 1 if any differ.
#include "events_db.hpp"

#include <pipecache/batcher.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <exception>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <unistd.h>
#include <vector>

namespace {

using batching_bench::Range;

struct Config {
  int threads = 16;
  int requests = 500;  // per thread and round
  std::size_t batch = 10;  // the design's database_query batch type: 10 per batch, 50 ms
  int window_ms = 50;
  int idle_ms = 0;  // > 0: BatcherOptions::max_idle (not in the design: off by default)
  int rounds = 3;
  int fail_every = 0;  // > 0: every Nth batch throws, to exercise the per-request fallback
  batching_bench::DatabaseShape shape;
};

std::int64_t now_ns(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Counts the clients in, then lets them all go at once. (std::latch of libstdc++ 12 hung here:
// a waiter missed the last count_down, so a mutex and a condition variable do it.)
class StartGate {
 public:
  explicit StartGate(int clients) : waiting_for_(clients) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (--waiting_for_ == 0) changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
  }
  void wait_for_all() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return waiting_for_ == 0; });
  }
  void open() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      open_ = true;
    }
    changed_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int waiting_for_;
  bool open_ = false;
};

// Handler time of one mode, summed over the calls of the handler (thread-safe).
struct HandlerClock {
  std::atomic<std::int64_t> cpu_ns{0};
  std::atomic<std::int64_t> wall_ns{0};
  std::atomic<std::uint64_t> queries{0};

  template <typename F>
  auto time(F&& f) {
    const std::int64_t cpu0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
    const std::int64_t wall0 = now_ns(CLOCK_MONOTONIC);
    struct Account {  // counts the call even when f throws
      HandlerClock& clock;
      std::int64_t cpu0, wall0;
      ~Account() {
        clock.cpu_ns += now_ns(CLOCK_THREAD_CPUTIME_ID) - cpu0;
        clock.wall_ns += now_ns(CLOCK_MONOTONIC) - wall0;
        clock.queries += 1;
      }
    } account{*this, cpu0, wall0};
    return f();
  }
};

struct ModeTotals {
  std::uint64_t requests = 0;
  std::uint64_t queries = 0;
  double handler_cpu_ns = 0;
  double handler_wall_ns = 0;
  double process_cpu_ns = 0;
  double elapsed_ns = 0;
  std::vector<double> latencies_ns;
  std::vector<double> round_handler_cpu_per_request;
  pipecache::BatcherStats stats;  // batched mode only (summed over rounds)
};

using Answers = std::vector<std::vector<std::string>>;  // [thread][request]

// Runs the clients; `answer(thread, range)` produces the rows. Returns the answers.
template <typename Answer>
Answers run_clients(const Config& config, const std::vector<std::vector<Range>>& workload,
                    ModeTotals& totals, Answer&& answer) {
  Answers answers(config.threads);
  std::vector<std::vector<double>> latencies(config.threads);
  StartGate gate(config.threads);
  std::vector<std::thread> clients;
  std::atomic<int> client_errors{0};
  for (int t = 0; t < config.threads; ++t) {
    clients.emplace_back([&, t] {
      answers[t].reserve(workload[t].size());
      latencies[t].reserve(workload[t].size());
      gate.arrive_and_wait();
      for (const Range& range : workload[t]) {
        const std::int64_t start = now_ns(CLOCK_MONOTONIC);
        try {
          answers[t].push_back(answer(t, range));
        } catch (const std::exception& error) {
          std::fprintf(stderr, "request failed: %s\n", error.what());
          client_errors += 1;
          answers[t].push_back("<error>");
        }
        latencies[t].push_back(static_cast<double>(now_ns(CLOCK_MONOTONIC) - start));
      }
    });
  }
  gate.wait_for_all();
  const std::int64_t cpu0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
  const std::int64_t wall0 = now_ns(CLOCK_MONOTONIC);
  gate.open();
  for (auto& client : clients) client.join();
  totals.process_cpu_ns += static_cast<double>(now_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0);
  totals.elapsed_ns += static_cast<double>(now_ns(CLOCK_MONOTONIC) - wall0);
  for (auto& per_thread : latencies) {
    totals.latencies_ns.insert(totals.latencies_ns.end(), per_thread.begin(), per_thread.end());
    totals.requests += per_thread.size();
  }
  if (client_errors.load() != 0) throw std::runtime_error("some requests failed");
  return answers;
}

Answers run_single(const Config& config, const std::string& path,
                   const std::vector<std::vector<Range>>& workload, ModeTotals& totals) {
  // One connection per client thread, opened before the clock starts.
  std::vector<std::unique_ptr<batching_bench::EventsConnection>> connections;
  for (int t = 0; t < config.threads; ++t) {
    connections.push_back(std::make_unique<batching_bench::EventsConnection>(path, 1));
  }
  HandlerClock clock;
  Answers answers = run_clients(config, workload, totals, [&](int t, const Range& range) {
    return clock.time([&] { return connections[t]->events_by_range(range); });
  });
  totals.handler_cpu_ns += static_cast<double>(clock.cpu_ns.load());
  totals.handler_wall_ns += static_cast<double>(clock.wall_ns.load());
  totals.queries += clock.queries.load();
  const double requests = static_cast<double>(config.threads) * config.requests;
  totals.round_handler_cpu_per_request.push_back(static_cast<double>(clock.cpu_ns.load()) /
                                                 requests);
  return answers;
}

Answers run_batched(const Config& config, const std::string& path,
                    const std::vector<std::vector<Range>>& workload, ModeTotals& totals) {
  // One connection for the Batcher's dispatcher thread: the batch function and its fallback
  // only ever run there (batcher.hpp, "Threads").
  batching_bench::EventsConnection connection(path, config.batch);
  HandlerClock clock;
  std::uint64_t batch_number = 0;  // dispatcher thread only
  using EventsBatcher = pipecache::Batcher<Range, std::string, batching_bench::RangeHash>;
  EventsBatcher::BatchFunction batch = [&](const std::vector<Range>& ranges) {
    return clock.time([&] {
      if (config.fail_every > 0 && ++batch_number % config.fail_every == 0) {
        throw std::runtime_error("injected batch failure");
      }
      return connection.events_by_ranges(ranges);
    });
  };
  EventsBatcher::SingleFunction single = [&](const Range& range) {
    return clock.time([&] { return connection.events_by_range(range); });
  };
  pipecache::BatcherOptions options;
  options.max_batch_size = config.batch;
  options.max_wait = std::chrono::milliseconds(config.window_ms);
  options.max_idle = std::chrono::milliseconds(config.idle_ms);
  Answers answers;
  {
    EventsBatcher batcher(batch, single, options);
    answers = run_clients(config, workload, totals,
                          [&](int, const Range& range) { return batcher.load(range); });
    batcher.shutdown();
    const pipecache::BatcherStats stats = batcher.stats();
    totals.stats.requests += stats.requests;
    totals.stats.batches += stats.batches;
    totals.stats.batched_keys += stats.batched_keys;
    totals.stats.batched_requests += stats.batched_requests;
    totals.stats.joined += stats.joined;
    totals.stats.duplicates += stats.duplicates;
    totals.stats.failures += stats.failures;
    totals.stats.fallbacks += stats.fallbacks;
    totals.stats.wait_ns += stats.wait_ns;
    totals.stats.largest_batch = std::max(totals.stats.largest_batch, stats.largest_batch);
  }
  totals.handler_cpu_ns += static_cast<double>(clock.cpu_ns.load());
  totals.handler_wall_ns += static_cast<double>(clock.wall_ns.load());
  totals.queries += clock.queries.load();
  const double requests = static_cast<double>(config.threads) * config.requests;
  totals.round_handler_cpu_per_request.push_back(static_cast<double>(clock.cpu_ns.load()) /
                                                 requests);
  return answers;
}

std::uint64_t count_differences(const Answers& expected, const Answers& actual) {
  std::uint64_t differences = 0;
  for (std::size_t t = 0; t < expected.size(); ++t) {
    if (actual[t].size() != expected[t].size()) return differences + expected[t].size();
    for (std::size_t i = 0; i < expected[t].size(); ++i) {
      if (actual[t][i] != expected[t][i]) ++differences;
    }
  }
  return differences;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  const auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1));
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(index),
                   values.end());
  return values[index];
}

void print_row(const char* mode, const ModeTotals& totals) {
  const double n = static_cast<double>(totals.requests);
  double latency_sum = 0;
  for (double latency : totals.latencies_ns) latency_sum += latency;
  std::printf("%-8s %9llu %8llu %15.2f %16.2f %16.2f %13.3f %13.3f %10.0f\n", mode,
              static_cast<unsigned long long>(totals.requests),
              static_cast<unsigned long long>(totals.queries), totals.handler_cpu_ns / n / 1e3,
              totals.handler_wall_ns / n / 1e3, totals.process_cpu_ns / n / 1e3,
              latency_sum / n / 1e6, percentile(totals.latencies_ns, 0.99) / 1e6,
              n / (totals.elapsed_ns / 1e9));
}

bool parse_flag(std::string_view arg, std::string_view name, long& out) {
  const std::string prefix = "--" + std::string(name) + "=";
  if (arg.substr(0, prefix.size()) != prefix) return false;
  const std::string text(arg.substr(prefix.size()));
  char* end = nullptr;
  out = std::strtol(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || out < 0) {
    throw std::invalid_argument("bad value for --" + std::string(name) + ": " + text);
  }
  return true;
}

Config parse(int argc, char** argv) {
  Config config;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    long v = 0;
    if (arg == "--help" || arg == "-h") {
      std::printf(
          "usage: batching_bench [--threads=16] [--requests=500 (per thread and round)]\n"
          "       [--batch=10] [--window-ms=50] [--idle-ms=0 (off)] [--rounds=3]\n"
          "       [--events=20000]"
          " [--calendars=50] [--seed=42] [--fail-every=0 (Nth batch throws)]\n");
      std::exit(0);
    } else if (parse_flag(arg, "threads", v)) {
      config.threads = static_cast<int>(std::max(1L, v));
    } else if (parse_flag(arg, "requests", v)) {
      config.requests = static_cast<int>(std::max(1L, v));
    } else if (parse_flag(arg, "batch", v)) {
      config.batch = static_cast<std::size_t>(std::max(1L, v));
    } else if (parse_flag(arg, "window-ms", v)) {
      config.window_ms = static_cast<int>(v);
    } else if (parse_flag(arg, "idle-ms", v)) {
      config.idle_ms = static_cast<int>(v);
    } else if (parse_flag(arg, "rounds", v)) {
      config.rounds = static_cast<int>(std::max(1L, v));
    } else if (parse_flag(arg, "events", v)) {
      config.shape.events = static_cast<int>(v);
    } else if (parse_flag(arg, "calendars", v)) {
      config.shape.calendars = static_cast<int>(std::max(1L, v));
    } else if (parse_flag(arg, "seed", v)) {
      config.shape.seed = static_cast<std::uint64_t>(v);
    } else if (parse_flag(arg, "fail-every", v)) {
      config.fail_every = static_cast<int>(v);
    } else {
      throw std::invalid_argument("unknown argument: " + std::string(arg) + " (try --help)");
    }
  }
  return config;
}

// The database lives in a temporary file for the run only.
struct TempDatabase {
  std::string path;
  TempDatabase() {
    char name[] = "/tmp/pipecache-batching-XXXXXX";
    const int fd = mkstemp(name);
    if (fd < 0) throw std::runtime_error("cannot create a temporary file in /tmp");
    close(fd);
    path = name;
  }
  ~TempDatabase() {
    unlink(path.c_str());
    unlink((path + "-journal").c_str());
  }
};

int run(const Config& config) {
  TempDatabase database;
  batching_bench::create_events_database(database.path, config.shape);
  std::vector<std::vector<Range>> workload;
  for (int t = 0; t < config.threads; ++t) {
    workload.push_back(batching_bench::generate_ranges(
        config.shape, config.shape.seed * 1000003 + static_cast<std::uint64_t>(t),
        static_cast<std::size_t>(config.requests)));
  }

  std::printf(
      "batching: %d threads ask events_by_range (one calendar, day or week view) of a SQLite "
      "calendar; single = one SQL query per range, batched = up to %zu ranges per query via "
      "pipecache::Batcher (%d ms window%s); processing time = query handler time per request, "
      "lower is better\n",
      config.threads, config.batch, config.window_ms,
      config.idle_ms > 0 ? (", closed after " + std::to_string(config.idle_ms) + " ms idle").c_str()
                         : "");
  std::printf("database: %d events in %d calendars (seed %llu), file %s; %d x %d requests per "
              "round, %d rounds, modes alternating%s\n\n",
              config.shape.events, config.shape.calendars,
              static_cast<unsigned long long>(config.shape.seed), database.path.c_str(),
              config.threads, config.requests, config.rounds,
              config.fail_every > 0 ? ", every Nth batch fails on purpose" : "");

  ModeTotals single;
  ModeTotals batched;
  Answers reference;
  std::uint64_t differences = 0;
  std::uint64_t compared = 0;
  for (int round = 0; round < config.rounds; ++round) {
    Answers answers = run_single(config, database.path, workload, single);
    if (round == 0) {
      reference = std::move(answers);
    } else {
      differences += count_differences(reference, answers);
      compared += static_cast<std::uint64_t>(config.threads) * config.requests;
    }
    answers = run_batched(config, database.path, workload, batched);
    differences += count_differences(reference, answers);
    compared += static_cast<std::uint64_t>(config.threads) * config.requests;
  }
  std::uint64_t rows = 0;
  for (const auto& per_thread : reference) {
    for (const auto& answer : per_thread) rows += std::count(answer.begin(), answer.end(), '\n');
  }

  std::printf("%-8s %9s %8s %15s %16s %16s %13s %13s %10s\n", "mode", "requests", "queries",
              "handler_cpu_us", "handler_wall_us", "process_cpu_us", "latency_ms", "p99_ms",
              "req/s");
  std::printf("%-8s %9s %8s %15s %16s %16s %13s %13s %10s\n", "", "", "", "/request",
              "/request", "/request", "mean", "", "");
  print_row("single", single);
  print_row("batched", batched);

  const double n_single = static_cast<double>(single.requests);
  const double n_batched = static_cast<double>(batched.requests);
  const double cpu_single = single.handler_cpu_ns / n_single;
  const double cpu_batched = batched.handler_cpu_ns / n_batched;
  const double improvement = 1.0 - cpu_batched / cpu_single;
  const double wall_improvement =
      1.0 - (batched.handler_wall_ns / n_batched) / (single.handler_wall_ns / n_single);
  const double process_improvement =
      1.0 - (batched.process_cpu_ns / n_batched) / (single.process_cpu_ns / n_single);
  const double formation = batched.stats.formation_efficiency();
  std::printf("\nimprovement, processing (handler CPU) time per request: %.1f%% less  "
              "(target > 20%%: %s)\n",
              improvement * 100, improvement > 0.20 ? "met" : "NOT met");
  std::printf("  per round:");
  for (int round = 0; round < config.rounds; ++round) {
    std::printf(" %.1f%%", (1.0 - batched.round_handler_cpu_per_request[round] /
                                      single.round_handler_cpu_per_request[round]) *
                               100);
  }
  std::printf("; handler wall time: %.1f%% less; whole-process CPU: %.1f%% less\n",
              wall_improvement * 100, process_improvement * 100);
  std::printf("formation efficiency: %.1f%% of batchable requests joined a batch of 2+  "
              "(target > 70%%: %s)\n",
              formation * 100, formation > 0.70 ? "met" : "NOT met");
  std::printf("batches: %llu, average %.2f requests, largest %llu, identical keys shared %llu, "
              "failures %llu, fallbacks %llu, mean wait in window %.2f ms\n",
              static_cast<unsigned long long>(batched.stats.batches),
              batched.stats.average_batch_requests(),
              static_cast<unsigned long long>(batched.stats.largest_batch),
              static_cast<unsigned long long>(batched.stats.duplicates),
              static_cast<unsigned long long>(batched.stats.failures),
              static_cast<unsigned long long>(batched.stats.fallbacks),
              static_cast<double>(batched.stats.wait_ns) / n_batched / 1e6);
  if (differences != 0) {
    std::printf("results: %llu of %llu answers DIFFER between modes\n",
                static_cast<unsigned long long>(differences),
                static_cast<unsigned long long>(compared));
    return 1;
  }
  std::printf("results: identical in both modes (%llu answers compared with the first single "
              "round, %llu rows in it)\n",
              static_cast<unsigned long long>(compared), static_cast<unsigned long long>(rows));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "batching_bench: %s\n", error.what());
    return 2;
  }
}
