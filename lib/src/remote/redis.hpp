// One hiredis connection with bounded waits: the only file pair that includes hiredis's
// header. Not thread-safe: one user at a time (the relay's loop, one publisher thread, one
// borrower of the tier's pool).
#pragma once

#include <chrono>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "remote/endpoint.hpp"

struct redisContext;
struct redisReply;

namespace pipecache::detail {

struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept;
};
using RedisReply = std::unique_ptr<redisReply, ReplyDeleter>;

// What a reply is, without hiredis's header.
enum class ReplyKind { string, array, integer, nil, status, error, other };
ReplyKind reply_kind(const redisReply& r) noexcept;
std::string_view reply_text(const redisReply& r) noexcept;  // string, status, error
long long reply_integer(const redisReply& r) noexcept;
std::size_t reply_elements(const redisReply& r) noexcept;
const redisReply& reply_element(const redisReply& r, std::size_t i) noexcept;

class RedisConnection {
 public:
  // A connection (database selected), or nullptr with `problem` saying why. Connecting and
  // every later command wait at most `timeout` for each read or write.
  static std::unique_ptr<RedisConnection> connect(const RedisEndpoint& endpoint,
                                                  std::chrono::milliseconds timeout,
                                                  std::string& problem);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Runs one command. nullptr with `problem` on an I/O error or timeout (the connection is then
  // broken() and must be dropped) or on an error reply (the connection stays usable).
  RedisReply command(const std::vector<std::string_view>& args, std::string& problem);
  RedisReply command(std::initializer_list<std::string_view> args, std::string& problem) {
    return command(std::vector<std::string_view>(args), problem);
  }
  // Subscriber side: reads what the socket holds (call when poll() says readable) and hands
  // back complete replies one at a time; nullptr when none is complete. I/O errors and EOF
  // set broken() and `problem`.
  bool read_available(std::string& problem);
  RedisReply next_reply(std::string& problem);
  // Sends a command without waiting for its reply (subscriber-side PING).
  bool send(const std::vector<std::string_view>& args, std::string& problem);

  int fd() const noexcept;
  bool broken() const noexcept { return broken_; }
  void set_timeout(std::chrono::milliseconds timeout) noexcept;

 private:
  explicit RedisConnection(redisContext* c) : ctx_(c) {}
  std::string error_text() const;
  redisContext* ctx_;
  bool broken_ = false;
};

}  // namespace pipecache::detail
