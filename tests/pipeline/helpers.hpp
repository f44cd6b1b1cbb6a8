// Helpers for the pipeline tests: a pipeline config on a unique small segment, a block of
// memory shared with forked children (anonymous MAP_SHARED, inherited by fork), waiting.
#pragma once

#include <pipecache/pipeline.hpp>

#include <sys/mman.h>
#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <new>
#include <string>
#include <thread>

#include "support/process.hpp"

namespace pipeline_testing {

inline pipecache::PipelineConfig small_config(const std::string& name) {
  pipecache::PipelineConfig c;
  c.segment_name = name;
  c.cache_memory_limit_mb = 4;
  c.cache_max_size = 0;
  return c;
}

inline std::int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// A T in memory shared by this process and the children it forks afterwards.
// std::atomic members are lock-free, so they work across the processes.
template <typename T>
T* shared_block() {
  void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return new (p) T();
}
template <typename T>
void free_block(T* p) {
  p->~T();
  ::munmap(p, sizeof(T));
}

// Polls `done` every millisecond until true or the timeout passes; returns done().
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// The per-type figures summed in the segment (zeroes when the type is unknown).
inline pipecache::RequestTypeStats type_stats(pipecache::Pipeline& p, std::string_view type) {
  const auto st = p.stats();
  if (const auto* t = st.type(type)) return *t;
  return {};
}

}  // namespace pipeline_testing
