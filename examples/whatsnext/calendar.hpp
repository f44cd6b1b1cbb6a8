// The calendar backend of the What's Next example: an iCalendar file loaded into SQLite, and
// the queries the views need (occurrences in a range with recurrences expanded by libical;
// the user's settings).
//
// Storage: one row per event series in `events` (its first start, duration, RRULE text,
// EXDATEs, and `last_end`, the end of its last occurrence or NULL when it never ends), so a
// range query reads the series that can overlap the range through an index and expands only
// those. Overrides (a VEVENT with RECURRENCE-ID) are stored as single events and the
// occurrence they replace is excluded from the master series.
//
// Times are Unix seconds (UTC). A DTSTART with a TZID that names an Olson zone is expanded in
// that zone (so a 09:00 weekly meeting stays at 09:00 across DST); a TZID libical does not
// know is converted to UTC at load and expanded in UTC; floating times are taken as UTC.
//
// Thread-safety: a CalendarDb is one SQLite connection: use one per thread. Many
// connections (threads and processes) may read at once; reload() writes in one transaction
// (WAL mode: readers keep the old calendar until it commits).
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

struct sqlite3;

namespace whatsnext {

using UnixSeconds = std::int64_t;

struct Occurrence {
  std::string uid;
  std::string summary;
  std::string location;
  UnixSeconds start = 0;
  UnixSeconds end = 0;
  bool all_day = false;
  bool recurring = false;
};

struct TimeRange {
  UnixSeconds from = 0;  // inclusive: occurrences ending after `from`...
  UnixSeconds to = 0;    // ...and starting before `to`
  bool operator==(const TimeRange&) const = default;
};

// The user's settings (table `settings`). Defaults are what a fresh database holds.
struct Settings {
  std::string title = "What's Next";
  int max_events = 5;         // events shown in the "next" list, 1..50
  int lookahead_days = 7;     // how far ahead the view looks, 1..60
  bool show_location = true;
  std::string default_layout = "full";  // a layout of views.hpp
};

struct LoadSummary {
  std::size_t events = 0;     // rows stored
  std::size_t recurring = 0;  // of which with an RRULE
  std::size_t overrides = 0;  // RECURRENCE-ID instances
};

// Thrown for a calendar file that cannot be read or parsed, and for database failures.
class CalendarError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class CalendarDb {
 public:
  // Opens (creating the schema when absent) the database file.
  explicit CalendarDb(const std::string& path);
  CalendarDb(const CalendarDb&) = delete;
  CalendarDb& operator=(const CalendarDb&) = delete;
  ~CalendarDb();

  // Replaces every event with the contents of the iCalendar file, in one transaction.
  LoadSummary reload(const std::string& ics_path);

  // Every occurrence overlapping `range`, ordered by (start, uid, summary).
  std::vector<Occurrence> occurrences(const TimeRange& range);
  // One answer per range, in order, from ONE SQL query over the ranges' union (the batch path
  // of events_by_range: N ranges cost one index scan instead of N).
  std::vector<std::vector<Occurrence>> occurrences(const std::vector<TimeRange>& ranges);

  Settings settings();
  void save_settings(const Settings& settings);

  std::size_t event_count();

 private:
  struct SeriesRow;
  std::vector<SeriesRow> series_overlapping(const TimeRange& range);
  sqlite3* db_ = nullptr;
};

// Writes an iCalendar file of `years` years of synthetic appointments ending around `now`
// (and running on past it): daily stand-ups, weekly 1:1s, monthly reviews, yearly birthdays,
// all recurring from their first year, plus one-off meetings. A What's Next query must expand
// every open series from its DTSTART, so the cost of an uncached answer grows with `years`.
void write_synthetic_calendar(const std::string& path, int years, UnixSeconds now);

}  // namespace whatsnext
