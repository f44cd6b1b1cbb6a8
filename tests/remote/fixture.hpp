// A real redis-server for the tests: started on a unix socket in a fresh temporary directory,
// stopped (or killed, or restarted on the same socket) by its PID. And relays: the built
// pipecache-relay binary ($PIPECACHE_RELAY) run as a child, stopped with SIGTERM.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace remote_testing {

class RedisServer {
 public:
  RedisServer();   // starts it; throws when redis-server is missing or does not come up
  ~RedisServer();  // stops it and removes the directory
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  const std::string& url() const { return url_; }          // unix:///tmp/.../redis.sock
  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }
  void kill_hard();   // SIGKILL, reaped: the socket is left behind, as after a crash
  void start();       // on the same socket (after kill_hard)
  void stop();        // SIGTERM, reaped
  void pause();       // SIGSTOP: Redis alive but silent (a hung server)
  void resume();      // SIGCONT

 private:
  std::string dir_, socket_, url_;
  pid_t pid_ = -1;
};

class Relay {
 public:
  Relay(const std::string& segment, const std::string& url);
  ~Relay();  // SIGTERM, then SIGKILL if it did not stop within 5 s
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;
  pid_t pid() const { return pid_; }
  bool alive() const;
  // SIGTERM; returns how long it took to exit (-1 ms: it did not within `limit`) and its code.
  std::chrono::milliseconds terminate(int* exit_code, std::chrono::milliseconds limit);

 private:
  pid_t pid_ = -1;
};

// Polls `done` every millisecond until true or `timeout`; returns its last value.
bool eventually(const std::function<bool()>& done,
                std::chrono::milliseconds timeout = std::chrono::seconds(10));

std::string env_path(const char* variable);

}  // namespace remote_testing
