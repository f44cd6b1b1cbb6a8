// Runs one system through one workload with P worker processes, R times.
//
// Protocol of one repetition (why: every worker must start at the same instant, and a worker
// that hangs — a deadlocked peer — must not hang the bench):
//   1. the parent has built the system (shared state preloaded) and the operation streams;
//   2. it forks P workers; each attaches (Client), writes one byte on `ready`, blocks on `go`;
//   3. when all are ready the parent writes P bytes on `go`; each worker runs its loop for
//      `seconds`, then writes its WorkerReport (plain bytes) on its own result pipe and exits;
//   4. the parent polls the result pipes with a deadline; a late worker is SIGKILLed and the
//      repetition is reported as an error. Workers die with the parent (PR_SET_PDEATHSIG).
//
// The loop times one operation in kSampleEvery, verifies every read cheaply (length + key)
// and one in kVerifyEvery fully (body checksum) — never the timed one, so the checksum is not
// in the latency. Ops/s of a repetition = sum over workers of ops / own elapsed time.
//
// The machine is shared: a burst of someone else's compile can halve one cell. So all
// systems of a workload are built first and the repetitions are interleaved (rep 1 of every
// system, then rep 2, ...): a burst hits one repetition of several systems, and the median
// drops it. Each worker also measures its own CPU time: "cpu ops/s" = processes x ops per
// CPU-second, what the workers would do with a core each — not fooled by being descheduled
// (it still is by cache pollution). It means nothing for the remote peers (their work is in
// the server), so it is not reported for them.
#pragma once

#include "common/clock.hpp"
#include "common/histogram.hpp"
#include "systems/system.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <type_traits>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace bench {

struct RunSettings {
  double seconds = 2.0;
  unsigned repetitions = 3;
  std::vector<unsigned> process_counts{1, 2};
  std::uint64_t seed = 42;
  std::uint64_t clock_overhead_ns = 0;
  double worker_grace_seconds = 60;  // attach + preload (the limit's map) + scheduling slack
};

inline constexpr std::uint64_t kSampleEvery = 32;      // a power of two
inline constexpr std::uint64_t kVerifyEvery = 64;      // a power of two
inline constexpr std::uint64_t kVerifyPhase = 17;      // not a multiple of kSampleEvery
inline constexpr unsigned kOpsBetweenClockReads = 64;  // deadline check granularity

struct WorkerReport {
  std::uint64_t ops = 0;
  std::uint64_t gets = 0;
  std::uint64_t hits = 0;
  std::uint64_t puts = 0;
  std::uint64_t puts_dropped = 0;
  std::uint64_t check_failures = 0;     // a hit whose value is not one written for the key
  std::uint64_t unexpected_misses = 0;  // a miss where all the data fits
  std::uint64_t full_checks = 0;
  std::uint64_t elapsed_ns = 0;
  std::uint64_t cpu_ns = 0;  // this worker's CPU time during the loop
  LatencyHistogram latency;
  char error[256] = {};
};
static_assert(std::is_trivially_copyable_v<WorkerReport>);

struct CellResult {
  std::string system;
  std::string workload;
  unsigned processes = 0;
  std::vector<double> ops_per_second;  // one per repetition
  double median_ops_per_second = 0;
  std::vector<double> cpu_ops_per_second;  // processes x ops per CPU-second, per repetition
  double median_cpu_ops_per_second = 0;    // 0 for remote systems
  bool remote = false;
  double p50_ns = 0;  // over the samples of all repetitions
  double p99_ns = 0;
  double hit_ratio = 0;
  std::uint64_t ops = 0;
  std::uint64_t check_failures = 0;
  std::uint64_t unexpected_misses = 0;
  std::uint64_t full_checks = 0;
  std::uint64_t puts_dropped = 0;
  std::string error;  // non-empty: the cell failed (it is reported, not hidden)
};

