// Publishing invalidations to the other hosts.
//
// publish_invalidation: one synchronous PUBLISH on a fresh connection (pipectl, scripts).
// AsyncPublisher: the Pipeline's publisher. A request never waits for Redis: publish() puts
// the message on a bounded queue and returns; one thread per process sends the queue over a
// connection it keeps. Threads:
//   - The thread is started by the first publish() of each process (a prefork master's
//     Pipeline is inherited by workers without its thread: each worker starts its own).
//   - A message that cannot be sent (no connection within the timeout, an error, or a full
//     queue) is dropped, counted in the segment (publish_failures) and in this process, and
//     logged — once per outage, not once per message. The other hosts then serve the
//     invalidated entries until their TTL, or until their relay's flush after the outage.
//   - The destructor sends what is queued (each message bounded by the timeout), then joins.
#pragma once

#include <pipecache/cache.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "remote/endpoint.hpp"

namespace pipecache::detail {

class RedisConnection;

// Publishes one invalidation of `pattern` from `origin`. Empty on success, else the problem.
std::string publish_invalidation(const RedisEndpoint& endpoint, std::string_view channel,
                                 std::uint64_t origin, std::string_view pattern,
                                 std::chrono::milliseconds timeout);

class AsyncPublisher {
 public:
  // Throws Error for an invalid URL or channel.
  AsyncPublisher(std::string_view redis_url, std::string channel, std::chrono::milliseconds timeout);
  ~AsyncPublisher();
  AsyncPublisher(const AsyncPublisher&) = delete;
  AsyncPublisher& operator=(const AsyncPublisher&) = delete;

  // Queues `pattern`, invalidated in `cache` (nullptr: the segment is unavailable; the message
  // then carries origin 0 and counts nowhere but here). Never blocks on Redis, never throws.
  void publish(Cache* cache, std::string_view pattern) noexcept;
  // Waits until the queue is empty (tests, shutdown); false after `timeout`.
  bool drain(std::chrono::milliseconds timeout);

  std::uint64_t published() const noexcept { return published_.load(std::memory_order_relaxed); }
  std::uint64_t failed() const noexcept { return failed_.load(std::memory_order_relaxed); }

 private:
  struct Item {
    Cache* cache;
    std::string message;
    std::string pattern;
  };
  struct Worker;  // the queue and thread of one process
  Worker& worker();
  void run(Worker& w);
  void fail(Worker& w, Cache* cache, std::string_view problem, std::uint64_t n);

  RedisEndpoint endpoint_;
  std::string channel_;
  std::chrono::milliseconds timeout_;
  std::mutex worker_mu_;
  std::unique_ptr<Worker> worker_;  // GUARDED_BY(worker_mu_); of the process in worker_->pid
  std::atomic<std::uint64_t> published_{0};
  std::atomic<std::uint64_t> failed_{0};
};

}  // namespace pipecache::detail
