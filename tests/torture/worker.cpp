#include "torture/worker.hpp"

#include <unistd.h>

#include <chrono>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>

#include "support/process.hpp"

namespace torture {

using namespace std::chrono_literals;
using pipecache::Cache;

std::string key_of(unsigned k) {
  // One key in eight lies outside every namespace (namespace 0): invalidations by namespace
  // must leave those alone, scans must still find them.
  if (k % 8 == 7) return fmt::format("raw{}", k);
  return fmt::format("t{}:{}", k % 4, k);
}

namespace {

// Weights of the mix (per mille). Reads dominate as in a response cache; every write path,
// including the rare whole-table ones, runs often enough to be killed inside many times.
struct Mix {
  Op op;
  unsigned weight;
};
constexpr Mix kMix[] = {
    {Op::get, 380},   {Op::visit, 40}, {Op::put, 250},
    {Op::erase, 50},  {Op::invalidate_glob, 2}, {Op::invalidate_namespace, 1},
    {Op::purge, 1},   {Op::keys, 1},   {Op::lease, 120},
    {Op::pipeline, 150},
};

class Worker {
 public:
  Worker(const WorkerPlan& plan, Board& board)
      : plan_(plan), me_(board.workers[plan.slot]), board_(board), rng_(plan.seed),
        cache_(Cache::open(plan.segment)) {
    if (plan.pipeline) {
      pipecache::PipelineConfig pc;
      pc.segment_name = plan.segment;
      pc.enable_request_batching = false;
      // A killed lease holder is replaced by pid liveness at once; a late one after this.
      pc.lease_time = 1000ms;
      pc.dedup_max_wait = 2000ms;
      pipeline_.emplace(pc);
      for (int t = 0; t < 2; ++t) {
        pipecache::RequestPolicy pol;
        pol.ttl = t == 0 ? 300ms : 2000ms;
        pol.stale_for = t == 0 ? 200ms : 0ms;
        pipeline_->set_policy(fmt::format("pq{}", t), pol);
      }
    }
  }

  int run() {
    unsigned total = 0;
    for (const Mix& m : kMix) total += m.weight;
    while (!board_.stop.load(std::memory_order_relaxed)) {
      unsigned pick = static_cast<unsigned>(rng_() % total);
      Op op = Op::get;
      for (const Mix& m : kMix) {
        if (pick < m.weight) {
          op = m.op;
          break;
        }
        pick -= m.weight;
      }
      if (op == Op::pipeline && !plan_.pipeline) op = Op::lease;
      std::uint64_t t0 = now_ns();
      me_.current_op.store(static_cast<unsigned>(op) + 1, std::memory_order_relaxed);
      try {
        run_one(op);
      } catch (const std::exception& e) {
        me_.errors.fetch_add(1, std::memory_order_relaxed);
        set_note(me_.note, fmt::format("{} threw: {}", kOpNames[static_cast<unsigned>(op)], e.what()).c_str());
      }
      std::uint64_t t1 = now_ns();
      me_.current_op.store(0, std::memory_order_relaxed);
      me_.ops[static_cast<unsigned>(op)].fetch_add(1, std::memory_order_relaxed);
      raise_max(me_.max_op_ns, t1 - t0);
      if (me_.first_op_ns.load(std::memory_order_relaxed) == 0) me_.first_op_ns.store(t1, std::memory_order_relaxed);
      me_.heartbeat_ns.store(t1, std::memory_order_relaxed);
    }
    return 0;
  }

