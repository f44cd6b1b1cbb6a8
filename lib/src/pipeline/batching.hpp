// Request batching inside the pipeline: the batch handlers registered with
// Pipeline::register_batch_handler, one Batcher per request type and process.
//
// Where it sits: get_or_compute decides WHO computes (the holder of a key's lease, across
// processes); this module decides HOW the holder's computation runs for a type with a batch
// handler: it joins the type's open window, and the window's misses are answered by one call
// of the batch handler. So cross-process de-duplication applies first, and only misses that
// would have run the handler ever reach a batch.
//
// Invariants:
//   1. A request's own handler is the only thing that may fail it: a batch that throws or
//      returns the wrong number of values is re-run request by request, each with its own
//      handler (Batcher semantics 3), and its exception reaches get_or_compute's failure path
//      (lease released, stale value served when there is one) exactly as a direct call would.
//   2. Batcher keys are the requests' cache keys, so two requests share a batch slot only
//      when they would share a cache entry (same type, params and time bucket).
//   3. A BatchItem points at its caller's params and handler. The caller is blocked in load()
//      until its slot is answered, so the pointers are valid whenever the batch or single
//      function reads them; a duplicate's slot uses the first caller's pointers, and every
//      caller of a slot is answered together, after the last read.
//   4. Every counter of a batch is in the segment before any of its callers returns
//      (batchable_requests before load(), the rest in the observer, which the Batcher runs
//      before handing out values).
//   5. A Batcher runs only in the process that built it: each process (a prefork worker
//      forked from a master that already batched) builds its own on its first batched miss.
//      No lock is involved, so nothing inherited across fork() can be found held.
//
// Lifetimes: BatchLanes is the last member of Pipeline::Impl, so every Batcher is drained
// (its pending requests answered and recorded) before the Cache it records into is destroyed.
// A lane replaced by a new registration lives on until the last request using it returns.
// Failures are logged once per lane, cause and process (each worker says it once).
#pragma once

#include <pipecache/batcher.hpp>
#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>

#include <atomic>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <sys/types.h>

namespace pipecache::detail {

// One batched request, as the Batcher keys it.
struct BatchItem {
  std::string key;  // the cache key: identity of the request (invariant 2)
  const Params* params = nullptr;
  const Pipeline::Handler* handler = nullptr;
  // 0 with BatchMerge::identical_keys (same key, same slot); unique per request with
  // BatchMerge::none, so that no two requests share a slot.
  std::uint64_t slot = 0;
};

struct BatchItemHash {
  std::size_t operator()(const BatchItem& item) const noexcept {
    return std::hash<std::string>{}(item.key) ^ std::hash<std::uint64_t>{}(item.slot);
  }
};
struct BatchItemEqual {
  bool operator()(const BatchItem& a, const BatchItem& b) const noexcept {
    return a.slot == b.slot && a.key == b.key;
  }
};

using ItemBatcher = Batcher<BatchItem, std::string, BatchItemHash, BatchItemEqual>;

// One request type's batch handler and its per-process Batchers.
class BatchLane {
 public:
  BatchLane(std::string request_type, Pipeline::BatchHandler handler, const BatchProfile& options);
  ~BatchLane();
  BatchLane(const BatchLane&) = delete;
  BatchLane& operator=(const BatchLane&) = delete;

  // The value of one miss, computed in the type's current batch. Throws only what the
  // request's own handler throws (invariant 1). `ns` is the type's namespace in `cache`.
  std::string compute(Cache& cache, int ns, std::string_view key, const Params& params,
                      const Pipeline::Handler& handler);

 private:
  // One process's Batcher. Older ones (inherited from a parent) are chained through
  // `inherited` and freed with the lane: a thread may still be reading one it loaded.
  struct ProcessBatcher {
    pid_t pid;
    std::unique_ptr<ItemBatcher> batcher;
    ProcessBatcher* inherited = nullptr;
  };

  // This process's Batcher, built on first use (invariant 5).
  ItemBatcher& batcher_here(Cache& cache, int ns);
  void record(Cache& cache, int ns, const BatchReport& report) const noexcept;
  void log_failure(const BatchReport& report) const noexcept;

  const std::string request_type_;
  const Pipeline::BatchHandler handler_;
  const BatcherOptions options_;
  const BatchMerge merge_;
  std::atomic<std::uint64_t> next_slot_{0};  // BatchMerge::none: a slot per request
  // Published with release by the thread that built it; acquire by users.
  std::atomic<ProcessBatcher*> current_{nullptr};
  // Logged once per lane and cause: a failing database must not flood the server's log.
  mutable std::atomic<bool> logged_throw_{false};
  mutable std::atomic<bool> logged_count_{false};
  std::atomic<bool> logged_start_{false};
};

// The registered batch handlers of one Pipeline, by request type.
//
// Thread-safety: all members may be called concurrently. mu_ guards lanes_ and is held only
// to look up or replace an entry, never while a batch or handler runs.
class BatchLanes {
 public:
  BatchLanes() = default;

  // Registers (replaces) the type's batch handler, batching with `options` (the type's batch
  // profile); an empty handler removes it.
  void set(std::string request_type, Pipeline::BatchHandler handler, const BatchProfile& options);
  // The type's lane, or null. Cheap (one relaxed load) while nothing is registered.
  std::shared_ptr<BatchLane> find(std::string_view request_type) const;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };

  std::atomic<bool> any_{false};  // lanes_ is not empty (mirrors it; set under mu_)
  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<BatchLane>, Hash, std::equal_to<>>
      lanes_;  // GUARDED_BY(mu_)
};

}  // namespace pipecache::detail
