#include "remote/redis.hpp"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <fmt/format.h>

#include <cerrno>

namespace pipecache::detail {
namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

// hiredis writes with write(2): a socket Redis closed raises SIGPIPE, which would kill the
// host process (a server worker) unless it ignores the signal. Each call into hiredis blocks
// SIGPIPE in the calling thread and, if the call raised one, consumes it before unblocking,
// so the caller sees EPIPE and its process's own signal handling is untouched.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_, nullptr, &zero) == -1 && errno == EINTR) {
        }
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_, old_;
  bool was_pending_ = false;
};

std::string where(const RedisEndpoint& e) {
  return e.unix_path.empty() ? fmt::format("{}:{}", e.host, e.port) : e.unix_path;
}

}  // namespace

void ReplyDeleter::operator()(redisReply* r) const noexcept { freeReplyObject(r); }

ReplyKind reply_kind(const redisReply& r) noexcept {
  switch (r.type) {
    case REDIS_REPLY_STRING: return ReplyKind::string;
    case REDIS_REPLY_ARRAY: return ReplyKind::array;
    case REDIS_REPLY_INTEGER: return ReplyKind::integer;
    case REDIS_REPLY_NIL: return ReplyKind::nil;
    case REDIS_REPLY_STATUS: return ReplyKind::status;
    case REDIS_REPLY_ERROR: return ReplyKind::error;
    default: return ReplyKind::other;
  }
}
std::string_view reply_text(const redisReply& r) noexcept {
  if (r.type == REDIS_REPLY_STRING || r.type == REDIS_REPLY_STATUS || r.type == REDIS_REPLY_ERROR)
    return {r.str, r.len};
  return {};
}
long long reply_integer(const redisReply& r) noexcept { return r.integer; }
std::size_t reply_elements(const redisReply& r) noexcept {
  return r.type == REDIS_REPLY_ARRAY ? r.elements : 0;
}
const redisReply& reply_element(const redisReply& r, std::size_t i) noexcept { return *r.element[i]; }

std::unique_ptr<RedisConnection> RedisConnection::connect(const RedisEndpoint& e,
                                                          std::chrono::milliseconds timeout,
                                                          std::string& problem) {
  SigpipeGuard no_sigpipe;
  const timeval tv = to_timeval(timeout);
  redisContext* c = e.unix_path.empty() ? redisConnectWithTimeout(e.host.c_str(), e.port, tv)
                                        : redisConnectUnixWithTimeout(e.unix_path.c_str(), tv);
  if (c == nullptr) {
    problem = fmt::format("cannot connect to Redis at {}: out of memory", where(e));
    return nullptr;
  }
  if (c->err) {
    problem = fmt::format("cannot connect to Redis at {}: {}", where(e), c->errstr);
    redisFree(c);
    return nullptr;
  }
  std::unique_ptr<RedisConnection> conn(new RedisConnection(c));
  conn->set_timeout(timeout);
  if (e.unix_path.empty()) redisEnableKeepAlive(c);
  if (e.db != 0) {
    const std::string db = std::to_string(e.db);
    if (!conn->command({"SELECT", db}, problem)) {
      problem = fmt::format("Redis at {}: SELECT {}: {}", where(e), db, problem);
      return nullptr;
    }
  }
  return conn;
}

RedisConnection::~RedisConnection() { redisFree(ctx_); }

std::string RedisConnection::error_text() const {
  if (ctx_->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) return "timed out";
  if (ctx_->err == REDIS_ERR_EOF) return "connection closed by Redis";
  return ctx_->errstr[0] ? std::string(ctx_->errstr) : std::string("I/O error");
}

RedisReply RedisConnection::command(const std::vector<std::string_view>& args, std::string& problem) {
  if (broken_) {
    problem = "connection already broken";
    return nullptr;
  }
  SigpipeGuard no_sigpipe;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  void* r = redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (r == nullptr) {
    broken_ = true;
    problem = error_text();
    return nullptr;
  }
  RedisReply reply(static_cast<redisReply*>(r));
  if (reply->type == REDIS_REPLY_ERROR) {
    problem = std::string(reply->str, reply->len);
    return nullptr;
  }
  return reply;
}

bool RedisConnection::send(const std::vector<std::string_view>& args, std::string& problem) {
  SigpipeGuard no_sigpipe;
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  if (redisAppendCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data()) != REDIS_OK) {
    broken_ = true;
    problem = error_text();
    return false;
  }
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) {
      broken_ = true;
      problem = error_text();
      return false;
    }
  }
  return true;
}

bool RedisConnection::read_available(std::string& problem) {
  if (redisBufferRead(ctx_) != REDIS_OK) {
    broken_ = true;
    problem = error_text();
    return false;
  }
  return true;
}

RedisReply RedisConnection::next_reply(std::string& problem) {
  void* r = nullptr;
  if (redisGetReplyFromReader(ctx_, &r) != REDIS_OK) {
    broken_ = true;
    problem = error_text();
    return nullptr;
  }
  return RedisReply(static_cast<redisReply*>(r));
}

int RedisConnection::fd() const noexcept { return ctx_->fd; }

void RedisConnection::set_timeout(std::chrono::milliseconds timeout) noexcept {
  redisSetTimeout(ctx_, to_timeval(timeout));
}

}  // namespace pipecache::detail
