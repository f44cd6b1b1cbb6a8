#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <vector>

#include "segment/layout.hpp"
#include "segment/segment.hpp"
#include "segment/watch.hpp"
#include "store/table.hpp"
#include "support/process.hpp"

using namespace pipecache;

namespace {
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }
void overwrite(const std::string& path, std::size_t offset, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset)) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}
}  // namespace

TEST_SUITE("segment") {
  TEST_CASE("bad_names_are_rejected_with_the_reason") {
    for (std::string bad : std::vector<std::string>{"", "a/b", "../etc", "with space", "x\n", std::string(65, 'a'), "semi;colon"}) {
      CAPTURE(bad);
      std::string msg = error_of([&] { Cache::validate_name(bad); });
      CHECK(contains(msg, "bad segment name"));
      CHECK_THROWS_AS(Cache::open(bad), Error);
      CHECK_THROWS_AS(Cache::create(testing::small_options(bad)), Error);
    }
    CHECK_NOTHROW(Cache::validate_name("ok.Name_1-2"));
    CHECK_NOTHROW(Cache::validate_name(std::string(64, 'z')));
  }

  TEST_CASE("create_then_open_sees_the_same_entries") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    auto a = Cache::create(testing::small_options(g.name()));
    a.put("k", "v");
    auto b = Cache::open(g.name());
    CHECK(b.get("k") == std::optional<std::string>("v"));
    CHECK(Cache::exists(g.name()));
  }

  TEST_CASE("create_fails_when_it_exists_and_open_when_missing") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    std::string missing = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(missing, g.name()));
    CHECK(contains(missing, "does not exist"));
    auto a = Cache::create(testing::small_options(g.name()));
    std::string exists = error_of([&] { Cache::create(testing::small_options(g.name())); });
    CHECK(contains(exists, "already exists"));
  }

  TEST_CASE("remove_unlinks_and_reports_absence") {
    std::string name = testing::unique_name("seg");
    { auto a = Cache::create(testing::small_options(name)); }
    CHECK(Cache::remove(name));
    CHECK_FALSE(Cache::remove(name));
    CHECK_FALSE(Cache::exists(name));
  }

  TEST_CASE("bad_options_are_errors") {
    std::string name = testing::unique_name("seg");
    auto o = testing::small_options(name);
    o.byte_budget = 100;
    CHECK(contains(error_of([&] { Cache::create(o); }), "byte budget"));
    o = testing::small_options(name);
    o.stripes = 3;
    CHECK(contains(error_of([&] { Cache::create(o); }), "power of two"));
    o = testing::small_options(name);
    o.permissions = 0444;
    CHECK(contains(error_of([&] { Cache::create(o); }), "permissions"));
    CHECK_FALSE(Cache::exists(name));
  }

  TEST_CASE("permissions_default_to_owner_only") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    auto a = Cache::create(testing::small_options(g.name()));
    struct stat st;
    REQUIRE(::stat(Cache::path_of(g.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    testing::SegmentGuard g2(testing::unique_name("seg"));
    auto o = testing::small_options(g2.name());
    o.permissions = 0640;
    auto b = Cache::create(o);
    REQUIRE(::stat(Cache::path_of(g2.name()).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
  }

  TEST_CASE("truncated_segment_is_reported") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    { auto a = Cache::create(testing::small_options(g.name())); }
    REQUIRE(::truncate(Cache::path_of(g.name()).c_str(), 100000) == 0);
    std::string msg = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(msg, g.name()));
    CHECK(contains(msg, "truncated"));
    REQUIRE(::truncate(Cache::path_of(g.name()).c_str(), 10) == 0);
    CHECK(contains(error_of([&] { Cache::open(g.name()); }), "truncated"));
  }

  TEST_CASE("foreign_object_is_reported") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    {
      std::ofstream f(Cache::path_of(g.name()));
      f << std::string(1 << 20, 'Z');
    }
    std::string msg = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(msg, "not a pipecache segment"));
    CHECK(contains(msg, g.name()));
    // open_or_create must not clobber somebody else's object either.
    CHECK_THROWS_AS(Cache::open_or_create(testing::small_options(g.name())), Error);
  }

  TEST_CASE("other_layout_version_is_reported") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    { auto a = Cache::create(testing::small_options(g.name())); }
    std::uint32_t v = pipecache::detail::kLayoutVersion + 1;
    overwrite(Cache::path_of(g.name()), offsetof(pipecache::detail::Header, layout_version),
              std::string_view(reinterpret_cast<const char*>(&v), 4));
    std::string msg = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(msg, "incompatible layout version"));
  }

  TEST_CASE("hostile_header_offsets_are_rejected") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    { auto a = Cache::create(testing::small_options(g.name())); }
    std::uint64_t off = 1ull << 40;
    overwrite(Cache::path_of(g.name()), offsetof(pipecache::detail::Header, arena_off),
              std::string_view(reinterpret_cast<const char*>(&off), 8));
    CHECK(contains(error_of([&] { Cache::open(g.name()); }), "corrupt header"));
  }

  TEST_CASE("dead_creator_leaves_no_segment_under_the_name") {
    std::string name = testing::unique_name("seg");
    testing::SegmentGuard g(name);
    // A creator SIGKILLed at any point leaves no name, or a complete segment: the name is
    // never visible half-initialised.
    pid_t child = testing::spawn([&] {
      auto o = testing::small_options(name, 256u << 20);
      pipecache::detail::Segment::create(o, pipecache::detail::Table::format);  // may or may not finish
      return 0;
    });
    usleep(2000);
    ::kill(child, SIGKILL);
    testing::wait_for(child, std::chrono::seconds(5));
    if (Cache::exists(name)) {
      CHECK_NOTHROW(Cache::open(name));  // only ever a complete segment
    } else {
      CHECK_THROWS_AS(Cache::open(name), Error);
    }
    auto c = Cache::open_or_create(testing::small_options(name));
    c.put("x", "y");
    CHECK(c.get("x").has_value());
  }

  TEST_CASE("open_or_create_race_ends_on_one_segment") {
    std::string name = testing::unique_name("race");
    testing::SegmentGuard g(name);
    std::vector<pid_t> kids;
    for (int i = 0; i < 8; ++i)
      kids.push_back(testing::spawn([&, i] {
        auto c = Cache::open_or_create(testing::small_options(name));
        c.put("from:" + std::to_string(i), std::to_string(i));
        return 0;
      }));
    for (pid_t k : kids) CHECK(testing::wait_for(k, std::chrono::seconds(20)).code == 0);
    auto c = Cache::open(name);
    for (int i = 0; i < 8; ++i) CHECK(c.get("from:" + std::to_string(i)) == std::optional<std::string>(std::to_string(i)));
  }
}

