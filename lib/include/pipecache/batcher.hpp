// pipecache — Batcher: requests for one kind of data made within a short window are answered
// by ONE call of a batch function (DataLoader-style request batching, in process).
//
//   Batcher<Range, std::string> events(batch_query, single_query, {.max_batch_size = 10,
//                                                                  .max_wait = 50ms});
//   std::string rows = events.load(range);            // blocks; or submit(range) -> future
//
// Ten `events_by_range` lookups are one SQL query with ten ranges instead of ten round trips:
// that is what this buys. Its price is latency: a request waits up to `max_wait` for company.
//
// Semantics
//   1. A batch is the set of requests received while one window is open. The window opens
//      with the first request of the batch and lasts `max_wait`. The batch is dispatched when
//      it holds `max_batch_size` distinct keys or when its window expires, whichever first —
//      or, when `max_idle` is set, once no request has joined it for `max_idle` (off by
//      default: the design's semantics are size or window).
//   2. Identical keys in one window share one slot: the batch function sees each key once and
//      every caller of that key gets its own copy of the value — or, when the key fails, the
//      same exception object (as with std::shared_future; reading it from several threads is
//      safe). Keys are identified by `KeyHash` and `KeyEqual` (default std::hash<Key> and
//      operator==): Key must be hashable, equality-comparable and copyable. Value must be
//      copyable (identical keys share it).
//   3. The batch function gets the batch's keys and must return one value per key, in the
//      same order. If it throws, or returns the wrong number of values, the batch has FAILED:
//      each key is then run alone through the single function, and each caller gets its own
//      key's value or its own key's exception — never a neighbour's.
//   4. No request is ever left waiting: shutdown() (and the destructor) dispatch every pending
//      batch at once, without waiting for its window, run it to the end, then stop. A
//      submit() that arrives after shutdown began is run ALONE on the caller's thread through
//      the single function (it does not throw for being late): the cache must never make a
//      request fail, and a late request costs one query rather than an error.
//   5. When a caller's future becomes ready, stats() and the observer already account for its
//      batch (they are updated before any value of the batch is handed out).
//
// Threads
//   Each Batcher owns ONE dispatcher thread. It sleeps until a batch is full or a window
//   expires, then runs the batch function, the fallbacks and the observer itself, so batches
//   of one Batcher run one at a time, in the order their windows opened. Rejected alternative:
//   running a full batch on the submitter that filled it — submit() would then block for a
//   whole query, and the batch function would need to be reentrant. One thread per Batcher
//   suits a request type backed by one database connection; when the batch function is slower
//   than the arrival of `max_batch_size` requests, the queue grows and batches run back to
//   back at full size, which is exactly when batching pays the most.
//   fork(): a Batcher belongs to the process that built it. In a process forked from it (a
//   prefork worker inheriting the master's Batcher) there is no dispatcher thread, so every
//   submit() there is answered alone, at once, through the single function; the child never
//   touches the inherited locks and its destructor leaks them (stats() reads zero there).
//   Build one Batcher per worker, after fork, to batch in the workers.
//   The batch function is only ever called on the dispatcher thread (never concurrently with
//   itself). The single function is called on the dispatcher thread (fallbacks) and, after
//   shutdown began or in a forked child, on the callers' threads — possibly at the same time
//   as a draining batch.
//
// Thread-safety and lock rules
//   - submit(), load(), stats(), shutdown() may be called from any thread at once.
//   - Core::mutex protects everything marked GUARDED_BY(mutex) below: the open window, the
//     queue of full batches, the stopping flag and the statistics. It is held only to move
//     keys and promises in and out of those containers, never while the batch function, the
//     single function, the observer or a promise's continuation runs. So those callbacks may call
//     submit() and stats() on their own Batcher. They must not WAIT for a result of their
//     own Batcher (the dispatcher would wait for itself), and must not destroy it.
//   - Core::join_mutex only serialises joins of the dispatcher (two threads calling
//     shutdown()). It is never taken while holding Core::mutex.
//   - The observer runs on the dispatcher thread, before the batch's callers are woken: keep it
//     short (record counters, log). Exceptions it throws are swallowed.
//   - The destructor calls shutdown(); it must not race with other calls on the same object.
//   - ThreadSanitizer: an exception handed to a caller through std::promise may be freed by
//     the dispatcher after the caller read it. std::exception_ptr's atomic reference count
//     orders the two, but it lives in the uninstrumented libstdc++.so, so TSan reports a race
//     that is not one; tests/batcher/tsan.supp silences exactly that frame.
#pragma once

