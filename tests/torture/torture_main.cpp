// pipecache-torture: N worker processes hammer one segment with every operation on
// self-checking values while a killer SIGKILLs them at random instants, and fault points
// (util/fault.hpp) make a share of them die inside the store's critical sections. Workers are
// respawned. Exits non-zero on any violated invariant:
//
//  I1. No deadlock: the total operation count never stops moving for longer than
//      --stall-limit, and no live worker goes that long without completing an operation
//      (a stuck worker's stacks are printed with gdb when it is installed).
//  I2. No corrupt value: every value any worker reads (get, visit, lease, pipeline) passes
//      check_value; and so does every value left at the end.
//  I3. verify() clean: a checker process runs Cache::verify() during the run, and the
//      supervisor once at the end (blocks tile the arena, free lists, SIEVE queue, index,
//      per-namespace counts).
//  I4. Byte accounting exact: verify() compares bytes_used / entries with the blocks; after a
//      final clear() the segment holds 0 bytes, 0 entries and all of its arena is free again.
//  I5. No leaked entry: verify() finds every used block linked from its stripe; every lease
//      marker left by a killed holder is taken over at once (its holder is dead).
//  I6. No worker dies other than by our SIGKILL or its armed fault point, and none throws.
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cxxopts.hpp>
#include <fmt/format.h>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

#include "support/process.hpp"
#include "torture/board.hpp"
#include "torture/worker.hpp"
#include "util/fault.hpp"

using namespace std::chrono_literals;
using pipecache::Cache;
using pipecache::detail::FaultPoint;
using torture::Board;
using torture::now_ns;

namespace {

struct Config {
  unsigned seconds = 50;
  unsigned workers = 4;
  std::uint64_t budget = 2u << 20;
  std::uint64_t seed = 1;
  unsigned keys = 2000;
  unsigned kill_min_ms = 5;
  unsigned kill_max_ms = 40;
  unsigned fault_share = 40;  // percent of spawned workers armed with a fault point
  unsigned stall_limit_ms = 5000;
  bool pipeline = true;
  std::string name;
};

struct Occupant {
  pid_t pid = 0;
  std::uint64_t spawned_ns = 0;
  bool killed_by_us = false;
  FaultPoint fault = FaultPoint::none;
};

struct Figures {
  std::uint64_t random_kills = 0;
  std::map<FaultPoint, std::uint64_t> fault_kills;       // died at the armed point
  std::map<FaultPoint, std::uint64_t> fault_armed;       // spawns armed with the point
  std::uint64_t spawns = 0;
  std::uint64_t unexplained_deaths = 0;
  std::uint64_t clean_exits_before_stop = 0;
  std::uint64_t stuck_workers = 0;
  std::uint64_t global_stalls = 0;
  std::uint64_t longest_stall_ns = 0;      // no operation completed anywhere
  std::uint64_t slowest_recovery_ns = 0;   // kill -> next completed operation anywhere
  std::uint64_t respawn_first_op_max_ns = 0;
  std::uint64_t respawn_first_op_sum_ns = 0;
  std::uint64_t respawn_first_op_count = 0;
  std::vector<std::string> violations;
};

std::uint64_t total_ops(const Board& b, unsigned workers) {
  std::uint64_t n = 0;
  for (unsigned w = 0; w < workers; ++w)
    for (unsigned o = 0; o < torture::kOps; ++o) n += b.workers[w].ops[o].load(std::memory_order_relaxed);
  return n;
}

void print_stacks(pid_t pid) {
  if (::access("/usr/bin/gdb", X_OK) != 0) {
    std::printf("  (gdb not installed: no stacks for pid %d)\n", pid);
    return;
  }
  std::string cmd = fmt::format("gdb -p {} -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(#|Thread)' | head -60", pid);
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0) std::printf("  (gdb failed)\n");
}

class Supervisor {
 public:
  Supervisor(const Config& cfg, Board& board) : cfg_(cfg), board_(board), rng_(cfg.seed), occ_(cfg.workers) {}

