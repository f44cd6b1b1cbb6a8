#include "calendar.hpp"

#include <libical/ical.h>
#include <sqlite3.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

namespace whatsnext {
namespace {

// A rule that yields occurrences forever without ever passing the range (a malformed RRULE,
// or libical looping) must not hang a worker: no series expands past this many occurrences.
constexpr long kMaxIterationsPerSeries = 2'000'000;

// Writers (reload, save_settings) wait this long for another writer instead of failing with
// SQLITE_BUSY at once; a reload of the synthetic calendar takes well under a second.
constexpr int kBusyTimeoutMs = 10'000;

// ---- SQLite helpers ---------------------------------------------------------------------------

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      throw CalendarError(fmt::format("sqlite: {} (in: {})", sqlite3_errmsg(db), sql));
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Statement& bind(int index, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, index, v));
    return *this;
  }
  Statement& bind(int index, const std::string& v) {
    check(sqlite3_bind_text(stmt_, index, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& bind_null(int index) {
    check(sqlite3_bind_null(stmt_, index));
    return *this;
  }
  // True while there is a row.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw CalendarError(fmt::format("sqlite: {}", sqlite3_errmsg(db_)));
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const auto* p = sqlite3_column_text(stmt_, col);
    return p == nullptr ? std::string()
                        : std::string(reinterpret_cast<const char*>(p),
                                      static_cast<std::size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw CalendarError(fmt::format("sqlite: {}", sqlite3_errmsg(db_)));
  }
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

void exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    std::string message = error != nullptr ? error : "unknown error";
    sqlite3_free(error);
    throw CalendarError(fmt::format("sqlite: {} (in: {})", message, sql));
  }
}

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS events (
  id          INTEGER PRIMARY KEY,
  uid         TEXT NOT NULL,
  summary     TEXT NOT NULL,
  location    TEXT NOT NULL,
  start       INTEGER NOT NULL,   -- first occurrence, Unix seconds
  duration    INTEGER NOT NULL,   -- seconds
  all_day     INTEGER NOT NULL,
  dtstart     TEXT NOT NULL,      -- DTSTART as iCalendar text, the recurrence's anchor
  tzid        TEXT NOT NULL,      -- Olson zone of dtstart; '' = UTC
  rrule       TEXT NOT NULL,      -- '' = a single event
  exdates     TEXT NOT NULL,      -- excluded starts, Unix seconds, comma-separated
  last_end    INTEGER             -- end of the last occurrence; NULL = never ends
);
CREATE INDEX IF NOT EXISTS events_by_start ON events(start);
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
)sql";

// ---- libical helpers --------------------------------------------------------------------------

// libical 3.0 loads builtin zones lazily into a process-wide array without a lock of its own;
// every lookup goes through this mutex (once per zone per process: pointers stay valid).
std::mutex g_zone_mutex;

icaltimezone* olson_zone(const std::string& tzid) {
  if (tzid.empty()) return nullptr;
  std::lock_guard lock(g_zone_mutex);
  return icaltimezone_get_builtin_timezone(tzid.c_str());
}

std::string take_ical_string(char* s) {
  std::string out = s != nullptr ? s : "";
  icalmemory_free_buffer(s);
  return out;
}

// The Unix time of `t`: in its own zone when it has one, else in `fallback` (an Olson zone
// named by a TZID parameter), else as UTC (floating times: see the header).
UnixSeconds to_unix(icaltimetype t, icaltimezone* fallback) {
  if (icaltime_is_utc(t)) return icaltime_as_timet_with_zone(t, icaltimezone_get_utc_timezone());
  if (t.zone != nullptr) {
    return icaltime_as_timet_with_zone(t, const_cast<icaltimezone*>(t.zone));
  }
  if (fallback != nullptr) return icaltime_as_timet_with_zone(t, fallback);
  return icaltime_as_timet_with_zone(t, icaltimezone_get_utc_timezone());
}

std::string tzid_parameter(icalproperty* p) {
  icalparameter* param = icalproperty_get_first_parameter(p, ICAL_TZID_PARAMETER);
  const char* tzid = param != nullptr ? icalparameter_get_tzid(param) : nullptr;
  return tzid != nullptr ? tzid : "";
}

struct ParsedEvent {
  std::string uid, summary, location;
  UnixSeconds start = 0;
  UnixSeconds duration = 0;
  bool all_day = false;
  std::string dtstart;  // iCalendar text
  std::string tzid;     // '' = UTC
  std::string rrule;
  std::set<UnixSeconds> exdates;
  std::optional<UnixSeconds> recurrence_id;  // an override of one occurrence
};