#include <pipecache/figures.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <sys/types.h>
#include <unistd.h>

#ifndef PIPECACHE_GUARDED_BY
#define PIPECACHE_GUARDED_BY(lock)  // documentation only: the lock that protects a field
#endif

namespace pipecache {

struct BatcherOptions {
  // Seed defaults are the design's `database_query` batch type: up to 10 keys, 50 ms window.
  std::size_t max_batch_size = 10;  // distinct keys per batch; must be >= 1
  // Window length, measured from the first request of the batch; must be >= 0. Zero means
  // "whatever arrived before the dispatcher woke up".
  std::chrono::nanoseconds max_wait = std::chrono::milliseconds(50);
  // > 0: also close the window once no request has joined it for this long. With fewer
  // concurrent callers than max_batch_size, every window would otherwise run its full
  // max_wait (measured: 4 closed-loop clients, batch 10, 50 ms window -> 62 ms mean latency);
  // a short idle gap dispatches them as soon as they have all arrived, and under load
  // requests keep arriving, so batches still fill. 0 = off; must be >= 0.
  std::chrono::nanoseconds max_idle{0};
};

enum class BatchTrigger {
  full,      // max_batch_size distinct keys collected
  window,    // max_wait passed since the first request of the batch
  idle,      // max_idle passed since the last request joined the batch
  shutdown,  // drained by shutdown() before its window expired
};

// What happened to one dispatched batch; given to the observer (see Batcher's constructor).
struct BatchReport {
  BatchTrigger trigger = BatchTrigger::window;
  std::size_t keys = 0;       // distinct keys given to the batch function
  std::size_t requests = 0;   // callers answered by this batch (>= keys: identical keys share)
  bool failed = false;        // the batch function threw or returned the wrong number of values
  std::size_t returned = 0;   // values the batch function returned (0 when it threw)
  std::exception_ptr error;   // what the batch function threw; null if it returned
  std::size_t fallbacks = 0;        // requests answered by the single function after a failure
  std::size_t fallback_errors = 0;  // of those, requests whose single call threw
  std::chrono::nanoseconds wait{0};  // summed over requests: submit -> dispatch of the batch
  std::chrono::nanoseconds run{0};   // batch function + fallbacks, wall time
};

// Totals since construction. A consistent snapshot (taken under the Batcher's lock).
struct BatcherStats {
  std::uint64_t requests = 0;          // every submit() / load(), including late ones
  std::uint64_t batches = 0;           // batch function calls (= dispatched batches)
  std::uint64_t batched_keys = 0;      // distinct keys given to the batch function
  std::uint64_t batched_requests = 0;  // requests answered by the batch function itself
  std::uint64_t joined = 0;            // requests dispatched in a batch of 2 or more requests
  std::uint64_t duplicates = 0;        // requests that shared a slot with an identical key
  std::uint64_t failures = 0;          // batches whose function threw or miscounted
  std::uint64_t fallbacks = 0;         // requests re-run alone after a batch failure
  std::uint64_t fallback_errors = 0;   // of those, requests whose single call threw
  std::uint64_t unbatched = 0;         // submitted after shutdown began: run alone at once
  std::uint64_t wait_ns = 0;           // summed over requests: time spent in a window
  std::uint64_t largest_batch = 0;     // most requests answered by one batch

  // Requests that joined a batch of 2+ / all requests handed to the batcher. The design's
  // target for a batch-eligible type under load is > 0.7.
  // 0 when there were none (figures.hpp defines both figures for every report).
  double formation_efficiency() const noexcept {
    return figures::or_zero(figures::batch_formation(joined, requests));
  }
  double average_batch_requests() const noexcept {
    return figures::or_zero(figures::average_batch_size(batched_requests, fallbacks, batches));
  }
};

template <typename Key, typename Value, typename KeyHash = std::hash<Key>,
          typename KeyEqual = std::equal_to<Key>>
class Batcher {
  static_assert(!std::is_void_v<Value>, "a Batcher answers each key with a value");
  static_assert(std::is_copy_constructible_v<Value>, "identical keys share one copied value");
  static_assert(std::is_copy_constructible_v<Key>, "the Batcher keeps a copy of each key");

 public:
  using BatchFunction = std::function<std::vector<Value>(const std::vector<Key>&)>;
  using SingleFunction = std::function<Value(const Key&)>;
  using Observer = std::function<void(const BatchReport&)>;

