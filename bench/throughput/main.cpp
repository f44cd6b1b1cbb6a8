// pipecache_bench — the throughput table: every system through W1/W2/W3 with 1 and
// 2 worker processes, in one run, each figure next to the limit measured in the same run.
// bench/run starts the memcached / Redis peers and passes their sockets; see bench/README.md.
#include "common/clock.hpp"
#include "systems/boost_map.hpp"
#include "systems/local_map.hpp"
#include "systems/pipecache_store.hpp"
#include "systems/remote_peers.hpp"
#include "throughput/runner.hpp"
#include "throughput/storm.hpp"

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace bench {
namespace {

using SystemPreparer = std::function<PreparedSystem(
    const Dataset&, const Environment&, const std::vector<std::vector<Op>>&, const RunSettings&)>;

// Table order: the limit and the floor first, pipecache, then the peers.
const std::vector<std::pair<std::string, SystemPreparer>>& all_systems() {
  static const std::vector<std::pair<std::string, SystemPreparer>> systems = {
      {LocalMapSystem::kName, prepare_system<LocalMapSystem>},
      {PrebuiltKeyMapSystem::kName, prepare_system<PrebuiltKeyMapSystem>},
      {MemcpySystem::kName, prepare_system<MemcpySystem>},
      {PipecacheSystem<false>::kName, prepare_system<PipecacheSystem<false>>},
      {PipecacheSystem<true>::kName, prepare_system<PipecacheSystem<true>>},
      {BoostMapSystem::kName, prepare_system<BoostMapSystem>},
      {MemcachedSystem::kName, prepare_system<MemcachedSystem>},
      {RedisSystem::kName, prepare_system<RedisSystem>},
  };
  return systems;
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, ',');)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::string rate_text(double ops) {
  if (ops >= 1e6) return fmt::format("{:.2f}M", ops / 1e6);
  if (ops >= 1e3) return fmt::format("{:.1f}k", ops / 1e3);
  return fmt::format("{:.0f}", ops);
}

std::string time_text(double ns) {
  if (ns >= 1e6) return fmt::format("{:.2f} ms", ns / 1e6);
  if (ns >= 1e4) return fmt::format("{:.1f} us", ns / 1e3);
  if (ns >= 1e3) return fmt::format("{:.2f} us", ns / 1e3);
  return fmt::format("{:.0f} ns", ns);
}

std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", c);
      continue;
    }
    out += c;
  }
  return out;
}

struct Results {
  std::vector<Workload> workloads;
  std::vector<SystemOutcome> outcomes;
  bool storm_requested = false;
  std::vector<StormResult> storm;  // W4

  const CellResult* find(std::string_view system, std::string_view workload, unsigned p) const {
    for (const SystemOutcome& o : outcomes)
      for (const CellResult& c : o.cells)
        if (c.system == system && c.workload == workload && c.processes == p && c.error.empty())
          return &c;
    return nullptr;
  }
  // a / b of median ops/s (or of CPU-normalised ops/s); NaN when either is missing.
  double ratio(std::string_view sa, std::string_view wa, unsigned pa, std::string_view sb,
               std::string_view wb, unsigned pb, bool cpu = false) const {
    const CellResult* a = find(sa, wa, pa);
    const CellResult* b = find(sb, wb, pb);
    if (a == nullptr || b == nullptr) return NAN;
    double x = cpu ? a->median_cpu_ops_per_second : a->median_ops_per_second;
    double y = cpu ? b->median_cpu_ops_per_second : b->median_ops_per_second;
    if (x <= 0 || y <= 0) return NAN;
    return x / y;
  }
};

struct SummaryLine {
  std::string key;
  std::string meaning;
  double value;
  std::string goal;
};

