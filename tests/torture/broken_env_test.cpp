// Broken environments (suite 'reliability'): what the library does when /dev/shm is too small,
// when a segment is truncated or overwritten under attached processes, when permissions
// forbid access, when a creator crashed, when a segment is of an older layout, when a lock
// word in the segment is poisoned, and that names cannot leave /dev/shm.
//
// Tests that need root (a private mount namespace for a small /dev/shm, setuid to nobody)
// say so with a MESSAGE starting "SKIPPED" and assert nothing when not permitted.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>

#include "segment/layout.hpp"
#include "support/process.hpp"

using namespace std::chrono_literals;
using pipecache::Cache;
using pipecache::Error;
namespace d = pipecache::detail;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return {};
}

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

template <typename T>
void write_at(const std::string& name, std::size_t offset, T value) {
  int fd = ::open(Cache::path_of(name).c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, &value, sizeof value, static_cast<off_t>(offset)) == static_cast<ssize_t>(sizeof value));
  ::close(fd);
}

// Runs a shell command; returns its exit status and its output (stdout and stderr).
int run(const std::string& cmd, std::string* out) {
  std::FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return -1;
  std::array<char, 4096> buf;
  out->clear();
  while (std::size_t n = std::fread(buf.data(), 1, buf.size(), p))
    if (out->size() < 65536) out->append(buf.data(), n);
  int st = ::pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

// Runs `body` in a forked child with default crash signals (doctest's handler would report a
// child's death as the parent's); returns how the child ended.
testing::ExitStatus in_child(const std::function<int()>& body, std::chrono::milliseconds timeout = 60s) {
  pid_t pid = testing::spawn([&] {
    for (int sig : {SIGSEGV, SIGBUS, SIGABRT}) std::signal(sig, SIG_DFL);
    return body();
  });
  return testing::wait_for(pid, timeout);
}

Cache filled(const std::string& name, std::size_t budget = 1u << 20, int keys = 300) {
  Cache c = Cache::create(testing::small_options(name, budget));
  for (int i = 0; i < keys; ++i) {
    std::string k = "t1:" + std::to_string(i);
    c.put(k, testing::make_value(k, 1, 1000 + i % 2000));
  }
  return c;
}

bool is_root() { return ::geteuid() == 0; }

}  // namespace

