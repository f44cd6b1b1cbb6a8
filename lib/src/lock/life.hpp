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
// the process would look dead. So each life mutex a process holds has a holder thread of its
// own, started by hold_life: it locks that one mutex, waits until drop_life tells it to let
// go, unlocks it and ends (drop_life joins it). Holders block every signal and run on a
// 64 KiB stack; an attach/detach cycle leaves no thread and no memory behind.
//
// Why one thread per mutex. glibc links the robust mutexes a thread holds into a list
// THROUGH the mutexes (their __list fields, in the segment). A segment overwritten with zeros
// or truncated and re-extended while attached turns its life mutex into zeros: its unlock
// then takes the plain-mutex path and leaves it linked. On a thread holding other robust
// mutexes, the next robust lock or unlock would write through that stale link into memory
// unmapped since (SIGSEGV of an innocent process). Invariant: a holder's robust list holds
// its one life mutex and nothing else, so a damaged mutex is linked from no other mutex, and
// its stale list ends with its thread (the kernel walks a dead thread's robust list with
// fault-safe accesses and a length limit). After fork() the child has none of the parent's
// holders (only the forking thread survives) and never touches their registry, whose lock
// another parent thread may have held at the fork; its first hold_life starts its own.
//
// Unmapping a segment while its life mutex is held would leave a pointer into unmapped memory
// on the holder's robust list: release_slot therefore drops the life mutex (drop_life returns
// once it is unlocked) before the segment can be unmapped, in every path.
#pragma once

#include <cstdint>

#include "segment/layout.hpp"

namespace pipecache::detail {

// Makes this process the holder of `m` until drop_life (a holder thread of its own locks it).
// False when that could not be done within the lock timeout or no thread could be started
// (then the slot is not used).
bool hold_life(RobustMutex& m) noexcept;
// Gives `m` up: its holder unlocks it and ends before this returns. Only for a mutex this
// process holds.
void drop_life(RobustMutex& m) noexcept;

// The process that claimed `slot` in incarnation `epoch` is alive and still attached.
bool slot_holder_alive(ProcessSlot& slot, std::uint64_t epoch) noexcept;

}  // namespace pipecache::detail