TEST_SUITE("segment") {
  TEST_CASE("errors_carry_a_kind_the_caller_can_act_on") {
    testing::SegmentGuard g(testing::unique_name("seg"));
    auto kind_of = [](const std::function<void()>& f) {
      try {
        f();
      } catch (const Error& e) {
        return e.kind();
      }
      FAIL("no error");
      return ErrorKind::system;
    };
    CHECK(kind_of([&] { Cache::open(g.name()); }) == ErrorKind::not_found);
    CHECK(kind_of([&] { Cache::open("bad/name"); }) == ErrorKind::invalid_argument);
    { auto a = Cache::create(testing::small_options(g.name())); }
    CHECK(kind_of([&] { Cache::create(testing::small_options(g.name())); }) == ErrorKind::already_exists);
    std::uint32_t v = pipecache::detail::kLayoutVersion + 7;
    overwrite(Cache::path_of(g.name()), offsetof(pipecache::detail::Header, layout_version),
              std::string_view(reinterpret_cast<const char*>(&v), 4));
    CHECK(kind_of([&] { Cache::open(g.name()); }) == ErrorKind::incompatible);
    REQUIRE(::truncate(Cache::path_of(g.name()).c_str(), 16) == 0);
    CHECK(kind_of([&] { Cache::open(g.name()); }) == ErrorKind::corrupt);
  }

  // The relay and each Pipeline reopen a name that names another object, or none.
  TEST_CASE("segment_watch_tells_same_removed_and_recreated_apart") {
    testing::SegmentGuard g(testing::unique_name("watch"));
    detail::SegmentWatch watch(g.name());
    CHECK(watch.check() == detail::SegmentWatch::Change::removed);  // nothing there yet
    Cache first = Cache::create(testing::small_options(g.name()));
    CHECK(watch.check() == detail::SegmentWatch::Change::recreated);  // not adopted yet
    watch.adopt(detail::segment_of(first).identity());
    CHECK(watch.check() == detail::SegmentWatch::Change::same);
    CHECK(watch.check() == detail::SegmentWatch::Change::same);
    REQUIRE(Cache::remove(g.name()));
    CHECK(watch.check() == detail::SegmentWatch::Change::removed);
    Cache second = Cache::create(testing::small_options(g.name()));
    CHECK(watch.check() == detail::SegmentWatch::Change::recreated);
    watch.adopt(detail::segment_of(Cache::open(g.name())).identity());  // the same object as second
    CHECK(watch.check() == detail::SegmentWatch::Change::same);
    CHECK(std::string(detail::SegmentWatch::describe(detail::SegmentWatch::Change::recreated)) == "recreated");
  }
}