  // Starts the dispatcher thread. Throws std::invalid_argument for an empty function,
  // max_batch_size 0 or a negative max_wait; std::system_error if no thread can be started.
  Batcher(BatchFunction batch_function, SingleFunction single_function,
          BatcherOptions options = {}, Observer observer = {})
      : batch_function_(std::move(batch_function)),
        single_function_(std::move(single_function)),
        observer_(std::move(observer)),
        options_(options) {
    if (!batch_function_ || !single_function_) {
      throw std::invalid_argument("pipecache::Batcher: batch and single functions are required");
    }
    if (options_.max_batch_size == 0) {
      throw std::invalid_argument("pipecache::Batcher: max_batch_size must be at least 1");
    }
    if (options_.max_wait < std::chrono::nanoseconds::zero() ||
        options_.max_idle < std::chrono::nanoseconds::zero()) {
      throw std::invalid_argument("pipecache::Batcher: max_wait and max_idle must not be negative");
    }
    core_->dispatcher = std::thread([this] { dispatch_loop(); });
  }

  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  // Drains every pending batch (see shutdown()). In a process forked from the owner, leaks the
  // inherited state instead (see Core).
  ~Batcher() {
    if (!in_owner_process()) {
      (void)core_.release();
      return;
    }
    shutdown();
  }

  // Queues `key` in the open window (opening one if none is) and returns the caller's own
  // future. Never blocks on a batch. After shutdown began, runs the single function on this
  // thread and returns a ready future. The future holds the value, or the exception of the
  // single function for this key; it never reports another key's failure.
  std::future<Value> submit(Key key) {
    if (!in_owner_process()) return run_alone(key);
    std::promise<Value> promise;
    std::future<Value> future = promise.get_future();
    const Clock::time_point now = Clock::now();
    bool late = false;
    bool wake_dispatcher = false;
    {
      std::lock_guard<std::mutex> lock(core_->mutex);
      ++core_->stats.requests;
      if (core_->stopping) {
        ++core_->stats.unbatched;
        late = true;
      } else {
        if (!core_->open) {
          core_->open.emplace();
          core_->open->deadline = now + options_.max_wait;
          wake_dispatcher = true;  // it sleeps without a deadline while no window is open
        }
        Batch& batch = *core_->open;
        batch.last_arrival = std::max(batch.last_arrival, now);
        // If an allocation fails below, the exception reaches this caller and the batch may
        // keep one slot nobody waits for: its value is computed and dropped, harmlessly.
        auto found = batch.index.find(key);
        std::size_t slot;
        if (found == batch.index.end()) {
          slot = batch.keys.size();
          batch.index.emplace(key, slot);
          batch.keys.push_back(std::move(key));
          batch.waiters.emplace_back();
        } else {
          slot = found->second;
          ++core_->stats.duplicates;
        }
        batch.waiters[slot].push_back(Waiter{std::move(promise), now});
        ++batch.requests;
        if (batch.keys.size() >= options_.max_batch_size) {
          core_->full.push_back(std::move(batch));
          core_->open.reset();
          wake_dispatcher = true;
        }
      }
    }
    if (wake_dispatcher) core_->ready.notify_one();
    if (late) return run_alone(key);  // semantics 4; `promise` is dropped unused
    return future;
  }

  // submit(key).get(): the value, or rethrows this key's exception.
  Value load(Key key) { return submit(std::move(key)).get(); }

  // Stops accepting requests into batches, dispatches every pending batch immediately (the
  // running one finishes first), waits until all their callers are answered and joins the
  // dispatcher. Idempotent; safe from several threads at once. Called from a callback on the
  // dispatcher thread, it only starts the drain (the destructor joins later).
  void shutdown() noexcept {
    if (!in_owner_process()) return;
    bool on_dispatcher;
    {
      std::lock_guard<std::mutex> lock(core_->mutex);
      core_->stopping = true;
      on_dispatcher = std::this_thread::get_id() == core_->dispatcher_id;
    }
    core_->ready.notify_one();
    if (on_dispatcher) return;  // joining itself would deadlock; the loop drains and exits
    std::lock_guard<std::mutex> join_lock(core_->join_mutex);
    if (core_->dispatcher.joinable()) {
      try {
        core_->dispatcher.join();
      } catch (...) {
        // join() only throws for a thread that cannot be joined; nothing is left to wait for.
      }
    }
  }

