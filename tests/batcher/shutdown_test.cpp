// Shutdown: pending batches are drained at once, the running one finishes, late requests are
// answered alone, and no request is ever left waiting.
#include "batch_recorder.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

using namespace batcher_test;
using Strings = std::vector<std::string>;

namespace {

// Polls `condition` until it holds or kGenerous passes; true if it held.
template <typename Condition>
bool eventually(Condition condition) {
  const auto give_up = std::chrono::steady_clock::now() + kGenerous;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

}  // namespace

TEST_SUITE("batcher") {

TEST_CASE("shutdown_answers_requests_waiting_in_a_window_without_waiting_for_it") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 100, .max_wait = kNever}, recorder.observer());
  std::vector<std::future<std::string>> futures;
  for (int i = 0; i < 5; ++i) futures.push_back(batcher.submit("k" + std::to_string(i)));
  CHECK(batcher.pending() == 5);
  batcher.shutdown();
  // shutdown() returns only once every pending caller has been answered.
  for (int i = 0; i < 5; ++i) {
    REQUIRE(ready_within(futures[i], std::chrono::seconds(0)));
    CHECK(futures[i].get() == value_of("k" + std::to_string(i)));
  }
  CHECK(batcher.pending() == 0);
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].trigger == pipecache::BatchTrigger::shutdown);
  CHECK(reports[0].requests == 5);
}

TEST_CASE("shutdown_lets_the_running_batch_finish_and_drains_the_queue_behind_it") {
  Recorder recorder;
  std::promise<void> entered;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  bool first_call = true;  // only touched on the dispatcher thread
  auto blocking_batch = [&](const Strings& keys) {
    recorder.batch_called(keys);
    if (first_call) {
      first_call = false;
      entered.set_value();
      released.wait();
    }
    Strings values;
    for (const auto& key : keys) values.push_back(value_of(key));
    return values;
  };
  StringBatcher batcher(blocking_batch, recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever}, recorder.observer());
  std::vector<std::future<std::string>> futures;
  futures.push_back(batcher.submit("a"));
  futures.push_back(batcher.submit("b"));  // full: dispatched, then blocks in the function
  entered.get_future().wait();
  futures.push_back(batcher.submit("c"));
  futures.push_back(batcher.submit("d"));  // full: queued behind the running batch
  futures.push_back(batcher.submit("e"));  // open window, one hour long

  std::thread stopper([&batcher] { batcher.shutdown(); });
  REQUIRE(eventually([&batcher] { return batcher.is_shut_down(); }));

  // Shutdown has begun: a new request is answered alone, at once, on this thread.
  auto late = batcher.submit("late");
  REQUIRE(ready_within(late, std::chrono::seconds(0)));
  CHECK(late.get() == value_of("late"));
  // Shutdown cannot finish while a batch runs: the queued callers are still waiting.
  CHECK(futures[2].wait_for(std::chrono::milliseconds(20)) == std::future_status::timeout);

  release.set_value();
  stopper.join();
  const char* keys[] = {"a", "b", "c", "d", "e"};
  for (std::size_t i = 0; i < futures.size(); ++i) {
    REQUIRE(ready_within(futures[i], std::chrono::seconds(0)));
    CHECK(futures[i].get() == value_of(keys[i]));
  }
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"a", "b"}, {"c", "d"}, {"e"}});
  CHECK(recorder.single_calls() == Strings{"late"});
  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 3);
  CHECK(reports[1].trigger == pipecache::BatchTrigger::full);
  CHECK(reports[2].trigger == pipecache::BatchTrigger::shutdown);
  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.requests == 6);
  CHECK(stats.unbatched == 1);
  CHECK(stats.batched_requests == 5);
}

TEST_CASE("the_destructor_drains_like_shutdown") {
  Recorder recorder;
  std::vector<std::future<std::string>> futures;
  {
    StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                          {.max_batch_size = 100, .max_wait = kNever});
    for (const char* key : {"p", "q", "r"}) futures.push_back(batcher.submit(key));
  }
  for (auto& future : futures) REQUIRE(ready_within(future, std::chrono::seconds(0)));
  CHECK(futures[1].get() == value_of("q"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"p", "q", "r"}});
}

TEST_CASE("a_request_after_shutdown_runs_alone_with_its_own_result_or_exception") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 10, .max_wait = kNever});
  batcher.shutdown();
  CHECK(batcher.load("after") == value_of("after"));
  CHECK_THROWS_WITH_AS(batcher.load("bad_after"), "no such range: bad_after",
                       std::runtime_error);
  CHECK(recorder.batch_calls().empty());
  CHECK(recorder.single_calls() == Strings{"after", "bad_after"});
  CHECK(batcher.stats().unbatched == 2);
  CHECK(batcher.stats().requests == 2);
}

TEST_CASE("shutdown_is_idempotent_and_safe_from_several_threads") {
  Recorder recorder;
  std::vector<std::future<std::string>> futures;
  {
    StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                          {.max_batch_size = 100, .max_wait = kNever});
    for (int i = 0; i < 10; ++i) futures.push_back(batcher.submit(std::to_string(i)));
    std::vector<std::thread> stoppers;
    for (int i = 0; i < 4; ++i) stoppers.emplace_back([&batcher] { batcher.shutdown(); });
    for (auto& stopper : stoppers) stopper.join();
    batcher.shutdown();
  }  // and the destructor once more
  for (auto& future : futures) REQUIRE(ready_within(future, std::chrono::seconds(0)));
  CHECK(recorder.batch_calls().size() == 1);
}

TEST_CASE("shutdown_called_from_a_batch_function_drains_without_deadlock") {
  Recorder recorder;
  StringBatcher* self = nullptr;
  auto stopping_batch = [&](const Strings& keys) {
    recorder.batch_called(keys);
    self->shutdown();  // on the dispatcher thread: must not try to join itself
    Strings values;
    for (const auto& key : keys) values.push_back(value_of(key));
    return values;
  };
  StringBatcher batcher(stopping_batch, recorder.single_function(),
                        {.max_batch_size = 1, .max_wait = kNever});
  self = &batcher;
  CHECK(batcher.load("only") == value_of("only"));
  CHECK(batcher.is_shut_down());
  CHECK(batcher.load("late") == value_of("late"));
  CHECK(recorder.single_calls() == Strings{"late"});
}

}  // TEST_SUITE
