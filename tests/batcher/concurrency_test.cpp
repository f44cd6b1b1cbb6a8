// Many threads at once (run under -Db_sanitize=thread too): every caller gets the value of its
// own key, batches respect their bounds, the batch function never runs concurrently with
// itself, and the statistics add up.
#include "batch_recorder.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace batcher_test;
using Strings = std::vector<std::string>;

TEST_SUITE("batcher") {

TEST_CASE("many_threads_submitting_at_once_each_get_the_answer_for_their_own_key") {
  constexpr int kThreads = 8;
  constexpr int kRequestsPerThread = 400;
  constexpr std::size_t kMaxBatch = 5;
  // 64 keys for 3200 requests: identical keys meet in one window often.
  auto key_of = [](int thread, int i) {
    if (i % 50 == 7) return "bad-" + std::to_string(thread) + "-" + std::to_string(i);
    return "k" + std::to_string((thread * 7 + i) % 64);
  };
  auto is_bad = [](const std::string& key) { return key.rfind("bad-", 0) == 0; };

  std::atomic<int> running_batches{0};
  std::atomic<int> overlapping_batches{0};
  std::atomic<int> oversized_batches{0};
  std::atomic<int> repeated_keys{0};
  std::atomic<std::uint64_t> observed_requests{0};
  // Batches holding k13 or a "bad-" key fail as a whole; in the fallback k13 succeeds and each
  // bad key throws an exception naming it, which must reach its own caller and nobody else.
  // Bad keys are unique per request, so an exception naming the key proves it is the caller's
  // own (callers of one identical key sharing an exception is covered in fallback_test).
  auto batch = [&](const Strings& keys) {
    if (running_batches.fetch_add(1) != 0) overlapping_batches.fetch_add(1);
    if (keys.size() > kMaxBatch) oversized_batches.fetch_add(1);
    if (std::set<std::string>(keys.begin(), keys.end()).size() != keys.size()) {
      repeated_keys.fetch_add(1);
    }
    const bool fail = std::find(keys.begin(), keys.end(), "k13") != keys.end() ||
                      std::any_of(keys.begin(), keys.end(), is_bad);
    Strings values;
    for (const auto& key : keys) values.push_back(value_of(key));
    running_batches.fetch_sub(1);
    if (fail) throw std::runtime_error("batch with k13 or a bad key");
    return values;
  };
  auto single = [&is_bad](const std::string& key) {
    if (is_bad(key)) throw std::runtime_error("broken: " + key);
    return value_of(key);
  };
  auto observer = [&](const pipecache::BatchReport& report) {
    observed_requests.fetch_add(report.requests);
  };
  StringBatcher batcher(batch, single, {.max_batch_size = kMaxBatch,
                                        .max_wait = std::chrono::milliseconds(2)},
                        observer);

  std::atomic<int> wrong_values{0};
  std::atomic<int> bad_errors{0};
  std::atomic<int> bad_requests{0};
  std::atomic<int> unexpected_errors{0};
  std::atomic<int> go{0};
  auto check = [&](const std::string& key, std::future<std::string>& future) {
    if (is_bad(key)) bad_requests.fetch_add(1);
    try {
      if (future.get() != value_of(key)) wrong_values.fetch_add(1);
    } catch (const std::runtime_error& error) {
      if (is_bad(key) && std::string(error.what()) == "broken: " + key) {
        bad_errors.fetch_add(1);
      } else {
        unexpected_errors.fetch_add(1);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      go.fetch_add(1);
      while (go.load() < kThreads) std::this_thread::yield();  // start together
      for (int i = 0; i < kRequestsPerThread; i += 3) {
        // Up to three of this thread's requests in flight at once.
        std::vector<std::pair<std::string, std::future<std::string>>> in_flight;
        for (int j = i; j < std::min(i + 3, kRequestsPerThread); ++j) {
          in_flight.emplace_back(key_of(t, j), batcher.submit(key_of(t, j)));
        }
        for (auto& [key, future] : in_flight) check(key, future);
      }
    });
  }
  for (auto& thread : threads) thread.join();

  CHECK(wrong_values.load() == 0);
  CHECK(unexpected_errors.load() == 0);
  CHECK(bad_requests.load() == kThreads * 8);  // i = 7, 57, ..., 357 in each thread
  CHECK(bad_errors.load() == bad_requests.load());
  CHECK(overlapping_batches.load() == 0);
  CHECK(oversized_batches.load() == 0);
  CHECK(repeated_keys.load() == 0);

  const pipecache::BatcherStats stats = batcher.stats();
  constexpr std::uint64_t kTotal = kThreads * kRequestsPerThread;
  CHECK(stats.requests == kTotal);
  CHECK(stats.unbatched == 0);
  CHECK(observed_requests.load() == kTotal);
  // Every request was answered exactly once: by a batch, or alone after its batch failed.
  CHECK(stats.batched_requests + stats.fallbacks == kTotal);
  CHECK(stats.failures > 0);
  CHECK(stats.batched_keys + stats.duplicates == kTotal);
  CHECK(stats.fallback_errors == static_cast<std::uint64_t>(bad_requests.load()));
  CHECK(stats.largest_batch >= 2);
  CHECK(batcher.pending() == 0);
}

TEST_CASE("shutdown_racing_with_submitters_leaves_no_request_waiting") {
  constexpr int kThreads = 6;
  constexpr int kRequestsPerThread = 300;
  Recorder recorder;
  // Windows never expire and batches are large: only size and shutdown dispatch.
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 64, .max_wait = kNever});
  std::atomic<int> submitted{0};
  std::vector<std::vector<std::future<std::string>>> futures(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRequestsPerThread; ++i) {
        futures[t].push_back(batcher.submit(std::to_string(t) + ":" + std::to_string(i)));
        submitted.fetch_add(1);
      }
    });
  }
  while (submitted.load() < kThreads * kRequestsPerThread / 2) std::this_thread::yield();
  batcher.shutdown();  // some threads are still submitting: theirs become late requests
  for (auto& thread : threads) thread.join();

  int wrong = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kRequestsPerThread; ++i) {
      auto& future = futures[t][i];
      REQUIRE(ready_within(future, kGenerous));
      if (future.get() != value_of(std::to_string(t) + ":" + std::to_string(i))) ++wrong;
    }
  }
  CHECK(wrong == 0);
  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.requests == kThreads * kRequestsPerThread);
  CHECK(stats.batched_requests + stats.unbatched == kThreads * kRequestsPerThread);
  CHECK(recorder.single_calls().size() == stats.unbatched);
}

}  // TEST_SUITE
