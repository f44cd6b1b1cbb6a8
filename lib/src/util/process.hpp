// Liveness of another process of this host, by pid: kill(pid, 0), true for a live process of
// any user (EPERM counts as alive) and false once the pid is gone. It cannot tell a reused pid
// from the original, a zombie from the living, nor see across PID namespaces, so the library
// asks it only where no slot exists: a lease holder without a process slot, the relay's pid.
// Attached processes are judged by their life mutex (lock/life.hpp).
#pragma once

#include <cstdint>

namespace pipecache::detail {

bool pid_alive(std::int64_t pid) noexcept;

}  // namespace pipecache::detail
