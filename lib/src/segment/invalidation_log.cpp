#include "segment/invalidation_log.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>

#include "util/clock.hpp"

namespace pipecache::detail {

namespace {
constexpr unsigned kPatternWords = kInvalidationPatternBytes / 8;
constexpr std::string_view kCutMark = "...";
}  // namespace

void log_invalidation(InvalidationLog& log, std::string_view pattern, std::uint64_t removed,
                      bool clear) noexcept {
  const std::uint64_t ticket = log.next.fetch_add(1, std::memory_order_relaxed);
  InvalidationSlot& r = log.records[ticket % kInvalidationLogSize];
  std::uint64_t seen = r.seq.load(std::memory_order_relaxed);
  const std::uint64_t writing = 2 * ticket + 1;
  const bool complete_and_older = seen % 2 == 0 && seen < writing;
  const bool abandoned = seen % 2 == 1 && (seen - 1) / 2 + kInvalidationLogSize <= ticket;
  if (!(complete_and_older || abandoned)) return;
  if (!r.seq.compare_exchange_strong(seen, writing, std::memory_order_acq_rel)) return;
  std::atomic_thread_fence(std::memory_order_release);  // seq odd before any field changes

  std::uint64_t words[kPatternWords] = {};
  std::memcpy(words, pattern.data(), std::min<std::size_t>(pattern.size(), sizeof(words)));
  for (unsigned i = 0; i < kPatternWords; ++i) r.pattern[i].store(words[i], std::memory_order_relaxed);
  r.pattern_len.store(static_cast<std::uint32_t>(std::min<std::size_t>(pattern.size(), UINT32_MAX)),
                      std::memory_order_relaxed);
  r.kind.store(clear ? 1 : 0, std::memory_order_relaxed);
  r.removed.store(removed, std::memory_order_relaxed);
  r.unix_ms.store(realtime_ms(), std::memory_order_relaxed);
  r.seq.store(writing + 1, std::memory_order_release);
}

std::vector<InvalidationRecord> read_invalidations(const InvalidationLog& log) {
  struct Read {
    std::uint64_t seq;
    InvalidationRecord record;
  };
  std::vector<Read> found;
  for (const InvalidationSlot& r : log.records) {
    const std::uint64_t before = r.seq.load(std::memory_order_acquire);
    if (before == 0 || before % 2 == 1) continue;  // never written, or being written
    std::uint64_t words[kPatternWords];
    for (unsigned i = 0; i < kPatternWords; ++i) words[i] = r.pattern[i].load(std::memory_order_relaxed);
    const std::uint32_t length = r.pattern_len.load(std::memory_order_relaxed);
    const std::uint32_t kind = r.kind.load(std::memory_order_relaxed);
    const std::uint64_t removed = r.removed.load(std::memory_order_relaxed);
    const std::uint64_t unix_ms = r.unix_ms.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (r.seq.load(std::memory_order_relaxed) != before) continue;  // rewritten meanwhile

    InvalidationRecord out;
    const std::size_t kept = std::min<std::size_t>(length, kInvalidationPatternBytes);
    out.pattern.assign(reinterpret_cast<const char*>(words), kept);
    if (length > kInvalidationPatternBytes) out.pattern.replace(kept - kCutMark.size(), kCutMark.size(), kCutMark);
    out.clear = kind == 1;
    out.removed = removed;
    out.unix_ms = unix_ms;
    found.push_back({before, std::move(out)});
  }
  std::sort(found.begin(), found.end(), [](const Read& a, const Read& b) { return a.seq > b.seq; });
  std::vector<InvalidationRecord> records;
  records.reserve(found.size());
  for (Read& r : found) records.push_back(std::move(r.record));
  return records;
}

}  // namespace pipecache::detail
