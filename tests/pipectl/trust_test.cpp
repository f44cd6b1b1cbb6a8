// pipectl at the trust boundary: the installed binary has no test hooks, and it opens only
// segments whose owner it trusts (root may read anybody's, and says whose).
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>

#include <doctest/doctest.h>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipectl_test;
using testing::SegmentGuard;
using testing::unique_name;

namespace {

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// pipectl and every libpipecache it loads (ldd), as files on disk.
std::vector<std::string> pipectl_and_its_library() {
  std::vector<std::string> files{pipectl_path()};
  RunResult ldd = run_program("/usr/bin/ldd", {pipectl_path()});
  for (const auto& line : lines_of(ldd.out)) {
    auto arrow = line.find("=> ");
    if (line.find("libpipecache") == std::string::npos || arrow == std::string::npos) continue;
    std::string path = line.substr(arrow + 3);
    path = path.substr(0, path.find(' '));
    files.push_back(path);
  }
  return files;
}

bool can_switch_users() {
  if (testing::running_as_root() && testing::nobody_uid() >= 0) return true;
  MESSAGE("not root or no user 'nobody': this trust test cannot act as another user here");
  return false;
}

}  // namespace

TEST_SUITE("pipectl_trust") {
  TEST_CASE("pipecache_fault_changes_nothing_for_the_installed_pipectl") {
    SegmentGuard g(unique_name("fault"));
    auto c = pipecache::Cache::create(testing::small_options(g.name()));
    RunOptions armed;
    armed.env = {"PIPECACHE_FAULT=stripe_locked:1"};
    RunResult set = pipectl({"set", "--name", g.name(), "k", "value"}, armed);
    INFO(describe(set));
    CHECK(set.exit_code == 0);
    CHECK(set.signal == 0);
    CHECK(c.get("k") == std::optional<std::string>("value"));
    armed.env = {"PIPECACHE_FAULT=mid_link:1"};
    CHECK(pipectl({"set", "--name", g.name(), "k2", "v2"}, armed).exit_code == 0);
    CHECK(c.get("k2") == std::optional<std::string>("v2"));
    // Not even the variable's name is in what gets installed.
    auto files = pipectl_and_its_library();
    CHECK(files.size() >= 1);
    for (const auto& f : files) {
      CAPTURE(f);
      std::string bytes = file_bytes(f);
      CHECK(!bytes.empty());
      CHECK(bytes.find("PIPECACHE_FAULT") == std::string::npos);
    }
  }

  TEST_CASE("root_reads_another_owners_segment_and_says_whose_but_writes_only_with_owner") {
    if (!can_switch_users()) return;
    SegmentGuard g(unique_name("owner"));
    REQUIRE(testing::squat_as_nobody(g.name(), 0640));
    RunResult stats = pipectl({"stats", "--name", g.name()});
    INFO(describe(stats));
    CHECK(stats.exit_code == 0);
    CHECK(stats.err.find("belongs to nobody") != std::string::npos);
    RunResult get = pipectl({"get", "--name", g.name(), "poison"});
    CHECK(get.exit_code == 0);
    CHECK(get.out == "the squatter's value");
    RunResult inspect = pipectl({"inspect", "--name", g.name()});
    CHECK(inspect.out.find("nobody (uid") != std::string::npos);
    RunResult set = pipectl({"set", "--name", g.name(), "k", "v"});
    check_one_line_error(set, "nobody");
    CHECK(set.exit_code == 3);
    RunResult trusted = pipectl({"set", "--name", g.name(), "--owner", "nobody", "k", "v"});
    INFO(describe(trusted));
    CHECK(trusted.exit_code == 0);
    RunOptions env;
    env.env = {"PIPECACHE_TRUSTED_OWNERS=nobody"};
    CHECK(pipectl({"del", "--name", g.name(), "k"}, env).exit_code == 0);
    RunResult unknown = pipectl({"set", "--name", g.name(), "--owner", "no-such-user-here", "k", "v"});
    check_one_line_error(unknown, "no-such-user-here");
    CHECK(unknown.exit_code == 2);
  }

  TEST_CASE("a_world_writable_segment_is_refused_even_to_root") {
    if (!can_switch_users()) return;
    SegmentGuard g(unique_name("squat"));
    REQUIRE(testing::squat_as_nobody(g.name(), 0666));
    for (const char* sub : {"stats", "keys", "inspect", "verify"}) {
      CAPTURE(sub);
      RunResult r = pipectl({sub, "--name", g.name()});
      check_one_line_error(r, "world-writable");
      CHECK(r.exit_code == 3);
    }
  }
}