  int run() {
    pipecache::Options o;
    o.name = cfg_.name;
    o.byte_budget = cfg_.budget;
    o.default_ttl = 10s;
    Cache::remove(cfg_.name);
    Cache cache = Cache::create(o);
    const std::uint64_t empty_free_bytes = cache.stats().free_bytes;
    std::printf("pipecache-torture: %u s, %u workers, budget %s, %u keys, seed %llu, segment %s, "
                "fault injection %s, pipeline %s\n",
                cfg_.seconds, cfg_.workers, pipecache::format_size(cfg_.budget).c_str(), cfg_.keys,
                static_cast<unsigned long long>(cfg_.seed), Cache::path_of(cfg_.name).c_str(),
                pipecache::detail::fault_injection_compiled() ? "on" : "OFF (random kills only)",
                pipeline_on() ? "on" : "off");
    std::fflush(stdout);

    checker_ = testing::spawn([&] { return torture::run_checker(cfg_.name, board_, 2000); });
    for (unsigned w = 0; w < cfg_.workers; ++w) spawn(w);

    const std::uint64_t start = now_ns();
    const std::uint64_t end = start + std::uint64_t{cfg_.seconds} * 1000000000ull;
    std::uint64_t next_kill = start + kill_gap();
    std::uint64_t last_total = total_ops(board_, cfg_.workers), last_progress = start;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> pending_recoveries;  // (kill time, ops then)
    std::uint64_t next_line = start + 10'000'000'000ull;
    bool aborted = false;
    while (now_ns() < end && !aborted) {
      std::this_thread::sleep_for(2ms);
      std::uint64_t now = now_ns();
      reap(false);
      std::uint64_t total = total_ops(board_, cfg_.workers);
      if (total != last_total) {
        for (auto& [t, ops] : pending_recoveries)
          if (total > ops) fig_.slowest_recovery_ns = std::max(fig_.slowest_recovery_ns, now - t);
        std::erase_if(pending_recoveries, [&](auto& p) { return total > p.second; });
        last_total = total;
        last_progress = now;
      }
      fig_.longest_stall_ns = std::max(fig_.longest_stall_ns, now - last_progress);
      if (now - last_progress > stall_ns()) {
        ++fig_.global_stalls;
        fig_.violations.push_back(fmt::format("no operation completed for {} ms: deadlock", (now - last_progress) / 1000000));
        for (auto& o : occ_)
          if (o.pid) print_stacks(o.pid);
        aborted = true;
        break;
      }
      check_stuck(now);
      if (now >= next_kill) {
        kill_one(now, total, pending_recoveries);
        next_kill = now + kill_gap();
      }
      if (now >= next_line) {
        std::printf("  %3llu s: %llu operations, %llu kills\n",
                    static_cast<unsigned long long>((now - start) / 1000000000ull),
                    static_cast<unsigned long long>(total), static_cast<unsigned long long>(kills()));
        std::fflush(stdout);
        next_line += 10'000'000'000ull;
      }
    }
    double elapsed_s = static_cast<double>(now_ns() - start) / 1e9;
    stop_all();
    return report(cache, empty_free_bytes, elapsed_s);
  }

 private:
  bool pipeline_on() const {
    return cfg_.pipeline;
  }
  std::uint64_t stall_ns() const { return std::uint64_t{cfg_.stall_limit_ms} * 1000000ull; }
  std::uint64_t kill_gap() {
    return (cfg_.kill_min_ms + rng_() % (cfg_.kill_max_ms - cfg_.kill_min_ms + 1)) * 1000000ull;
  }
  std::uint64_t kills() const {
    std::uint64_t n = fig_.random_kills;
    for (auto& [p, k] : fig_.fault_kills) n += k;
    return n;
  }

