// The What's Next view models as JSON, and the parsing of request parameters.
//
// Every renderer is a pure function of its inputs (the database's contents, the parameters and
// the time it is given): no clock reads, no process ids, keys in a fixed order. That is what
// makes a cached answer byte-identical to a freshly computed one, which the end-to-end check
// and the tests compare.
#pragma once

#include "calendar.hpp"

#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace whatsnext {

// A parameter or body the client got wrong: answered with 400 and {"error": message}.
class BadRequest : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class Layout { full, compact, agenda };
inline constexpr std::string_view kLayoutNames[] = {"full", "compact", "agenda"};

// "full" / "compact" / "agenda"; BadRequest otherwise (`name` names the parameter).
Layout parse_layout(std::string_view name, std::string_view text);

// Unix seconds ("1767225600") or ISO 8601 in UTC ("2026-01-01", "2026-01-01T09:30",
// "2026-01-01T09:30:00Z"), years 1970..2199; BadRequest naming the parameter otherwise.
UnixSeconds parse_time(std::string_view name, std::string_view text);

// "2026-01-01T09:30:00Z".
std::string iso_time(UnixSeconds t);

// The longest range /api/events answers: a year and a day (a leap year plus slack), so one
// request cannot ask the server to expand a century of recurrences.
inline constexpr UnixSeconds kMaxEventsRange = 367 * 86400;
// Validates and builds a range for /api/events (end after start, at most kMaxEventsRange).
TimeRange parse_range(std::string_view start, std::string_view end);

// The What's Next view at `now` (a minute bucket's start, or a pinned debug_time).
std::string whats_next_json(CalendarDb& db, Layout layout, UnixSeconds now);
std::string events_json(const TimeRange& range, const std::vector<Occurrence>& occurrences);
std::string settings_json(const Settings& settings);
// Applies a JSON object of settings to change (a subset of the fields); BadRequest for a body
// that is not such an object, an unknown field, a wrong type or an out-of-range value.
Settings apply_settings_patch(Settings settings, std::string_view body);
std::string error_json(std::string_view message);

}  // namespace whatsnext
