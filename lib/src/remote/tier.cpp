// The second tier; its protocol and invariants are in tier.hpp.
#include "remote/tier.hpp"

#include <unistd.h>

#include <random>
#include <thread>

#include <fmt/format.h>

#include <pipecache/remote.hpp>

#include "remote/figures.hpp"
#include "remote/redis.hpp"
#include "remote/scripts.hpp"

namespace pipecache::detail {
namespace {

using std::chrono::milliseconds;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string new_token() {
  thread_local std::mt19937_64 rng{std::random_device{}() ^ static_cast<std::uint64_t>(::getpid())};
  return fmt::format("{:x}-{:016x}", ::getpid(), rng());
}

struct Lookup {
  enum Outcome { hit, leased, held, failed } outcome = failed;
  std::string generation;
  std::string value;
  std::string problem;
};

Lookup parse_lookup(const redisReply& r) {
  Lookup l;
  if (reply_kind(r) != ReplyKind::array || reply_elements(r) < 2) {
    l.problem = "unexpected reply to the tier lookup";
    return l;
  }
  l.generation = std::string(reply_text(reply_element(r, 0)));
  const redisReply& v = reply_element(r, 1);
  if (reply_kind(v) == ReplyKind::string) {
    l.outcome = Lookup::hit;
    l.value = std::string(reply_text(v));
    return l;
  }
  if (reply_elements(r) >= 3 && reply_kind(reply_element(r, 2)) == ReplyKind::integer) {
    l.outcome = reply_integer(reply_element(r, 2)) == 1 ? Lookup::leased : Lookup::held;
    return l;
  }
  l.problem = "unexpected reply to the tier lookup";
  return l;
}

}  // namespace

struct SecondTier::Pool {
  pid_t pid = ::getpid();
  std::vector<std::unique_ptr<RedisConnection>> idle;
};

SecondTier::SecondTier(std::string_view redis_url, milliseconds timeout, milliseconds lease_time,
                       milliseconds max_wait)
    : endpoint_(parse_redis_url(redis_url)), timeout_(timeout), lease_time_(lease_time), max_wait_(max_wait) {}

SecondTier::~SecondTier() {
  std::lock_guard g(pool_mu_);
  if (pool_ && pool_->pid != ::getpid()) (void)pool_.release();  // see borrow()
}

std::unique_ptr<RedisConnection> SecondTier::borrow(std::string& problem) {
  {
    std::lock_guard g(pool_mu_);
    if (pool_ && pool_->pid != ::getpid()) {
      // Inherited through fork: those sockets are the parent's conversations. Abandoned, not
      // closed or freed (freeing would be harmless to the parent, but the parent's threads
      // may have held pool_mu_ at the fork: nothing of it is trusted).
      (void)pool_.release();
    }
    if (!pool_) pool_ = std::make_unique<Pool>();
    if (!pool_->idle.empty()) {
      auto c = std::move(pool_->idle.back());
      pool_->idle.pop_back();
      return c;
    }
  }
  return RedisConnection::connect(endpoint_, timeout_, problem);
}

void SecondTier::give_back(std::unique_ptr<RedisConnection> conn) {
  if (!conn || conn->broken()) return;
  std::lock_guard g(pool_mu_);
  if (pool_ && pool_->pid == ::getpid() && pool_->idle.size() < kMaxIdleConnections)
    pool_->idle.push_back(std::move(conn));
}

bool SecondTier::breaker_allows() {
  const std::int64_t until = open_until_ns_.load(std::memory_order_relaxed);
  if (until == 0) return true;
  if (now_ns() < until) return false;
  // Half-open: one request probes Redis, the others keep skipping it until the probe answers.
  bool expected = false;
  return probing_.compare_exchange_strong(expected, true, std::memory_order_acq_rel);
}

void SecondTier::succeeded() {
  consecutive_failures_.store(0, std::memory_order_relaxed);
  if (open_until_ns_.exchange(0, std::memory_order_relaxed) != 0 ||
      outage_logged_.exchange(false, std::memory_order_relaxed)) {
    log_line("pipecache", fmt::format("second tier: Redis at {} answers again", endpoint_.url));
  }
  probing_.store(false, std::memory_order_release);
}

void SecondTier::failed(Cache& cache, std::string_view problem) {
  count_remote(cache, RemoteCounter::tier_fallbacks);
  const unsigned n = consecutive_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  const bool was_probe = probing_.exchange(false, std::memory_order_acq_rel);
  if (n >= kBreakerFailures || was_probe) {
    const std::int64_t until = now_ns() + std::chrono::nanoseconds(kBreakerOpenFor).count();
    if (open_until_ns_.exchange(until, std::memory_order_relaxed) == 0)
      count_remote(cache, RemoteCounter::tier_breaker_opens);
  }
  if (!outage_logged_.exchange(true, std::memory_order_relaxed)) {
    log_line("pipecache", fmt::format("second tier: Redis at {}: {}; computing locally (counted "
                                      "as tier_fallbacks; the breaker skips Redis for {} ms after "
                                      "{} failures; logged once per outage)",
                                      endpoint_.url, problem, kBreakerOpenFor.count(),
                                      kBreakerFailures));
  }
}

std::string SecondTier::fetch_or_compute(Cache& cache, std::string_view type, std::string_view key,
                                         milliseconds ttl, const std::function<std::string()>& compute) {
  if (!breaker_allows()) {
    count_remote(cache, RemoteCounter::tier_fallbacks);
    return compute();
  }
  std::string problem;
  auto conn = borrow(problem);
  if (!conn) {
    failed(cache, problem);
    return compute();
  }
  const std::string prefix = tier_prefix(type);
  const std::string gen_key = prefix + "gen";
  const std::string token = new_token();
  const std::string lease_ms = std::to_string(lease_time_.count());
  const std::int64_t deadline = now_ns() + std::chrono::nanoseconds(max_wait_).count();
  bool waited = false;
  Lookup l;
  for (;;) {
    auto reply = conn->command({"EVAL", kTierLookupScript, "1", gen_key, prefix, key, lease_ms, token}, problem);
    l = reply ? parse_lookup(*reply) : Lookup{};
    if (l.outcome == Lookup::failed) {
      failed(cache, reply ? l.problem : problem);
      if (!conn->broken()) give_back(std::move(conn));
      return compute();
    }
    succeeded();
    if (l.outcome == Lookup::hit) {
      count_remote(cache, RemoteCounter::tier_hits);
      give_back(std::move(conn));
      return std::move(l.value);
    }
    if (l.outcome == Lookup::leased) {
      if (waited) count_remote(cache, RemoteCounter::tier_takeovers);
      break;
    }
    if (!waited) {
      waited = true;
      count_remote(cache, RemoteCounter::tier_waits);
    }
    if (now_ns() >= deadline) {  // invariant 3: nobody waits forever
      count_remote(cache, RemoteCounter::tier_fallbacks);
      give_back(std::move(conn));
      return compute();
    }
    std::this_thread::sleep_for(kPollEvery);
  }
  // This host holds the key's Redis lease (invariant 2).
  count_remote(cache, RemoteCounter::tier_misses);
  const std::string ttl_ms = std::to_string(ttl.count() > 0 ? ttl.count() : 3'600'000);
  std::string value;
  try {
    value = compute();
  } catch (...) {
    // Drop the lease so another host computes now rather than after lease_time.
    (void)conn->command({"EVAL", kTierStoreScript, "2", gen_key, kTierTypesKey, prefix, key,
                         l.generation, token},
                        problem);
    give_back(std::move(conn));
    throw;
  }
  auto stored = conn->command({"EVAL", kTierStoreScript, "2", gen_key, kTierTypesKey, prefix, key,
                               l.generation, token, value, ttl_ms, type},
                              problem);
  if (!stored) {
    failed(cache, problem);
  } else {
    succeeded();
    if (reply_kind(*stored) == ReplyKind::integer && reply_integer(*stored) == 1)
      count_remote(cache, RemoteCounter::tier_stores);
  }
  give_back(std::move(conn));
  return value;
}

}  // namespace pipecache::detail
