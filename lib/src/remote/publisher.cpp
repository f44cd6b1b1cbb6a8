#include "remote/publisher.hpp"

#include <unistd.h>

#include <fmt/format.h>

#include <pipecache/remote.hpp>

#include "remote/figures.hpp"
#include "remote/redis.hpp"
#include "remote/scripts.hpp"

namespace pipecache::detail {
namespace {

// Messages waiting beyond this are dropped (counted): an invalidation storm while Redis is
// slow must not grow a worker's memory without bound. 4096 patterns of ~50 bytes: ~200 KiB.
constexpr std::size_t kMaxQueued = 4096;

// Bumps the second tier's generation(s) the pattern reaches and publishes it, in one script.
std::string send_one(RedisConnection& conn, std::string_view channel, std::string_view message,
                     std::string_view pattern) {
  std::string problem;
  if (conn.command({"EVAL", kInvalidateScript, "0", channel, message, pattern_type(pattern)}, problem))
    return {};
  return problem.empty() ? std::string("PUBLISH failed") : problem;
}

}  // namespace

std::string publish_invalidation(const RedisEndpoint& endpoint, std::string_view channel,
                                 std::uint64_t origin, std::string_view pattern,
                                 std::chrono::milliseconds timeout) {
  std::string problem;
  auto conn = RedisConnection::connect(endpoint, timeout, problem);
  if (!conn) return problem;
  const std::string message = format_message({origin, realtime_ns(), std::string(pattern)});
  problem = send_one(*conn, channel, message, pattern);
  if (!problem.empty()) problem = fmt::format("Redis at {}: publishing: {}", endpoint.url, problem);
  return problem;
}

struct AsyncPublisher::Worker {
  pid_t pid = ::getpid();
  std::mutex mu;
  std::condition_variable cv;       // items queued, or stop
  std::condition_variable idle_cv;  // queue drained
  std::deque<Item> queue;           // GUARDED_BY(mu)
  bool busy = false;                // GUARDED_BY(mu): the thread is sending
  bool stop = false;                // GUARDED_BY(mu)
  bool outage_logged = false;       // thread only
  std::thread thread;
};

AsyncPublisher::AsyncPublisher(std::string_view redis_url, std::string channel,
                               std::chrono::milliseconds timeout)
    : endpoint_(parse_redis_url(redis_url)), channel_(std::move(channel)), timeout_(timeout) {
  validate_channel(channel_);
}

AsyncPublisher::~AsyncPublisher() {
  std::unique_ptr<Worker> w;
  {
    std::lock_guard g(worker_mu_);
    w = std::move(worker_);
  }
  if (!w) return;
  if (w->pid != ::getpid()) {
    (void)w.release();  // the parent's: its thread does not exist here, its lock may be held
    return;
  }
  {
    std::lock_guard g(w->mu);
    w->stop = true;
  }
  w->cv.notify_all();
  if (w->thread.joinable()) w->thread.join();
}

AsyncPublisher::Worker& AsyncPublisher::worker() {
  std::lock_guard g(worker_mu_);
  if (worker_ && worker_->pid == ::getpid()) return *worker_;
  // After fork: the inherited worker's thread did not come along and its mutex may have been
  // held at the fork; it is abandoned (a few hundred bytes, once per process), not touched.
  if (worker_) (void)worker_.release();
  worker_ = std::make_unique<Worker>();
  Worker& w = *worker_;
  w.thread = std::thread([this, &w] { run(w); });
  return w;
}

void AsyncPublisher::publish(Cache* cache, std::string_view pattern) noexcept {
  try {
    const std::uint64_t origin = cache ? origin_of(*cache) : 0;
    std::string message = format_message({origin, realtime_ns(), std::string(pattern)});
    Worker& w = worker();
    {
      std::lock_guard g(w.mu);
      if (w.queue.size() < kMaxQueued) {
        w.queue.push_back({cache, std::move(message), std::string(pattern)});
        w.cv.notify_one();
        return;
      }
    }
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (cache) count_remote(*cache, RemoteCounter::publish_failures);
  } catch (...) {
    failed_.fetch_add(1, std::memory_order_relaxed);
    if (cache) count_remote(*cache, RemoteCounter::publish_failures);
  }
}

bool AsyncPublisher::drain(std::chrono::milliseconds timeout) {
  Worker* w = nullptr;
  {
    std::lock_guard g(worker_mu_);
    if (!worker_ || worker_->pid != ::getpid()) return true;
    w = worker_.get();
  }
  std::unique_lock lock(w->mu);
  return w->idle_cv.wait_for(lock, timeout, [w] { return w->queue.empty() && !w->busy; });
}

void AsyncPublisher::fail(Worker& w, Cache* cache, std::string_view problem, std::uint64_t n) {
  failed_.fetch_add(n, std::memory_order_relaxed);
  if (cache) count_remote(*cache, RemoteCounter::publish_failures, n);
  if (!w.outage_logged) {
    w.outage_logged = true;
    log_line("pipecache", fmt::format("cannot publish invalidations to Redis at {}: {} (other "
                                      "hosts keep the entries until their TTL or their relay's "
                                      "flush; counted as publish_failures, logged once per outage)",
                                      endpoint_.url, problem));
  }
}

void AsyncPublisher::run(Worker& w) {
  std::unique_ptr<RedisConnection> conn;
  auto next_connect = std::chrono::steady_clock::time_point{};
  for (;;) {
    Item item;
    {
      std::unique_lock lock(w.mu);
      w.busy = false;
      if (w.queue.empty()) w.idle_cv.notify_all();
      w.cv.wait(lock, [&] { return w.stop || !w.queue.empty(); });
      if (w.queue.empty()) return;  // stop, and everything sent
      item = std::move(w.queue.front());
      w.queue.pop_front();
      w.busy = true;
    }
    std::string problem;
    for (int attempt = 0; attempt < 2; ++attempt) {  // a connection Redis closed is retried once
      if (!conn) {
        // While Redis is down, one connection attempt per timeout: the queue drains as
        // failures instead of each message waiting out its own connect.
        if (std::chrono::steady_clock::now() < next_connect) {
          problem = problem.empty() ? "not connected" : problem;
          break;
        }
        conn = RedisConnection::connect(endpoint_, timeout_, problem);
        if (!conn) {
          next_connect = std::chrono::steady_clock::now() + timeout_;
          break;
        }
      }
      problem = send_one(*conn, channel_, item.message, item.pattern);
      if (problem.empty()) break;
      if (conn->broken()) conn.reset();
      else break;  // an error reply: retrying will not help
    }
    if (problem.empty()) {
      published_.fetch_add(1, std::memory_order_relaxed);
      if (item.cache) count_remote(*item.cache, RemoteCounter::publishes);
      if (w.outage_logged) {
        w.outage_logged = false;
        log_line("pipecache", fmt::format("publishing invalidations to Redis at {} again", endpoint_.url));
      }
    } else {
      fail(w, item.cache, problem, 1);
    }
  }
}

}  // namespace pipecache::detail
