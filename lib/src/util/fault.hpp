// Test-only fault injection: kill this process (SIGKILL) the N-th time it passes a named point
// inside a critical section, to prove recovery. Armed by arm_fault() in a forked child, or by
// PIPECACHE_FAULT=<point>:<n> in the environment. Compiled in only with
// -Dfault_injection=true (PIPECACHE_FAULT_INJECTION); otherwise every call is a no-op.
#pragma once

#include <atomic>

namespace pipecache::detail {

enum class FaultPoint : int {
  none = 0,
  stripe_locked,   // stripe mutex held, dirty set, nothing changed yet
  mid_link,        // seq odd, new entry half linked into its chain
  mid_split,       // arena lock held, free block split half done
  mid_evict,       // victim unlinked from its stripe, block not yet freed
  mid_free,        // arena lock held, free block half coalesced
  mid_recovery,    // stripe recovery half done (a recoverer that dies too)
  lease_held,      // lease acquired, value not yet published
  mid_overwrite,   // seq odd, an update half written over the old value in place
  count_
};

#ifdef PIPECACHE_FAULT_INJECTION
extern std::atomic<int> g_fault_point;
extern std::atomic<long> g_fault_countdown;
void fault_fire();
inline void fault(FaultPoint p) noexcept {
  if (g_fault_point.load(std::memory_order_relaxed) == static_cast<int>(p)) fault_fire();
}
#else
inline void fault(FaultPoint) noexcept {}
#endif

// Arms `point` to kill the process on its n-th passage (n >= 1). No-op without the option.
void arm_fault(FaultPoint point, long n) noexcept;
bool fault_injection_compiled() noexcept;
const char* fault_name(FaultPoint p) noexcept;

}  // namespace pipecache::detail