std::vector<SummaryLine> summarise(const Results& r) {
  std::vector<SummaryLine> s;
  auto add = [&](std::string key, std::string meaning, double value, std::string goal) {
    s.push_back({std::move(key), std::move(meaning), value, std::move(goal)});
  };
  // The speed goals: the hit against the stricter limit (key in hand), writes that scale.
  add("w1_1p_pipecache_vs_limit_prebuilt", "W1 1 proc: pipecache get (TTL) / limit-prebuilt",
      r.ratio("pipecache", "W1", 1, "limit-prebuilt", "W1", 1), ">= 0.85");
  add("w1_1p_pipecache_vs_limit_prebuilt_cpu", "W1 1 proc: get / limit-prebuilt, per CPU-second",
      r.ratio("pipecache", "W1", 1, "limit-prebuilt", "W1", 1, true), ">= 0.85");
  add("w1_1p_visit_vs_limit_prebuilt", "W1 1 proc: pipecache visit / limit-prebuilt",
      r.ratio("pipecache-visit", "W1", 1, "limit-prebuilt", "W1", 1), ">= 1.3");
  add("w1_1p_visit_vs_limit_prebuilt_cpu", "W1 1 proc: visit / limit-prebuilt, per CPU-second",
      r.ratio("pipecache-visit", "W1", 1, "limit-prebuilt", "W1", 1, true), ">= 1.3");
  add("w3_pipecache_scaling", "W3 pipecache: 2 procs / 1 proc",
      r.ratio("pipecache", "W3", 2, "pipecache", "W3", 1), ">= 1.8");
  add("w3_pipecache_scaling_cpu", "W3 pipecache: 2 procs / 1 proc, per CPU-second",
      r.ratio("pipecache", "W3", 2, "pipecache", "W3", 1, true), ">= 1.8");
  add("w3_limit_scaling", "W3 limit: 2 procs / 1 proc (what the machine allows)",
      r.ratio("limit", "W3", 2, "limit", "W3", 1), "");
  add("w3_2p_pipecache_vs_limit_prebuilt", "W3 2 procs: pipecache / limit-prebuilt",
      r.ratio("pipecache", "W3", 2, "limit-prebuilt", "W3", 2), "");
  add("w1_1p_pipecache_vs_limit", "W1 1 proc: pipecache get / limit",
      r.ratio("pipecache", "W1", 1, "limit", "W1", 1), ">= 0.8");
  add("w1_1p_pipecache_vs_limit_cpu", "W1 1 proc: pipecache get / limit, per CPU-second",
      r.ratio("pipecache", "W1", 1, "limit", "W1", 1, true), ">= 0.8");
  add("w1_2p_pipecache_vs_limit", "W1 2 procs: pipecache get / limit",
      r.ratio("pipecache", "W1", 2, "limit", "W1", 2), "");
  add("w1_pipecache_scaling", "W1 pipecache: 2 procs / 1 proc",
      r.ratio("pipecache", "W1", 2, "pipecache", "W1", 1), ">= 1.8");
  add("w1_limit_scaling", "W1 limit: 2 procs / 1 proc (what the machine allows)",
      r.ratio("limit", "W1", 2, "limit", "W1", 1), "");
  add("w1_pipecache_scaling_vs_limit_scaling",
      "W1 pipecache scaling / limit scaling (machine noise cancels)",
      r.ratio("pipecache", "W1", 2, "pipecache", "W1", 1) /
          r.ratio("limit", "W1", 2, "limit", "W1", 1),
      "");
  add("w1_boost_scaling", "W1 boost-map: 2 procs / 1 proc",
      r.ratio("boost-map", "W1", 2, "boost-map", "W1", 1), "");
  add("w3_2p_pipecache_vs_limit", "W3 2 procs: pipecache / limit",
      r.ratio("pipecache", "W3", 2, "limit", "W3", 2), ">= 0.9");
  add("w3_2p_pipecache_vs_limit_cpu", "W3 2 procs: pipecache / limit, per CPU-second",
      r.ratio("pipecache", "W3", 2, "limit", "W3", 2, true), ">= 0.9");
  add("w2_1p_pipecache_vs_memcpy", "W2 1 proc: pipecache get / bare memcpy",
      r.ratio("pipecache", "W2", 1, "memcpy", "W2", 1), ">= 0.83 (within 1.2x)");
  add("w2_1p_pipecache_vs_memcpy_cpu", "W2 1 proc: pipecache get / bare memcpy, per CPU-second",
      r.ratio("pipecache", "W2", 1, "memcpy", "W2", 1, true), ">= 0.83 (within 1.2x)");
  add("w2_1p_visit_vs_memcpy", "W2 1 proc: pipecache visit (zero-copy) / bare memcpy",
      r.ratio("pipecache-visit", "W2", 1, "memcpy", "W2", 1), "");
  for (unsigned p : {1u, 2u}) {
    std::string ps = fmt::format("{}p", p);
    add(fmt::format("w1_{}_pipecache_vs_memcached", ps),
        fmt::format("W1 {} proc: pipecache / memcached", p),
        r.ratio("pipecache", "W1", p, "memcached", "W1", p), ">= 100");
    add(fmt::format("w1_{}_pipecache_vs_redis", ps),
        fmt::format("W1 {} proc: pipecache / redis", p),
        r.ratio("pipecache", "W1", p, "redis", "W1", p), ">= 100");
    add(fmt::format("w1_{}_pipecache_vs_boost", ps),
        fmt::format("W1 {} proc: pipecache / boost-map", p),
        r.ratio("pipecache", "W1", p, "boost-map", "W1", p), "");
    add(fmt::format("w3_{}_pipecache_vs_boost", ps),
        fmt::format("W3 {} proc: pipecache / boost-map", p),
        r.ratio("pipecache", "W3", p, "boost-map", "W3", p), "");
  }
  for (const StormResult& st : r.storm) {
    if (!st.error.empty() || st.processes < 2) continue;
    add(fmt::format("w4_{}p_computes_per_expiry", st.processes),
        fmt::format("W4 {} procs: computes per key per expiry (mean)", st.processes),
        st.storms ? static_cast<double>(st.computes) / static_cast<double>(st.storms) : NAN,
        "exactly 1");
    add(fmt::format("w4_{}p_waiter_p99_us", st.processes),
        fmt::format("W4 {} procs: waiter answered after publish, p99 (us)", st.processes),
        st.waiter_p99_ns / 1e3, "< 100");
  }
  return s;
}