 private:
  unsigned random_key() { return static_cast<unsigned>(rng_() % plan_.keys); }
  std::size_t random_size() {
    if (rng_() % 64 == 0) return 1024 + rng_() % plan_.large_value;
    return 40 + rng_() % plan_.max_value;
  }
  // Half the puts give a key the size it always gets: updates of a resident key then fit its
  // block and are written over the old value in place (store/table.hpp W4), the other half
  // go through the allocator.
  std::size_t put_size(unsigned k) {
    if (rng_() % 2) return random_size();
    return 40 + (std::uint64_t{k} * 2654435761u) % plan_.max_value;
  }
  std::chrono::milliseconds random_ttl() {
    switch (rng_() % 4) {
      case 0: return 0ms;  // never expires
      case 1: return std::chrono::milliseconds(20 + rng_() % 200);
      default: return std::chrono::milliseconds(500 + rng_() % 5000);
    }
  }
  std::uint64_t next_version() { return (std::uint64_t{plan_.slot} << 48) | ++version_; }

  // Every value handed back by the cache goes through here.
  void check(std::string_view key, std::string_view value) {
    me_.values_read.fetch_add(1, std::memory_order_relaxed);
    if (!testing::check_value(key, value)) {
      me_.corrupt.fetch_add(1, std::memory_order_relaxed);
      set_note(me_.note, fmt::format("corrupt value for '{}': {} bytes, starts '{}'", key, value.size(),
                                     value.substr(0, 48)).c_str());
    }
  }

  void run_one(Op op) {
    switch (op) {
      case Op::get: {
        std::string key = key_of(random_key());
        if (cache_.get(key, buf_)) {
          me_.hits.fetch_add(1, std::memory_order_relaxed);
          check(key, buf_);
        }
        break;
      }
      case Op::visit: {
        std::string key = key_of(random_key());
        bool ok = true;
        std::size_t size = 0;
        if (cache_.visit(key, [&](std::string_view v) {
              size = v.size();
              ok = testing::check_value(key, v);
            })) {
          me_.hits.fetch_add(1, std::memory_order_relaxed);
          me_.values_read.fetch_add(1, std::memory_order_relaxed);
          if (!ok) {
            me_.corrupt.fetch_add(1, std::memory_order_relaxed);
            set_note(me_.note, fmt::format("corrupt value for '{}' seen by visit ({} bytes)", key, size).c_str());
          }
        }
        break;
      }
      case Op::put: {
        unsigned k = random_key();
        std::string key = key_of(k);
        if (!cache_.put(key, testing::make_value(key, next_version(), put_size(k)), random_ttl(), 0))
          me_.puts_dropped.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case Op::erase:
        cache_.erase(key_of(random_key()));
        break;
      case Op::invalidate_glob: {
        // Scans: a key prefix within a namespace, a suffix across all keys, a '?' pattern.
        unsigned k = random_key();
        switch (rng_() % 3) {
          case 0: cache_.invalidate(fmt::format("t{}:{}*", k % 4, k % 100)); break;
          case 1: cache_.invalidate(fmt::format("*{}", k % 1000)); break;
          default: cache_.invalidate(fmt::format("raw{}?", k % 100)); break;
        }
        break;
      }
      case Op::invalidate_namespace:
        cache_.invalidate(fmt::format("t{}:*", rng_() % 4));  // O(1) generation bump
        break;
      case Op::purge:
        cache_.purge();
        break;
      case Op::keys:
        for (const auto& info : cache_.keys(fmt::format("t{}:1*", rng_() % 4), 200))
          if (info.key.size() < 3) throw pipecache::Error("keys() returned a malformed key");
        break;
      case Op::lease:
        lease_get_or_compute(key_of(random_key()));
        break;
      case Op::pipeline:
        pipeline_request();
        break;
      case Op::count_:
        break;
    }
  }

  // The store's lease protocol used directly, as a pipeline would: look, lease, compute
  // (with no lock held), publish; or wait for the holder and look again.
  void lease_get_or_compute(const std::string& key) {
    auto deadline = std::chrono::steady_clock::now() + 3s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::uint32_t seen = cache_.lease_wake_seq(key);
      if (cache_.get(key, buf_)) {
        me_.hits.fetch_add(1, std::memory_order_relaxed);
        check(key, buf_);
        return;
      }
      auto lease = cache_.try_lease(key, 500ms);
      switch (lease.state) {
        case pipecache::LeaseState::acquired:
        case pipecache::LeaseState::taken_over: {
          (lease.state == pipecache::LeaseState::acquired ? me_.lease_acquired : me_.lease_taken_over)
              .fetch_add(1, std::memory_order_relaxed);
          std::string value = testing::make_value(key, next_version(), random_size());
          if (rng_() % 16 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng_() % 2000));
          if (rng_() % 32 == 0) {
            cache_.release_lease(key, lease.token);  // the computation "failed"
          } else if (!cache_.publish(key, value, random_ttl(), 0, lease.token)) {
            me_.puts_dropped.fetch_add(1, std::memory_order_relaxed);
          }
          return;
        }
        case pipecache::LeaseState::held_by_other:
          me_.lease_waited.fetch_add(1, std::memory_order_relaxed);
          cache_.wait_lease(key, seen, 50ms);
          break;
        case pipecache::LeaseState::unavailable:
          me_.lease_unavailable.fetch_add(1, std::memory_order_relaxed);
          return;  // compute without de-dup: nothing to store
      }
    }
    throw pipecache::Error(fmt::format("lease on '{}' neither resolved nor taken over within 3 s", key));
  }

