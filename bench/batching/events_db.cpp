#include "events_db.hpp"

#include <sqlite3.h>

#include <stdexcept>
#include <string>

namespace batching_bench {
namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw std::runtime_error(what + ": " + (db ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    std::string text = message ? message : "?";
    sqlite3_free(message);
    throw std::runtime_error(std::string("sqlite: ") + sql + ": " + text);
  }
}

// splitmix64: a tiny generator whose sequence is the same on every platform and library,
// so a seed names one database and one workload.
struct SplitMix64 {
  std::uint64_t state;
  std::uint64_t next() noexcept {
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::int64_t below(std::int64_t bound) noexcept {
    return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(bound));
  }
};

// Appends the current row (id, start, end, title in columns first..first+3).
void append_row(sqlite3_stmt* statement, int first, std::string& out) {
  out += std::to_string(sqlite3_column_int64(statement, first));
  out += ',';
  out += std::to_string(sqlite3_column_int64(statement, first + 1));
  out += ',';
  out += std::to_string(sqlite3_column_int64(statement, first + 2));
  out += ',';
  const unsigned char* title = sqlite3_column_text(statement, first + 3);
  out += title ? reinterpret_cast<const char*>(title) : "";
  out += '\n';
}

}  // namespace

void create_events_database(const std::string& path, const DatabaseShape& shape) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                      nullptr) != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("cannot create " + path + ": " + message);
  }
  try {
    exec(db,
         "CREATE TABLE events (id INTEGER PRIMARY KEY, calendar_id INTEGER NOT NULL,"
         " start_min INTEGER NOT NULL, end_min INTEGER NOT NULL, title TEXT NOT NULL)");
    exec(db, "BEGIN");
    sqlite3_stmt* insert = nullptr;
    if (sqlite3_prepare_v2(db, "INSERT INTO events VALUES (?, ?, ?, ?, ?)", -1, &insert,
                           nullptr) != SQLITE_OK) {
      fail(db, "prepare insert");
    }
    static const char* const kKinds[] = {"standup", "review", "lunch", "1:1", "planning",
                                         "focus", "interview", "demo"};
    SplitMix64 random{shape.seed};
    for (int id = 1; id <= shape.events; ++id) {
      const std::int64_t calendar = random.below(shape.calendars);
      const std::int64_t start = random.below(kDaysPerYear * kMinutesPerDay);
      const std::int64_t length = 15 * (1 + random.below(12));  // 15 min .. 3 h
      const std::string title =
          std::string(kKinds[random.below(8)]) + " #" + std::to_string(id);
      sqlite3_bind_int64(insert, 1, id);
      sqlite3_bind_int64(insert, 2, calendar);
      sqlite3_bind_int64(insert, 3, start);
      sqlite3_bind_int64(insert, 4, start + length);
      sqlite3_bind_text(insert, 5, title.c_str(), -1, SQLITE_TRANSIENT);
      if (sqlite3_step(insert) != SQLITE_DONE) fail(db, "insert");
      sqlite3_reset(insert);
    }
    sqlite3_finalize(insert);
    // Covers both queries: equality on calendar, range on start, rowid (id) for the order.
    exec(db, "CREATE INDEX events_by_calendar_start ON events (calendar_id, start_min)");
    exec(db, "COMMIT");
    exec(db, "ANALYZE");
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
}

std::vector<Range> generate_ranges(const DatabaseShape& shape, std::uint64_t seed,
                                   std::size_t count) {
  SplitMix64 random{seed};
  std::vector<Range> ranges;
  ranges.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    Range range;
    range.calendar = random.below(shape.calendars);
    const std::int64_t days = random.below(10) < 7 ? 1 : 7;  // day view or week view
    range.from = random.below(kDaysPerYear - days + 1) * kMinutesPerDay;
    range.to = range.from + days * kMinutesPerDay;
    ranges.push_back(range);
  }
  return ranges;
}

EventsConnection::EventsConnection(const std::string& path, std::size_t max_batch_size)
    : batch_(max_batch_size, nullptr) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw std::runtime_error("cannot open " + path + ": " + message);
  }
  if (sqlite3_prepare_v3(db_,
                         "SELECT id, start_min, end_min, title FROM events"
                         " WHERE calendar_id = ?1 AND start_min >= ?2 AND start_min < ?3"
                         " ORDER BY start_min, id",
                         -1, SQLITE_PREPARE_PERSISTENT, &single_, nullptr) != SQLITE_OK) {
    std::string message = sqlite3_errmsg(db_);
    sqlite3_close(db_);
    throw std::runtime_error("prepare events_by_range: " + message);
  }
}

EventsConnection::~EventsConnection() {
  for (sqlite3_stmt* statement : batch_) sqlite3_finalize(statement);
  sqlite3_finalize(single_);
  sqlite3_close(db_);
}

std::string EventsConnection::events_by_range(const Range& range) {
  sqlite3_bind_int64(single_, 1, range.calendar);
  sqlite3_bind_int64(single_, 2, range.from);
  sqlite3_bind_int64(single_, 3, range.to);
  std::string rows;
  int rc;
  while ((rc = sqlite3_step(single_)) == SQLITE_ROW) append_row(single_, 0, rows);
  sqlite3_reset(single_);
  if (rc != SQLITE_DONE) fail(db_, "events_by_range");
  ++queries_;
  return rows;
}

sqlite3_stmt* EventsConnection::batch_statement(std::size_t ranges) {
  sqlite3_stmt*& statement = batch_.at(ranges - 1);
  if (statement) return statement;
  // The ranges become a VALUES table; SQLite loops over it and probes the index once per
  // range, inside ONE statement: one step loop and one read transaction for the batch.
  std::string sql = "WITH ranges(slot, calendar, lo, hi) AS (VALUES ";
  for (std::size_t i = 0; i < ranges; ++i) sql += i == 0 ? "(?,?,?,?)" : ",(?,?,?,?)";
  sql +=
      ") SELECT ranges.slot, e.id, e.start_min, e.end_min, e.title FROM ranges"
      " JOIN events AS e ON e.calendar_id = ranges.calendar"
      " AND e.start_min >= ranges.lo AND e.start_min < ranges.hi"
      " ORDER BY ranges.slot, e.start_min, e.id";
  if (sqlite3_prepare_v3(db_, sql.c_str(), -1, SQLITE_PREPARE_PERSISTENT, &statement,
                         nullptr) != SQLITE_OK) {
    statement = nullptr;
    fail(db_, "prepare events_by_ranges");
  }
  return statement;
}

std::vector<std::string> EventsConnection::events_by_ranges(const std::vector<Range>& ranges) {
  sqlite3_stmt* statement = batch_statement(ranges.size());
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const int base = static_cast<int>(4 * i);
    sqlite3_bind_int64(statement, base + 1, static_cast<std::int64_t>(i));
    sqlite3_bind_int64(statement, base + 2, ranges[i].calendar);
    sqlite3_bind_int64(statement, base + 3, ranges[i].from);
    sqlite3_bind_int64(statement, base + 4, ranges[i].to);
  }
  std::vector<std::string> rows(ranges.size());
  int rc;
  while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
    const auto slot = static_cast<std::size_t>(sqlite3_column_int64(statement, 0));
    append_row(statement, 1, rows.at(slot));
  }
  sqlite3_reset(statement);
  if (rc != SQLITE_DONE) fail(db_, "events_by_ranges");
  ++queries_;
  return rows;
}

}  // namespace batching_bench
