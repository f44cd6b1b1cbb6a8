// memcached (libmemcached) and Redis (hiredis), each over a private unix socket that bench/run
// starts and stops. One connection per worker process, opened after fork; one synchronous
// request per operation — how a PHP-style worker talks to them. A get copies the reply into
// the caller's buffer, like every other system.
//
// Compiled only when the client library was found (PIPECACHE_BENCH_MEMCACHED /
// PIPECACHE_BENCH_HIREDIS); otherwise, or without a socket, the system is skipped.
#pragma once

#include "systems/system.hpp"

#include <memory>
#include <string>

namespace bench {

class MemcachedSystem {
 public:
  static constexpr const char* kName = "memcached";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = true;
  MemcachedSystem(const Dataset& data, const Environment& env);

  class Client {
   public:
    Client(MemcachedSystem& system, const Dataset& data);
    ~Client();
    template <class F>
    bool read(std::uint32_t, std::string_view key, F&& on_value) {
      if (!get(key, buffer_)) return false;
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view key, std::string_view value);
    struct Connection;  // the client library's handle; also used by the preload

   private:
    bool get(std::string_view key, std::string& out);
    std::unique_ptr<Connection> connection_;
    std::string buffer_;
  };

 private:
  std::string socket_;
};

class RedisSystem {
 public:
  static constexpr const char* kName = "redis";
  static constexpr bool kZeroCopy = false;
  static constexpr bool kRemote = true;
  RedisSystem(const Dataset& data, const Environment& env);

  class Client {
   public:
    Client(RedisSystem& system, const Dataset& data);
    ~Client();
    template <class F>
    bool read(std::uint32_t, std::string_view key, F&& on_value) {
      if (!get(key, buffer_)) return false;
      on_value(std::string_view(buffer_));
      return true;
    }
    bool write(std::string_view key, std::string_view value);
    struct Connection;  // the client library's handle; also used by the preload

   private:
    bool get(std::string_view key, std::string& out);
    std::unique_ptr<Connection> connection_;
    std::string buffer_;
  };

 private:
  std::string socket_;
};

}  // namespace bench
