// Test helpers: unique segment names, forked children, self-checking values.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include <pipecache/cache.hpp>

namespace testing {

// A segment name unique to this process and call, so suites can run in parallel.
std::string unique_name(std::string_view tag);

// Removes the segment when the scope ends (also on a failed assertion).
class SegmentGuard {
 public:
  explicit SegmentGuard(std::string name) : name_(std::move(name)) {}
  SegmentGuard(const SegmentGuard&) = delete;
  SegmentGuard& operator=(const SegmentGuard&) = delete;
  ~SegmentGuard();
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

// Forks; the child runs `body` and exits with its return value (an exception exits 99).
// The child never returns into the test framework.
pid_t spawn(const std::function<int()>& body);

// Another local user (`nobody`): tests of the trust boundary need root (CI runs as root) to
// act as somebody else. nobody_uid() is -1 when there is no such user.
long nobody_uid();
long nobody_gid();
bool running_as_root();
// As spawn(), with the child switched to `nobody` (groups, gid, then uid) before `body`.
pid_t spawn_as_nobody(const std::function<int()>& body);
// Makes /dev/shm/pipecache.<name> as `nobody`: a valid segment, then chmod'ed to `mode`
// (0666 = the squatter's invitation). True when it was made.
bool squat_as_nobody(const std::string& name, unsigned mode);

struct ExitStatus {
  bool exited = false;    // normal exit
  int code = -1;          // exit code when exited
  bool signaled = false;
  int signal = 0;
  bool timed_out = false; // still running at the deadline (then SIGKILLed and reaped)
};
ExitStatus wait_for(pid_t pid, std::chrono::milliseconds timeout);

// Self-checking values: the value names its key and carries a checksum, so any torn or
// mixed-up read is detected by check_value.
std::string make_value(std::string_view key, std::uint64_t version, std::size_t size);
bool check_value(std::string_view key, std::string_view value);

pipecache::Options small_options(const std::string& name, std::size_t budget = 4u << 20);

}  // namespace testing
