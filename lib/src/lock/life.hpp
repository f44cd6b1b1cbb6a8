// Liveness of attached processes, answered by the kernel. The one place it is decided: process
// slots (stats.cpp), leases (lease.cpp) and `pipectl stats`' alive column all ask here.
//
// Each claimed process slot has a robust process-shared "life" mutex (ProcessSlot::life,
// layout.hpp), locked by the process that claimed the slot for as long as it stays attached.
// Whether that process lives is then what a trylock says, whatever PID namespace either side
// is in and however its pid has been reused since:
//   EBUSY       somebody holds it: the claimer is alive (or a checker holds it for an instant);
//   EOWNERDEAD  its holder died (the kernel released it from the dead thread's robust list);
//   0           nobody holds it: the claimer let go (detached) or never took it.
// ProcessSlot::life_epoch, bumped at every claim and release, names the incarnation: a lease
// records the epoch of its holder's slot, so a slot reclaimed by another process since does
// not pass for the old holder.
//
// Who holds it. A robust mutex is owned by a THREAD: if the thread that attached exited (a
// pool thread that happened to open the cache), the kernel would release its life mutexes and
// the process would look dead. So every life mutex of a process is locked and unlocked by one
// thread the library starts for the purpose (the keeper: it blocks every signal, sleeps on a
// condition variable and lives until the process ends). After fork() the child has no keeper
// (only the forking thread survives); the first hold_life() in the child starts its own.
//
// Unmapping a segment while its life mutex is held would leave a pointer into unmapped memory
// on the keeper's robust list (glibc writes through it on the next robust lock): release_slot
// therefore drops the life mutex before the segment can be unmapped, in every path.
#pragma once

#include <cstdint>

#include "segment/layout.hpp"

namespace pipecache::detail {

// Makes this process the holder of `m` until drop_life (the keeper thread locks it). False
// when that could not be done within the lock timeout (then the slot is not used).
bool hold_life(RobustMutex& m) noexcept;
// Gives `m` up (the keeper thread unlocks it). Only for a mutex this process holds.
void drop_life(RobustMutex& m) noexcept;

// The process that claimed `slot` in incarnation `epoch` is alive and still attached.
bool slot_holder_alive(ProcessSlot& slot, std::uint64_t epoch) noexcept;

}  // namespace pipecache::detail
