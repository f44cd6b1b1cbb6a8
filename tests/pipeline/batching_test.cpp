// Request batching through the Pipeline: misses of a type with a registered batch
// handler are answered in batches, cached with the type's TTL, fall back request by request,
// and leave their figures in the segment, where pipectl shows them.
#include <pipecache/pipeline.hpp>

#include <doctest/doctest.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <mutex>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "helpers.hpp"
#include "pipectl/run.hpp"
#include "support/process.hpp"

using namespace pipecache;
using namespace pipeline_testing;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view kEvents = "events_by_range";  // seed policy: batch-eligible, 300 s

// The value of a request, whichever way it is computed: tests that compare paths need the
// two to agree.
std::string answer(const Params& params) { return "events:" + params.at("id"); }

// What the batch handler saw: how many calls, and how many params each.
class BatchLog {
 public:
  Pipeline::BatchHandler handler(std::string prefix = "batched ") {
    return [this, prefix](const std::vector<Params>& batch) {
      {
        std::lock_guard lock(mu_);
        sizes_.push_back(batch.size());
      }
      std::vector<std::string> out;
      for (const Params& params : batch) out.push_back(prefix + answer(params));
      return out;
    };
  }
  std::vector<std::size_t> sizes() const {
    std::lock_guard lock(mu_);
    return sizes_;
  }
  std::size_t calls() const { return sizes().size(); }
  std::size_t requests() const {
    const auto s = sizes();
    return std::accumulate(s.begin(), s.end(), std::size_t{0});
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::size_t> sizes_;
};

// Runs body(i) on `n` threads released together (so their misses meet in one window).
void on_threads(int n, const std::function<void(int)>& body) {
  std::latch start(n);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      body(i);
    });
  }
  for (auto& t : threads) t.join();
}

Params id(int i) { return {{"id", std::to_string(i)}}; }

// The type's counters straight from the segment, through a handle of its own: what every
// other process (and pipectl) reads.
NamespaceStats segment_counters(const std::string& segment, std::string_view type) {
  const Stats st = Cache::open(segment).stats();
  for (const auto& ns : st.namespaces) {
    if (ns.name == type) return ns;
  }
  return {};
}

// Collects what this process writes to stderr while it lives.
class StderrCapture {
 public:
  StderrCapture() : file_(std::tmpfile()) {
    std::fflush(stderr);
    saved_ = ::dup(2);
    ::dup2(::fileno(file_), 2);
  }
  ~StderrCapture() {
    restore();
    std::fclose(file_);
  }
  std::string text() {
    restore();
    std::string out;
    std::rewind(file_);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, file_)) > 0;) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    std::fflush(stderr);
    ::dup2(saved_, 2);
    ::close(saved_);
    saved_ = -1;
  }
  std::FILE* file_;
  int saved_ = -1;
};

std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

