#include "fixture.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "remote/redis.hpp"

namespace remote_testing {

std::string env_path(const char* variable) {
  const char* v = std::getenv(variable);
  if (v == nullptr || *v == '\0') throw std::runtime_error(std::string("$") + variable + " is not set (run through meson test)");
  return v;
}

RedisServer::RedisServer() {
  char tmpl[] = "/tmp/pipecache-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_ = dir_ + "/redis.sock";
  url_ = "unix://" + socket_;
  start();
}

RedisServer::~RedisServer() {
  stop();
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void RedisServer::start() {
  ::unlink(socket_.c_str());
  pid_ = ::fork();
  if (pid_ == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", socket_.c_str(),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir_.c_str(),
             "--daemonize", "no", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  const pipecache::detail::RedisEndpoint e = pipecache::detail::parse_redis_url(url_);
  const bool up = eventually(
      [&] {
        std::string problem;
        auto c = pipecache::detail::RedisConnection::connect(e, std::chrono::milliseconds(200), problem);
        return c && c->command({"PING"}, problem) != nullptr;
      },
      std::chrono::seconds(10));
  if (!up) {
    stop();
    throw std::runtime_error("redis-server did not come up on " + socket_ + " (is it installed?)");
  }
}

void RedisServer::kill_hard() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::stop() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGCONT);
  ::kill(pid_, SIGTERM);
  ::waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

void RedisServer::pause() { ::kill(pid_, SIGSTOP); }
void RedisServer::resume() { ::kill(pid_, SIGCONT); }

Relay::Relay(const std::string& segment, const std::string& url) {
  const std::string binary = env_path("PIPECACHE_RELAY");
  pid_ = ::fork();
  if (pid_ == 0) {
    if (!std::getenv("PIPECACHE_TEST_VERBOSE")) {
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 2);
    }
    ::execl(binary.c_str(), "pipecache-relay", "--name", segment.c_str(), "--redis", url.c_str(),
            "--max-backoff", "200", static_cast<char*>(nullptr));
    ::_exit(127);
  }
}

Relay::~Relay() {
  if (pid_ > 0) {
    int code = 0;
    if (terminate(&code, std::chrono::seconds(5)).count() < 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
}

bool Relay::alive() const {
  if (pid_ <= 0) return false;
  int status = 0;
  return ::waitpid(pid_, &status, WNOHANG) == 0;
}

std::chrono::milliseconds Relay::terminate(int* exit_code, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  ::kill(pid_, SIGTERM);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    if (r == pid_) {
      *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      return took;
    }
    if (took > limit) return std::chrono::milliseconds(-1);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() > deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

}  // namespace remote_testing