TEST_SUITE("reliability") {
  // ---- /dev/shm too small ------------------------------------------------------------------
  // A private mount namespace with an 8 MiB /dev/shm; this binary re-runs itself inside it
  // (suite small_shm_helper), so the host's /dev/shm is never filled.
  TEST_CASE("dev_shm_too_small_is_a_clear_error_at_creation_and_the_pipeline_falls_back") {
    std::string out;
    if (run("unshare -m sh -c 'mount -t tmpfs -o size=8m tmpfs /dev/shm'", &out) != 0) {
      MESSAGE("SKIPPED: cannot make a private mount namespace with a small /dev/shm (needs root): " << out);
      return;
    }
    std::string cmd = fmt::format(
        "unshare -m sh -c 'mount -t tmpfs -o size=8m tmpfs /dev/shm && PIPECACHE_SMALL_SHM=1 exec {} "
        "-ts=small_shm_helper'",
        std::filesystem::read_symlink("/proc/self/exe").string());
    int rc = run(cmd, &out);
    INFO(out);
    CHECK(rc == 0);
    CHECK(contains(out, "1 passed | 0 failed"));  // it really ran, inside
  }

  // ---- truncated or overwritten while attached -----------------------------------------------
  // What is detected: every NEW open (Cache::open, pipectl, a restarted worker) compares the
  // object's size with the header and refuses it. What cannot be prevented by a library that
  // does not install a SIGBUS handler: a process already attached that touches a page beyond
  // the new end of file gets SIGBUS from the kernel. This test pins both facts.
  TEST_CASE("segment_truncated_while_attached_new_opens_refuse_it_attached_readers_get_sigbus") {
    testing::SegmentGuard g(testing::unique_name("rel-trunc"));
    // This process stays attached through the damage too (its life mutex is zeroed by the
    // truncation and re-extension below; the following cases must not notice).
    Cache c = filled(g.name());
    const auto size = c.inspect().segment_bytes;
    int pipe_fds[2], opened[2];
    REQUIRE(::pipe(pipe_fds) == 0);
    REQUIRE(::pipe(opened) == 0);
    // The attached reader: opens, then waits for the truncation, then reads every key.
    pid_t reader = testing::spawn([&] {
      for (int sig : {SIGSEGV, SIGBUS, SIGABRT}) std::signal(sig, SIG_DFL);
      Cache r = Cache::open(g.name());
      if (::write(opened[1], "o", 1) != 1) return 2;
      char byte;
      if (::read(pipe_fds[0], &byte, 1) != 1) return 2;
      std::string v;
      for (int i = 0; i < 300; ++i) r.get("t1:" + std::to_string(i), v);
      return 0;  // only reached if no value lay beyond the new end
    });
    char byte;
    REQUIRE(::read(opened[0], &byte, 1) == 1);
    REQUIRE(::truncate(Cache::path_of(g.name()).c_str(), static_cast<off_t>(size / 4)) == 0);
    REQUIRE(::write(pipe_fds[1], "x", 1) == 1);
    auto st = testing::wait_for(reader, 30s);
    CHECK(st.signaled);
    CHECK(st.signal == SIGBUS);
    std::string e = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(e, g.name()));
    CHECK(contains(e, "truncated or resized"));
    // Give the pages back (zero-filled) before this process detaches, or its own slot release
    // would take the SIGBUS.
    REQUIRE(::truncate(Cache::path_of(g.name()).c_str(), static_cast<off_t>(size)) == 0);
    for (int fd : {pipe_fds[0], pipe_fds[1], opened[0], opened[1]}) ::close(fd);
  }

  // Overwritten with zeros at full size (e.g. a careless `truncate -s 0` then re-extension):
  // every page exists, so attached processes get no SIGBUS; their reads are misses, verify
  // reports the damage, and a new open refuses the object (bad magic).
  TEST_CASE("segment_zeroed_while_attached_reads_miss_verify_reports_new_opens_refuse") {
    testing::SegmentGuard g(testing::unique_name("rel-zero"));
    Cache c = filled(g.name());  // attached through the damage, as in the case above
    const auto size = c.inspect().segment_bytes;
    auto st = in_child([&] {
      Cache r = Cache::open(g.name());
      std::string v;
      if (!r.get("t1:5", v)) return 2;  // attached and reading before the damage
      if (::truncate(Cache::path_of(g.name()).c_str(), 0) != 0) return 3;
      if (::truncate(Cache::path_of(g.name()).c_str(), static_cast<off_t>(size)) != 0) return 3;
      int hits = 0;
      for (int i = 0; i < 300; ++i) hits += r.get("t1:" + std::to_string(i), v);
      if (hits != 0) return 4;
      if (r.verify().ok()) return 5;  // the index is gone but the counters are not: a problem
      return 0;
    });
    CHECK(st.exited);
    CHECK(st.code == 0);
    std::string e = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(e, g.name()));
    CHECK(contains(e, "bad magic"));
  }

  // A process that stays attached while its segment is overwritten with zeros (or truncated
  // to nothing and re-extended) holds a life mutex that is now zeros: glibc can no longer
  // unlink it from the robust list of the thread that holds it. Each life mutex has a thread
  // of its own (lock/life.hpp), so that stale link dies with its thread and no later robust
  // lock of the process (another segment's life mutex, a stripe lock of a lease) follows it.
  // In a child: a crash is a failed assertion here, not a dead test binary.
  TEST_CASE("process_attached_while_its_segment_is_zeroed_keeps_using_other_segments") {
    enum class Damage { zero_fill, truncate_and_extend };
    for (Damage damage : {Damage::zero_fill, Damage::truncate_and_extend}) {
      CAPTURE(static_cast<int>(damage));
      testing::SegmentGuard victim(testing::unique_name("rel-victim"));
      testing::SegmentGuard other_a(testing::unique_name("rel-other"));
      testing::SegmentGuard other_b(testing::unique_name("rel-other"));
      const auto size = filled(victim.name()).inspect().segment_bytes;
      // Larger than the victim: no later mapping of them reuses its address range, so a
      // write through a stale link into it faults instead of landing in their slots.
      filled(other_a.name(), 8u << 20, 10);
      filled(other_b.name(), 8u << 20, 10);
      const std::string victim_path = Cache::path_of(victim.name());
      auto st = in_child([&] {
        {
          Cache r = Cache::open(victim.name());
          std::string v;
          if (!r.get("t1:5", v)) return 2;  // attached: its slot's life mutex is held
          if (damage == Damage::zero_fill) {
            int fd = ::open(victim_path.c_str(), O_WRONLY);
            if (fd < 0) return 3;
            std::string zeros(1u << 16, '\0');
            for (std::size_t off = 0; off < size; off += zeros.size())
              if (::pwrite(fd, zeros.data(), std::min(zeros.size(), size - off), static_cast<off_t>(off)) < 0)
                return 3;
            ::close(fd);
          } else {
            if (::truncate(victim_path.c_str(), 0) != 0) return 3;
            if (::truncate(victim_path.c_str(), static_cast<off_t>(size)) != 0) return 3;
          }
          if (r.get("t1:5", v)) return 4;  // the damage is visible to this process
        }  // detached: its slot's life mutex (zeros now) is let go, the segment unmapped
        // Every open claims a slot (a life mutex locked), every lease locks a stripe mutex.
        for (int i = 0; i < 300; ++i) {
          Cache c = Cache::open(i % 2 ? other_a.name() : other_b.name());
          std::string k = "t1:" + std::to_string(i % 10);
          std::string v;
          if (!c.get(k, v) || !testing::check_value(k, v)) return 5;
          std::string lk = "lease:" + std::to_string(i);
          auto l = c.try_lease(lk, 1s);
          if (l.state != pipecache::LeaseState::acquired) return 6;
          if (!c.publish(lk, "v", 0ms, 0, l.token)) return 7;
          if (!c.erase(lk)) return 8;
        }
        return 0;
      });
      CHECK(st.exited);
      CHECK(st.code == 0);
      CHECK_MESSAGE(!st.signaled, "the child died of signal " << st.signal);
      // The other segments are intact, and so is their slot registry.
      CHECK(Cache::open(other_a.name()).verify().ok());
      CHECK(Cache::open(other_b.name()).verify().ok());
    }
  }

  // ---- permissions --------------------------------------------------------------------------
  TEST_CASE("segments_are_created_with_the_requested_mode_whatever_the_umask") {
    for (unsigned mode : {0600u, 0640u, 0660u}) {
      testing::SegmentGuard g(testing::unique_name("rel-mode"));
      mode_t old = ::umask(077);
      pipecache::Options o = testing::small_options(g.name());
      o.permissions = mode;
      Cache c = Cache::create(o);
      ::umask(old);
      struct stat st;
      REQUIRE(::stat(Cache::path_of(g.name()).c_str(), &st) == 0);
      CHECK((st.st_mode & 0777) == mode);
    }
    CHECK(contains(error_of([] {
                     pipecache::Options o = testing::small_options(testing::unique_name("rel-mode"));
                     o.permissions = 0400;  // the owner could not write it
                     Cache::create(o);
                   }),
                   "permissions"));
  }

  // A process of another user cannot open a 0600 segment (nor a 0644 one: readers need write
  // access for the visited bits and their counters), nor take its name.
  TEST_CASE("another_user_gets_a_clear_permission_error") {
    if (!is_root()) {
      MESSAGE("SKIPPED: needs root to switch to the user nobody");
      return;
    }
    passwd* nobody = ::getpwnam("nobody");
    if (!nobody) {
      MESSAGE("SKIPPED: no user nobody");
      return;
    }
    for (unsigned mode : {0600u, 0644u}) {
      testing::SegmentGuard g(testing::unique_name("rel-perm"));
      pipecache::Options o = testing::small_options(g.name());
      o.permissions = mode;
      Cache c = Cache::create(o);
      auto st = in_child([&] {
        if (::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) return 10;
        std::string e = error_of([&] { Cache::open(g.name()); });
        if (!contains(e, "permission denied") || !contains(e, g.name())) {
          std::fprintf(stderr, "open as nobody: '%s'\n", e.c_str());
          return 1;
        }
        std::string e2 = error_of([&] { Cache::create(testing::small_options(g.name())); });
        if (!contains(e2, "already exists")) {
          std::fprintf(stderr, "create as nobody: '%s'\n", e2.c_str());
          return 2;
        }
        return 0;
      });
      CHECK_MESSAGE(st.exited, "mode " << std::oct << mode);
      CHECK_MESSAGE(st.code == 0, "mode " << std::oct << mode);
    }
  }

  TEST_CASE("chmod_000_segment_is_a_clear_error_for_its_owner_unless_root") {
    testing::SegmentGuard g(testing::unique_name("rel-000"));
    { Cache c = Cache::create(testing::small_options(g.name())); }
    REQUIRE(::chmod(Cache::path_of(g.name()).c_str(), 0) == 0);
    if (is_root()) {
      // Root bypasses file modes (CAP_DAC_OVERRIDE): the check that matters is another user's.
      auto st = in_child([&] {
        passwd* nobody = ::getpwnam("nobody");
        if (!nobody || ::setgid(nobody->pw_gid) != 0 || ::setuid(nobody->pw_uid) != 0) return 10;
        return contains(error_of([&] { Cache::open(g.name()); }), "permission denied") ? 0 : 1;
      });
      CHECK(st.exited);
      CHECK(st.code == 0);
    } else {
      CHECK(contains(error_of([&] { Cache::open(g.name()); }), "permission denied"));
    }
  }

  // ---- crashed creator ----------------------------------------------------------------------
  // A creator SIGKILLed while reserving a large segment (posix_fallocate of 512 MiB takes
  // ~100 ms here; a quarter of the free space when /dev/shm is smaller) builds it in an
  // unnamed file (O_TMPFILE): killed, it leaves no name at all, and the kernel frees the space.
  TEST_CASE("creator_killed_mid_creation_leaves_no_name_and_its_space_is_freed") {
    testing::SegmentGuard g(testing::unique_name("rel-creator"));
    std::string prefix = "pipecache." + g.name();
    auto names = [&] {
      int n = 0;
      for (const auto& e : std::filesystem::directory_iterator("/dev/shm"))
        n += e.path().filename().string().starts_with(prefix);
      return n;
    };
    // The creator's unnamed file, seen through its descriptors ("/dev/shm/#<inode> (deleted)").
    auto building = [](pid_t pid) {
      std::error_code ec;
      for (const auto& e : std::filesystem::directory_iterator(fmt::format("/proc/{}/fd", pid), ec)) {
        std::string target = std::filesystem::read_symlink(e.path(), ec).string();
        if (target.starts_with("/dev/shm/#")) return true;
      }
      return false;
    };
    struct statvfs vfs;
    REQUIRE(::statvfs("/dev/shm", &vfs) == 0);
    std::uint64_t budget = std::min<std::uint64_t>(512u << 20, vfs.f_bavail * vfs.f_frsize / 4);
    if (budget < (16u << 20)) {
      MESSAGE("SKIPPED: /dev/shm has less than 64 MiB free");
      return;
    }
    bool killed_mid_creation = false;
    for (int attempt = 0; attempt < 20 && !killed_mid_creation; ++attempt) {
      pid_t creator = testing::spawn([&] {
        Cache::create(testing::small_options(g.name(), budget));
        return 0;
      });
      for (int i = 0; i < 2000 && !building(creator); ++i) std::this_thread::sleep_for(100us);
      ::kill(creator, SIGKILL);
      testing::wait_for(creator, 10s);
      killed_mid_creation = !Cache::exists(g.name());
      if (!killed_mid_creation) Cache::remove(g.name());  // it finished first: try again
    }
    REQUIRE_MESSAGE(killed_mid_creation, "could not kill a creator mid-creation in 20 attempts");
    CHECK(names() == 0);
    CHECK(contains(error_of([&] { Cache::open(g.name()); }), "does not exist"));
    // The dead creator's reservation is gone (within a margin for other tests running).
    struct statvfs after;
    REQUIRE(::statvfs("/dev/shm", &after) == 0);
    CHECK(after.f_bavail * after.f_frsize + budget / 2 >= vfs.f_bavail * vfs.f_frsize);
    Cache c = Cache::create(testing::small_options(g.name()));
    CHECK(names() == 1);
    c.put("k", "v");
    CHECK(c.get("k") == std::optional<std::string>("v"));
  }

  // ---- older layout -------------------------------------------------------------------------
  TEST_CASE("segment_of_an_older_layout_is_refused_kept_and_the_pipeline_falls_back") {
    testing::SegmentGuard g(testing::unique_name("rel-old"));
    { Cache c = filled(g.name(), 1u << 20, 10); }
    write_at<std::uint32_t>(g.name(), offsetof(d::Header, layout_version), d::kLayoutVersion - 1);
    std::string e = error_of([&] { Cache::open(g.name()); });
    CHECK(contains(e, g.name()));
    CHECK(contains(e, fmt::format("incompatible layout version {}", d::kLayoutVersion - 1)));
    CHECK(contains(e, "pipectl destroy"));
    // open_or_create must not replace a segment other binaries may still use.
    CHECK_FALSE(error_of([&] { Cache::open_or_create(testing::small_options(g.name())); }).empty());
    CHECK(Cache::exists(g.name()));
    pipecache::PipelineConfig pc;
    pc.segment_name = g.name();
    pipecache::Pipeline p(pc);
    int computed = 0;
    auto v = p.process_request("events_by_range", {{"from", "1"}}, [&] {
      ++computed;
      return std::string("direct");
    });
    CHECK(v == "direct");
    CHECK(computed == 1);
    CHECK_FALSE(p.cache_available());
    CHECK(p.stats().local_fallbacks[static_cast<unsigned>(pipecache::FallbackCause::segment_unavailable)] >= 1);
  }

  // ---- poisoned lock word: denial of service, bounded ---------------------------------------
  // A writer of the segment can forge a stripe mutex's owner (here: a live process that will
  // never unlock). Robust mutexes recover from a DEAD owner only; a forged live owner makes
  // every writer of that stripe wait for the lock timeout (2 s) and drop its write. Readers
  // are unaffected (seqlock, no lock). Bounded, never a hang.
  TEST_CASE("forged_lock_owner_costs_writers_a_timeout_not_a_hang_and_readers_nothing") {
    testing::SegmentGuard g(testing::unique_name("rel-lock"));
    pipecache::Options o = testing::small_options(g.name());
    o.stripes = 16;
    Cache c = Cache::create(o);
    c.put("t1:k", "before");
    pid_t sleeper = testing::spawn([] {
      ::pause();
      return 0;
    });
    auto info = c.inspect();
    std::uint64_t stripes_off = 0;
    {
      int fd = ::open(Cache::path_of(g.name()).c_str(), O_RDONLY);
      REQUIRE(::pread(fd, &stripes_off, 8, offsetof(d::Header, stripes_off)) == 8);
      ::close(fd);
    }
    // glibc's pthread_mutex_t starts with the futex word holding the owner's tid.
    for (unsigned i = 0; i < info.stripes; ++i)
      write_at<std::int32_t>(g.name(), stripes_off + i * sizeof(d::Stripe) + offsetof(d::Stripe, mutex), sleeper);
    auto t0 = std::chrono::steady_clock::now();
    bool stored = c.put("t1:k", "after", 60s, 0);
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK_FALSE(stored);
    CHECK(waited >= 1500ms);
    CHECK(waited < 5s);
    auto t1 = std::chrono::steady_clock::now();
    CHECK(c.get("t1:k") == std::optional<std::string>("before"));
    CHECK(std::chrono::steady_clock::now() - t1 < 100ms);
    ::kill(sleeper, SIGKILL);
    testing::wait_for(sleeper, 10s);
    // Restore the words so that the segment can be detached and removed cleanly.
    for (unsigned i = 0; i < info.stripes; ++i)
      write_at<std::int32_t>(g.name(), stripes_off + i * sizeof(d::Stripe) + offsetof(d::Stripe, mutex), 0);
  }

  // ---- a lease that is never resolved ----------------------------------------------------------
  // A live process holding a lease with a far deadline (a hung handler, or a forged marker)
  // is never taken over; the pipeline's waiters give up after dedup_max_wait and compute
  // directly, so a request is delayed by at most that, never stuck.
  TEST_CASE("lease_held_by_a_hung_live_process_delays_requests_by_at_most_dedup_max_wait") {
    testing::SegmentGuard g(testing::unique_name("rel-lease"));
    Cache c = Cache::create(testing::small_options(g.name()));
    pipecache::PipelineConfig pc;
    pc.segment_name = g.name();
    pc.dedup_max_wait = 300ms;
    pc.enable_request_batching = false;
    pipecache::Pipeline p(pc);
    const pipecache::Params params{{"id", "1"}};
    std::string key = p.cache_key("whats_next", params);
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid_t holder = testing::spawn([&] {
      Cache h = Cache::open(g.name());
      auto r = h.try_lease(key, std::chrono::hours(1));
      if (::write(ready[1], r.state == pipecache::LeaseState::acquired ? "a" : "x", 1) != 1) return 1;
      ::pause();  // hung: never publishes, never dies
      return 0;
    });
    char byte = 0;
    REQUIRE(::read(ready[0], &byte, 1) == 1);
    REQUIRE(byte == 'a');
    CHECK(c.try_lease(key, 1s).state == pipecache::LeaseState::held_by_other);
    auto t0 = std::chrono::steady_clock::now();
    auto v = p.process_request("whats_next", params, [] { return std::string("computed"); });
    auto waited = std::chrono::steady_clock::now() - t0;
    CHECK(v == "computed");
    CHECK(waited >= 250ms);
    CHECK(waited < 2s);
    CHECK(p.stats().local_fallbacks[static_cast<unsigned>(pipecache::FallbackCause::dedup_wait_timeout)] >= 1);
    ::kill(holder, SIGKILL);
    testing::wait_for(holder, 10s);
    // Its holder dead, the lease is taken over at once.
    CHECK(c.try_lease(key, 1s).state == pipecache::LeaseState::taken_over);
    ::close(ready[0]);
    ::close(ready[1]);
  }

  // ---- names --------------------------------------------------------------------------------
  TEST_CASE("names_cannot_leave_dev_shm") {
    const std::string bads[] = {"../etc/passwd", "a/b", "/abs", std::string("nul\0x", 5), "sp ace", "", "%2e%2e",
                                std::string(65, 'a'), "new\nline"};
    for (const std::string& bad : bads) {
      std::string e = error_of([&] { Cache::create(testing::small_options(bad)); });
      CHECK_MESSAGE(contains(e, "bad segment name"), "name '" << bad << "'");
      CHECK_MESSAGE(contains(error_of([&] { Cache::open(bad); }), "bad segment name"), "name '" << bad << "'");
      CHECK_MESSAGE(contains(error_of([&] { Cache::remove(bad); }), "bad segment name"), "name '" << bad << "'");
    }
    // Dots are allowed, but the name always follows the fixed "pipecache." prefix inside
    // /dev/shm: "..", "." stay files of /dev/shm.
    for (std::string dots : {"..", ".", "..."}) {
      std::string path = Cache::path_of(dots);
      CHECK(std::filesystem::path(path).parent_path() == "/dev/shm");
      CHECK(std::filesystem::path(path).filename().string().starts_with("pipecache."));
    }
  }
}