TEST_SUITE("pipeline_batching") {

TEST_CASE("concurrent_misses_form_batches_of_at_most_batch_size") {
  const std::string name = testing::unique_name("pl-bform");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_size = 4;
  cfg.batch_timeout = 5s;  // never reached: 8 misses fill two batches
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  std::atomic<int> singles{0};
  std::vector<std::string> got(8);
  on_threads(8, [&](int i) {
    got[i] = p.process_request(kEvents, id(i), [&, i] {
      ++singles;
      return answer(id(i));
    });
  });
  for (int i = 0; i < 8; ++i) CHECK(got[i] == "batched " + answer(id(i)));
  CHECK(singles == 0);
  CHECK(log.requests() == 8);
  CHECK(log.calls() == 2);
  for (std::size_t size : log.sizes()) CHECK(size <= 4);

  const RequestTypeStats t = type_stats(p, kEvents);
  CHECK(t.misses == 8);
  CHECK(t.computes == 8);
  CHECK(t.batchable_requests == 8);
  CHECK(t.batches == 2);
  CHECK(t.batched_requests == 8);
  CHECK(t.batch_joined == 8);
  CHECK(t.batch_failures == 0);
  CHECK(t.batch_fallbacks == 0);
  CHECK(t.average_batch_size() == doctest::Approx(4.0));
  CHECK(t.batch_formation_efficiency() == doctest::Approx(1.0));
}

TEST_CASE("batched_values_are_cached_with_the_type_ttl") {
  const std::string name = testing::unique_name("pl-bttl");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_timeout = 20ms;  // lone misses: their window closes on time
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  int singles = 0;
  const Pipeline::Handler single = [&] {
    ++singles;
    return std::string("single");
  };

  CHECK(p.process_request(kEvents, id(1), single) == "batched " + answer(id(1)));
  CHECK(log.calls() == 1);
  // A hit: neither handler runs.
  CHECK(p.process_request(kEvents, id(1), single) == "batched " + answer(id(1)));
  CHECK(log.calls() == 1);
  CHECK(singles == 0);
  CHECK(type_stats(p, kEvents).hits == 1);
  // Stored for the seed policy's 300 s TTL plus its 60 s stale window.
  const auto keys = p.cache()->keys(p.cache_key(kEvents, id(1)));
  REQUIRE(keys.size() == 1);
  REQUIRE(keys[0].ttl_left.has_value());
  CHECK(*keys[0].ttl_left > 299s);
  CHECK(*keys[0].ttl_left <= 360s);

  // A short TTL of the type's own runs out, and the next miss is batched again.
  RequestPolicy brief;
  brief.ttl = 300ms;
  brief.batch_eligible = true;
  p.set_policy("brief_events", brief);
  BatchLog brief_log;
  p.register_batch_handler("brief_events", brief_log.handler());
  CHECK(p.process_request("brief_events", id(2), single) == "batched " + answer(id(2)));
  CHECK(p.process_request("brief_events", id(2), single) == "batched " + answer(id(2)));
  CHECK(brief_log.calls() == 1);
  std::this_thread::sleep_for(500ms);
  CHECK(p.process_request("brief_events", id(2), single) == "batched " + answer(id(2)));
  CHECK(brief_log.calls() == 2);
  CHECK(singles == 0);
}

TEST_CASE("batching_disabled_gives_the_same_answers_through_the_single_handler") {
  // The same requests: twice each, distinct ids from several threads at once.
  auto run = [](Pipeline& p, std::atomic<int>& singles) {
    std::vector<std::string> got(12);
    for (int round = 0; round < 2; ++round) {
      on_threads(6, [&](int i) {
        got[round * 6 + i] = p.process_request(kEvents, id(i), [&, i] {
          ++singles;
          return answer(id(i));
        });
      });
    }
    return got;
  };
  BatchLog log;
  auto setup = [&](Pipeline& p) { p.register_batch_handler(std::string(kEvents), log.handler("")); };

  const std::string on_name = testing::unique_name("pl-bon");
  testing::SegmentGuard on_guard(on_name);
  PipelineConfig on_cfg = small_config(on_name);
  on_cfg.batch_size = 6;
  on_cfg.batch_timeout = 5s;
  Pipeline on(on_cfg);
  setup(on);
  std::atomic<int> on_singles{0};
  const auto batched = run(on, on_singles);
  CHECK(log.calls() >= 1);
  CHECK(log.requests() == 6);
  CHECK(on_singles == 0);

  const std::string off_name = testing::unique_name("pl-boff");
  testing::SegmentGuard off_guard(off_name);
  PipelineConfig off_cfg = small_config(off_name);
  off_cfg.enable_request_batching = false;
  Pipeline off(off_cfg);
  setup(off);
  std::atomic<int> off_singles{0};
  CHECK(run(off, off_singles) == batched);
  CHECK(off_singles == 6);

  const std::string env_name = testing::unique_name("pl-benv");
  testing::SegmentGuard env_guard(env_name);
  ::setenv("PIPECACHE_NAME", env_name.c_str(), 1);
  ::setenv("PIPECACHE_CACHE_MEMORY_LIMIT_MB", "4", 1);
  ::setenv("PIPECACHE_ENABLE_REQUEST_BATCHING", "false", 1);
  PipelineConfig env_cfg;
  try {
    env_cfg = PipelineConfig::from_environment();
  } catch (...) {
  }
  for (const char* v : {"PIPECACHE_NAME", "PIPECACHE_CACHE_MEMORY_LIMIT_MB",
                        "PIPECACHE_ENABLE_REQUEST_BATCHING"}) {
    ::unsetenv(v);
  }
  REQUIRE(env_cfg.segment_name == env_name);
  CHECK_FALSE(env_cfg.enable_request_batching);
  Pipeline from_env(env_cfg);
  setup(from_env);
  std::atomic<int> env_singles{0};
  CHECK(run(from_env, env_singles) == batched);
  CHECK(env_singles == 6);

  CHECK(log.requests() == 6);  // the disabled pipelines never called it
  for (Pipeline* p : {&off, &from_env}) {
    const RequestTypeStats t = type_stats(*p, kEvents);
    CHECK(t.computes == 6);
    CHECK(t.hits == 6);
    CHECK(t.batchable_requests == 0);
    CHECK(t.batches == 0);
  }
}

TEST_CASE("a_type_without_a_batch_handler_calls_its_handler_once_per_miss") {
  const std::string name = testing::unique_name("pl-bnone");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_timeout = 5s;
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  REQUIRE(p.policy("settings_get").batch_eligible);  // eligible, but no handler registered
  std::atomic<int> singles{0};
  for (int round = 0; round < 2; ++round) {
    on_threads(6, [&](int i) {
      CHECK(p.process_request("settings_get", id(i), [&, i] {
        ++singles;
        return answer(id(i));
      }) == answer(id(i)));
    });
  }
  CHECK(singles == 6);  // once per miss; the second round hits
  CHECK(log.calls() == 0);
  const RequestTypeStats t = type_stats(p, "settings_get");
  CHECK(t.computes == 6);
  CHECK(t.batchable_requests == 0);
  CHECK(t.batches == 0);

  // Removing the registration hands the type back to its own handler, one request at a time.
  cfg.batch_timeout = 20ms;
  const std::string name2 = testing::unique_name("pl-bnone2");
  testing::SegmentGuard guard2(name2);
  cfg.segment_name = name2;
  Pipeline q(cfg);
  q.register_batch_handler(std::string(kEvents), log.handler());
  CHECK(q.process_request(kEvents, id(1), [] { return std::string("e"); }) ==
        "batched " + answer(id(1)));
  q.register_batch_handler(std::string(kEvents), {});
  CHECK(q.process_request(kEvents, id(2), [] { return std::string("e"); }) == "e");
}

TEST_CASE("a_failed_batch_falls_back_per_request_and_each_error_reaches_only_its_caller") {
  const std::string name = testing::unique_name("pl-bfail");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_size = 4;
  cfg.batch_timeout = 5s;
  Pipeline p(cfg);
  std::atomic<int> batch_calls{0};
  p.register_batch_handler(std::string(kEvents), [&](const std::vector<Params>&)
                                                     -> std::vector<std::string> {
    ++batch_calls;
    throw std::runtime_error("database is locked");
  });
  const auto handler_for = [](int i) -> Pipeline::Handler {
    return [i]() -> std::string {
      if (i % 4 == 2) throw std::runtime_error("no row for " + std::to_string(i));
      return "single " + answer(id(i));
    };
  };

  StderrCapture captured;
  for (int round = 0; round < 2; ++round) {  // two failed batches, one log line
    std::vector<std::string> got(4);
    std::vector<std::string> errors(4);
    on_threads(4, [&](int t) {
      const int i = round * 4 + t;
      try {
        got[t] = p.process_request(kEvents, id(i), handler_for(i));
      } catch (const std::runtime_error& e) {
        errors[t] = e.what();
      }
    });
    for (int t = 0; t < 4; ++t) {
      const int i = round * 4 + t;
      CAPTURE(i);
      if (t == 2) {
        CHECK(errors[t] == "no row for " + std::to_string(i));
        CHECK(got[t].empty());
      } else {
        CHECK(errors[t].empty());
        CHECK(got[t] == "single " + answer(id(i)));
      }
    }
  }
  const std::string log = captured.text();
  CHECK(occurrences(log, "database is locked") == 1);
  CHECK(batch_calls == 2);

  const RequestTypeStats t = type_stats(p, kEvents);
  CHECK(t.batches == 2);
  CHECK(t.batch_failures == 2);
  CHECK(t.batch_fallbacks == 8);
  CHECK(t.batched_requests == 0);
  CHECK(t.batchable_requests == 8);
  CHECK(t.computes == 6);
  CHECK(t.compute_failures == 2);
  CHECK(t.average_batch_size() == doctest::Approx(4.0));

  // Fallback values were cached; the failed request was not (its lease was released).
  CHECK(p.process_request(kEvents, id(0), [] { return std::string("recomputed"); }) ==
        "single " + answer(id(0)));
  CHECK(p.cache()->keys(p.cache_key(kEvents, id(2))).empty());
}

TEST_CASE("a_batch_handler_returning_the_wrong_count_falls_back_per_request") {
  const std::string name = testing::unique_name("pl-bcount");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_size = 3;
  cfg.batch_timeout = 5s;
  Pipeline p(cfg);
  p.register_batch_handler(std::string(kEvents), [](const std::vector<Params>& batch) {
    return std::vector<std::string>(batch.size() - 1, "short");
  });
  StderrCapture captured;
  std::vector<std::string> got(3);
  on_threads(3, [&](int i) {
    got[i] = p.process_request(kEvents, id(i), [i] { return "single " + answer(id(i)); });
  });
  const std::string log = captured.text();
  for (int i = 0; i < 3; ++i) CHECK(got[i] == "single " + answer(id(i)));
  CHECK(occurrences(log, "returned 2 values for 3 requests") == 1);
  const RequestTypeStats t = type_stats(p, kEvents);
  CHECK(t.batch_failures == 1);
  CHECK(t.batch_fallbacks == 3);
  CHECK(t.batched_requests == 0);
}

TEST_CASE("batch_counters_are_in_the_segment_when_process_request_returns") {
  const std::string name = testing::unique_name("pl-bcount-seg");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_timeout = 20ms;
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  p.process_request(kEvents, id(1), [] { return std::string("single"); });
  NamespaceStats ns = segment_counters(name, kEvents);
  CHECK(ns.counter(NsCounter::batchable_requests) == 1);
  CHECK(ns.counter(NsCounter::batches) == 1);
  CHECK(ns.counter(NsCounter::batched_requests) == 1);
  CHECK(ns.counter(NsCounter::batch_joined) == 0);  // a batch of one joined nothing
  CHECK(ns.counter(NsCounter::batch_wait_ns) > 0);
  CHECK(ns.counter(NsCounter::batch_wait_ns) < 5'000'000'000u);

  // Two at once with batch_size 2: one batch, both joined.
  cfg.batch_size = 2;
  cfg.batch_timeout = 5s;
  const std::string name2 = testing::unique_name("pl-bcount-seg2");
  testing::SegmentGuard guard2(name2);
  cfg.segment_name = name2;
  Pipeline q(cfg);
  q.register_batch_handler(std::string(kEvents), log.handler());
  on_threads(2, [&](int i) {
    q.process_request(kEvents, id(i), [] { return std::string("single"); });
    // Already counted when this request's own answer is back.
    const NamespaceStats now = segment_counters(name2, kEvents);
    CHECK(now.counter(NsCounter::batches) == 1);
    CHECK(now.counter(NsCounter::batch_joined) == 2);
    CHECK(now.counter(NsCounter::batched_requests) == 2);
  });
  const RequestTypeStats t = type_stats(q, kEvents);
  CHECK(t.batch_formation_efficiency() == doctest::Approx(1.0));
  CHECK(t.mean_batch_wait_ns() > 0);
  // compute_time covers the window wait, which is counted in batch_wait_ns as well.
  CHECK(t.compute_time.count == 2);
  CHECK(t.compute_time.mean_ns * 2 >= static_cast<double>(t.batch_wait_ns) * 0.5);
}

TEST_CASE("a_forked_worker_batches_with_its_own_batcher") {
  // The prefork pattern: the master builds the Pipeline (and here batches once itself); each
  // worker must batch on a thread of its own, not answer alone through the inherited one.
  const std::string name = testing::unique_name("pl-bfork");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_size = 2;
  cfg.batch_timeout = 5s;
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  on_threads(2, [&](int i) { p.process_request(kEvents, id(i), [] { return std::string("s"); }); });
  REQUIRE(log.calls() == 1);

  const pid_t child = testing::spawn([&] {
    std::vector<std::string> got(2);
    on_threads(2, [&](int t) {
      got[t] = p.process_request(kEvents, id(10 + t), [] { return std::string("single"); });
    });
    const bool batched = got[0] == "batched " + answer(id(10)) &&
                         got[1] == "batched " + answer(id(11));
    return batched && log.calls() == 2 ? 0 : 1;  // the child's copy of the log
  });
  const auto status = testing::wait_for(child, 30s);
  CHECK(status.exited);
  CHECK(status.code == 0);
  const NamespaceStats ns = segment_counters(name, kEvents);
  CHECK(ns.counter(NsCounter::batches) == 2);
  CHECK(ns.counter(NsCounter::batch_joined) == 4);
  CHECK(ns.counter(NsCounter::batchable_requests) == 4);
  // The master's batcher still works after the fork.
  on_threads(2, [&](int i) {
    CHECK(p.process_request(kEvents, id(20 + i), [] { return std::string("s"); }) ==
          "batched " + answer(id(20 + i)));
  });
  CHECK(log.calls() == 2);
}

TEST_CASE("pipectl_stats_shows_the_batch_figures_of_batched_types_only") {
  const std::string name = testing::unique_name("pl-bctl");
  testing::SegmentGuard guard(name);
  PipelineConfig cfg = small_config(name);
  cfg.batch_size = 4;
  cfg.batch_timeout = 5s;
  Pipeline p(cfg);
  BatchLog log;
  p.register_batch_handler(std::string(kEvents), log.handler());
  on_threads(8, [&](int i) { p.process_request(kEvents, id(i), [] { return std::string("s"); }); });
  p.process_request("settings_get", id(1), [] { return std::string("s"); });

  const auto r = pipectl_test::pipectl({"stats", "--name", name});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  const auto lines = pipectl_test::lines_of(r.out);
  std::size_t header = lines.size();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].rfind("batching", 0) == 0) header = i;
  }
  INFO(r.out);
  REQUIRE(header + 1 < lines.size());
  CHECK(lines[header].find("avg size") != std::string::npos);
  CHECK(lines[header].find("formed%") != std::string::npos);
  // One row, for the batched type: 2 batches, 8 batchable, 4.0 per batch, all joined.
  REQUIRE(header + 2 == lines.size());
  const std::string& row = lines[header + 1];
  CHECK(row.rfind("events_by_range ", 0) == 0);
  CHECK(row.find(" 2 ") != std::string::npos);
  CHECK(row.find(" 8 ") != std::string::npos);
  CHECK(row.find(" 4.0 ") != std::string::npos);
  CHECK(row.find("100.0%") != std::string::npos);
}

}  // TEST_SUITE
