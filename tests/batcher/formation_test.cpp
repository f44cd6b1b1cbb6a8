// How batches form: by size, by window, and with identical keys sharing one slot.
#include "batch_recorder.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

using namespace batcher_test;
using Strings = std::vector<std::string>;

TEST_SUITE("batcher") {

TEST_CASE("a_full_batch_is_dispatched_without_waiting_for_its_window") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 4, .max_wait = kNever}, recorder.observer());
  std::vector<std::future<std::string>> futures;
  for (const char* key : {"k0", "k1", "k2", "k3"}) futures.push_back(batcher.submit(key));

  // The window is an hour long: only reaching max_batch_size can have dispatched the batch.
  for (std::size_t i = 0; i < futures.size(); ++i) {
    REQUIRE(ready_within(futures[i], kGenerous));
    CHECK(futures[i].get() == value_of("k" + std::to_string(i)));
  }
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"k0", "k1", "k2", "k3"}});
  CHECK(recorder.single_calls().empty());
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].trigger == pipecache::BatchTrigger::full);
  CHECK(reports[0].keys == 4);
  CHECK(reports[0].requests == 4);
  CHECK_FALSE(reports[0].failed);

  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.requests == 4);
  CHECK(stats.batches == 1);
  CHECK(stats.batched_requests == 4);
  CHECK(stats.joined == 4);
  CHECK(stats.formation_efficiency() == doctest::Approx(1.0));
}

TEST_CASE("requests_beyond_a_full_batch_open_the_next_window") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 3, .max_wait = kNever});
  std::vector<std::future<std::string>> futures;
  for (const char* key : {"a", "b", "c", "d", "e", "f", "g"}) futures.push_back(batcher.submit(key));
  for (std::size_t i = 0; i < 6; ++i) REQUIRE(ready_within(futures[i], kGenerous));
  // "g" sits alone in a window that will not expire during the test.
  CHECK(batcher.pending() == 1);
  CHECK(futures[6].wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);

  batcher.shutdown();
  REQUIRE(ready_within(futures[6], std::chrono::seconds(0)));
  CHECK(futures[6].get() == value_of("g"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"a", "b", "c"}, {"d", "e", "f"}, {"g"}});
  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.batches == 3);
  CHECK(stats.joined == 6);  // "g" was answered, but alone: it did not join a batch
  CHECK(stats.largest_batch == 3);
}

TEST_CASE("a_window_dispatches_a_partial_batch_when_it_expires") {
  Recorder recorder;
  const auto window = std::chrono::milliseconds(500);
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 100, .max_wait = window}, recorder.observer());
  const auto first_submit = std::chrono::steady_clock::now();
  std::vector<std::future<std::string>> futures;
  for (const char* key : {"x", "y", "z"}) futures.push_back(batcher.submit(key));
  for (auto& future : futures) REQUIRE(ready_within(future, kGenerous));
  const auto answered = std::chrono::steady_clock::now();

  // The window runs from the first request, so nothing may be answered before it closes.
  CHECK(answered - first_submit >= window);
  CHECK(futures[0].get() == value_of("x"));
  CHECK(futures[2].get() == value_of("z"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"x", "y", "z"}});
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].trigger == pipecache::BatchTrigger::window);
  // Each of the three requests waited most of the window (the first one all of it).
  CHECK(reports[0].wait >= window);
  CHECK(batcher.stats().wait_ns >= static_cast<std::uint64_t>(
                                       std::chrono::nanoseconds(window).count()));
}

TEST_CASE("with_max_idle_a_window_closes_once_requests_stop_arriving") {
  Recorder recorder;
  const auto idle = std::chrono::milliseconds(300);
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 100, .max_wait = kNever, .max_idle = idle},
                        recorder.observer());
  std::vector<std::future<std::string>> futures;
  for (const char* key : {"x", "y", "z"}) futures.push_back(batcher.submit(key));
  const auto last_submit = std::chrono::steady_clock::now();
  // The window is an hour long and the batch far from full: only the idle gap can close it.
  for (auto& future : futures) REQUIRE(ready_within(future, kGenerous));
  CHECK(std::chrono::steady_clock::now() - last_submit >= idle);
  CHECK(futures[1].get() == value_of("y"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"x", "y", "z"}});
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].trigger == pipecache::BatchTrigger::idle);
}

TEST_CASE("identical_keys_in_one_window_share_one_slot") {
  Recorder recorder;
  // Two distinct keys fill the batch: the copies of "a" must not count towards the size.
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever}, recorder.observer());
  std::vector<std::future<std::string>> futures;
  for (const char* key : {"a", "a", "a", "b"}) futures.push_back(batcher.submit(key));
  for (auto& future : futures) REQUIRE(ready_within(future, kGenerous));
  CHECK(futures[0].get() == value_of("a"));
  CHECK(futures[1].get() == value_of("a"));
  CHECK(futures[2].get() == value_of("a"));
  CHECK(futures[3].get() == value_of("b"));

  CHECK(recorder.batch_calls() == std::vector<Strings>{{"a", "b"}});
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].keys == 2);
  CHECK(reports[0].requests == 4);
  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.requests == 4);
  CHECK(stats.duplicates == 2);
  CHECK(stats.batched_keys == 2);
  CHECK(stats.batched_requests == 4);
}

TEST_CASE("an_identical_key_in_a_later_window_is_asked_again") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever});
  auto first = batcher.submit("a");
  auto second = batcher.submit("b");
  REQUIRE(ready_within(first, kGenerous));
  auto again = batcher.submit("a");  // a new window: the Batcher caches nothing
  auto other = batcher.submit("c");
  REQUIRE(ready_within(again, kGenerous));
  CHECK(again.get() == value_of("a"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"a", "b"}, {"a", "c"}});
}

TEST_CASE("invalid_options_are_rejected") {
  Recorder recorder;
  CHECK_THROWS_AS(StringBatcher(recorder.batch_function(), recorder.single_function(),
                                {.max_batch_size = 0}),
                  std::invalid_argument);
  CHECK_THROWS_AS(StringBatcher(recorder.batch_function(), recorder.single_function(),
                                {.max_wait = std::chrono::milliseconds(-1)}),
                  std::invalid_argument);
  CHECK_THROWS_AS(StringBatcher(recorder.batch_function(), recorder.single_function(),
                                {.max_idle = std::chrono::milliseconds(-1)}),
                  std::invalid_argument);
  CHECK_THROWS_AS(StringBatcher({}, recorder.single_function()), std::invalid_argument);
  CHECK_THROWS_AS(StringBatcher(recorder.batch_function(), {}), std::invalid_argument);
}

TEST_CASE("a_batch_of_one_key_is_still_a_batch_call") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 1, .max_wait = kNever});
  CHECK(batcher.load("solo") == value_of("solo"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"solo"}});
  CHECK(recorder.single_calls().empty());
  CHECK(batcher.stats().joined == 0);
}

}  // TEST_SUITE
