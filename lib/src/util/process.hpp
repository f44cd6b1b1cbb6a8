// Liveness of another process of this host, by pid. The one definition: the segment (dead
// creators' temporaries), the process registry (dead attachers' slots) and leases (a dead
// computer's lease) all ask here, so a better test of liveness replaces it in one place.
//
// kill(pid, 0) is true for a live process of any user (EPERM counts as alive) and false once
// the pid is gone. It cannot tell a reused pid from the original process: a stale claim whose
// pid was reused is taken for alive until its own deadline (leases) or forever (slots).
#pragma once

#include <cstdint>

namespace pipecache::detail {

bool pid_alive(std::int64_t pid) noexcept;

}  // namespace pipecache::detail
