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

template <class Client>
void worker_loop(Client& client, const Dataset& data, const std::vector<Op>& stream,
                 unsigned process, const RunSettings& settings, WorkerReport& report) {
  const ValueFactory& values = data.values;
  const bool misses_expected = data.workload.evicts;
  const std::uint64_t overhead = settings.clock_overhead_ns;
  std::string value;
  std::uint64_t version = std::uint64_t{process + 1} << 40;  // distinct per writer
  const Op* ops = stream.data();

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

template <class System>
SystemOutcome run_system(const Dataset& data, const Environment& env,
                         const std::vector<std::vector<Op>>& streams, const RunSettings& settings) {
  SystemOutcome outcome;
  outcome.system = System::kName;
  outcome.workload = data.workload.name;
  std::optional<System> system;
  try {
    system.emplace(data, env);
  } catch (const SkipSystem& e) {
    outcome.skipped = e.what();
    return outcome;
  } catch (const std::exception& e) {
    CellResult failed;
    failed.system = outcome.system;
    failed.workload = outcome.workload;
    failed.error = std::string("setup: ") + e.what();
    outcome.cells.push_back(failed);
    return outcome;
  }
  for (unsigned processes : settings.process_counts) {
    CellResult cell;
    cell.system = outcome.system;
    cell.workload = outcome.workload;
    cell.processes = processes;
    LatencyHistogram latency;
    std::uint64_t gets = 0, hits = 0;
    for (unsigned rep = 0; rep < settings.repetitions && cell.error.empty(); ++rep) {
      std::vector<WorkerReport> reports;
      cell.error = detail::run_repetition(*system, data, streams, processes, settings, reports);
      if (!cell.error.empty()) break;
      double rate = 0;
      for (const WorkerReport& r : reports) {
        rate += static_cast<double>(r.ops) * 1e9 / static_cast<double>(std::max<std::uint64_t>(r.elapsed_ns, 1));
        latency += r.latency;
        gets += r.gets;
        hits += r.hits;
        cell.ops += r.ops;
        cell.check_failures += r.check_failures;
        cell.unexpected_misses += r.unexpected_misses;
        cell.full_checks += r.full_checks;
        cell.puts_dropped += r.puts_dropped;
      }
      cell.ops_per_second.push_back(rate);
    }
    if (!cell.ops_per_second.empty()) {
      std::vector<double> sorted = cell.ops_per_second;
      std::sort(sorted.begin(), sorted.end());
      cell.median_ops_per_second = sorted[sorted.size() / 2];
    }
    cell.p50_ns = latency.percentile_ns(0.50);
    cell.p99_ns = latency.percentile_ns(0.99);
    cell.hit_ratio = gets > 0 ? static_cast<double>(hits) / static_cast<double>(gets) : 0;
    outcome.cells.push_back(std::move(cell));
  }
  return outcome;
}

}  // namespace bench
