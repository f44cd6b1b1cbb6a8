#include "util/process.hpp"

#include <signal.h>

#include <cerrno>

namespace pipecache::detail {

bool pid_alive(std::int64_t pid) noexcept {
  return pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
}

}  // namespace pipecache::detail