  void spawn(unsigned slot) {
    torture::WorkerPlan plan;
    plan.segment = cfg_.name;
    plan.slot = slot;
    plan.seed = rng_();
    plan.keys = cfg_.keys;
    plan.max_value = std::min<std::size_t>(4096, cfg_.budget / 64);
    plan.large_value = cfg_.budget / 16;
    plan.pipeline = pipeline_on();
    if (pipecache::detail::fault_injection_compiled() && rng_() % 100 < cfg_.fault_share) {
      // Every point; mid_recovery is only passed while repairing a dead writer's stripe, so
      // it fires on the first such repair; an update in place needs a resident key put at its
      // usual size (a few in a worker's life), so mid_overwrite fires after a few passages.
      // The others fire after a random number of passages.
      auto p = static_cast<FaultPoint>(1 + rng_() % (static_cast<int>(FaultPoint::count_) - 1));
      plan.fault = p;
      plan.fault_n = p == FaultPoint::mid_recovery    ? 1
                     : p == FaultPoint::mid_overwrite ? 1 + static_cast<long>(rng_() % 8)
                                                      : 1 + static_cast<long>(rng_() % 400);
      ++fig_.fault_armed[p];
    }
    auto& s = board_.workers[slot];
    s.heartbeat_ns.store(now_ns(), std::memory_order_relaxed);
    s.first_op_ns.store(0, std::memory_order_relaxed);
    s.current_op.store(0, std::memory_order_relaxed);
    Occupant o;
    o.spawned_ns = now_ns();
    o.fault = plan.fault;
    o.pid = testing::spawn([&] { return torture::run_worker(plan, board_); });
    occ_[slot] = o;
    ++fig_.spawns;
  }