// Runs only inside the private mount namespace made by the test above (PIPECACHE_SMALL_SHM).
TEST_SUITE("small_shm_helper") {
  TEST_CASE("inside_an_8_MiB_dev_shm") {
    if (!std::getenv("PIPECACHE_SMALL_SHM")) return;
    struct statvfs vfs;
    REQUIRE(::statvfs("/dev/shm", &vfs) == 0);
    REQUIRE(vfs.f_blocks * vfs.f_frsize <= (8u << 20));  // really the small one
    std::string name = "rel-small";
    std::string e = error_of([&] { Cache::create(testing::small_options(name, 64u << 20)); });
    INFO(e);
    CHECK(contains(e, "'" + name + "'"));
    CHECK(contains(e, "/dev/shm has no room"));
    CHECK(contains(e, "--shm-size"));
    CHECK_FALSE(Cache::exists(name));
    int left = 0;
    for (auto it = std::filesystem::directory_iterator("/dev/shm"); it != std::filesystem::directory_iterator(); ++it)
      ++left;
    CHECK(left == 0);  // the temporary was removed too
    CHECK(contains(error_of([&] { Cache::open_or_create(testing::small_options(name, 64u << 20)); }),
                   "/dev/shm has no room"));
    // A segment that fits is fine in the same place.
    {
      Cache ok = Cache::create(testing::small_options(name, 1u << 20));
      ok.put("k", "v");
      CHECK(ok.get("k") == std::optional<std::string>("v"));
    }
    Cache::remove(name);
    pipecache::PipelineConfig pc;
    pc.segment_name = name;
    pc.cache_memory_limit_mb = 64;
    pipecache::Pipeline p(pc);
    int computed = 0;
    for (int i = 0; i < 3; ++i) {
      auto v = p.process_request("settings_get", {{"user", "7"}}, [&] {
        ++computed;
        return std::string("computed");
      });
      CHECK(v == "computed");
    }
    CHECK(computed == 3);  // no cache: every request computes, none fails
    CHECK_FALSE(p.cache_available());
    CHECK(p.stats().local_fallbacks[static_cast<unsigned>(pipecache::FallbackCause::segment_unavailable)] >= 1);
  }
}
