// Process-shared robust mutexes — the only lock type in the segment.
//
// Why not Boost's interprocess_mutex: in Boost 1.74 it is not robust (a holder killed by
// SIGKILL blocks every later lock() forever), and 1.78+ unlocks on EOWNERDEAD without
// pthread_mutex_consistent(), leaving the mutex unusable (boostorg/interprocess#187).
//
// Owner death, the whole protocol — kept by lock_or_repair / try_lock_or_repair below, the
// ONE place it is written (LMDB's mdb_mutex_failed is the model); every lock site of the
// library goes through them, passing the repair of the data that mutex protects:
//  1. The lock returns EOWNERDEAD: the caller now holds the mutex, and the data it protects
//     may be half-changed.
//  2. repair() restores (or drops) that data. It must be idempotent: if the repairer dies
//     too, the next locker gets EOWNERDEAD again and repeats it from the start.
//  3. mark_consistent(), then use and unlock as usual. Unlocking without step 3 would make the
//     mutex ENOTRECOVERABLE (reported as LockResult::failed to every later locker).
// Every lock has a deadline (CLOCK_MONOTONIC): a holder that is alive but stopped (SIGSTOP,
// debugger) costs a timeout, never a hang.
#pragma once

#include <cstdint>

#include "segment/layout.hpp"

namespace pipecache::detail {

enum class LockResult { ok, owner_died, timeout, failed };

// One pause of a spin-wait (the seqlock reader's, the lock's polls).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Builds the mutex in place. Only the segment's creator calls it, before publication.
void init_robust_mutex(RobustMutex& m);
// The contended rest of lock_robust: rc is what its first trylock returned.
LockResult lock_robust_contended(RobustMutex& m, std::uint64_t timeout_ns, int rc) noexcept;
// Inline: the uncontended lock and the unlock are on every visit() hit (the call and the
// classification around them cost ~20 of its ~450 instructions, callgrind).
inline LockResult lock_robust(RobustMutex& m, std::uint64_t timeout_ns) noexcept {
  int rc = pthread_mutex_trylock(&m.native);
  if (rc == 0) [[likely]] return LockResult::ok;
  return lock_robust_contended(m, timeout_ns, rc);
}
LockResult try_lock_robust(RobustMutex& m) noexcept;
void mark_consistent(RobustMutex& m) noexcept;
inline void unlock_robust(RobustMutex& m) noexcept { pthread_mutex_unlock(&m.native); }

// Locks m within timeout_ns. When the previous holder died holding it, runs repair() with the
// mutex held, then marks it consistent (steps 1-3 above). Returns LockResult::ok when the
// caller holds m (repaired or not), else timeout or failed (then m is not held).
template <typename Repair>
LockResult lock_or_repair(RobustMutex& m, std::uint64_t timeout_ns, Repair&& repair) {
  LockResult r = lock_robust(m, timeout_ns);
  if (r != LockResult::owner_died) return r;
  repair();
  mark_consistent(m);
  return LockResult::ok;
}

// The same without waiting: timeout when another process holds m.
template <typename Repair>
LockResult try_lock_or_repair(RobustMutex& m, Repair&& repair) {
  LockResult r = try_lock_robust(m);
  if (r != LockResult::owner_died) return r;
  repair();
  mark_consistent(m);
  return LockResult::ok;
}

}  // namespace pipecache::detail
