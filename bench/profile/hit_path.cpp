// pipecache_hitpath — a W1 hit loop with nothing else in it, for callgrind:
//   valgrind --tool=callgrind --toggle-collect='*bench::hit_loop*'
//            build/bench/pipecache_hitpath --mode get --ops 200000
// Instructions per get = Ir inside hit_loop / ops. `--mode limit` runs the same loop over a
// process-local std::unordered_map (the key first copied into a reused std::string, as the
// throughput bench's `limit` does); `--mode limit-prebuilt` looks up the std::string key
// already in hand (the stricter ceiling). Entries are stored with --ttl-s (default 3600: a
// response cache's entries have a TTL, so the hit pays its expiry check; 0 = none).
#include "common/clock.hpp"
#include "common/values.hpp"

#include <pipecache/cache.hpp>

#include <cxxopts.hpp>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/random.hpp"

namespace bench {

constexpr std::size_t kKeys = 10'000;

std::uint64_t cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// noinline: the unit callgrind's --toggle-collect switches on; everything it calls is the
// hit path (the index draw is a table read, the check the cheap one the throughput bench does).
template <class Read>
[[gnu::noinline]] std::uint64_t hit_loop(const std::vector<std::string>& keys,
                                         const std::vector<std::uint32_t>& order,
                                         const ValueFactory& values, Read&& read) {
  std::uint64_t bad = 0;
  for (std::uint32_t index : order)
    bad += !read(keys[index], [&](std::string_view v) { bad += !values.check_cheap(v, index); });
  return bad;
}

int run(int argc, char** argv) {
  cxxopts::Options options("pipecache_hitpath", "W1 hit loop for callgrind");
  options.add_options()
      ("mode", "get | visit | limit | limit-prebuilt", cxxopts::value<std::string>()->default_value("get"))
      ("ttl-s", "TTL of the stored entries in seconds (0 = none)",
       cxxopts::value<unsigned>()->default_value("3600"))
      ("ops", "gets", cxxopts::value<std::size_t>()->default_value("200000"))
      ("value-size", "bytes per value (W1: 1024, W2: 16384)",
       cxxopts::value<std::size_t>()->default_value("1024"));
  auto args = options.parse(argc, argv);
  const std::string mode = args["mode"].as<std::string>();

  std::vector<std::string> keys;
  for (std::size_t i = 0; i < kKeys; ++i) keys.push_back(make_key(i));
  ValueFactory values(args["value-size"].as<std::size_t>());
  SplitMix64 rng(42);
  std::vector<std::uint32_t> order(args["ops"].as<std::size_t>());
  for (auto& o : order) o = static_cast<std::uint32_t>(rng.below(kKeys));
  std::string value, out;
  std::uint64_t bad = 0;
  std::uint64_t t0 = 0, t1 = 0;  // around the loop only (setup excluded)
  std::uint64_t c0 = 0, c1 = 0;  // the same in CPU time: robust to a loaded machine

  if (mode == "limit" || mode == "limit-prebuilt") {
    std::unordered_map<std::string, std::string> map;
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      values.make(i, i, value);
      map[keys[i]] = value;
    }
    std::string lookup;
    t0 = now_ns();
    c0 = cpu_ns();
    const bool prebuilt = mode == "limit-prebuilt";
    bad = hit_loop(keys, order, values, [&](const std::string& key, auto&& check) {
      auto it = prebuilt ? map.find(key) : map.find(lookup.assign(key));
      if (it == map.end()) return false;
      out.assign(it->second);
      check(std::string_view(out));
      return true;
    });
    t1 = now_ns();
    c1 = cpu_ns();
  } else if (mode == "get" || mode == "visit") {
    const auto ttl = std::chrono::milliseconds(std::uint64_t{args["ttl-s"].as<unsigned>()} * 1000);
    std::string name = fmt::format("hitpath{}", ::getpid());
    pipecache::Options o;
    o.name = name;
    o.default_ttl = std::chrono::milliseconds(0);
    o.byte_budget = std::max<std::size_t>(o.byte_budget, kKeys * (values.size() + 256) * 2);
    pipecache::Cache::remove(name);
    pipecache::Cache cache = pipecache::Cache::create(o);
    for (std::uint32_t i = 0; i < kKeys; ++i) {
      values.make(i, i, value);
      cache.put(keys[i], value, ttl, 0);
    }
    t0 = now_ns();
    c0 = cpu_ns();
    if (mode == "visit") {
      bad = hit_loop(keys, order, values, [&](const std::string& key, auto&& check) {
        return cache.visit(key, [&check](std::string_view v) { check(v); });
      });
    } else {
      bad = hit_loop(keys, order, values, [&](const std::string& key, auto&& check) {
        if (!cache.get(key, out)) return false;
        check(std::string_view(out));
        return true;
      });
    }
    t1 = now_ns();
    c1 = cpu_ns();
    pipecache::Cache::remove(name);
  } else {
    fmt::print(stderr, "pipecache_hitpath: unknown --mode {} (get, visit, limit, limit-prebuilt)\n", mode);
    return 2;
  }
  fmt::print("{} {} gets, {} bad, {:.1f} ns/get wall, {:.1f} ns/get CPU\n", mode, order.size(),
             bad, static_cast<double>(t1 - t0) / static_cast<double>(order.size()),
             static_cast<double>(c1 - c0) / static_cast<double>(order.size()));
  return bad == 0 ? 0 : 1;
}

}  // namespace bench

int main(int argc, char** argv) { return bench::run(argc, argv); }
