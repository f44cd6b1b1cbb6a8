#include "systems/remote_peers.hpp"

#include <fmt/format.h>

#include <cstdlib>

#ifdef PIPECACHE_BENCH_MEMCACHED
#include <libmemcached/memcached.h>
#endif
#ifdef PIPECACHE_BENCH_HIREDIS
#include <hiredis/hiredis.h>
#endif

namespace bench {

// ---------------------------------------------------------------------------- memcached

#ifdef PIPECACHE_BENCH_MEMCACHED

struct MemcachedSystem::Client::Connection {
  explicit Connection(const std::string& socket) : handle(memcached_create(nullptr)) {
    if (handle == nullptr) throw std::runtime_error("memcached_create failed");
    memcached_return_t rc = memcached_server_add_unix_socket(handle, socket.c_str());
    if (rc != MEMCACHED_SUCCESS)
      throw SkipSystem(fmt::format("memcached at {}: {}", socket, memcached_strerror(handle, rc)));
  }
  ~Connection() { memcached_free(handle); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool set(std::string_view key, std::string_view value) {
    return memcached_set(handle, key.data(), key.size(), value.data(), value.size(), 0, 0) ==
           MEMCACHED_SUCCESS;
  }
  memcached_st* handle;
};

MemcachedSystem::MemcachedSystem(const Dataset& data, const Environment& env)
    : socket_(data.workload.evicts ? env.memcached_evict_socket : env.memcached_socket) {
  if (socket_.empty()) throw SkipSystem("no memcached socket given (bench/run starts one)");
  Client::Connection connection(socket_);
  memcached_return_t rc = memcached_flush(connection.handle, 0);
  if (rc != MEMCACHED_SUCCESS)
    throw SkipSystem(fmt::format("memcached at {}: {}", socket_,
                                 memcached_strerror(connection.handle, rc)));
  std::size_t failed = 0;
  preload(data, [&](std::string_view k, std::string_view v) { failed += !connection.set(k, v); });
  if (failed > 0 && !data.workload.evicts)
    throw std::runtime_error(fmt::format("memcached refused {} preload sets", failed));
}

MemcachedSystem::Client::Client(MemcachedSystem& system, const Dataset&)
    : connection_(std::make_unique<Connection>(system.socket_)) {}
MemcachedSystem::Client::~Client() = default;

bool MemcachedSystem::Client::get(std::string_view key, std::string& out) {
  std::size_t length = 0;
  std::uint32_t flags = 0;
  memcached_return_t rc;
  char* value = memcached_get(connection_->handle, key.data(), key.size(), &length, &flags, &rc);
  if (value == nullptr) {
    if (rc != MEMCACHED_NOTFOUND)
      throw std::runtime_error(
          fmt::format("memcached get: {}", memcached_strerror(connection_->handle, rc)));
    return false;
  }
  out.assign(value, length);
  std::free(value);
  return true;
}

bool MemcachedSystem::Client::write(std::string_view key, std::string_view value) {
  return connection_->set(key, value);
}

#else

struct MemcachedSystem::Client::Connection {};
MemcachedSystem::MemcachedSystem(const Dataset&, const Environment&) {
  throw SkipSystem("built without libmemcached (apt-get install libmemcached-dev)");
}
MemcachedSystem::Client::Client(MemcachedSystem&, const Dataset&) {}
MemcachedSystem::Client::~Client() = default;
bool MemcachedSystem::Client::get(std::string_view, std::string&) { return false; }
bool MemcachedSystem::Client::write(std::string_view, std::string_view) { return false; }

#endif

// ---------------------------------------------------------------------------- Redis

#ifdef PIPECACHE_BENCH_HIREDIS

struct RedisSystem::Client::Connection {
  explicit Connection(const std::string& socket) : context(redisConnectUnix(socket.c_str())) {
    if (context == nullptr || context->err != 0) {
      std::string why = context != nullptr ? context->errstr : "out of memory";
      if (context != nullptr) redisFree(context);
      throw SkipSystem(fmt::format("redis at {}: {}", socket, why));
    }
  }
  ~Connection() { redisFree(context); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs a command and returns its reply; throws on a connection error.
  std::unique_ptr<redisReply, void (*)(redisReply*)> command(const char* format, auto... args) {
    auto* reply = static_cast<redisReply*>(redisCommand(context, format, args...));
    if (reply == nullptr) throw std::runtime_error(fmt::format("redis: {}", context->errstr));
    return {reply, [](redisReply* r) { freeReplyObject(r); }};
  }
  void expect_ok(const char* what, redisReply* reply) {
    if (reply->type == REDIS_REPLY_ERROR)
      throw std::runtime_error(fmt::format("redis {}: {}", what, reply->str));
  }
  redisContext* context;
};

RedisSystem::RedisSystem(const Dataset& data, const Environment& env) : socket_(env.redis_socket) {
  if (socket_.empty()) throw SkipSystem("no redis socket given (bench/run starts one)");
  Client::Connection c(socket_);
  c.expect_ok("FLUSHALL", c.command("FLUSHALL").get());
  // Under a budget Redis gets the same one as pipecache, evicting with its approximated LRU.
  std::string maxmemory = std::to_string(data.workload.evicts ? data.workload.byte_budget : 0);
  c.expect_ok("CONFIG SET", c.command("CONFIG SET maxmemory %s", maxmemory.c_str()).get());
  c.expect_ok("CONFIG SET",
              c.command("CONFIG SET maxmemory-policy %s",
                        data.workload.evicts ? "allkeys-lru" : "noeviction").get());
  // Preload pipelined, 512 sets a round trip: 100k synchronous sets would take seconds.
  std::size_t pending = 0;
  auto drain = [&] {
    for (; pending > 0; --pending) {
      void* raw = nullptr;
      if (redisGetReply(c.context, &raw) != REDIS_OK)
        throw std::runtime_error(fmt::format("redis preload: {}", c.context->errstr));
      auto* reply = static_cast<redisReply*>(raw);
      bool error = reply->type == REDIS_REPLY_ERROR;
      std::string text = error ? reply->str : "";
      freeReplyObject(reply);
      if (error) throw std::runtime_error("redis preload: " + text);
    }
  };
  preload(data, [&](std::string_view k, std::string_view v) {
    redisAppendCommand(c.context, "SET %b %b", k.data(), k.size(), v.data(), v.size());
    if (++pending == 512) drain();
  });
  drain();
}

RedisSystem::Client::Client(RedisSystem& system, const Dataset&)
    : connection_(std::make_unique<Connection>(system.socket_)) {}
RedisSystem::Client::~Client() = default;

bool RedisSystem::Client::get(std::string_view key, std::string& out) {
  auto reply = connection_->command("GET %b", key.data(), key.size());
  if (reply->type == REDIS_REPLY_NIL) return false;
  if (reply->type != REDIS_REPLY_STRING)
    throw std::runtime_error(fmt::format("redis GET: reply type {}", reply->type));
  out.assign(reply->str, reply->len);
  return true;
}

bool RedisSystem::Client::write(std::string_view key, std::string_view value) {
  auto reply = connection_->command("SET %b %b", key.data(), key.size(), value.data(), value.size());
  // Under maxmemory with allkeys-lru a SET evicts rather than fails; an error means dropped.
  return reply->type != REDIS_REPLY_ERROR;
}

#else

struct RedisSystem::Client::Connection {};
RedisSystem::RedisSystem(const Dataset&, const Environment&) {
  throw SkipSystem("built without hiredis (apt-get install libhiredis-dev)");
}
RedisSystem::Client::Client(RedisSystem&, const Dataset&) {}
RedisSystem::Client::~Client() = default;
bool RedisSystem::Client::get(std::string_view, std::string&) { return false; }
bool RedisSystem::Client::write(std::string_view, std::string_view) { return false; }

#endif

}  // namespace bench
