#include "util/clock.hpp"

namespace pipecache::detail {

std::uint64_t realtime_ms() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return to_ns(ts) / 1000000ull;
}

}  // namespace pipecache::detail
