// Resilient batch processing: a failed batch is re-run one key at a time, and each caller
// gets its own key's answer or its own key's exception.
#include "batch_recorder.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

using namespace batcher_test;
using Strings = std::vector<std::string>;

TEST_SUITE("batcher") {

TEST_CASE("a_throwing_batch_function_falls_back_to_one_call_per_key") {
  Recorder recorder;
  auto failing_batch = [&recorder](const Strings& keys) -> Strings {
    recorder.batch_called(keys);
    throw std::runtime_error("database down");
  };
  StringBatcher batcher(failing_batch, recorder.single_function(),
                        {.max_batch_size = 4, .max_wait = kNever}, recorder.observer());
  // "bad" is asked twice: both of its callers get its exception, nobody else does.
  auto good1 = batcher.submit("good1");
  auto bad = batcher.submit("bad");
  auto bad_again = batcher.submit("bad");
  auto good2 = batcher.submit("good2");
  auto good3 = batcher.submit("good3");
  for (auto* future : {&good1, &bad, &bad_again, &good2, &good3}) {
    REQUIRE(ready_within(*future, kGenerous));
  }
  CHECK(good1.get() == value_of("good1"));
  CHECK(good2.get() == value_of("good2"));
  CHECK(good3.get() == value_of("good3"));
  CHECK_THROWS_WITH_AS(bad.get(), "no such range: bad", std::runtime_error);
  CHECK_THROWS_WITH_AS(bad_again.get(), "no such range: bad", std::runtime_error);

  CHECK(recorder.batch_calls() == std::vector<Strings>{{"good1", "bad", "good2", "good3"}});
  Strings singles = recorder.single_calls();
  std::sort(singles.begin(), singles.end());
  CHECK(singles == Strings{"bad", "good1", "good2", "good3"});  // each key once, not per caller

  const auto reports = recorder.reports();
  REQUIRE(reports.size() == 1);
  CHECK(reports[0].failed);
  CHECK(reports[0].returned == 0);
  REQUIRE(reports[0].error);
  CHECK_THROWS_WITH(std::rethrow_exception(reports[0].error), "database down");
  CHECK(reports[0].fallbacks == 5);
  CHECK(reports[0].fallback_errors == 2);

  const pipecache::BatcherStats stats = batcher.stats();
  CHECK(stats.failures == 1);
  CHECK(stats.fallbacks == 5);
  CHECK(stats.fallback_errors == 2);
  CHECK(stats.batched_requests == 0);  // the batch function answered nobody
  CHECK(stats.joined == 5);            // the batch formed; its failure is counted apart
}

TEST_CASE("a_batch_function_returning_the_wrong_number_of_values_falls_back") {
  for (int surplus : {-1, +1}) {
    CAPTURE(surplus);
    Recorder recorder;
    auto miscounting_batch = [&recorder, surplus](const Strings& keys) {
      recorder.batch_called(keys);
      // Values that would be wrong if they were used: the fallback must replace them all.
      Strings values(keys.size() + surplus, "wrong");
      return values;
    };
    StringBatcher batcher(miscounting_batch, recorder.single_function(),
                          {.max_batch_size = 3, .max_wait = kNever}, recorder.observer());
    auto a = batcher.submit("a");
    auto b = batcher.submit("b");
    auto c = batcher.submit("c");
    for (auto* future : {&a, &b, &c}) REQUIRE(ready_within(*future, kGenerous));
    CHECK(a.get() == value_of("a"));
    CHECK(b.get() == value_of("b"));
    CHECK(c.get() == value_of("c"));
    CHECK(recorder.single_calls().size() == 3);
    const auto reports = recorder.reports();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].failed);
    CHECK(reports[0].returned == static_cast<std::size_t>(3 + surplus));
    CHECK_FALSE(reports[0].error);  // it returned: there is no exception to report
    CHECK(batcher.stats().failures == 1);
    CHECK(batcher.stats().fallbacks == 3);
  }
}

TEST_CASE("a_successful_batch_never_calls_the_single_function") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever});
  // "bad..." would throw in the single function; the batch function answers it fine.
  auto bad = batcher.submit("bad_but_batched");
  auto good = batcher.submit("good");
  REQUIRE(ready_within(bad, kGenerous));
  CHECK(bad.get() == value_of("bad_but_batched"));
  CHECK(good.get() == value_of("good"));
  CHECK(recorder.single_calls().empty());
  CHECK(batcher.stats().failures == 0);
}

TEST_CASE("an_observer_that_throws_does_not_cost_the_callers_their_answers") {
  Recorder recorder;
  auto throwing_observer = [](const pipecache::BatchReport&) {
    throw std::runtime_error("metrics backend down");
  };
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever}, throwing_observer);
  auto a = batcher.submit("a");
  auto b = batcher.submit("b");
  REQUIRE(ready_within(a, kGenerous));
  REQUIRE(ready_within(b, kGenerous));
  CHECK(a.get() == value_of("a"));
  CHECK(b.get() == value_of("b"));
  // The dispatcher survived: a later batch is still served.
  auto c = batcher.submit("c");
  auto d = batcher.submit("d");
  REQUIRE(ready_within(c, kGenerous));
  CHECK(c.get() == value_of("c"));
}

TEST_CASE("callbacks_run_outside_the_lock_and_may_submit_to_their_own_batcher") {
  // If the batch function ran under the Batcher's mutex, submit() and stats() inside it
  // would deadlock (std::mutex is not recursive) and this test would time out.
  Recorder recorder;
  std::future<std::string> follow_up;
  StringBatcher* self = nullptr;
  auto batch = [&](const Strings& keys) {
    recorder.batch_called(keys);
    if (keys.front() == "first") {
      follow_up = self->submit("follow_up");
      (void)self->stats();
    }
    Strings values;
    for (const auto& key : keys) values.push_back(value_of(key));
    return values;
  };
  StringBatcher batcher(batch, recorder.single_function(),
                        {.max_batch_size = 1, .max_wait = kNever});
  self = &batcher;
  CHECK(batcher.load("first") == value_of("first"));
  REQUIRE(follow_up.valid());
  REQUIRE(ready_within(follow_up, kGenerous));
  CHECK(follow_up.get() == value_of("follow_up"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"first"}, {"follow_up"}});
}

}  // TEST_SUITE