void print_table(const Results& r) {
  fmt::print("\n{:<4} {:<16} {:>5} {:>9} {:>9} {:>9} {:>8} {:>9} {:>8} {:>8} {:>6}  {}\n", "work",
             "system", "procs", "ops/s", "p50", "p99", "x limit", "cpu ops/s", "x lim cpu",
             "x 1proc", "hit %", "checks");
  for (const Workload& w : r.workloads) {
    for (const SystemOutcome& o : r.outcomes) {
      if (o.workload != w.name) continue;
      if (!o.skipped.empty()) {
        fmt::print("{:<4} {:<16} {:>5} skipped: {}\n", w.name, o.system, "-", o.skipped);
        continue;
      }
      for (const CellResult& c : o.cells) {
        if (!c.error.empty()) {
          fmt::print("{:<4} {:<16} {:>5} FAILED: {}\n", w.name, c.system, c.processes, c.error);
          continue;
        }
        double vs_limit = r.ratio(c.system, w.name, c.processes, "limit", w.name, c.processes);
        double vs_one = r.ratio(c.system, w.name, c.processes, c.system, w.name, 1);
        std::string checks =
            c.check_failures == 0 && c.unexpected_misses == 0
                ? fmt::format("ok ({} full)", c.full_checks)
                : fmt::format("BAD: {} corrupt, {} unexpected misses", c.check_failures,
                              c.unexpected_misses);
        double vs_limit_cpu =
            r.ratio(c.system, w.name, c.processes, "limit", w.name, c.processes, true);
        fmt::print("{:<4} {:<16} {:>5} {:>9} {:>9} {:>9} {:>8.3f} {:>9} {:>9} {:>8.2f} {:>6.1f}  {}\n",
                   w.name, c.system, c.processes, rate_text(c.median_ops_per_second),
                   time_text(c.p50_ns), time_text(c.p99_ns), vs_limit,
                   c.remote ? "-" : rate_text(c.median_cpu_ops_per_second),
                   std::isfinite(vs_limit_cpu) ? fmt::format("{:.3f}", vs_limit_cpu) : "-", vs_one,
                   100 * c.hit_ratio, checks);
      }
    }
  }
  if (!r.storm_requested) return;
  fmt::print("\nW4 get-or-compute storm (Pipeline::process_request, de-dup on, keys expiring "
             "between rounds):\n{:<5} {:>6} {:>6} {:>8} {:>10} {:>8} {:>8} {:>10} {:>10} {:>10} "
             "{:>10}  {}\n",
             "procs", "rounds", "storms", "computes", "per storm", "not 1x", "waiters",
             "wait p50", "wait p99", "wait max", "req p99", "checks");
  for (const StormResult& st : r.storm) {
    if (!st.error.empty()) {
      fmt::print("{:<5} FAILED: {}\n", st.processes, st.error);
      continue;
    }
    std::string checks = st.wrong_values == 0
                             ? fmt::format("ok ({} late hits, {} fallbacks)", st.late_hits, st.fallbacks)
                             : fmt::format("BAD: {} wrong values", st.wrong_values);
    fmt::print("{:<5} {:>6} {:>6} {:>8} {:>10.3f} {:>8} {:>8} {:>10} {:>10} {:>10} {:>10}  {}\n",
               st.processes, st.rounds, st.storms, st.computes,
               st.storms ? static_cast<double>(st.computes) / st.storms : 0.0, st.storms_not_once,
               st.waiters, time_text(st.waiter_p50_ns), time_text(st.waiter_p99_ns),
               time_text(st.waiter_max_ns), time_text(st.request_p99_ns), checks);
  }
}