// The occurrences of a series, in order, from its DTSTART; calls `visit(start)` until it
// returns false. Iterating from DTSTART for every rule keeps COUNT and BYSETPOS exact
// (icalrecur_iterator_set_start refuses COUNT rules), at a cost proportional to the
// occurrences since DTSTART: that is the work a cache saves.
template <typename Visit>
void expand(const std::string& rrule, const std::string& dtstart_text, const std::string& tzid,
            Visit&& visit) {
  icalrecurrencetype rule = icalrecurrencetype_from_string(rrule.c_str());
  if (rule.freq == ICAL_NO_RECURRENCE) return;
  icaltimezone* zone = olson_zone(tzid);
  icaltimetype dtstart = icaltime_from_string(dtstart_text.c_str());
  if (icaltime_is_null_time(dtstart)) return;
  if (zone != nullptr) icaltime_set_timezone(&dtstart, zone);
  std::unique_ptr<icalrecur_iterator, decltype(&icalrecur_iterator_free)> it(
      icalrecur_iterator_new(rule, dtstart), &icalrecur_iterator_free);
  if (!it) return;
  for (long i = 0; i < kMaxIterationsPerSeries; ++i) {
    icaltimetype t = icalrecur_iterator_next(it.get());
    if (icaltime_is_null_time(t)) return;
    if (!visit(to_unix(t, zone))) return;
  }
}

ParsedEvent parse_event(icalcomponent* ev) {
  ParsedEvent e;
  const char* uid = icalcomponent_get_uid(ev);
  const char* summary = icalcomponent_get_summary(ev);
  const char* location = icalcomponent_get_location(ev);
  e.uid = uid != nullptr ? uid : "";
  e.summary = summary != nullptr ? summary : "";
  e.location = location != nullptr ? location : "";

  icalproperty* dtstart_prop = icalcomponent_get_first_property(ev, ICAL_DTSTART_PROPERTY);
  if (dtstart_prop == nullptr) throw CalendarError(fmt::format("event '{}' has no DTSTART", e.uid));
  icaltimetype dtstart = icalproperty_get_dtstart(dtstart_prop);
  std::string tzid = tzid_parameter(dtstart_prop);
  icaltimezone* zone = olson_zone(tzid);
  e.all_day = icaltime_is_date(dtstart) != 0;
  e.start = to_unix(dtstart, zone);
  if (zone != nullptr) {
    e.tzid = tzid;
    e.dtstart = take_ical_string(icaltime_as_ical_string_r(dtstart));
  } else {
    // No known zone: anchor the recurrence in UTC (see the header).
    icaltimetype utc = e.all_day ? dtstart
                                 : icaltime_from_timet_with_zone(
                                       static_cast<time_t>(e.start), 0,
                                       icaltimezone_get_utc_timezone());
    e.dtstart = take_ical_string(icaltime_as_ical_string_r(utc));
  }

  icaltimetype dtend = icalcomponent_get_dtend(ev);
  if (!icaltime_is_null_time(dtend)) {
    icalproperty* dtend_prop = icalcomponent_get_first_property(ev, ICAL_DTEND_PROPERTY);
    icaltimezone* end_zone = dtend_prop != nullptr ? olson_zone(tzid_parameter(dtend_prop)) : zone;
    e.duration = std::max<UnixSeconds>(0, to_unix(dtend, end_zone) - e.start);
  } else {
    e.duration = e.all_day ? 86400 : 0;  // RFC 5545 3.6.1: a DATE DTSTART alone lasts one day
  }

  if (icalproperty* rr = icalcomponent_get_first_property(ev, ICAL_RRULE_PROPERTY)) {
    icalrecurrencetype rule = icalproperty_get_rrule(rr);
    e.rrule = take_ical_string(icalrecurrencetype_as_string_r(&rule));
  }
  for (icalproperty* p = icalcomponent_get_first_property(ev, ICAL_EXDATE_PROPERTY); p != nullptr;
       p = icalcomponent_get_next_property(ev, ICAL_EXDATE_PROPERTY)) {
    icaltimezone* ex_zone = olson_zone(tzid_parameter(p));
    e.exdates.insert(to_unix(icalproperty_get_exdate(p), ex_zone != nullptr ? ex_zone : zone));
  }
  if (icalproperty* rid = icalcomponent_get_first_property(ev, ICAL_RECURRENCEID_PROPERTY)) {
    icaltimezone* rid_zone = olson_zone(tzid_parameter(rid));
    e.recurrence_id =
        to_unix(icalproperty_get_recurrenceid(rid), rid_zone != nullptr ? rid_zone : zone);
  }
  return e;
}

