// Regression tests for the fuzzers' findings (suite fuzz_regression).
//
//  - Every input under tests/fuzz/regressions/<target>/ is replayed through its target with
//    nothing skipped, each in a forked child: the child must exit normally. guard_mmap.cpp is
//    linked in, so a read past the segment faults even without a sanitizer.
//  - Direct tests state the same bugs without needing a sanitizer or the fuzz input format:
//    a hostile writer rewrites a validated header field of an OPEN segment, then a read path
//    runs. Each is a child process, so a crash fails one case, not the binary.
// Each reproduces a core bug the fuzzers found (all fixed; tests/fuzz/known_bugs keeps the history).
#include <doctest/doctest.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <functional>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <pipecache/cache.hpp>

#include "segment/layout.hpp"
#include "support/process.hpp"

namespace fuzz {
int segment_one(const std::uint8_t* data, std::size_t size);
int glob_one(const std::uint8_t* data, std::size_t size);
int keys_one(const std::uint8_t* data, std::size_t size);
int units_one(const std::uint8_t* data, std::size_t size);
}  // namespace fuzz

using namespace std::chrono_literals;
using pipecache::Cache;
namespace d = pipecache::detail;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* dd = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(dd))
      if (e->d_name[0] != '.') out.push_back(dir + "/" + e->d_name);
    ::closedir(dd);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Runs `body` in a child; true when it exited with 0 (no crash, no abort, no sanitizer report).
bool survives(const std::function<int()>& body, std::string* how) {
  pid_t pid = testing::spawn([&] {
    // The child dies of its own signals: doctest's crash handler (inherited) would report
    // the child's crash as the parent's test case.
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE}) std::signal(sig, SIG_DFL);
    return body();
  });
  auto st = testing::wait_for(pid, 120s);
  if (st.exited && st.code == 0) return true;
  *how = st.signaled ? "killed by signal " + std::to_string(st.signal)
                     : st.timed_out ? std::string("timed out") : "exit code " + std::to_string(st.code);
  return false;
}

// Writes `value` over a header field of the segment file (the same pages every process maps).
template <typename T>
void rewrite_header(const std::string& name, std::size_t field_offset, T value) {
  int fd = ::open(Cache::path_of(name).c_str(), O_RDWR);
  if (fd < 0) return;
  if (::pwrite(fd, &value, sizeof value, static_cast<off_t>(field_offset)) != static_cast<ssize_t>(sizeof value))
    std::abort();
  ::close(fd);
}

// Puts a header field back when the test ends: the parent's own Cache handle would otherwise
// follow the rewritten offset when it detaches (the bug under test, in the test's process).
class FieldRestore {
 public:
  FieldRestore(std::string name, std::size_t offset) : name_(std::move(name)), offset_(offset) {
    int fd = ::open(Cache::path_of(name_).c_str(), O_RDONLY);
    REQUIRE(fd >= 0);
    REQUIRE(::pread(fd, &value_, sizeof value_, static_cast<off_t>(offset_)) == static_cast<ssize_t>(sizeof value_));
    ::close(fd);
  }
  ~FieldRestore() { rewrite_header(name_, offset_, value_); }

 private:
  std::string name_;
  std::size_t offset_;
  std::uint64_t value_ = 0;
};

Cache make_filled(const std::string& name) {
  pipecache::Options o = testing::small_options(name, 256u << 10);
  Cache c = Cache::create(o);
  for (int i = 0; i < 50; ++i) c.put("t1:" + std::to_string(i), std::string(100 + i, 'v'));
  for (int i = 0; i < 50; i += 3) c.erase("t1:" + std::to_string(i));  // free blocks in the bins
  return c;
}

}  // namespace

TEST_SUITE("fuzz_regression") {
  TEST_CASE("every_recorded_fuzz_finding_replays_without_a_crash") {
    struct Target {
      const char* name;
      int (*one)(const std::uint8_t*, std::size_t);
    };
    const Target targets[] = {{"segment", fuzz::segment_one}, {"glob", fuzz::glob_one},
                              {"keys", fuzz::keys_one}, {"units", fuzz::units_one}};
    int replayed = 0;
    for (const auto& t : targets) {
      for (const auto& file : files_in(std::string(FUZZ_REGRESSIONS_DIR) + "/" + t.name)) {
        auto bytes = read_all(file);
        std::string how;
        bool ok = survives([&] { return t.one(bytes.data(), bytes.size()); }, &how);
        CHECK_MESSAGE(ok, file << ": " << how);
        ++replayed;
      }
    }
    MESSAGE("replayed " << replayed << " recorded findings");
  }

  // Segment::stripes() re-reads Header::stripes_off on every call (segment.hpp), and
  // Cache::inspect walks it after open validated it once.
  TEST_CASE("inspect_ignores_a_stripes_offset_rewritten_after_open") {
    testing::SegmentGuard g(testing::unique_name("fz-inspect"));
    Cache c = make_filled(g.name());
    FieldRestore restore(g.name(), offsetof(d::Header, stripes_off));
    std::string how;
    CHECK_MESSAGE(survives([&] {
                    Cache o = Cache::open(g.name());
                    rewrite_header(g.name(), offsetof(d::Header, stripes_off), o.inspect().segment_bytes);
                    return o.inspect().stripes == 0 ? 1 : 0;
                  }, &how),
                  how);
  }

  // collect_stats builds an Arena from Header::arena_off / arena_bytes as they are now.
  TEST_CASE("stats_ignore_an_arena_offset_rewritten_after_open") {
    testing::SegmentGuard g(testing::unique_name("fz-stats"));
    Cache c = make_filled(g.name());
    FieldRestore restore(g.name(), offsetof(d::Header, arena_off));
    std::string how;
    CHECK_MESSAGE(survives([&] {
                    Cache o = Cache::open(g.name());
                    rewrite_header(g.name(), offsetof(d::Header, arena_off), o.inspect().segment_bytes);
                    return o.stats().entries > 0 ? 0 : 1;
                  }, &how),
                  how);
  }

  // The first counted operation claims a process slot through Segment::slots(), which
  // re-reads Header::slots_off: a rewritten offset turns the claim into a write anywhere.
  TEST_CASE("first_operation_ignores_a_slots_offset_rewritten_after_open") {
    testing::SegmentGuard g(testing::unique_name("fz-slots"));
    Cache c = make_filled(g.name());
    FieldRestore restore(g.name(), offsetof(d::Header, slots_off));
    std::string how;
    CHECK_MESSAGE(survives([&] {
                    Cache o = Cache::open(g.name());
                    rewrite_header(g.name(), offsetof(d::Header, slots_off), o.inspect().segment_bytes);
                    std::string out;
                    return o.get("t1:1", out) ? 0 : 1;
                  }, &how),
                  how);
  }

  // plan_geometry: pow2_ceil(max_entries) is std::bit_ceil past 2^63: undefined behaviour
  // (in practice 1), so an absurd limit is accepted instead of being an error.
  TEST_CASE("absurd_max_entries_is_an_error_not_undefined_behaviour") {
    testing::SegmentGuard g(testing::unique_name("fz-maxent"));
    pipecache::Options o = testing::small_options(g.name(), 256u << 10);
    o.max_entries = (std::uint64_t{1} << 63) + 1;
    CHECK_THROWS_AS(Cache::create(o), pipecache::Error);
  }
}