  bool is_shut_down() const {
    if (!in_owner_process()) return true;
    std::lock_guard<std::mutex> lock(core_->mutex);
    return core_->stopping;
  }

  // Requests queued and not yet dispatched (open window + full batches waiting to run).
  std::size_t pending() const {
    if (!in_owner_process()) return 0;
    std::lock_guard<std::mutex> lock(core_->mutex);
    std::size_t n = core_->open ? core_->open->requests : 0;
    for (const Batch& batch : core_->full) n += batch.requests;
    return n;
  }

  // In a process forked from the owner: all zero (the parent's figures stay the parent's).
  BatcherStats stats() const {
    if (!in_owner_process()) return {};
    std::lock_guard<std::mutex> lock(core_->mutex);
    return core_->stats;
  }

  const BatcherOptions& options() const noexcept { return options_; }

 private:
  using Clock = std::chrono::steady_clock;  // CLOCK_MONOTONIC: windows never jump

  struct Waiter {
    std::promise<Value> promise;
    Clock::time_point submitted;
  };

  // One window's requests. keys[i] is answered to every waiter in waiters[i].
  struct Batch {
    std::vector<Key> keys;
    std::vector<std::vector<Waiter>> waiters;
    std::unordered_map<Key, std::size_t, KeyHash, KeyEqual> index;  // key -> slot
    std::size_t requests = 0;
    Clock::time_point deadline;      // first arrival + max_wait
    Clock::time_point last_arrival;  // for max_idle
  };

  // When the open batch must be dispatched if it does not fill first.
  Clock::time_point due(const Batch& batch) const noexcept {
    if (options_.max_idle <= std::chrono::nanoseconds::zero()) return batch.deadline;
    return std::min(batch.deadline, batch.last_arrival + options_.max_idle);
  }

  // The outcome of one slot, collected before anyone is answered (see semantics 5).
  struct Outcome {
    std::optional<Value> value;
    std::exception_ptr error;
  };

  // Invariant: the loop returns only when `stopping` is set and no batch is queued, both seen
  // under `mutex`; since submit() queues nothing once `stopping` is set, every queued request
  // has been answered when the dispatcher exits.
  // A pid check costs one getpid() system call per submit (~0.1 us), nothing next to a window.
  bool in_owner_process() const noexcept { return ::getpid() == owner_pid_; }

  // Answers one request on the caller's thread with the single function, touching no state.
  std::future<Value> run_alone(const Key& key) {
    std::promise<Value> promise;
    std::future<Value> future = promise.get_future();
    try {
      promise.set_value(single_function_(key));
    } catch (...) {
      promise.set_exception(std::current_exception());
    }
    return future;
  }

  void dispatch_loop() noexcept {
    std::unique_lock<std::mutex> lock(core_->mutex);
    core_->dispatcher_id = std::this_thread::get_id();
    for (;;) {
      std::optional<Batch> batch;
      BatchTrigger trigger = BatchTrigger::full;
      if (!core_->full.empty()) {
        batch.emplace(std::move(core_->full.front()));
        core_->full.pop_front();
      } else if (core_->open && (core_->stopping || Clock::now() >= due(*core_->open))) {
        const Clock::time_point now = Clock::now();
        trigger = now >= core_->open->deadline ? BatchTrigger::window
                  : now >= due(*core_->open)   ? BatchTrigger::idle
                                               : BatchTrigger::shutdown;
        batch.emplace(std::move(*core_->open));
        core_->open.reset();
      } else if (core_->stopping) {
        return;
      } else if (core_->open) {
        // A later arrival moves due() forward: waking at the old one only re-checks.
        core_->ready.wait_until(lock, due(*core_->open));
        continue;
      } else {
        core_->ready.wait(lock);
        continue;
      }
      lock.unlock();
      run(std::move(*batch), trigger);
      lock.lock();
    }
  }

  // Runs one batch on the dispatcher thread, without `mutex`. Answers every waiter exactly once.
  void run(Batch batch, BatchTrigger trigger) noexcept {
    try {
      run_unguarded(batch, trigger);
    } catch (...) {
      // Only allocation failures reach here. Promises already satisfied refuse the second
      // answer (future_error), which is ignored: every other caller learns of the failure.
      const std::exception_ptr error = std::current_exception();
      for (auto& slot : batch.waiters) {
        for (Waiter& waiter : slot) {
          try {
            waiter.promise.set_exception(error);
          } catch (...) {
          }
        }
      }
    }
  }