  // Reaps every dead worker, classifies its death, and respawns it unless stopping.
  void reap(bool stopping) {
    for (;;) {
      int status = 0;
      pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      if (pid == checker_) {
        checker_done_ = true;
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0))
          fig_.violations.push_back(fmt::format("the verify checker died (status {:#x})", status));
        continue;
      }
      unsigned slot = 0;
      while (slot < occ_.size() && occ_[slot].pid != pid) ++slot;
      if (slot == occ_.size()) continue;
      Occupant o = occ_[slot];
      occ_[slot].pid = 0;
      auto& s = board_.workers[slot];
      if (std::uint64_t first = s.first_op_ns.load(std::memory_order_relaxed)) {
        std::uint64_t d = first - o.spawned_ns;
        fig_.respawn_first_op_max_ns = std::max(fig_.respawn_first_op_max_ns, d);
        fig_.respawn_first_op_sum_ns += d;
        ++fig_.respawn_first_op_count;
      }
      if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        if (o.killed_by_us) ++fig_.random_kills;
        else if (o.fault != FaultPoint::none) ++fig_.fault_kills[o.fault];
        else {
          ++fig_.unexplained_deaths;
          fig_.violations.push_back(fmt::format("worker {} (pid {}) killed by SIGKILL that nobody sent", slot, pid));
        }
      } else if (WIFSIGNALED(status)) {
        fig_.violations.push_back(fmt::format("worker {} (pid {}) crashed with signal {} ({})", slot, pid,
                                              WTERMSIG(status), strsignal(WTERMSIG(status))));
      } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        fig_.violations.push_back(fmt::format("worker {} (pid {}) exited with code {}: {}", slot, pid,
                                              WEXITSTATUS(status), s.note));
      } else if (!stopping) {
        ++fig_.clean_exits_before_stop;
      }
      if (!stopping) spawn(slot);
    }
  }

  void check_stuck(std::uint64_t now) {
    for (unsigned w = 0; w < occ_.size(); ++w) {
      auto& o = occ_[w];
      if (!o.pid || o.killed_by_us) continue;
      std::uint64_t hb = board_.workers[w].heartbeat_ns.load(std::memory_order_relaxed);
      if (now > hb && now - hb > stall_ns()) {
        ++fig_.stuck_workers;
        unsigned op = static_cast<unsigned>(board_.workers[w].current_op.load(std::memory_order_relaxed));
        fig_.violations.push_back(fmt::format("worker {} (pid {}) completed no operation for {} ms (in {})", w,
                                              o.pid, (now - hb) / 1000000,
                                              op ? torture::kOpNames[op - 1] : "startup"));
        print_stacks(o.pid);
        ::kill(o.pid, SIGKILL);
        o.killed_by_us = true;
      }
    }
  }

  void kill_one(std::uint64_t now, std::uint64_t total,
                std::vector<std::pair<std::uint64_t, std::uint64_t>>& pending) {
    std::vector<unsigned> live;
    for (unsigned w = 0; w < occ_.size(); ++w)
      if (occ_[w].pid && !occ_[w].killed_by_us) live.push_back(w);
    if (live.empty()) return;
    auto& o = occ_[live[rng_() % live.size()]];
    ::kill(o.pid, SIGKILL);
    o.killed_by_us = true;
    pending.emplace_back(now, total);
  }

  void stop_all() {
    board_.stop.store(1, std::memory_order_relaxed);
    std::uint64_t deadline = now_ns() + stall_ns() + 2'000'000'000ull;
    for (;;) {
      reap(true);
      bool any = !checker_done_;
      for (auto& o : occ_) any = any || o.pid != 0;
      if (!any) break;
      if (now_ns() > deadline) {
        for (unsigned w = 0; w < occ_.size(); ++w) {
          if (!occ_[w].pid) continue;
          fig_.violations.push_back(fmt::format("worker {} (pid {}) did not stop within {} ms", w, occ_[w].pid,
                                                cfg_.stall_limit_ms + 2000));
          print_stacks(occ_[w].pid);
          ::kill(occ_[w].pid, SIGKILL);
          occ_[w].killed_by_us = true;
        }
        if (!checker_done_) {
          fig_.violations.push_back("the verify checker did not stop");
          ::kill(checker_, SIGKILL);
        }
        deadline = now_ns() + 10'000'000'000ull;
        while (now_ns() < deadline && ::waitpid(-1, nullptr, WNOHANG) >= 0) std::this_thread::sleep_for(5ms);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  // noinline: GCC 12 with ASan mis-poisons the shadow of one very large inlined frame
  // ("unknown-crash" on the Stats temporary); a frame of its own avoids it.
  [[gnu::noinline]] int report(Cache& cache, std::uint64_t empty_free_bytes, double elapsed_s) {
    auto verdict = [&](bool ok) { return ok ? "OK" : "VIOLATED"; };
    std::uint64_t ops[torture::kOps] = {}, values = 0, hits = 0, corrupt = 0, errors = 0, acquired = 0,
                  taken = 0, waited = 0, unavailable = 0, dropped = 0, max_op = 0;
    for (unsigned w = 0; w < cfg_.workers; ++w) {
      auto& s = board_.workers[w];
      for (unsigned o = 0; o < torture::kOps; ++o) ops[o] += s.ops[o].load();
      values += s.values_read.load();
      hits += s.hits.load();
      corrupt += s.corrupt.load();
      errors += s.errors.load();
      acquired += s.lease_acquired.load();
      taken += s.lease_taken_over.load();
      waited += s.lease_waited.load();
      unavailable += s.lease_unavailable.load();
      dropped += s.puts_dropped.load();
      max_op = std::max<std::uint64_t>(max_op, s.max_op_ns.load());
      if (s.note[0]) std::printf("  worker %u note: %s\n", w, s.note);
    }
    std::uint64_t total = 0;
    for (auto n : ops) total += n;

    // The end state, with every worker gone.
    auto final_verify = cache.verify();
    std::uint64_t end_values = 0, end_corrupt = 0;
    std::string buf;
    for (unsigned k = 0; k < cfg_.keys; ++k) {
      std::string key = torture::key_of(k);
      if (cache.get(key, buf)) {
        ++end_values;
        if (!testing::check_value(key, buf)) ++end_corrupt;
      }
    }
    auto st = cache.stats();
    std::uint64_t leftover_leases = 0, leases_taken = 0;
    for (const auto& info : cache.keys("*")) {
      if (!info.lease) continue;
      ++leftover_leases;
      auto r = cache.try_lease(info.key, 1s);
      if (r.state == pipecache::LeaseState::taken_over) {
        ++leases_taken;
        cache.release_lease(info.key, r.token);
      }
    }
    cache.clear();
    auto after_clear = cache.stats();
    auto clear_verify = cache.verify();

    std::printf("\nkills survived: %llu in %.0f s (%llu at random instants; %llu inside critical sections:",
                static_cast<unsigned long long>(kills()), elapsed_s,
                static_cast<unsigned long long>(fig_.random_kills),
                static_cast<unsigned long long>(kills() - fig_.random_kills));
    for (int p = 1; p < static_cast<int>(FaultPoint::count_); ++p) {
      auto fp = static_cast<FaultPoint>(p);
      std::printf(" %s %llu/%llu armed", pipecache::detail::fault_name(fp),
                  static_cast<unsigned long long>(fig_.fault_kills[fp]),
                  static_cast<unsigned long long>(fig_.fault_armed[fp]));
    }
    std::printf("); %llu workers spawned; lock recoveries %llu\n", static_cast<unsigned long long>(fig_.spawns),
                static_cast<unsigned long long>(st.lock_recoveries));
    std::printf("operations: %llu (%.0f/s):", static_cast<unsigned long long>(total), total / elapsed_s);
    for (unsigned o = 0; o < torture::kOps; ++o)
      std::printf(" %s %llu", torture::kOpNames[o], static_cast<unsigned long long>(ops[o]));
    std::printf("\n  values read and checked %llu (hits %llu); leases acquired %llu, taken over %llu, waits %llu, "
                "unavailable %llu; writes dropped %llu; store evictions %llu, expirations %llu\n",
                static_cast<unsigned long long>(values), static_cast<unsigned long long>(hits),
                static_cast<unsigned long long>(acquired), static_cast<unsigned long long>(taken),
                static_cast<unsigned long long>(waited), static_cast<unsigned long long>(unavailable),
                static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(st.evictions),
                static_cast<unsigned long long>(st.expirations));

    bool no_deadlock = fig_.global_stalls == 0 && fig_.stuck_workers == 0;
    std::printf("invariant no deadlock: longest time with no operation completed anywhere %.1f ms, slowest "
                "recovery (kill -> next operation) %.1f ms, respawned worker to its first operation max %.1f ms "
                "(mean %.2f ms), slowest single operation %.1f ms, stuck workers %llu (limit %u ms) -> %s\n",
                fig_.longest_stall_ns / 1e6, fig_.slowest_recovery_ns / 1e6, fig_.respawn_first_op_max_ns / 1e6,
                fig_.respawn_first_op_count ? fig_.respawn_first_op_sum_ns / 1e6 / fig_.respawn_first_op_count : 0.0,
                max_op / 1e6, static_cast<unsigned long long>(fig_.stuck_workers), cfg_.stall_limit_ms,
                verdict(no_deadlock));
    bool no_corrupt = corrupt == 0 && end_corrupt == 0;
    std::printf("invariant no corrupt value: %llu of %llu values read during the run, %llu of %llu left at the end "
                "-> %s\n",
                static_cast<unsigned long long>(corrupt), static_cast<unsigned long long>(values),
                static_cast<unsigned long long>(end_corrupt), static_cast<unsigned long long>(end_values),
                verdict(no_corrupt));
    bool verify_clean = board_.verify_problems.load() == 0 && final_verify.ok();
    std::printf("invariant verify clean: %llu checks during the run (slowest %.1f ms), %llu problems%s%s; final: "
                "%llu blocks, %llu entries, %zu problems -> %s\n",
                static_cast<unsigned long long>(board_.verify_runs.load()), board_.verify_max_ns.load() / 1e6,
                static_cast<unsigned long long>(board_.verify_problems.load()),
                board_.verify_note[0] ? ", first: " : "", board_.verify_note,
                static_cast<unsigned long long>(final_verify.blocks_checked),
                static_cast<unsigned long long>(final_verify.entries_checked), final_verify.problems.size(),
                verdict(verify_clean));
    for (auto& p : final_verify.problems) std::printf("  final verify: %s\n", p.c_str());
    bool bytes_exact = st.bytes_used <= st.byte_budget && after_clear.bytes_used == 0 && after_clear.entries == 0 &&
                       after_clear.free_bytes == empty_free_bytes && clear_verify.ok();
    std::printf("invariant byte accounting exact: at the end %llu bytes in %llu entries (budget %llu, verify matched "
                "them block by block); after clear %llu bytes, %llu entries, free %llu of %llu arena bytes -> %s\n",
                static_cast<unsigned long long>(st.bytes_used), static_cast<unsigned long long>(st.entries),
                static_cast<unsigned long long>(st.byte_budget),
                static_cast<unsigned long long>(after_clear.bytes_used),
                static_cast<unsigned long long>(after_clear.entries),
                static_cast<unsigned long long>(after_clear.free_bytes),
                static_cast<unsigned long long>(empty_free_bytes), verdict(bytes_exact));
    bool no_leak = final_verify.ok() && leases_taken == leftover_leases;
    std::printf("invariant no leaked entry: every used block linked from its stripe (verify); lease markers left by "
                "killed holders %llu, taken over at once %llu -> %s\n",
                static_cast<unsigned long long>(leftover_leases), static_cast<unsigned long long>(leases_taken),
                verdict(no_leak));
    bool deaths_ok = fig_.violations.empty() && errors == 0;
    std::printf("invariant workers die only as told: unexplained deaths %llu, crashes/bad exits %zu, exceptions "
                "%llu -> %s\n",
                static_cast<unsigned long long>(fig_.unexplained_deaths), fig_.violations.size(),
                static_cast<unsigned long long>(errors), verdict(deaths_ok));
    for (auto& v : fig_.violations) std::printf("  violation: %s\n", v.c_str());
    unsigned violations = !no_deadlock + !no_corrupt + !verify_clean + !bytes_exact + !no_leak + !deaths_ok;
    std::printf("violations: %u\n", violations);
    Cache::remove(cfg_.name);
    return violations == 0 ? 0 : 1;
  }

  const Config& cfg_;
  Board& board_;
  std::mt19937_64 rng_;
  std::vector<Occupant> occ_;
  pid_t checker_ = 0;
  bool checker_done_ = false;
  Figures fig_;
};

}  // namespace

int main(int argc, char** argv) {
  Config cfg;
  cxxopts::Options options("pipecache-torture",
                           "SIGKILL torture of a shared pipecache segment: N workers, random kills, kills inside "
                           "critical sections, invariants checked during and after the run");
  options.add_options()
      ("seconds", "run time", cxxopts::value<unsigned>(cfg.seconds)->default_value("50"))
      ("workers", "worker processes (1..32)", cxxopts::value<unsigned>(cfg.workers)->default_value("4"))
      ("budget", "byte budget of the segment (e.g. 1M); small so that puts evict",
       cxxopts::value<std::string>()->default_value("2M"))
      ("seed", "random seed (kills, fault points, worker mixes)", cxxopts::value<std::uint64_t>(cfg.seed)->default_value("1"))
      ("keys", "distinct keys", cxxopts::value<unsigned>(cfg.keys)->default_value("2000"))
      ("kill-min-ms", "shortest gap between random kills", cxxopts::value<unsigned>(cfg.kill_min_ms)->default_value("5"))
      ("kill-max-ms", "longest gap between random kills", cxxopts::value<unsigned>(cfg.kill_max_ms)->default_value("40"))
      ("fault-share", "percent of spawned workers armed with a fault point",
       cxxopts::value<unsigned>(cfg.fault_share)->default_value("40"))
      ("stall-limit-ms", "longest tolerated time without progress", cxxopts::value<unsigned>(cfg.stall_limit_ms)->default_value("5000"))
      ("no-pipeline", "leave Pipeline::process_request out of the mix")
      ("name", "segment name (default: torture-<pid>)", cxxopts::value<std::string>())
      ("h,help", "this help");
  try {
    auto r = options.parse(argc, argv);
    if (r.count("help")) {
      std::puts(options.help().c_str());
      return 0;
    }
    cfg.budget = pipecache::parse_size(r["budget"].as<std::string>(), "--budget");
    cfg.pipeline = r.count("no-pipeline") == 0;
    cfg.name = r.count("name") ? r["name"].as<std::string>() : fmt::format("torture-{}", ::getpid());
    if (cfg.workers < 1 || cfg.workers > torture::kMaxWorkers) throw pipecache::Error("--workers must be 1..32");
    if (cfg.kill_min_ms < 1 || cfg.kill_max_ms < cfg.kill_min_ms) throw pipecache::Error("bad kill gap");
    if (cfg.keys < 8) throw pipecache::Error("--keys must be at least 8");
    Cache::validate_name(cfg.name);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipecache-torture: %s\n", e.what());
    return 2;
  }
  void* page = ::mmap(nullptr, sizeof(Board), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    std::perror("mmap");
    return 2;
  }
  auto* board = new (page) Board{};
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  try {
    Supervisor s(cfg, *board);
    return s.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipecache-torture: %s\n", e.what());
    Cache::remove(cfg.name);
    return 1;
  }
}