void write_json(const Results& r, const RunSettings& settings, const std::string& path) {
  std::ofstream out(path);
  out << "{\n  \"settings\": {"
      << fmt::format("\"seconds\": {}, \"repetitions\": {}, \"seed\": {}, "
                     "\"clock_overhead_ns\": {}, \"sample_every\": {}, \"verify_every\": {}",
                     settings.seconds, settings.repetitions, settings.seed,
                     settings.clock_overhead_ns, kSampleEvery, kVerifyEvery)
      << "},\n  \"workloads\": [";
  for (std::size_t i = 0; i < r.workloads.size(); ++i) {
    const Workload& w = r.workloads[i];
    out << (i ? ",\n    " : "\n    ")
        << fmt::format("{{\"name\": \"{}\", \"description\": \"{}\", \"keys\": {}, "
                       "\"value_size\": {}, \"get_fraction\": {}, \"zipf_alpha\": {}, "
                       "\"byte_budget\": {}}}",
                       w.name, json_escape(w.description), w.keys, w.value_size, w.get_fraction,
                       w.zipf_alpha, w.byte_budget);
  }
  out << "\n  ],\n  \"skipped\": [";
  bool first = true;
  for (const SystemOutcome& o : r.outcomes)
    if (!o.skipped.empty()) {
      out << (first ? "\n    " : ",\n    ")
          << fmt::format("{{\"system\": \"{}\", \"workload\": \"{}\", \"reason\": \"{}\"}}",
                         o.system, o.workload, json_escape(o.skipped));
      first = false;
    }
  out << "\n  ],\n  \"storm\": [";
  for (std::size_t i = 0; i < r.storm.size(); ++i) {
    const StormResult& st = r.storm[i];
    out << (i ? ",\n    " : "\n    ")
        << fmt::format(
               "{{\"workload\": \"W4\", \"processes\": {}, \"rounds\": {}, \"keys\": {}, "
               "\"storms\": {}, \"computes\": {}, \"storms_not_exactly_once\": {}, "
               "\"max_computes_per_storm\": {}, \"requests\": {}, \"waiters\": {}, "
               "\"late_hits\": {}, \"wrong_values\": {}, \"fallbacks\": {}, "
               "\"waiter_after_publish_p50_ns\": {:.0f}, \"waiter_after_publish_p99_ns\": {:.0f}, "
               "\"waiter_after_publish_max_ns\": {:.0f}, \"request_p50_ns\": {:.0f}, "
               "\"request_p99_ns\": {:.0f}, \"error\": \"{}\"}}",
               st.processes, st.rounds, st.keys, st.storms, st.computes, st.storms_not_once,
               st.max_computes, st.requests, st.waiters, st.late_hits, st.wrong_values,
               st.fallbacks, st.waiter_p50_ns, st.waiter_p99_ns, st.waiter_max_ns,
               st.request_p50_ns, st.request_p99_ns, json_escape(st.error));
  }
  out << "\n  ],\n  \"results\": [";
  first = true;
  auto number = [](double v) { return std::isfinite(v) ? fmt::format("{:.4g}", v) : "null"; };
  for (const SystemOutcome& o : r.outcomes)
    for (const CellResult& c : o.cells) {
      std::string reps, cpu_reps;
      for (double v : c.ops_per_second) reps += (reps.empty() ? "" : ", ") + fmt::format("{:.0f}", v);
      for (double v : c.cpu_ops_per_second)
        cpu_reps += (cpu_reps.empty() ? "" : ", ") + fmt::format("{:.0f}", v);
      out << (first ? "\n    " : ",\n    ")
          << fmt::format(
                 "{{\"system\": \"{}\", \"workload\": \"{}\", \"processes\": {}, "
                 "\"ops_per_second\": {:.0f}, \"ops_per_second_reps\": [{}], "
                 "\"cpu_ops_per_second\": {}, \"cpu_ops_per_second_reps\": [{}], \"p50_ns\": {:.0f}, "
                 "\"p99_ns\": {:.0f}, \"ratio_to_limit\": {}, \"hit_ratio\": {:.4f}, "
                 "\"ops\": {}, \"full_checks\": {}, \"check_failures\": {}, "
                 "\"unexpected_misses\": {}, \"puts_dropped\": {}, \"error\": \"{}\"}}",
                 c.system, c.workload, c.processes, c.median_ops_per_second, reps,
                 c.remote ? "null" : fmt::format("{:.0f}", c.median_cpu_ops_per_second),
                 c.remote ? "" : cpu_reps, c.p50_ns,
                 c.p99_ns,
                 number(r.ratio(c.system, c.workload, c.processes, "limit", c.workload,
                                c.processes)),
                 c.hit_ratio, c.ops, c.full_checks, c.check_failures, c.unexpected_misses,
                 c.puts_dropped, json_escape(c.error));
      first = false;
    }
  out << "\n  ],\n  \"summary\": {";
  first = true;
  for (const SummaryLine& line : summarise(r)) {
    out << (first ? "\n    " : ",\n    ") << fmt::format("\"{}\": {}", line.key, number(line.value));
    first = false;
  }
  out << "\n  }\n}\n";
}

