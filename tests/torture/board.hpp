// The torture tool's scoreboard: one anonymous shared page (MAP_SHARED | MAP_ANONYMOUS, made
// before any fork) through which workers report to the supervisor.
//
// Why not report through the cache's own stats: the thing under test must not be the thing
// that tells us it worked. A worker killed mid-operation leaves its slot's counters exactly as
// they were after its last completed increment (relaxed atomics, one writer per slot), so
// figures survive kills; a respawned worker keeps counting in the same slot.
//
// Invariants:
//  B1. Each WorkerSlot is written by one live worker at a time (the supervisor respawns into a
//      slot only after reaping its previous occupant), and read by the supervisor.
//  B2. heartbeat_ns is CLOCK_MONOTONIC at the end of the occupant's last completed operation
//      (or the supervisor's spawn time before the first one): its age is how long the
//      occupant has been stuck.
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace torture {

inline std::uint64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

enum class Op : unsigned {
  get,
  visit,
  put,
  erase,
  invalidate_glob,
  invalidate_namespace,
  purge,
  keys,
  lease,
  pipeline,
  count_
};
inline constexpr unsigned kOps = static_cast<unsigned>(Op::count_);
inline constexpr const char* kOpNames[kOps] = {"get",   "visit", "put",  "erase", "invalidate-glob",
                                               "invalidate-namespace", "purge", "keys", "lease",
                                               "pipeline"};

inline constexpr unsigned kMaxWorkers = 32;
inline constexpr std::size_t kNoteBytes = 160;

struct alignas(64) WorkerSlot {
  std::atomic<std::int64_t> pid;
  std::atomic<std::uint64_t> heartbeat_ns;
  std::atomic<std::uint64_t> first_op_ns;   // 0 until the occupant's first completed operation
  std::atomic<std::uint64_t> current_op;    // Op + 1 while one runs, 0 between operations
  std::atomic<std::uint64_t> ops[kOps];
  std::atomic<std::uint64_t> values_read;   // values returned and checked (get, visit, lease, pipeline)
  std::atomic<std::uint64_t> hits;
  std::atomic<std::uint64_t> corrupt;       // a value that failed check_value
  std::atomic<std::uint64_t> errors;        // unexpected exceptions
  std::atomic<std::uint64_t> lease_acquired, lease_taken_over, lease_waited, lease_unavailable;
  std::atomic<std::uint64_t> puts_dropped;
  std::atomic<std::uint64_t> max_op_ns;
  char note[kNoteBytes];  // first corrupt value or error, for the report
};

struct Board {
  std::atomic<std::uint32_t> stop;
  std::atomic<std::uint64_t> verify_runs;
  std::atomic<std::uint64_t> verify_problems;
  std::atomic<std::uint64_t> verify_max_ns;
  char verify_note[kNoteBytes];
  WorkerSlot workers[kMaxWorkers];
};

inline void set_note(char* note, const char* text) noexcept {
  if (note[0] != 0) return;  // keep the first one
  std::strncpy(note, text, kNoteBytes - 1);
}

inline void raise_max(std::atomic<std::uint64_t>& m, std::uint64_t v) noexcept {
  std::uint64_t cur = m.load(std::memory_order_relaxed);
  while (v > cur && !m.compare_exchange_weak(cur, v, std::memory_order_relaxed)) {
  }
}

}  // namespace torture