struct SystemOutcome {
  std::string system;
  std::string workload;
  std::string skipped;  // reason, when the system could not be measured
  std::vector<CellResult> cells;
};

namespace detail {

inline void write_all(int fd, const void* data, std::size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) _exit(3);  // the parent is gone: nobody to report to
    p += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Reads exactly `size` bytes before `deadline_ns`; false on EOF, error or timeout.
inline bool read_all(int fd, void* data, std::size_t size, std::uint64_t deadline_ns) {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    std::uint64_t now = now_ns();
    if (now >= deadline_ns) return false;
    pollfd pfd{fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, static_cast<int>((deadline_ns - now) / 1'000'000 + 1));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    ssize_t n = ::read(fd, p, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    size -= static_cast<std::size_t>(n);
  }
  return true;
}

inline std::uint64_t cpu_now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

template <class Client>
void worker_loop(Client& client, const Dataset& data, const std::vector<Op>& stream,
                 unsigned process, const RunSettings& settings, WorkerReport& report) {
  const ValueFactory& values = data.values;
  const bool misses_expected = data.workload.evicts;
  const std::uint64_t overhead = settings.clock_overhead_ns;
  std::string value;
  std::uint64_t version = std::uint64_t{process + 1} << 40;  // distinct per writer
  const Op* ops = stream.data();

  const std::uint64_t cpu_start = cpu_now_ns();
  const std::uint64_t start = now_ns();
  const std::uint64_t deadline = start + static_cast<std::uint64_t>(settings.seconds * 1e9);
  std::uint64_t i = 0;
  for (;;) {
    for (unsigned k = 0; k < kOpsBetweenClockReads; ++k, ++i) {
      const Op op = ops[i & (kStreamOps - 1)];
      const std::uint32_t index = op.index();
      const std::string_view key = data.keys[index];
      const bool timed = (i & (kSampleEvery - 1)) == 0;
      if (op.is_put()) {
        values.make(index, ++version, value);
        std::uint64_t t0 = timed ? now_ns() : 0;
        bool stored = client.write(key, value);
        if (timed) {
          std::uint64_t t = now_ns() - t0;
          report.latency.add(t > overhead ? t - overhead : 0);
        }
        ++report.puts;
        report.puts_dropped += !stored;
      } else {
        const bool full = (i & (kVerifyEvery - 1)) == kVerifyPhase;
        bool good = false;
        auto on_value = [&](std::string_view v) {
          good = full ? values.check_full(v, index) : values.check_cheap(v, index);
        };
        std::uint64_t t0 = timed ? now_ns() : 0;
        bool hit = client.read(index, key, on_value);
        if (timed) {
          std::uint64_t t = now_ns() - t0;
          report.latency.add(t > overhead ? t - overhead : 0);
        }
        ++report.gets;
        report.hits += hit;
        report.full_checks += hit && full;
        if (hit && !good) ++report.check_failures;
        if (!hit && !misses_expected) ++report.unexpected_misses;
      }
    }
    if (now_ns() >= deadline) break;
  }
  report.elapsed_ns = now_ns() - start;
  report.cpu_ns = cpu_now_ns() - cpu_start;
  report.ops = i;
}

template <class System>
[[noreturn]] void worker_main(System& system, const Dataset& data, const std::vector<Op>& stream,
                              unsigned process, const RunSettings& settings, int ready_fd,
                              int go_fd, int result_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  static WorkerReport report;  // static: ~5 KiB of histogram, keep it off the stack
  report = WorkerReport{};
  std::optional<typename System::Client> client;
  try {
    client.emplace(system, data);
    // Read every key once before the clock starts, so that a fresh mapping's first-touch page
    // faults (~40k of them for W2's 165 MB) are not billed to the shared-memory systems. The
    // remote peers' pages are already resident in their server, and 100k round trips would
    // take seconds: they are not warmed.
    if constexpr (!System::kRemote) {
      std::uint64_t sink = 0;
      for (std::uint32_t i = 0; i < data.keys.size(); ++i)
        client->read(i, data.keys[i], [&sink](std::string_view v) { sink += v.size(); });
      asm volatile("" : : "r"(sink));
    }
  } catch (const std::exception& e) {
    std::snprintf(report.error, sizeof report.error, "attach: %s", e.what());
  }
  write_all(ready_fd, "r", 1);
  char go = 0;
  while (::read(go_fd, &go, 1) < 0 && errno == EINTR) {
  }
  if (client) {
    try {
      worker_loop(*client, data, stream, process, settings, report);
    } catch (const std::exception& e) {
      std::snprintf(report.error, sizeof report.error, "run: %s", e.what());
    }
  }
  write_all(result_fd, &report, sizeof report);
  client.reset();
  _exit(0);
}

// One repetition with `processes` workers. Fills `reports`; returns an error text or "".
template <class System>
std::string run_repetition(System& system, const Dataset& data,
                           const std::vector<std::vector<Op>>& streams, unsigned processes,
                           const RunSettings& settings, std::vector<WorkerReport>& reports) {
  int ready[2], go[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(go, O_CLOEXEC) != 0) return "pipe failed";
  std::vector<std::array<int, 2>> results(processes);
  for (auto& r : results)
    if (::pipe2(r.data(), O_CLOEXEC) != 0) return "pipe failed";
  std::fflush(nullptr);  // no buffered output duplicated into the children
  std::vector<pid_t> pids;
  for (unsigned p = 0; p < processes; ++p) {
    pid_t pid = ::fork();
    if (pid < 0) break;
    if (pid == 0)
      worker_main(system, data, streams[p], p, settings, ready[1], go[0], results[p][1]);
    pids.push_back(pid);
  }
  ::close(ready[1]);
  ::close(go[0]);
  for (auto& r : results) ::close(r[1]);

  std::string error = pids.size() == processes ? "" : "fork failed";
  const std::uint64_t grace = static_cast<std::uint64_t>(settings.worker_grace_seconds * 1e9);
  std::vector<char> bytes(pids.size(), 'g');
  if (error.empty() && !read_all(ready[0], bytes.data(), bytes.size(), now_ns() + grace))
    error = "a worker did not get ready";
  if (error.empty()) detail::write_all(go[1], bytes.data(), bytes.size());
  const std::uint64_t deadline =
      now_ns() + static_cast<std::uint64_t>(settings.seconds * 1e9) + grace;
  reports.assign(processes, WorkerReport{});
  for (unsigned p = 0; p < pids.size() && error.empty(); ++p)
    if (!read_all(results[p][0], &reports[p], sizeof(WorkerReport), deadline))
      error = "a worker did not report in time (hung or crashed)";
  if (!error.empty())
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
  for (pid_t pid : pids) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (error.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
      error = "a worker exited abnormally";
  }
  ::close(ready[0]);
  ::close(go[1]);
  for (auto& r : results) ::close(r[0]);
  for (const WorkerReport& r : reports)
    if (error.empty() && r.error[0] != '\0') error = r.error;
  return error;
}

}  // namespace detail