std::vector<ParsedEvent> parse_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CalendarError(fmt::format("cannot read calendar file '{}'", path));
  std::stringstream text;
  text << in.rdbuf();
  std::unique_ptr<icalcomponent, decltype(&icalcomponent_free)> root(
      icalparser_parse_string(text.str().c_str()), &icalcomponent_free);
  if (!root) throw CalendarError(fmt::format("'{}' is not an iCalendar file", path));
  std::vector<ParsedEvent> events;
  auto take = [&](icalcomponent* ev) { events.push_back(parse_event(ev)); };
  if (icalcomponent_isa(root.get()) == ICAL_VEVENT_COMPONENT) {
    take(root.get());
  } else {
    for (icalcomponent* ev = icalcomponent_get_first_component(root.get(), ICAL_VEVENT_COMPONENT);
         ev != nullptr; ev = icalcomponent_get_next_component(root.get(), ICAL_VEVENT_COMPONENT)) {
      take(ev);
    }
  }
  if (events.empty()) throw CalendarError(fmt::format("'{}' holds no VEVENT", path));
  return events;
}

// End of the last occurrence, or nullopt when the series never ends.
std::optional<UnixSeconds> last_end_of(const ParsedEvent& e) {
  if (e.rrule.empty()) return e.start + e.duration;
  icalrecurrencetype rule = icalrecurrencetype_from_string(e.rrule.c_str());
  if (rule.count == 0 && icaltime_is_null_time(rule.until)) return std::nullopt;
  UnixSeconds last = e.start;
  expand(e.rrule, e.dtstart, e.tzid, [&](UnixSeconds s) {
    last = s;
    return true;
  });
  return last + e.duration;
}

std::string join_exdates(const std::set<UnixSeconds>& exdates) {
  std::string out;
  for (UnixSeconds s : exdates) {
    if (!out.empty()) out += ',';
    out += std::to_string(s);
  }
  return out;
}

std::set<UnixSeconds> split_exdates(const std::string& text) {
  std::set<UnixSeconds> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    out.insert(std::stoll(text.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return out;
}

bool occurrence_less(const Occurrence& a, const Occurrence& b) {
  return std::tie(a.start, a.uid, a.summary, a.end) < std::tie(b.start, b.uid, b.summary, b.end);
}

}  // namespace

struct CalendarDb::SeriesRow {
  std::string uid, summary, location, dtstart, tzid, rrule, exdates;
  UnixSeconds start = 0, duration = 0;
  bool all_day = false;
};

CalendarDb::CalendarDb(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    std::string message = db_ != nullptr ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw CalendarError(fmt::format("cannot open database '{}': {}", path, message));
  }
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  try {
    exec(db_, kSchema);
  } catch (...) {
    sqlite3_close(db_);
    throw;
  }
}

CalendarDb::~CalendarDb() { sqlite3_close(db_); }

