// pipectl against a segment that forked writers are hammering: every reading subcommand
// succeeds while writes go on, the counters it prints add up to what the writers did, and
// invalidate removes exactly the keys its glob matches — no more, no fewer.

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipectl_test;
using testing::SegmentGuard;
using testing::unique_name;

namespace {

// What each writer did, counted by itself, in memory shared with the test process
// (MAP_SHARED | MAP_ANONYMOUS survives fork).
struct WriterTally {
  std::atomic<std::uint64_t> gets{0};
  std::atomic<std::uint64_t> hits{0};
  std::atomic<std::uint64_t> misses{0};
  std::atomic<std::uint64_t> puts{0};
  std::atomic<std::uint64_t> dropped_puts{0};
  std::atomic<std::uint64_t> bad_values{0};
};
struct Shared {
  std::atomic<bool> stop{false};
  std::atomic<unsigned> started{0};
  WriterTally tally[4];
};

Shared* map_shared() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
  REQUIRE(p != MAP_FAILED);
  return new (p) Shared();
}

constexpr unsigned kWriters = 2;
constexpr unsigned kKeysPerWriter = 400;  // "w<id>:<n>", 256-byte self-checking values

// A writer: 1 put in 4, the rest gets of its own keys, until told to stop. Values are
// self-checking, so a torn read shows up as a bad value.
int writer(const std::string& name, unsigned id, Shared* shared) {
  auto cache = pipecache::Cache::open(name);
  WriterTally& t = shared->tally[id];
  std::mt19937_64 rng(id * 7919 + 1);
  std::uint64_t version = 0;
  std::string value;
  shared->started.fetch_add(1);
  while (!shared->stop.load(std::memory_order_relaxed)) {
    std::string key = "w" + std::to_string(id) + ":" + std::to_string(rng() % kKeysPerWriter);
    if (rng() % 4 == 0) {
      bool stored = cache.put(key, testing::make_value(key, ++version, 256),
                              std::chrono::minutes(10), 0);
      t.puts.fetch_add(1);
      if (!stored) t.dropped_puts.fetch_add(1);
    } else {
      t.gets.fetch_add(1);
      if (cache.get(key, value)) {
        t.hits.fetch_add(1);
        if (!testing::check_value(key, value)) t.bad_values.fetch_add(1);
      } else {
        t.misses.fetch_add(1);
      }
    }
  }
  return 0;
}

struct Writers {
  Shared* shared = map_shared();
  std::vector<pid_t> pids;

  void start(const std::string& name) {
    for (unsigned i = 0; i < kWriters; ++i) {
      pids.push_back(testing::spawn([&, i] { return writer(name, i, shared); }));
    }
    // Wait until all are writing, so the checks below really overlap with writes.
    for (int spin = 0; spin < 5000 && shared->started.load() < kWriters; ++spin) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(shared->started.load() == kWriters);
  }
  bool all_running() const {
    for (pid_t p : pids) {
      if (::waitpid(p, nullptr, WNOHANG) != 0) return false;
    }
    return true;
  }
  void stop() {
    shared->stop.store(true);
    for (pid_t p : pids) {
      auto st = testing::wait_for(p, std::chrono::seconds(20));
      CHECK(st.exited);
      CHECK(st.code == 0);
    }
    pids.clear();
  }
  ~Writers() {
    if (!pids.empty()) {
      shared->stop.store(true);
      for (pid_t p : pids) testing::wait_for(p, std::chrono::seconds(20));
    }
    ::munmap(shared, sizeof(Shared));
  }
  std::uint64_t sum(std::atomic<std::uint64_t> WriterTally::*field) const {
    std::uint64_t s = 0;
    for (unsigned i = 0; i < kWriters; ++i) s += (shared->tally[i].*field).load();
    return s;
  }
};

