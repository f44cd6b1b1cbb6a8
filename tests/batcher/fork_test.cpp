// A prefork master may build a Batcher before forking its workers. The workers inherit the
// object but not its dispatcher thread: they must be answered (alone), never left waiting.
#include "batch_recorder.hpp"

#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <vector>

using namespace batcher_test;
using Strings = std::vector<std::string>;

TEST_SUITE("batcher") {

TEST_CASE("a_batcher_inherited_through_fork_answers_alone_in_the_child") {
  Recorder recorder;
  StringBatcher batcher(recorder.batch_function(), recorder.single_function(),
                        {.max_batch_size = 2, .max_wait = kNever});
  // A request waits in the parent's window at the moment of the fork: the child inherits a
  // queue, a locked-or-not mutex and a condition variable the dispatcher sleeps on.
  auto parent_pending = batcher.submit("parent");

  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    alarm(20);  // a hang kills the child, and the parent sees a signal instead of exit 0
    int code = 0;
    if (batcher.load("child") != value_of("child")) code = 1;
    try {
      batcher.load("bad_child");
      code = 2;
    } catch (const std::runtime_error&) {
    }
    if (batcher.pending() != 0 || !batcher.is_shut_down()) code = 3;
    batcher.shutdown();
    batcher.~Batcher();  // must neither join a thread nor destroy the inherited locks
    _exit(code);
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  // The parent is untouched: its pending request completes its batch as usual.
  auto partner = batcher.submit("partner");
  REQUIRE(ready_within(parent_pending, kGenerous));
  CHECK(parent_pending.get() == value_of("parent"));
  CHECK(partner.get() == value_of("partner"));
  CHECK(recorder.batch_calls() == std::vector<Strings>{{"parent", "partner"}});
  CHECK(batcher.stats().requests == 2);  // the child's requests are not the parent's
}

}  // TEST_SUITE
