// Process-shared robust mutexes — the only lock type in the segment.
//
// Why not Boost's interprocess_mutex: in Boost 1.74 it is not robust (a holder killed by
// SIGKILL blocks every later lock() forever), and 1.78+ unlocks on EOWNERDEAD without
// pthread_mutex_consistent(), leaving the mutex unusable (boostorg/interprocess#187).
//
// Owner death, the whole protocol (every caller follows it; see Table::lock_stripe and
// Table::lock_arena, the two places that repair):
//  1. lock() returns LockResult::owner_died: the caller now holds the mutex, and the data it
//     protects may be half-changed.
//  2. The caller repairs (or drops) that data. Repair must be idempotent: if the repairer
//     dies too, the next locker gets owner_died again and repeats it from the start.
//  3. mark_consistent(), then use and unlock as usual. Unlocking without step 3 would make the
//     mutex ENOTRECOVERABLE (reported as LockResult::failed to every later locker).
// Every lock has a deadline (CLOCK_MONOTONIC): a holder that is alive but stopped (SIGSTOP,
// debugger) costs a timeout, never a hang.
#pragma once

#include <cstdint>

#include "segment/layout.hpp"

namespace pipecache::detail {

enum class LockResult { ok, owner_died, timeout, failed };

// Builds the mutex in place. Only the segment's creator calls it, before publication.
void init_robust_mutex(RobustMutex& m);
LockResult lock_robust(RobustMutex& m, std::uint64_t timeout_ns) noexcept;
LockResult try_lock_robust(RobustMutex& m) noexcept;
void mark_consistent(RobustMutex& m) noexcept;
void unlock_robust(RobustMutex& m) noexcept;

}  // namespace pipecache::detail
