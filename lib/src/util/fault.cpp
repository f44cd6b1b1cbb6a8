#include "util/fault.hpp"

#include <signal.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

namespace pipecache::detail {

namespace {
constexpr const char* kNames[] = {"none",     "stripe_locked", "mid_link",     "mid_split",
                                  "mid_evict", "mid_free",     "mid_recovery", "lease_held",
                                  "mid_overwrite"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == static_cast<int>(FaultPoint::count_));
}  // namespace

const char* fault_name(FaultPoint p) noexcept { return kNames[static_cast<int>(p)]; }

#ifdef PIPECACHE_FAULT_INJECTION
std::atomic<int> g_fault_point{0};
std::atomic<long> g_fault_countdown{0};

void fault_fire() {
  if (g_fault_countdown.fetch_sub(1, std::memory_order_relaxed) == 1) ::raise(SIGKILL);
}

namespace {
// PIPECACHE_FAULT=<point>:<n>, read once at load time.
struct FromEnvironment {
  FromEnvironment() {
    const char* s = std::getenv("PIPECACHE_FAULT");
    if (!s) return;
    std::string_view v(s);
    auto colon = v.find(':');
    std::string_view name = v.substr(0, colon);
    long n = colon == std::string_view::npos ? 1 : std::atol(s + colon + 1);
    for (int i = 1; i < static_cast<int>(FaultPoint::count_); ++i)
      if (name == kNames[i]) arm_fault(static_cast<FaultPoint>(i), n);
  }
} g_from_environment;
}  // namespace

void arm_fault(FaultPoint point, long n) noexcept {
  g_fault_countdown.store(n < 1 ? 1 : n, std::memory_order_relaxed);
  g_fault_point.store(static_cast<int>(point), std::memory_order_relaxed);
}
bool fault_injection_compiled() noexcept { return true; }
#else
void arm_fault(FaultPoint, long) noexcept {}
bool fault_injection_compiled() noexcept { return false; }
#endif

}  // namespace pipecache::detail