// A system built (shared state preloaded) for one workload, ready to run repetitions.
struct PreparedSystem {
  std::string name;
  bool remote = false;
  std::string skipped;      // reason, when the system is not available
  std::string setup_error;  // it is available but its setup failed
  // One repetition with `processes` workers; returns an error text or "".
  std::function<std::string(unsigned processes, std::vector<WorkerReport>& reports)> run;
};

// `data`, `streams` and `settings` must outlive the returned object.
template <class System>
PreparedSystem prepare_system(const Dataset& data, const Environment& env,
                              const std::vector<std::vector<Op>>& streams,
                              const RunSettings& settings) {
  PreparedSystem prepared;
  prepared.name = System::kName;
  prepared.remote = System::kRemote;
  std::shared_ptr<System> system;
  try {
    system = std::make_shared<System>(data, env);
  } catch (const SkipSystem& e) {
    prepared.skipped = e.what();
    return prepared;
  } catch (const std::exception& e) {
    prepared.setup_error = std::string("setup: ") + e.what();
    return prepared;
  }
  prepared.run = [system, &data, &streams, &settings](unsigned processes,
                                                      std::vector<WorkerReport>& reports) {
    return detail::run_repetition(*system, data, streams, processes, settings, reports);
  };
  return prepared;
}

// Runs every prepared system of one workload, repetitions interleaved (see the top).
// `progress(system, processes, rep)` is called before each repetition.
inline std::vector<SystemOutcome> run_interleaved(
    const std::vector<PreparedSystem>& systems, const Workload& workload,
    const RunSettings& settings,
    const std::function<void(const std::string&, unsigned, unsigned)>& progress = {}) {
  struct Accumulator {
    CellResult cell;
    LatencyHistogram latency;
    std::uint64_t gets = 0, hits = 0;
  };
  std::vector<std::vector<Accumulator>> acc(systems.size());
  for (std::size_t s = 0; s < systems.size(); ++s)
    for (unsigned processes : settings.process_counts) {
      Accumulator a;
      a.cell.system = systems[s].name;
      a.cell.workload = workload.name;
      a.cell.processes = processes;
      a.cell.remote = systems[s].remote;
      a.cell.error = systems[s].setup_error;
      acc[s].push_back(std::move(a));
    }
  for (unsigned rep = 0; rep < settings.repetitions; ++rep)
    for (std::size_t pi = 0; pi < settings.process_counts.size(); ++pi)
      for (std::size_t s = 0; s < systems.size(); ++s) {
        Accumulator& a = acc[s][pi];
        if (!systems[s].run || !a.cell.error.empty()) continue;
        if (progress) progress(systems[s].name, a.cell.processes, rep);
        std::vector<WorkerReport> reports;
        a.cell.error = systems[s].run(a.cell.processes, reports);
        if (!a.cell.error.empty()) continue;
        double rate = 0, ops = 0, cpu = 0;
        for (const WorkerReport& r : reports) {
          rate += static_cast<double>(r.ops) * 1e9 /
                  static_cast<double>(std::max<std::uint64_t>(r.elapsed_ns, 1));
          ops += static_cast<double>(r.ops);
          cpu += static_cast<double>(r.cpu_ns) / 1e9;
          a.latency += r.latency;
          a.gets += r.gets;
          a.hits += r.hits;
          a.cell.ops += r.ops;
          a.cell.check_failures += r.check_failures;
          a.cell.unexpected_misses += r.unexpected_misses;
          a.cell.full_checks += r.full_checks;
          a.cell.puts_dropped += r.puts_dropped;
        }
        a.cell.ops_per_second.push_back(rate);
        a.cell.cpu_ops_per_second.push_back(
            cpu > 0 ? a.cell.processes * ops / cpu : 0);
      }
  auto median = [](std::vector<double> v) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::vector<SystemOutcome> outcomes;
  for (std::size_t s = 0; s < systems.size(); ++s) {
    SystemOutcome o;
    o.system = systems[s].name;
    o.workload = workload.name;
    o.skipped = systems[s].skipped;
    if (o.skipped.empty())
      for (Accumulator& a : acc[s]) {
        a.cell.median_ops_per_second = median(a.cell.ops_per_second);
        a.cell.median_cpu_ops_per_second = a.cell.remote ? 0 : median(a.cell.cpu_ops_per_second);
        a.cell.p50_ns = a.latency.percentile_ns(0.50);
        a.cell.p99_ns = a.latency.percentile_ns(0.99);
        a.cell.hit_ratio =
            a.gets > 0 ? static_cast<double>(a.hits) / static_cast<double>(a.gets) : 0;
        o.cells.push_back(std::move(a.cell));
      }
    outcomes.push_back(std::move(o));
  }
  return outcomes;
}

}  // namespace bench
