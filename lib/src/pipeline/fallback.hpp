// Fallback accounting: why a request was answered without the cache.
//
// Every fallback is counted in this process (FallbackLog, read by Pipeline::stats) and, when
// the segment works and the request type has a namespace, in the segment's per-type
// `fallbacks` counter, which sums all processes. Each cause is logged to stderr once per
// FallbackLog (once per Pipeline), so a broken segment cannot flood the server's log.
//
// Thread-safety: all members are safe to call concurrently (relaxed atomics: the counters are
// statistics, nothing is published through them).
#pragma once

#include <pipecache/cache.hpp>
#include <pipecache/pipeline.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <string_view>

namespace pipecache::detail {

class FallbackLog {
 public:
  // Counts one request answered without the cache because of `cause`; logs the first time.
  // `cache` may be null (segment unavailable); `ns` < 0 means no namespace counter.
  void note(FallbackCause cause, std::string_view detail, Cache* cache, int ns) noexcept;
  // Logs the first time without counting a request (e.g. a failed open at construction).
  void log_once(FallbackCause cause, std::string_view detail) noexcept;

  std::array<std::uint64_t, kFallbackCauses> counts() const noexcept;

 private:
  std::array<std::atomic<std::uint64_t>, kFallbackCauses> counts_{};
  std::array<std::atomic<bool>, kFallbackCauses> logged_{};
};

}  // namespace pipecache::detail
