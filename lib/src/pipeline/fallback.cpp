#include "pipeline/fallback.hpp"

#include <cstdio>

namespace pipecache {

std::string_view fallback_cause_name(FallbackCause cause) noexcept {
  switch (cause) {
    case FallbackCause::caching_disabled: return "caching_disabled";
    case FallbackCause::segment_unavailable: return "segment_unavailable";
    case FallbackCause::store_error: return "store_error";
    case FallbackCause::value_too_large: return "value_too_large";
    case FallbackCause::store_full: return "store_full";
    case FallbackCause::lease_unavailable: return "lease_unavailable";
    case FallbackCause::dedup_wait_timeout: return "dedup_wait_timeout";
    case FallbackCause::segment_untrusted: return "segment_untrusted";
    case FallbackCause::count_: break;
  }
  return "unknown";
}

namespace detail {

void FallbackLog::note(FallbackCause cause, std::string_view detail, Cache* cache,
                       int ns) noexcept {
  const auto i = static_cast<unsigned>(cause);
  if (i >= kFallbackCauses) return;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  if (cache != nullptr && ns >= 0) cache->record(ns, NsCounter::fallbacks);
  log_once(cause, detail);
}

void FallbackLog::log_once(FallbackCause cause, std::string_view detail) noexcept {
  const auto i = static_cast<unsigned>(cause);
  if (i >= kFallbackCauses) return;
  if (logged_[i].exchange(true, std::memory_order_relaxed)) return;
  const std::string_view name = fallback_cause_name(cause);
  std::fprintf(stderr,
               "pipecache: %.*s: %.*s (requests are computed without the cache when this "
               "happens; logged once)\n",
               static_cast<int>(name.size()), name.data(), static_cast<int>(detail.size()),
               detail.data());
}

std::array<std::uint64_t, kFallbackCauses> FallbackLog::counts() const noexcept {
  std::array<std::uint64_t, kFallbackCauses> out{};
  for (unsigned i = 0; i < kFallbackCauses; ++i) {
    out[i] = counts_[i].load(std::memory_order_relaxed);
  }
  return out;
}

}  // namespace detail
}  // namespace pipecache
