// Request batching inside the pipeline: the invariants are in batching.hpp.
#include "pipeline/batching.hpp"

#include <cstdio>
#include <exception>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <unistd.h>

namespace pipecache::detail {
namespace {

void log_line(const std::string& text) noexcept {
  std::fprintf(stderr, "pipecache: %s (logged once)\n", text.c_str());
}

std::string describe(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an exception not derived from std::exception";
  }
}

}  // namespace

BatchLane::BatchLane(std::string request_type, Pipeline::BatchHandler handler,
                     const BatchProfile& options)
    : request_type_(std::move(request_type)),
      handler_(std::move(handler)),
      options_(BatcherOptions{options.batch_size, options.batch_timeout}),
      merge_(options.merge) {}

BatchLane::~BatchLane() {
  // The current Batcher first: draining it may still run this lane's functions.
  ProcessBatcher* p = current_.load(std::memory_order_acquire);
  while (p != nullptr) {
    ProcessBatcher* older = p->inherited;
    delete p;  // an inherited Batcher leaves its parent's state alone (batcher.hpp, fork())
    p = older;
  }
}

std::string BatchLane::compute(Cache& cache, int ns, std::string_view key, const Params& params,
                               const Pipeline::Handler& handler) {
  ItemBatcher* batcher = nullptr;
  try {
    batcher = &batcher_here(cache, ns);
  } catch (const std::exception& e) {
    // No dispatcher thread could be started: the request is answered alone, as without a
    // batch handler, rather than failed by the batching machinery.
    if (!logged_start_.exchange(true, std::memory_order_relaxed)) {
      log_line(fmt::format("batching of '{}' is unavailable ({}): requests run one by one",
                           request_type_, e.what()));
    }
    return handler();
  }
  cache.record(ns, NsCounter::batchable_requests);  // invariant 4: before load()
  const std::uint64_t slot = merge_ == BatchMerge::none
                                 ? next_slot_.fetch_add(1, std::memory_order_relaxed) + 1
                                 : 0;
  return batcher->load(BatchItem{std::string(key), &params, &handler, slot});
}

ItemBatcher& BatchLane::batcher_here(Cache& cache, int ns) {
  const pid_t pid = ::getpid();
  ProcessBatcher* seen = current_.load(std::memory_order_acquire);
  if (seen != nullptr && seen->pid == pid) return *seen->batcher;

  auto fresh = std::make_unique<ProcessBatcher>();
  fresh->pid = pid;
  // The functions hold `this`: the lane outlives its Batchers (~BatchLane deletes them).
  // Cache and ns are the Pipeline's, fixed for the life of the lane in this process.
  fresh->batcher = std::make_unique<ItemBatcher>(
      [this](const std::vector<BatchItem>& items) {
        std::vector<Params> all;
        all.reserve(items.size());
        for (const BatchItem& item : items) all.push_back(*item.params);
        return handler_(all);
      },
      [](const BatchItem& item) { return (*item.handler)(); },
      options_,
      [this, &cache, ns](const BatchReport& report) { record(cache, ns, report); });
  for (;;) {
    fresh->inherited = seen;
    if (current_.compare_exchange_weak(seen, fresh.get(), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      return *fresh.release()->batcher;
    }
    // Another thread of this process built one first: use it (ours is joined, unused).
    if (seen != nullptr && seen->pid == pid) return *seen->batcher;
  }
}

void BatchLane::record(Cache& cache, int ns, const BatchReport& report) const noexcept {
  cache.record(ns, NsCounter::batches);
  if (!report.failed) cache.record(ns, NsCounter::batched_requests, report.requests);
  if (report.requests >= 2) cache.record(ns, NsCounter::batch_joined, report.requests);
  if (report.failed) {
    cache.record(ns, NsCounter::batch_failures);
    log_failure(report);
  }
  if (report.fallbacks > 0) cache.record(ns, NsCounter::batch_fallbacks, report.fallbacks);
  cache.record(ns, NsCounter::batch_wait_ns, static_cast<std::uint64_t>(report.wait.count()));
  cache.record(ns, NsCounter::batch_run_ns, static_cast<std::uint64_t>(report.run.count()));
}

void BatchLane::log_failure(const BatchReport& report) const noexcept {
  try {
    if (report.error) {
      if (logged_throw_.exchange(true, std::memory_order_relaxed)) return;
      log_line(fmt::format("batch handler of '{}' threw: {}; its requests ran one by one with "
                           "their own handlers",
                           request_type_, describe(report.error)));
    } else {
      if (logged_count_.exchange(true, std::memory_order_relaxed)) return;
      log_line(fmt::format("batch handler of '{}' returned {} values for {} requests; its "
                           "requests ran one by one with their own handlers",
                           request_type_, report.returned, report.keys));
    }
  } catch (...) {
    // Formatting failed (no memory): the counters still tell.
  }
}

void BatchLanes::set(std::string request_type, Pipeline::BatchHandler handler,
                     const BatchProfile& options) {
  std::shared_ptr<BatchLane> replaced;  // released after the lock: its drain may take a window
  std::unique_lock lock(mu_);
  auto it = lanes_.find(request_type);
  if (it != lanes_.end()) replaced = std::move(it->second);
  if (handler) {
    auto lane = std::make_shared<BatchLane>(request_type, std::move(handler), options);
    lanes_.insert_or_assign(std::move(request_type), std::move(lane));
  } else if (it != lanes_.end()) {
    lanes_.erase(it);
  }
  any_.store(!lanes_.empty(), std::memory_order_relaxed);
  lock.unlock();
}

std::shared_ptr<BatchLane> BatchLanes::find(std::string_view request_type) const {
  // Relaxed: a registration racing with a request may or may not apply to it either way.
  if (!any_.load(std::memory_order_relaxed)) return nullptr;
  std::shared_lock lock(mu_);
  auto it = lanes_.find(request_type);
  return it == lanes_.end() ? nullptr : it->second;
}

}  // namespace pipecache::detail
