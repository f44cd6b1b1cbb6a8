// The calendar-events database of the batching benchmark: one SQLite file, many read-only
// connections (one per thread: a sqlite3 connection opened NOMUTEX must not be shared).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace batching_bench {

// events_by_range(calendar, [from, to)): the events of one calendar starting in the range,
// ordered by start then id. Times are minutes from the start of the generated year.
struct Range {
  std::int64_t calendar = 0;
  std::int64_t from = 0;
  std::int64_t to = 0;
  bool operator==(const Range&) const = default;
};

struct RangeHash {
  std::size_t operator()(const Range& range) const noexcept {
    std::uint64_t h = static_cast<std::uint64_t>(range.calendar) * 0x9E3779B97F4A7C15ull;
    h ^= static_cast<std::uint64_t>(range.from) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
    h ^= static_cast<std::uint64_t>(range.to) + 0x85EBCA77C2B2AE63ull + (h << 6) + (h >> 2);
    return static_cast<std::size_t>(h);
  }
};

struct DatabaseShape {
  int calendars = 50;
  int events = 20000;
  std::uint64_t seed = 42;
};

inline constexpr std::int64_t kMinutesPerDay = 24 * 60;
inline constexpr std::int64_t kDaysPerYear = 365;

// Writes a fresh database at `path` (replacing nothing: the file must not exist or be empty).
// Throws std::runtime_error with SQLite's message on failure.
void create_events_database(const std::string& path, const DatabaseShape& shape);

// The workload: a deterministic sequence of calendar views (one day, or one week).
std::vector<Range> generate_ranges(const DatabaseShape& shape, std::uint64_t seed,
                                   std::size_t count);

// One read-only connection with its statements prepared once (both modes pay no parsing).
// Not thread-safe: one EventsConnection per thread.
class EventsConnection {
 public:
  EventsConnection(const std::string& path, std::size_t max_batch_size);
  ~EventsConnection();
  EventsConnection(const EventsConnection&) = delete;
  EventsConnection& operator=(const EventsConnection&) = delete;

  // One SQL query for one range. The rows, serialised ("id,start,end,title\n" each).
  std::string events_by_range(const Range& range);
  // ONE SQL query for all the ranges (a VALUES table of ranges joined to events); the rows of
  // ranges[i] in result[i], serialised exactly as events_by_range serialises them.
  // REQUIRES: 1 <= ranges.size() <= max_batch_size.
  std::vector<std::string> events_by_ranges(const std::vector<Range>& ranges);

  std::uint64_t queries() const noexcept { return queries_; }

 private:
  sqlite3_stmt* batch_statement(std::size_t ranges);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* single_ = nullptr;
  std::vector<sqlite3_stmt*> batch_;  // batch_[n - 1] takes n ranges; prepared on first use
  std::uint64_t queries_ = 0;
};

}  // namespace batching_bench