// gnuplot input: one row per system, one column per workload x processes (median ops/s).
void write_chart_data(const Results& r, const RunSettings& settings, const std::string& path) {
  std::ofstream out(path);
  out << "system";
  for (const Workload& w : r.workloads)
    for (unsigned p : settings.process_counts) out << fmt::format(" {}-{}p", w.name, p);
  out << "\n";
  std::vector<std::string> systems;
  for (const SystemOutcome& o : r.outcomes)
    if (std::find(systems.begin(), systems.end(), o.system) == systems.end())
      systems.push_back(o.system);
  for (const std::string& s : systems) {
    out << s;
    for (const Workload& w : r.workloads)
      for (unsigned p : settings.process_counts) {
        const CellResult* c = r.find(s, w.name, p);
        out << ' ' << (c ? fmt::format("{:.0f}", c->median_ops_per_second) : "?");
      }
    out << "\n";
  }
}

int run(int argc, char** argv) {
  cxxopts::Options options("pipecache_bench",
                           "pipecache vs the process-local limit, a naive Boost.Interprocess map, "
                           "memcached and Redis; workloads W1-W4 of bench/README.md");
  std::string all_names;
  for (const auto& [name, preparer] : all_systems()) all_names += (all_names.empty() ? "" : ",") + name;
  options.add_options()
      ("systems", "comma list of systems", cxxopts::value<std::string>()->default_value(all_names))
      ("workloads", "comma list: W1,W2,W3,W4", cxxopts::value<std::string>()->default_value("W1,W2,W3,W4"))
      ("storm-procs", "W4 worker process counts", cxxopts::value<std::string>()->default_value("1,2,4"))
      ("procs", "comma list of worker process counts", cxxopts::value<std::string>()->default_value("1,2"))
      ("seconds", "timed seconds per repetition", cxxopts::value<double>()->default_value("2"))
      ("reps", "repetitions per cell (median ops/s is reported)", cxxopts::value<unsigned>()->default_value("3"))
      ("seed", "operation stream seed", cxxopts::value<std::uint64_t>()->default_value("42"))
      ("w3-budget-mb", "W3 byte budget in MiB (give memcached -m the same)", cxxopts::value<std::size_t>()->default_value("32"))
      ("w3-get-fraction", "W3's share of gets (the rest are puts); 0.9 is W3 as defined, 1.0 isolates "
       "what writes cost", cxxopts::value<double>()->default_value("0.9"))
      ("memcached-socket", "memcached unix socket for W1/W2", cxxopts::value<std::string>()->default_value(""))
      ("memcached-evict-socket", "memcached unix socket started with -m = W3 budget", cxxopts::value<std::string>()->default_value(""))
      ("redis-socket", "redis unix socket", cxxopts::value<std::string>()->default_value(""))
      ("segment-prefix", "prefix of the shared-memory names this run creates",
       cxxopts::value<std::string>()->default_value(""))
      ("json", "write results here", cxxopts::value<std::string>()->default_value(""))
      ("chart-data", "write gnuplot data here", cxxopts::value<std::string>()->default_value(""))
      ("h,help", "this help");
  auto args = options.parse(argc, argv);
  if (args.count("help")) {
    fmt::print("{}\n", options.help());
    return 0;
  }

  RunSettings settings;
  settings.seconds = args["seconds"].as<double>();
  settings.repetitions = std::max(1u, args["reps"].as<unsigned>());
  settings.seed = args["seed"].as<std::uint64_t>();
  settings.process_counts.clear();
  for (const std::string& p : split(args["procs"].as<std::string>()))
    settings.process_counts.push_back(static_cast<unsigned>(std::stoul(p)));
  settings.clock_overhead_ns = measure_clock_overhead_ns();

  Environment env;
  env.memcached_socket = args["memcached-socket"].as<std::string>();
  env.memcached_evict_socket = args["memcached-evict-socket"].as<std::string>();
  env.redis_socket = args["redis-socket"].as<std::string>();
  env.segment_prefix = args["segment-prefix"].as<std::string>();
  if (env.segment_prefix.empty()) env.segment_prefix = fmt::format("bench{}", ::getpid());

  std::vector<std::string> wanted_systems = split(args["systems"].as<std::string>());
  std::vector<std::string> wanted_workloads = split(args["workloads"].as<std::string>());
  for (const std::string& s : wanted_systems) {
    bool known = false;
    for (const auto& [name, preparer] : all_systems()) known |= name == s;
    if (!known) throw std::invalid_argument("unknown system " + s + " (known: " + all_names + ")");
  }

  Results results;
  std::size_t evict_budget = args["w3-budget-mb"].as<std::size_t>() << 20;
  const double w3_get_fraction = args["w3-get-fraction"].as<double>();
  if (!(w3_get_fraction > 0.0 && w3_get_fraction <= 1.0))
    throw std::invalid_argument(fmt::format("--w3-get-fraction {} is not in (0, 1]", w3_get_fraction));
  for (Workload& w : standard_workloads(evict_budget)) {
    if (w.name == "W3") w.get_fraction = w3_get_fraction;
    if (std::find(wanted_workloads.begin(), wanted_workloads.end(), w.name) != wanted_workloads.end())
      results.workloads.push_back(w);
  }

  fmt::print("pipecache_bench: {} s x {} reps per cell, clock overhead {} ns (subtracted), "
             "1 op in {} timed\n",
             settings.seconds, settings.repetitions, settings.clock_overhead_ns, kSampleEvery);
  unsigned max_procs = *std::max_element(settings.process_counts.begin(), settings.process_counts.end());
  for (const Workload& w : results.workloads) {
    std::vector<std::string> keys(w.keys);
    for (std::size_t i = 0; i < w.keys; ++i) keys[i] = make_key(i);
    ValueFactory values(w.value_size);
    std::vector<std::vector<Op>> streams;
    for (unsigned p = 0; p < max_procs; ++p) streams.push_back(make_stream(w, p, settings.seed));
    Dataset data{w, keys, values};
    std::vector<PreparedSystem> prepared;
    for (const auto& [name, preparer] : all_systems()) {
      if (std::find(wanted_systems.begin(), wanted_systems.end(), name) == wanted_systems.end())
        continue;
      std::uint64_t t0 = now_ns();
      prepared.push_back(preparer(data, env, streams, settings));
      const PreparedSystem& p = prepared.back();
      fmt::print("  {} {:<16} prepared in {:4.1f} s {}\n", w.name, name, (now_ns() - t0) / 1e9,
                 !p.skipped.empty() ? "(skipped: " + p.skipped + ")"
                 : !p.setup_error.empty() ? "FAILED " + p.setup_error : "");
      std::fflush(stdout);
    }
    std::uint64_t t0 = now_ns();
    std::vector<SystemOutcome> outcomes = run_interleaved(prepared, w, settings);
    std::string line;
    for (const SystemOutcome& o : outcomes)
      for (const CellResult& c : o.cells)
        if (c.error.empty() && c.processes == settings.process_counts.front())
          line += fmt::format(" {} {}", o.system, rate_text(c.median_ops_per_second));
    fmt::print("  {} measured in {:.1f} s:{}\n", w.name, (now_ns() - t0) / 1e9, line);
    std::fflush(stdout);
    prepared.clear();  // unlink segments, free memory before the next workload
    for (SystemOutcome& o : outcomes) results.outcomes.push_back(std::move(o));
  }

  results.storm_requested =
      std::find(wanted_workloads.begin(), wanted_workloads.end(), "W4") != wanted_workloads.end();
  if (results.storm_requested) {
    std::vector<unsigned> storm_procs;
    for (const std::string& p : split(args["storm-procs"].as<std::string>()))
      storm_procs.push_back(static_cast<unsigned>(std::stoul(p)));
    std::uint64_t t0 = now_ns();
    results.storm = run_storm(settings, env, storm_procs);
    std::string line;
    for (const StormResult& st : results.storm)
      line += st.error.empty() ? fmt::format(" {}p {} computes/{} storms", st.processes, st.computes, st.storms)
                               : fmt::format(" {}p FAILED {}", st.processes, st.error);
    fmt::print("  W4 {:<16} {:5.1f} s {}\n", "pipeline storm", (now_ns() - t0) / 1e9, line);
  }

  print_table(results);
  fmt::print("\nratios against their goals (median ops/s, same run):\n");
  for (const SummaryLine& line : summarise(results))
    fmt::print("  {:<60} {:>9}  {}\n", line.meaning,
               std::isfinite(line.value) ? fmt::format("{:.3f}", line.value) : "n/a",
               line.goal.empty() ? "" : "goal " + line.goal);
  if (!args["json"].as<std::string>().empty()) write_json(results, settings, args["json"].as<std::string>());
  if (!args["chart-data"].as<std::string>().empty())
    write_chart_data(results, settings, args["chart-data"].as<std::string>());

  bool bad = false;
  for (const StormResult& st : results.storm) bad |= !st.error.empty() || st.wrong_values > 0;
  for (const SystemOutcome& o : results.outcomes)
    for (const CellResult& c : o.cells)
      bad |= !c.error.empty() || c.check_failures > 0 || c.unexpected_misses > 0;
  return bad ? 1 : 0;
}

}  // namespace
}  // namespace bench

int main(int argc, char** argv) {
  try {
    return bench::run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "pipecache_bench: {}\n", e.what());
    return 2;
  }
}