LoadSummary CalendarDb::reload(const std::string& ics_path) {
  std::vector<ParsedEvent> events = parse_file(ics_path);  // before the transaction: may throw
  // Overrides: exclude the replaced occurrence from its master series.
  std::map<std::string, std::set<UnixSeconds>> overridden;
  for (const auto& e : events) {
    if (e.recurrence_id) overridden[e.uid].insert(*e.recurrence_id);
  }
  LoadSummary summary;
  exec(db_, "BEGIN IMMEDIATE");
  try {
    exec(db_, "DELETE FROM events");
    Statement insert(db_,
                     "INSERT INTO events (uid, summary, location, start, duration, all_day, "
                     "dtstart, tzid, rrule, exdates, last_end) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    for (auto& e : events) {
      if (e.recurrence_id) {
        e.rrule.clear();  // an override is one occurrence
        ++summary.overrides;
      } else if (auto it = overridden.find(e.uid); it != overridden.end() && !e.rrule.empty()) {
        e.exdates.insert(it->second.begin(), it->second.end());
      }
      insert.bind(1, e.uid).bind(2, e.summary).bind(3, e.location).bind(4, e.start);
      insert.bind(5, e.duration).bind(6, e.all_day ? 1 : 0).bind(7, e.dtstart).bind(8, e.tzid);
      insert.bind(9, e.rrule).bind(10, join_exdates(e.exdates));
      if (auto last = last_end_of(e)) {
        insert.bind(11, *last);
      } else {
        insert.bind_null(11);
      }
      insert.step();
      insert.reset();
      ++summary.events;
      if (!e.rrule.empty()) ++summary.recurring;
    }
    exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return summary;
}

std::vector<CalendarDb::SeriesRow> CalendarDb::series_overlapping(const TimeRange& range) {
  // A series can overlap [from, to) only if it starts before `to` and its last occurrence
  // ends after `from` (or it never ends).
  Statement q(db_,
              "SELECT uid, summary, location, dtstart, tzid, rrule, exdates, start, duration, "
              "all_day FROM events WHERE start < ?1 AND (last_end IS NULL OR last_end > ?2)");
  q.bind(1, range.to).bind(2, range.from);
  std::vector<SeriesRow> rows;
  while (q.step()) {
    SeriesRow r;
    r.uid = q.text(0);
    r.summary = q.text(1);
    r.location = q.text(2);
    r.dtstart = q.text(3);
    r.tzid = q.text(4);
    r.rrule = q.text(5);
    r.exdates = q.text(6);
    r.start = q.integer(7);
    r.duration = q.integer(8);
    r.all_day = q.integer(9) != 0;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::vector<std::vector<Occurrence>> CalendarDb::occurrences(const std::vector<TimeRange>& ranges) {
  std::vector<std::vector<Occurrence>> out(ranges.size());
  if (ranges.empty()) return out;
  TimeRange all = ranges.front();
  for (const auto& r : ranges) {
    all.from = std::min(all.from, r.from);
    all.to = std::max(all.to, r.to);
  }
  for (const SeriesRow& row : series_overlapping(all)) {
    auto emit = [&](UnixSeconds start) {
      const UnixSeconds end = start + row.duration;
      for (std::size_t i = 0; i < ranges.size(); ++i) {
        // Zero-length events overlap a range they start in.
        const bool overlaps = start < ranges[i].to &&
                              (end > ranges[i].from || (end == start && start >= ranges[i].from));
        if (overlaps) {
          out[i].push_back(Occurrence{row.uid, row.summary, row.location, start, end, row.all_day,
                                      !row.rrule.empty()});
        }
      }
    };
    if (row.rrule.empty()) {
      emit(row.start);
      continue;
    }
    const std::set<UnixSeconds> excluded = split_exdates(row.exdates);
    expand(row.rrule, row.dtstart, row.tzid, [&](UnixSeconds start) {
      if (start >= all.to) return false;
      if (!excluded.contains(start)) emit(start);
      return true;
    });
  }
  for (auto& list : out) std::sort(list.begin(), list.end(), occurrence_less);
  return out;
}

std::vector<Occurrence> CalendarDb::occurrences(const TimeRange& range) {
  return std::move(occurrences(std::vector<TimeRange>{range}).front());
}

Settings CalendarDb::settings() {
  Settings s;
  Statement q(db_, "SELECT name, value FROM settings");
  while (q.step()) {
    const std::string name = q.text(0);
    const std::string value = q.text(1);
    // Stored by save_settings from a validated Settings: parse errors mean a hand-edited
    // database, and the default is kept.
    try {
      if (name == "title") s.title = value;
      if (name == "max_events") s.max_events = std::stoi(value);
      if (name == "lookahead_days") s.lookahead_days = std::stoi(value);
      if (name == "show_location") s.show_location = value == "1";
      if (name == "default_layout") s.default_layout = value;
    } catch (const std::exception&) {
    }
  }
  return s;
}

void CalendarDb::save_settings(const Settings& s) {
  exec(db_, "BEGIN IMMEDIATE");
  try {
    Statement put(db_, "INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)");
    auto store = [&](const char* name, const std::string& value) {
      put.bind(1, std::string(name)).bind(2, value);
      put.step();
      put.reset();
    };
    store("title", s.title);
    store("max_events", std::to_string(s.max_events));
    store("lookahead_days", std::to_string(s.lookahead_days));
    store("show_location", s.show_location ? "1" : "0");
    store("default_layout", s.default_layout);
    exec(db_, "COMMIT");
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
}

std::size_t CalendarDb::event_count() {
  Statement q(db_, "SELECT COUNT(*) FROM events");
  q.step();
  return static_cast<std::size_t>(q.integer(0));
}

// ---- synthetic calendar -----------------------------------------------------------------------

void write_synthetic_calendar(const std::string& path, int years, UnixSeconds now) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) throw CalendarError(fmt::format("cannot write '{}'", path));
  std::unique_ptr<std::FILE, decltype(&std::fclose)> file(f, &std::fclose);
  auto stamp = [](UnixSeconds t) {
    std::tm tm{};
    const time_t tt = static_cast<time_t>(t);
    gmtime_r(&tt, &tm);
    return fmt::format("{:04}{:02}{:02}T{:02}{:02}{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                       tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  };
  // A fixed linear congruential generator: the same flags always give the same calendar, so
  // runs (and cached vs uncached answers) are comparable.
  std::uint64_t seed = 0x9e3779b97f4a7c15ull;
  auto next = [&seed](std::uint64_t bound) {
    seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    return (seed >> 33) % bound;
  };
  constexpr UnixSeconds kDay = 86400;
  constexpr UnixSeconds kYear = 365 * kDay;
  const UnixSeconds first_day = (now - years * kYear) / kDay * kDay;
  std::fputs("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//pipecache//whatsnext synthetic//EN\r\n",
             f);
  int serial = 0;
  auto event = [&](UnixSeconds start, UnixSeconds minutes, const std::string& summary,
                   const std::string& location, const std::string& rrule) {
    std::fprintf(f,
                 "BEGIN:VEVENT\r\nUID:synthetic-%d@whatsnext\r\nDTSTAMP:%s\r\nDTSTART:%s\r\n"
                 "DTEND:%s\r\nSUMMARY:%s\r\nLOCATION:%s\r\n%s%s%sEND:VEVENT\r\n",
                 ++serial, stamp(first_day).c_str(), stamp(start).c_str(),
                 stamp(start + minutes * 60).c_str(), summary.c_str(), location.c_str(),
                 rrule.empty() ? "" : "RRULE:", rrule.c_str(), rrule.empty() ? "" : "\r\n");
  };
  static const char* kRooms[] = {"Room A", "Room B", "Video call", "Cafe", "Lab"};
  for (int y = 0; y < years; ++y) {
    const UnixSeconds year_start = first_day + y * kYear;
    // Each year a team forms: its rituals recur from then on and never end.
    for (int team = 0; team < 6; ++team) {
      const UnixSeconds day = year_start + static_cast<UnixSeconds>(next(60)) * kDay;
      const UnixSeconds at = day + (8 + static_cast<UnixSeconds>(next(3))) * 3600 + 15 * 60 * team;
      event(at, 15, fmt::format("Stand-up, team {}-{}", y, team), kRooms[next(5)],
            "FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR");
      event(at + 3 * 3600, 30, fmt::format("1:1, team {}-{}", y, team), kRooms[next(5)],
            "FREQ=WEEKLY;BYDAY=" + std::string(next(2) == 0 ? "TU" : "TH"));
      event(at + 5 * 3600, 60, fmt::format("Review, team {}-{}", y, team), kRooms[next(5)],
            "FREQ=MONTHLY;BYDAY=1MO");
    }
    for (int b = 0; b < 12; ++b) {
      event(year_start + static_cast<UnixSeconds>(next(365)) * kDay + 12 * 3600, 60,
            fmt::format("Birthday #{}", y * 12 + b), "Cafe", "FREQ=YEARLY");
    }
    // Projects that ran for a while and ended (bounded series: skipped by the index once over).
    for (int p = 0; p < 10; ++p) {
      const UnixSeconds at = year_start + static_cast<UnixSeconds>(next(300)) * kDay + 14 * 3600;
      event(at, 45, fmt::format("Project sync {}-{}", y, p), kRooms[next(5)],
            fmt::format("FREQ=WEEKLY;COUNT={}", 4 + next(20)));
    }
    for (int m = 0; m < 150; ++m) {
      const UnixSeconds at = year_start + static_cast<UnixSeconds>(next(365)) * kDay +
                             (9 + static_cast<UnixSeconds>(next(8))) * 3600;
      event(at, 30 + 15 * static_cast<UnixSeconds>(next(4)), fmt::format("Meeting {}-{}", y, m),
            kRooms[next(5)], "");
    }
  }
  // The coming weeks have one-off appointments too, so "next" is never only rituals.
  for (int m = 0; m < 40; ++m) {
    const UnixSeconds at = now / kDay * kDay + static_cast<UnixSeconds>(next(30)) * kDay +
                           (9 + static_cast<UnixSeconds>(next(8))) * 3600;
    event(at, 30, fmt::format("Appointment {}", m), kRooms[next(5)], "");
  }
  std::fputs("END:VCALENDAR\r\n", f);
  if (std::ferror(f)) throw CalendarError(fmt::format("writing '{}' failed", path));
}

}  // namespace whatsnext
