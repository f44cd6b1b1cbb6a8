// Get-or-compute: the protocol and its invariants are in get_or_compute.hpp.
#include "pipeline/get_or_compute.hpp"

#include "pipeline/envelope.hpp"
#include "pipeline/lease_keeper.hpp"

#include <algorithm>
#include <exception>
#include <optional>

namespace pipecache::detail {
namespace {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;

enum class Found { absent, fresh, stale, uncacheable, error };

// Why an uncacheable marker was left (its one payload byte).
FallbackCause marker_cause(const std::string& marker) noexcept {
  if (marker.size() == 1 && static_cast<unsigned char>(marker[0]) < kFallbackCauses) {
    return static_cast<FallbackCause>(static_cast<unsigned char>(marker[0]));
  }
  return FallbackCause::value_too_large;
}

// Reads the key into `value` (payload only), judging freshness at `now`. A cache failure is
// counted here as the request's fallback; the caller then computes without the cache.
Found look(const RequestScope& s, std::string& value, std::int64_t now) {
  std::uint16_t flags = 0;
  try {
    if (!s.cache.get(s.key, value, flags)) return Found::absent;
  } catch (const std::exception& e) {
    s.fallbacks.note(FallbackCause::store_error, e.what(), &s.cache, s.ns);
    return Found::error;
  }
  switch (open_sealed(value, flags, now)) {
    case ValueState::fresh: return Found::fresh;
    case ValueState::stale: return Found::stale;
    case ValueState::uncacheable: return Found::uncacheable;
    case ValueState::malformed: return Found::absent;  // not ours to trust: recompute over it
  }
  return Found::absent;
}

// Runs the handler (no segment lock is held here: invariant 1) and records its figures.
std::string run_compute(const RequestScope& s) {
  const std::int64_t start = monotonic_ns();
  try {
    std::string value = s.compute();
    s.cache.record_time(s.ns, NsHistogram::compute_time,
                        static_cast<std::uint64_t>(monotonic_ns() - start));
    s.cache.record(s.ns, NsCounter::computes);
    return value;
  } catch (...) {
    s.cache.record(s.ns, NsCounter::compute_failures);
    throw;
  }
}

void release(const RequestScope& s, std::uint64_t token) noexcept {
  try {
    s.cache.release_lease(s.key, token);
  } catch (const std::exception& e) {
    // The lease runs out at its deadline (or with this process): waiters take it over.
    s.fallbacks.log_once(FallbackCause::store_error, e.what());
  }
}

milliseconds marker_ttl(FallbackCause cause, const RequestPolicy& p) noexcept {
  // Too large stays too large for a while; "no room" may pass as soon as eviction catches up.
  if (cause == FallbackCause::store_full) return milliseconds(1000);
  const milliseconds cap = std::chrono::seconds(60);
  return p.ttl.count() <= 0 ? cap : std::min(p.ttl, cap);
}

// The sealed value and its store TTL for a payload fresh until `until`.
std::pair<std::string, milliseconds> sealed_value(const RequestScope& s, std::string_view payload,
                                                  std::int64_t until, std::int64_t now) {
  const RequestPolicy& p = s.type.policy;
  milliseconds ttl{0};
  if (until != kForever) {
    const auto fresh_ms = std::chrono::ceil<milliseconds>(nanoseconds(std::max<std::int64_t>(until - now, 0)));
    ttl = std::max(fresh_ms, milliseconds(1)) + std::max(p.stale_for, milliseconds(0));
  }
  return {seal(payload, until), ttl};
}

// Stores the holder's value and drops its lease (invariant 7 for values it cannot keep).
void publish_value(const RequestScope& s, std::uint64_t token, std::string_view payload) {
  const std::int64_t now = monotonic_ns();
  auto [sealed, ttl] = sealed_value(s, payload, fresh_until(now, s.type.policy.ttl), now);
  try {
    if (sealed.size() > s.cache.max_value_size()) {
      const FallbackCause cause = FallbackCause::value_too_large;
      const std::string marker(1, static_cast<char>(cause));
      s.cache.publish(s.key, marker, marker_ttl(cause, s.type.policy), kFlagUncacheable, token);
      s.fallbacks.note(cause, "a computed value is larger than the store's largest entry",
                       &s.cache, s.ns);
      return;
    }
    if (s.cache.publish(s.key, sealed, ttl, kFlagEnvelope, token)) return;
    const FallbackCause cause = FallbackCause::store_full;
    s.fallbacks.note(cause, "the store dropped a computed value (no room)", &s.cache, s.ns);
    const std::string marker(1, static_cast<char>(cause));
    s.cache.put(s.key, marker, marker_ttl(cause, s.type.policy), kFlagUncacheable);
  } catch (const std::exception& e) {
    release(s, token);
    s.fallbacks.note(FallbackCause::store_error, e.what(), &s.cache, s.ns);
  }
}

// The caller holds the lease `token`. Returns the value, published for everybody else.
std::string compute_as_holder(const RequestScope& s, std::uint64_t token,
                              std::optional<std::string> stale) {
  std::string value;
  switch (look(s, value, monotonic_ns())) {  // invariant 2
    case Found::fresh:
      release(s, token);
      return value;
    case Found::stale:
      if (!stale) stale = std::move(value);
      break;
    case Found::uncacheable:
      release(s, token);
      s.fallbacks.note(marker_cause(value), "value could not be cached", &s.cache, s.ns);
      return run_compute(s);
    case Found::error:
      release(s, token);
      return run_compute(s);
    case Found::absent:
      break;
  }
  std::string computed;
  try {
    RenewedLease renewed(s.cache, s.key, token, s.lease_time);  // invariant 9
    computed = run_compute(s);
  } catch (...) {
    release(s, token);  // invariant 6: wakes the waiters, one of them retries
    if (stale) {
      s.cache.record(s.ns, NsCounter::stale_served);
      return std::move(*stale);
    }
    throw;
  }
  publish_value(s, token, computed);
  return computed;
}

std::string refresh_or_serve_stale(const RequestScope& s, std::string stale) {
  LeaseResult lease;
  try {
    lease = s.cache.try_lease(s.key, s.lease_time);
  } catch (const std::exception& e) {
    s.fallbacks.log_once(FallbackCause::store_error, e.what());
    lease.state = LeaseState::unavailable;
  }
  switch (lease.state) {
    case LeaseState::taken_over:
      s.cache.record(s.ns, NsCounter::lease_takeovers);
      [[fallthrough]];
    case LeaseState::acquired:
      s.cache.record(s.ns, NsCounter::misses);
      return compute_as_holder(s, lease.token, std::move(stale));
    case LeaseState::held_by_other:
    case LeaseState::unavailable:
      // Somebody refreshes (or nobody can right now): the stale value is the answer.
      s.cache.record(s.ns, NsCounter::stale_served);
      return stale;
  }
  return stale;
}

// A waiter's look at the key: the answer when there is one (the value, or the waiter's own
// computation when the value cannot be cached), nullopt to keep waiting.
std::optional<std::string> waiter_look(const RequestScope& s, std::string& value) {
  switch (look(s, value, monotonic_ns())) {
    case Found::fresh:
    case Found::stale:
      return std::move(value);
    case Found::uncacheable:
      s.fallbacks.note(marker_cause(value), "value could not be cached", &s.cache, s.ns);
      return run_compute(s);
    case Found::error:
      return run_compute(s);
    case Found::absent:
      break;
  }
  return std::nullopt;
}

std::string compute_once(const RequestScope& s, std::int64_t start) {
  const std::int64_t deadline =
      start + std::chrono::duration_cast<nanoseconds>(s.max_wait).count();
  bool waited = false;
  std::string value;
  for (;;) {
    if (waited) {
      // Back from a wake: most likely the value is there now. Looking before try_lease keeps
      // a woken waiter from taking a fresh lease only to find the value and release it again
      // (which would wake every other waiter once more).
      if (auto answer = waiter_look(s, value)) return std::move(*answer);
    }
    LeaseResult lease;
    try {
      lease = s.cache.try_lease(s.key, s.lease_time);
    } catch (const std::exception& e) {
      s.fallbacks.note(FallbackCause::store_error, e.what(), &s.cache, s.ns);
      return run_compute(s);
    }
    switch (lease.state) {
      case LeaseState::taken_over:
        s.cache.record(s.ns, NsCounter::lease_takeovers);
        [[fallthrough]];
      case LeaseState::acquired:
        return compute_as_holder(s, lease.token, std::nullopt);
      case LeaseState::unavailable:
        s.fallbacks.note(FallbackCause::lease_unavailable,
                         "no room for a lease marker: computing without de-duplication",
                         &s.cache, s.ns);
        return compute_and_store(s);
      case LeaseState::held_by_other:
        break;
    }
    if (!waited) {
      waited = true;
      s.cache.record(s.ns, NsCounter::dedup_waits);
    }
    const std::uint32_t seq = s.cache.lease_wake_seq(s.key);  // invariant 3: before the look
    if (auto answer = waiter_look(s, value)) return std::move(*answer);
    const std::int64_t now = monotonic_ns();
    if (now >= deadline) {  // invariant 5
      s.fallbacks.note(FallbackCause::dedup_wait_timeout,
                       "waited too long for another process's value: computing directly",
                       &s.cache, s.ns);
      return compute_and_store(s);
    }
    if (s.wait_hook != nullptr && *s.wait_hook) (*s.wait_hook)();  // holds no lease: may throw
    s.cache.wait_lease(s.key, seq,
                       std::min<nanoseconds>(kWaitSlice, nanoseconds(deadline - now)));
  }
}

}  // namespace

bool store_payload(const RequestScope& s, std::string_view payload, std::int64_t fresh_until_ns) {
  const std::int64_t now = monotonic_ns();
  const std::int64_t until = fresh_until_ns != 0 ? fresh_until_ns : fresh_until(now, s.type.policy.ttl);
  auto [sealed, ttl] = sealed_value(s, payload, until, now);
  if (sealed.size() > s.cache.max_value_size()) {
    s.fallbacks.note(FallbackCause::value_too_large,
                     "a computed value is larger than the store's largest entry", &s.cache, s.ns);
    return false;
  }
  try {
    if (s.cache.put(s.key, sealed, ttl, kFlagEnvelope)) return true;
    s.fallbacks.note(FallbackCause::store_full, "the store dropped a computed value (no room)",
                     &s.cache, s.ns);
  } catch (const std::exception& e) {
    s.fallbacks.note(FallbackCause::store_error, e.what(), &s.cache, s.ns);
  }
  return false;
}

std::string compute_and_store(const RequestScope& s, std::int64_t fresh_until_ns, bool* stored) {
  std::string value = run_compute(s);
  const bool kept = store_payload(s, value, fresh_until_ns);
  if (stored != nullptr) *stored = kept;
  return value;
}

std::string get_or_compute(const RequestScope& s) {
  thread_local unsigned hit_sample = 0;
  const bool timed = hit_sample % kHitTimeSampleEvery == 0;
  const std::int64_t start = timed ? monotonic_ns() : monotonic_coarse_ns();
  s.cache.record(s.ns, NsCounter::requests);
  std::string value;
  switch (look(s, value, start)) {  // one clock read serves freshness and the hit time
    case Found::fresh:
      s.cache.record(s.ns, NsCounter::hits);
      if (timed) {
        s.cache.record_time(s.ns, NsHistogram::hit_time,
                            static_cast<std::uint64_t>(monotonic_ns() - start));
      }
      ++hit_sample;
      return value;
    case Found::stale:
      return refresh_or_serve_stale(s, std::move(value));
    case Found::uncacheable:
      s.cache.record(s.ns, NsCounter::misses);
      s.fallbacks.note(marker_cause(value), "value could not be cached", &s.cache, s.ns);
      return run_compute(s);
    case Found::error:
      s.cache.record(s.ns, NsCounter::misses);
      return run_compute(s);
    case Found::absent:
      break;
  }
  s.cache.record(s.ns, NsCounter::misses);
  if (!s.type.deduplicate) return compute_and_store(s);
  return compute_once(s, start);
}

}  // namespace pipecache::detail
