#include "support/process.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>

namespace testing {

std::string unique_name(std::string_view tag) {
  static std::atomic<unsigned> counter{0};
  return "t-" + std::string(tag) + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(counter.fetch_add(1));
}

SegmentGuard::~SegmentGuard() {
  try {
    pipecache::Cache::remove(name_);
  } catch (...) {
  }
}

pid_t spawn(const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int rc = 99;
    try {
      rc = body();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "child %d: %s\n", ::getpid(), e.what());
    } catch (...) {
    }
    ::_exit(rc);
  }
  return pid;
}

long nobody_uid() {
  const passwd* pw = ::getpwnam("nobody");
  return pw ? static_cast<long>(pw->pw_uid) : -1;
}

long nobody_gid() {
  const passwd* pw = ::getpwnam("nobody");
  return pw ? static_cast<long>(pw->pw_gid) : -1;
}

bool running_as_root() { return ::geteuid() == 0; }

pid_t spawn_as_nobody(const std::function<int()>& body) {
  long uid = nobody_uid(), gid = nobody_gid();
  return spawn([&] {
    if (uid < 0 || ::setgroups(0, nullptr) != 0 || ::setgid(static_cast<gid_t>(gid)) != 0 ||
        ::setuid(static_cast<uid_t>(uid)) != 0)
      return 98;
    return body();
  });
}

bool squat_as_nobody(const std::string& name, unsigned mode) {
  pid_t pid = spawn_as_nobody([&] {
    auto c = pipecache::Cache::create(small_options(name));
    c.put("poison", "the squatter's value");
    return ::chmod(pipecache::Cache::path_of(name).c_str(), mode) == 0 ? 0 : 97;
  });
  ExitStatus st = wait_for(pid, std::chrono::seconds(30));
  return st.exited && st.code == 0;
}

ExitStatus wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  ExitStatus st;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) {
        st.exited = true;
        st.code = WEXITSTATUS(status);
      } else if (WIFSIGNALED(status)) {
        st.signaled = true;
        st.signal = WTERMSIG(status);
      }
      return st;
    }
    if (r < 0) return st;
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      st.timed_out = true;
      return st;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

// Layout: "<key>|<version>|<size>|" then filler derived from (key, version), then a 16-hex-digit
// XXH3 of everything before it.
std::string make_value(std::string_view key, std::uint64_t version, std::size_t size) {
  std::string v;
  v.reserve(size + 64);
  v.append(key);
  v += '|';
  v += std::to_string(version);
  v += '|';
  std::uint64_t x = XXH3_64bits(key.data(), key.size()) ^ (version * 0x9E3779B97F4A7C15ull);
  while (v.size() + 16 < size) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    v += static_cast<char>('a' + (x >> 59) % 26);
  }
  char sum[17];
  std::snprintf(sum, sizeof sum, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(v.data(), v.size())));
  v.append(sum, 16);
  return v;
}

bool check_value(std::string_view key, std::string_view value) {
  if (value.size() < 16 + key.size() + 1) return false;
  if (value.substr(0, key.size()) != key || value[key.size()] != '|') return false;
  std::string_view body = value.substr(0, value.size() - 16);
  char sum[17];
  std::snprintf(sum, sizeof sum, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(body.data(), body.size())));
  return value.substr(value.size() - 16) == std::string_view(sum, 16);
}

pipecache::Options small_options(const std::string& name, std::size_t budget) {
  pipecache::Options o;
  o.name = name;
  o.byte_budget = budget;
  o.default_ttl = std::chrono::minutes(10);
  return o;
}

}  // namespace testing