  void run_unguarded(Batch& batch, BatchTrigger trigger) {
    const Clock::time_point dispatched = Clock::now();
    BatchReport report;
    report.trigger = trigger;
    report.keys = batch.keys.size();
    report.requests = batch.requests;
    for (const auto& slot : batch.waiters) {
      for (const Waiter& waiter : slot) report.wait += dispatched - waiter.submitted;
    }

    std::vector<Outcome> outcomes(batch.keys.size());
    try {
      std::vector<Value> values = batch_function_(batch.keys);
      report.returned = values.size();
      if (values.size() == batch.keys.size()) {
        for (std::size_t i = 0; i < values.size(); ++i) outcomes[i].value.emplace(std::move(values[i]));
      } else {
        report.failed = true;
      }
    } catch (...) {
      report.failed = true;
      report.error = std::current_exception();
    }
    if (report.failed) {
      for (std::size_t i = 0; i < batch.keys.size(); ++i) {
        try {
          outcomes[i].value.emplace(single_function_(batch.keys[i]));
        } catch (...) {
          outcomes[i].error = std::current_exception();
          report.fallback_errors += batch.waiters[i].size();
        }
        report.fallbacks += batch.waiters[i].size();
      }
    }
    report.run = Clock::now() - dispatched;

    {
      std::lock_guard<std::mutex> lock(core_->mutex);
      ++core_->stats.batches;
      core_->stats.batched_keys += report.keys;
      if (!report.failed) core_->stats.batched_requests += report.requests;
      if (report.requests >= 2) core_->stats.joined += report.requests;
      if (report.failed) ++core_->stats.failures;
      core_->stats.fallbacks += report.fallbacks;
      core_->stats.fallback_errors += report.fallback_errors;
      core_->stats.wait_ns += static_cast<std::uint64_t>(report.wait.count());
      core_->stats.largest_batch = std::max<std::uint64_t>(core_->stats.largest_batch, report.requests);
    }
    if (observer_) {
      try {
        observer_(report);
      } catch (...) {
        // An observer only records; its failure must not cost the callers their answers.
      }
    }

    for (std::size_t i = 0; i < batch.keys.size(); ++i) {
      std::vector<Waiter>& slot = batch.waiters[i];
      Outcome& outcome = outcomes[i];
      for (std::size_t w = 0; w < slot.size(); ++w) {
        // Moved out so that this thread lets go of each caller's shared state as soon as it
        // is answered: the caller, not the dispatcher, then usually frees the answer.
        std::promise<Value> promise = std::move(slot[w].promise);
        const bool last = w + 1 == slot.size();
        if (!outcome.value) {
          promise.set_exception(last ? std::move(outcome.error) : outcome.error);
          continue;
        }
        try {
          if (last) {
            promise.set_value(std::move(*outcome.value));  // the last waiter takes the original
          } else {
            promise.set_value(*outcome.value);
          }
        } catch (...) {
          promise.set_exception(std::current_exception());  // Value's copy threw
        }
      }
    }
  }

  // Immutable after construction; called only outside Core::mutex.
  const BatchFunction batch_function_;
  const SingleFunction single_function_;
  const Observer observer_;
  const BatcherOptions options_;

  // Everything the dispatcher shares with callers. On the heap so that a process forked from
  // the owner can leave its inherited copy alone: in the child the dispatcher thread does not
  // exist, the mutex may be copied locked, and destroying the condition variable could wait
  // forever for a waiter that lives only in the parent.
  struct Core {
    mutable std::mutex mutex;
    std::condition_variable ready;  // a window opened, a batch filled, or shutdown began
    std::optional<Batch> open PIPECACHE_GUARDED_BY(mutex);  // the window accepting requests
    std::deque<Batch> full PIPECACHE_GUARDED_BY(mutex);     // full batches, oldest first
    bool stopping PIPECACHE_GUARDED_BY(mutex) = false;
    BatcherStats stats PIPECACHE_GUARDED_BY(mutex);
    std::thread::id dispatcher_id PIPECACHE_GUARDED_BY(mutex);
    std::mutex join_mutex;
    std::thread dispatcher PIPECACHE_GUARDED_BY(join_mutex);
  };
  const pid_t owner_pid_ = ::getpid();
  std::unique_ptr<Core> core_ = std::make_unique<Core>();  // never null in the owner process
};

}  // namespace pipecache