// True once some other process maps the segment file — how the test knows pipectl top has
// opened it, without relying on a sleep being long enough on a loaded machine.
bool mapped_by_another_process(const std::string& name, std::chrono::milliseconds timeout) {
  std::string needle = pipecache::Cache::path_of(name);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;  // processes come and go during the walk: never throw for that
    for (auto it = std::filesystem::directory_iterator("/proc", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const auto& entry = *it;
      std::string pid = entry.path().filename();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (std::stol(pid) == ::getpid()) continue;
      std::ifstream maps(entry.path() / "maps");
      std::string line;
      while (std::getline(maps, line)) {
        // A re-created segment is a new file: skip mappings of a deleted one.
        if (line.find(needle) != std::string::npos &&
            line.find("(deleted)") == std::string::npos) {
          return true;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::set<std::string> key_set(const nlohmann::json& keys_json) {
  std::set<std::string> keys;
  for (const auto& k : keys_json["keys"]) keys.insert(k["key"].get<std::string>());
  return keys;
}

}  // namespace

TEST_SUITE("pipectl_live") {
  // A live process that keeps a stripe lock (here: a visit() callback that never returns, a
  // stuck worker) makes clear() give up after the lock timeout and say so: nothing removed,
  // `pipectl clear` fails naming the problem, and the segment stays usable; once that process
  // is gone its stripe is repaired and clear() succeeds.
  TEST_CASE("clear_reports_a_lock_held_by_a_live_process_and_removes_nothing") {
    std::string name = unique_name("pctl-clear");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    for (int i = 0; i < 20; ++i) cache.put("k:" + std::to_string(i), "v" + std::to_string(i));
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t holder = testing::spawn([&] {
      auto c = pipecache::Cache::open(name);
      c.visit("k:0", [&](std::string_view) {
        (void)!::write(ready[1], "y", 1);
        ::pause();  // holds k:0's stripe lock until killed
      });
      return 0;
    });
    struct KillOnExit {
      pid_t pid;
      ~KillOnExit() {
        if (pid > 0) {
          ::kill(pid, SIGKILL);
          ::waitpid(pid, nullptr, 0);
        }
      }
    } reap{holder};
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    REQUIRE(byte == 'y');

    const auto t0 = std::chrono::steady_clock::now();
    CHECK_FALSE(cache.clear());
    const auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(waited >= std::chrono::milliseconds(1500));  // the lock timeout (2 s), not at once
    CHECK(waited < std::chrono::seconds(10));
    CHECK(cache.stats().entries == 20);  // nothing was removed
    CHECK(cache.get("k:7") == std::optional<std::string>("v7"));

    RunResult r = pipectl({"clear", "--name", name});
    CHECK_MESSAGE(r.exit_code == 3, describe(r));
    CHECK_MESSAGE(r.err.find("not cleared") != std::string::npos, describe(r));
    CHECK_MESSAGE(r.err.find("held by a live process") != std::string::npos, describe(r));
    CHECK_MESSAGE(r.err.find(name) != std::string::npos, describe(r));
    CHECK(cache.stats().entries == 20);

    // Still usable: other stripes take writes meanwhile (a key of the held stripe may not).
    int stored = 0;
    for (int i = 0; i < 20; ++i) stored += cache.put("more:" + std::to_string(i), "m") ? 1 : 0;
    CHECK(stored >= 1);

    ::kill(holder, SIGKILL);
    testing::wait_for(holder, std::chrono::seconds(10));
    reap.pid = 0;
    CHECK(cache.clear());  // the dead holder's stripe is repaired first
    CHECK(cache.stats().entries == 0);
    CHECK(cache.put("after", "x"));
    CHECK(cache.get("after") == std::optional<std::string>("x"));
    CHECK(cache.verify().ok());
    RunResult ok = pipectl({"clear", "--name", name});
    CHECK_MESSAGE(ok.exit_code == 0, describe(ok));
    ::close(ready[0]);
    ::close(ready[1]);
  }

  TEST_CASE("reading_subcommands_succeed_while_writers_hammer_and_stats_add_up") {
    std::string name = unique_name("pctl-live");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name, 16u << 20));
    std::uint64_t own_puts = 0;
    for (int i = 0; i < 50; ++i, ++own_puts) cache.put("seed:" + std::to_string(i), "seed");
    pipecache::Stats before = cache.stats();

    Writers writers;
    writers.start(name);
    // Several rounds of every reading subcommand, all while the writers are running.
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      RunResult s = pipectl({"stats", "--name", name, "--json"});
      REQUIRE_MESSAGE(s.exit_code == 0, describe(s));
      auto sj = nlohmann::json::parse(s.out);
      CHECK(sj["attached_processes"].get<std::uint64_t>() >= kWriters);
      CHECK(sj["bytes_used"].get<std::uint64_t>() <= sj["byte_budget"].get<std::uint64_t>());

      RunResult text = pipectl({"stats", "--name", name});
      CHECK_MESSAGE(text.exit_code == 0, describe(text));
      CHECK(text.out.find("hit ratio") != std::string::npos);

      RunResult k = pipectl({"keys", "--name", name, "w*", "--json"});
      REQUIRE_MESSAGE(k.exit_code == 0, describe(k));
      auto kj = nlohmann::json::parse(k.out);
      for (const auto& e : kj["keys"]) {
        CHECK(e["key"].get<std::string>().rfind("w", 0) == 0);
        if (!e["lease"].get<bool>()) CHECK(e["value_size"].get<std::uint64_t>() == 256);
      }

      RunResult i = pipectl({"inspect", "--name", name, "--json"});
      REQUIRE_MESSAGE(i.exit_code == 0, describe(i));
      auto ij = nlohmann::json::parse(i.out);
      CHECK(ij["entries_per_stripe"]["counts"].size() == ij["stripes"].get<std::size_t>());

      RunResult v = pipectl({"verify", "--name", name});
      CHECK_MESSAGE(v.exit_code == 0, describe(v));
      CHECK(v.out.find("ok:") == 0);
    }
    REQUIRE(writers.all_running());  // the checks above really ran during the writes
    writers.stop();

    // With the writers stopped, what pipectl reports must equal what they counted themselves
    // (nothing else read or wrote: pipectl's reading subcommands count no hits or misses).
    RunResult s = pipectl({"stats", "--name", name, "--json"});
    REQUIRE_MESSAGE(s.exit_code == 0, describe(s));
    auto sj = nlohmann::json::parse(s.out);
    std::uint64_t hits = writers.sum(&WriterTally::hits);
    std::uint64_t misses = writers.sum(&WriterTally::misses);
    CHECK(writers.sum(&WriterTally::bad_values) == 0);
    CHECK(hits > 0);
    CHECK(sj["hits"].get<std::uint64_t>() - before.hits == hits);
    CHECK(sj["misses"].get<std::uint64_t>() - before.misses == misses);
    std::uint64_t puts = writers.sum(&WriterTally::puts);
    std::uint64_t stored = sj["inserts"].get<std::uint64_t>() + sj["updates"].get<std::uint64_t>() -
                           before.inserts - before.updates;
    CHECK(stored + writers.sum(&WriterTally::dropped_puts) == puts);
    CHECK(sj["hits"].get<std::uint64_t>() + sj["misses"].get<std::uint64_t>() ==
          before.hits + before.misses + writers.sum(&WriterTally::gets));
    CHECK(own_puts == before.inserts);

    // Entries agree across stats, inspect's per-stripe counts and the key listing.
    RunResult k = pipectl({"keys", "--name", name, "--json"});
    REQUIRE(k.exit_code == 0);
    auto kj = nlohmann::json::parse(k.out);
    RunResult i = pipectl({"inspect", "--name", name, "--json"});
    REQUIRE(i.exit_code == 0);
    auto ij = nlohmann::json::parse(i.out);
    std::uint64_t per_stripe = 0;
    for (const auto& c : ij["entries_per_stripe"]["counts"]) per_stripe += c.get<std::uint64_t>();
    CHECK(kj["count"].get<std::uint64_t>() == sj["entries"].get<std::uint64_t>());
    CHECK(per_stripe == sj["entries"].get<std::uint64_t>());
    CHECK(ij["bytes_used"].get<std::uint64_t>() == sj["bytes_used"].get<std::uint64_t>());
    RunResult v = pipectl({"verify", "--name", name, "--json"});
    CHECK_MESSAGE(v.exit_code == 0, describe(v));
    auto vj = nlohmann::json::parse(v.out);
    CHECK(vj["ok"].get<bool>());
    CHECK(vj["entries_checked"].get<std::uint64_t>() == sj["entries"].get<std::uint64_t>());
  }

  TEST_CASE("invalidate_removes_exactly_the_matches_while_writers_run") {
    std::string name = unique_name("pctl-inval");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name, 16u << 20));
    // Near misses on purpose: 'inv:a:*' must not take 'inv:ab:*', 'inv:a' or 'xinv:a:1'.
    std::set<std::string> all;
    auto add = [&](const std::string& k) {
      REQUIRE(cache.put(k, testing::make_value(k, 1, 64), std::chrono::minutes(10), 0));
      all.insert(k);
    };
    for (int i = 0; i < 100; ++i) add("inv:a:" + std::to_string(i));
    for (int i = 0; i < 30; ++i) add("inv:ab:" + std::to_string(i));
    for (int i = 0; i < 30; ++i) add("inv:b:" + std::to_string(i));
    add("inv:a");
    add("xinv:a:1");
    // A registered request type takes the O(1) generation path.
    int ns = cache.namespace_id("nsx");
    REQUIRE(ns >= 0);
    for (int i = 0; i < 25; ++i) add("nsx:" + std::to_string(i));
    add("nsxy:1");

    Writers writers;
    writers.start(name);

    RunResult r = pipectl({"invalidate", "--name", name, "inv:a:*"});
    REQUIRE_MESSAGE(r.exit_code == 0, describe(r));
    CHECK(r.out == "100\n");
    RunResult q = pipectl({"invalidate", "--name", name, "inv:b:1?", "--json"});
    REQUIRE_MESSAGE(q.exit_code == 0, describe(q));
    CHECK(nlohmann::json::parse(q.out)["removed"].get<std::uint64_t>() == 10);
    RunResult n = pipectl({"invalidate", "--name", name, "nsx:*"});
    REQUIRE_MESSAGE(n.exit_code == 0, describe(n));
    CHECK(n.out == "25\n");
    RunResult none = pipectl({"invalidate", "--name", name, "nothing:*"});
    CHECK(none.exit_code == 0);  // zero matches is success for a hook
    CHECK(none.out == "0\n");
    REQUIRE(writers.all_running());
    writers.stop();

    std::set<std::string> expected;
    for (const auto& k : all) {
      bool gone = (k.rfind("inv:a:", 0) == 0) || (k.rfind("nsx:", 0) == 0) ||
                  (k.size() == 8 && k.rfind("inv:b:1", 0) == 0);
      if (!gone) expected.insert(k);
    }
    RunResult k = pipectl({"keys", "--name", name, "--json"});
    REQUIRE(k.exit_code == 0);
    std::set<std::string> remaining;
    for (const auto& key : key_set(nlohmann::json::parse(k.out))) {
      if (key.rfind("w", 0) != 0) remaining.insert(key);  // the writers' keys are not ours
    }
    CHECK(remaining == expected);
    for (const auto& key : expected) {
      std::string v;
      CHECK(cache.get(key, v));
      CHECK(testing::check_value(key, v));
    }
    // The writers' keys were untouched by all of it.
    RunResult w = pipectl({"keys", "--name", name, "w?:*", "--json"});
    CHECK(nlohmann::json::parse(w.out)["count"].get<std::uint64_t>() > 0);
  }

  TEST_CASE("clear_and_set_while_writers_run_leave_a_consistent_segment") {
    std::string name = unique_name("pctl-clear");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name, 16u << 20));
    for (int i = 0; i < 200; ++i) cache.put("old:" + std::to_string(i), "v");
    Writers writers;
    writers.start(name);
    for (int round = 0; round < 3; ++round) {
      CAPTURE(round);
      RunResult c = pipectl({"clear", "--name", name});
      CHECK_MESSAGE(c.exit_code == 0, describe(c));
      RunResult s = pipectl({"set", "--name", name, "mine:" + std::to_string(round), "value"});
      CHECK_MESSAGE(s.exit_code == 0, describe(s));
      RunResult v = pipectl({"verify", "--name", name});
      CHECK_MESSAGE(v.exit_code == 0, describe(v));
    }
    REQUIRE(writers.all_running());
    writers.stop();
    CHECK(writers.sum(&WriterTally::bad_values) == 0);
    CHECK(cache.keys("old:*").empty());
    CHECK(cache.get("mine:2") == std::string("value"));
    RunResult v = pipectl({"verify", "--name", name});
    CHECK_MESSAGE(v.exit_code == 0, describe(v));
  }

  TEST_CASE("top_follows_a_recreated_segment_and_stops_when_it_is_destroyed") {
    std::string name = unique_name("pctl-top-gone");
    SegmentGuard guard(name);
    std::optional<pipecache::Cache> cache;
    cache.emplace(pipecache::Cache::create(testing::small_options(name)));
    RunResult result;
    std::thread top([&] {
      result = pipectl({"top", "--name", name, "--interval", "100ms", "--count", "1000"});
    });
    cache.reset();  // from here on only top maps the segment
    REQUIRE(mapped_by_another_process(name, std::chrono::seconds(20)));
    // Re-created under the same name (a redeploy): top must show the new one, recognisable
    // by its entry count.
    REQUIRE(pipecache::Cache::remove(name));
    cache.emplace(pipecache::Cache::create(testing::small_options(name)));
    for (int i = 0; i < 7; ++i) cache->put("new:" + std::to_string(i), "v");
    cache.reset();
    REQUIRE(mapped_by_another_process(name, std::chrono::seconds(20)));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a few lines of the new one
    REQUIRE(pipecache::Cache::remove(name));
    top.join();
    INFO(describe(result));
    CHECK(result.exit_code == 3);
    check_one_line_error(result, name);
    check_one_line_error(result, "destroyed");
    auto lines = lines_of(result.out);
    REQUIRE(!lines.empty());
    CHECK(lines.back().find(" entries=7 ") != std::string::npos);
  }

  TEST_CASE("top_prints_one_line_per_interval_with_rates_when_not_a_terminal") {
    std::string name = unique_name("pctl-top");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name, 8u << 20));
    Writers writers;
    writers.start(name);
    RunResult t = pipectl({"top", "--name", name, "--interval", "200ms", "--count", "3"});
    writers.stop();
    REQUIRE_MESSAGE(t.exit_code == 0, describe(t));
    auto lines = lines_of(t.out);
    REQUIRE(lines.size() == 3);
    double max_rate = 0;
    for (const auto& l : lines) {
      CAPTURE(l);
      CHECK(l.find("\x1b") == std::string::npos);  // no escape sequences into a pipe
      CHECK(l.rfind("time=", 0) == 0);
      CHECK(l.find(" segment=" + name + " ") != std::string::npos);
      auto at = l.find("hits_per_s=");
      REQUIRE(at != std::string::npos);
      max_rate = std::max(max_rate, std::stod(l.substr(at + 11)));
    }
    CHECK(max_rate > 0);
  }
}