  void pipeline_request() {
    unsigned id = static_cast<unsigned>(rng_() % 300);
    std::string type = fmt::format("pq{}", id % 2);
    std::string logical = fmt::format("{}/{}", type, id);
    std::size_t size = 40 + rng_() % plan_.max_value;
    std::string v = pipeline_->process_request(type, {{"id", std::to_string(id)}}, [&] {
      if (rng_() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng_() % 3000));
      return testing::make_value(logical, next_version(), size);
    });
    check(logical, v);
  }

  const WorkerPlan& plan_;
  WorkerSlot& me_;
  Board& board_;
  std::mt19937_64 rng_;
  Cache cache_;
  std::optional<pipecache::Pipeline> pipeline_;
  std::string buf_;
  std::uint64_t version_ = 0;
};

}  // namespace

int run_worker(const WorkerPlan& plan, Board& board) {
  WorkerSlot& me = board.workers[plan.slot];
  me.pid.store(::getpid(), std::memory_order_relaxed);
  try {
    Worker w(plan, board);
    // Armed only after opening: the kill must land inside a cache operation's critical
    // section, which is where the named points are.
    if (plan.fault != pipecache::detail::FaultPoint::none) pipecache::detail::arm_fault(plan.fault, plan.fault_n);
    return w.run();
  } catch (const std::exception& e) {
    me.errors.fetch_add(1, std::memory_order_relaxed);
    set_note(me.note, fmt::format("worker failed: {}", e.what()).c_str());
    return 3;
  }
}

int run_checker(const std::string& segment, Board& board, unsigned period_ms) {
  try {
    Cache cache = Cache::open(segment);
    while (!board.stop.load(std::memory_order_relaxed)) {
      std::uint64_t t0 = now_ns();
      auto report = cache.verify();
      raise_max(board.verify_max_ns, now_ns() - t0);
      board.verify_runs.fetch_add(1, std::memory_order_relaxed);
      if (!report.ok()) {
        board.verify_problems.fetch_add(report.problems.size(), std::memory_order_relaxed);
        set_note(board.verify_note, report.problems.front().c_str());
      }
      for (unsigned waited = 0; waited < period_ms && !board.stop.load(std::memory_order_relaxed); waited += 10)
        std::this_thread::sleep_for(10ms);
    }
    return 0;
  } catch (const std::exception& e) {
    set_note(board.verify_note, fmt::format("checker failed: {}", e.what()).c_str());
    board.verify_problems.fetch_add(1, std::memory_order_relaxed);
    return 3;
  }
}

}  // namespace torture
