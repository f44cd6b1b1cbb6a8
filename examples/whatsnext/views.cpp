#include "views.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>

namespace whatsnext {
namespace {

using nlohmann::json;

constexpr UnixSeconds kDay = 86400;
// 2200-01-01T00:00:00Z: far enough for any calendar, small enough that adding a lookahead or
// a range never overflows.
constexpr UnixSeconds kLatestTime = 7258118400;
// "compact" shows at most this many events whatever max_events says: it is the widget size.
constexpr int kCompactEvents = 3;

// Summaries come from the user's file and may hold invalid UTF-8: replaced (U+FFFD), never
// thrown on, so a bad byte in a calendar cannot turn a view into a 500.
std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool parse_int(std::string_view text, int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

std::optional<UnixSeconds> parse_iso(std::string_view t) {
  // YYYY-MM-DD[THH:MM[:SS]][Z]
  if (!t.empty() && t.back() == 'Z') t.remove_suffix(1);
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
  if (t.size() < 10 || t[4] != '-' || t[7] != '-') return std::nullopt;
  if (!parse_int(t.substr(0, 4), y) || !parse_int(t.substr(5, 2), mo) ||
      !parse_int(t.substr(8, 2), d)) {
    return std::nullopt;
  }
  if (t.size() > 10) {
    if ((t.size() != 16 && t.size() != 19) || (t[10] != 'T' && t[10] != ' ') || t[13] != ':') {
      return std::nullopt;
    }
    if (!parse_int(t.substr(11, 2), h) || !parse_int(t.substr(14, 2), mi)) return std::nullopt;
    if (t.size() == 19 && (t[16] != ':' || !parse_int(t.substr(17, 2), s))) return std::nullopt;
    if (h > 23 || mi > 59 || s > 59 || h < 0 || mi < 0 || s < 0) return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y),
                                        std::chrono::month(static_cast<unsigned>(mo)),
                                        std::chrono::day(static_cast<unsigned>(d))};
  if (!ymd.ok()) return std::nullopt;
  const auto days = std::chrono::sys_days(ymd).time_since_epoch().count();
  return static_cast<UnixSeconds>(days) * kDay + h * 3600 + mi * 60 + s;
}

std::string human_duration(UnixSeconds seconds) {
  if (seconds <= 0) return "now";
  const UnixSeconds minutes = (seconds + 59) / 60;  // "in 1 min" until it has started
  if (minutes < 60) return fmt::format("in {} min", minutes);
  const UnixSeconds hours = minutes / 60;
  if (hours < 48) return fmt::format("in {} h {} min", hours, minutes % 60);
  return fmt::format("in {} days", hours / 24);
}

json occurrence_json(const Occurrence& o, const Settings& s, UnixSeconds now, bool with_timing) {
  json j = {{"uid", o.uid},           {"summary", o.summary},     {"start", iso_time(o.start)},
            {"end", iso_time(o.end)}, {"all_day", o.all_day},     {"recurring", o.recurring}};
  if (s.show_location) j["location"] = o.location;
  if (with_timing) {
    j["in_progress"] = o.start <= now && now < o.end;
    j["starts_in_seconds"] = o.start - now;
    j["starts_in"] = o.start <= now ? std::string("now") : human_duration(o.start - now);
  }
  return j;
}

}  // namespace

Layout parse_layout(std::string_view name, std::string_view text) {
  for (std::size_t i = 0; i < std::size(kLayoutNames); ++i) {
    if (text == kLayoutNames[i]) return static_cast<Layout>(i);
  }
  throw BadRequest(fmt::format("parameter '{}': unknown layout '{}' (full, compact or agenda)",
                               name, text));
}

UnixSeconds parse_time(std::string_view name, std::string_view text) {
  if (!text.empty() && text.size() <= 12 &&
      std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    UnixSeconds v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    if (v <= kLatestTime) return v;
  } else if (auto v = parse_iso(text); v && *v >= 0 && *v <= kLatestTime) {
    return *v;
  }
  throw BadRequest(fmt::format(
      "parameter '{}': '{}' is not a time (Unix seconds or ISO 8601 UTC such as "
      "2026-01-01T09:30:00Z, years 1970..2199)",
      name, text.substr(0, 64)));
}

std::string iso_time(UnixSeconds t) {
  std::tm tm{};
  const time_t tt = static_cast<time_t>(t);
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

TimeRange parse_range(std::string_view start, std::string_view end) {
  if (start.empty() || end.empty()) {
    throw BadRequest("parameters 'start' and 'end' are required");
  }
  TimeRange r{parse_time("start", start), parse_time("end", end)};
  if (r.to <= r.from) throw BadRequest("parameter 'end' must be after 'start'");
  if (r.to - r.from > kMaxEventsRange) {
    throw BadRequest(fmt::format("the range is longer than {} days", kMaxEventsRange / kDay));
  }
  return r;
}

std::string whats_next_json(CalendarDb& db, Layout layout, UnixSeconds now) {
  const Settings s = db.settings();
  const UnixSeconds today = now / kDay * kDay;
  const UnixSeconds horizon = now + static_cast<UnixSeconds>(s.lookahead_days) * kDay;
  // One expansion answers "next", "today" and the day summary: the union of their ranges.
  const TimeRange window{std::min(today, now), std::max(horizon, today + kDay)};
  const std::vector<Occurrence> all = db.occurrences(window);

  json next = json::array();
  const int limit = layout == Layout::compact ? std::min(kCompactEvents, s.max_events)
                                              : s.max_events;
  for (const Occurrence& o : all) {
    if (static_cast<int>(next.size()) >= limit) break;
    if (o.end > now || (o.end == o.start && o.start >= now)) {
      if (o.start < horizon) next.push_back(occurrence_json(o, s, now, true));
    }
  }
  json j = {{"title", s.title},
            {"now", iso_time(now)},
            {"layout", kLayoutNames[static_cast<int>(layout)]},
            {"lookahead_days", s.lookahead_days},
            {"next", std::move(next)}};
  if (layout == Layout::full || layout == Layout::agenda) {
    json day = json::array();
    for (const Occurrence& o : all) {
      if (o.start < today + kDay && o.end > today) day.push_back(occurrence_json(o, s, now, false));
    }
    j["today"] = std::move(day);
  }
  if (layout == Layout::full) {
    // Per day of the lookahead: how many events, how many minutes booked.
    json days = json::array();
    for (int d = 0; d < s.lookahead_days; ++d) {
      const UnixSeconds from = today + d * kDay;
      const UnixSeconds to = from + kDay;
      int count = 0;
      UnixSeconds busy = 0;
      for (const Occurrence& o : all) {
        if (o.start < to && o.end > from) {
          ++count;
          busy += std::min(o.end, to) - std::max(o.start, from);
        }
      }
      days.push_back({{"date", iso_time(from).substr(0, 10)}, {"events", count},
                      {"busy_minutes", busy / 60}});
    }
    j["days"] = std::move(days);
  }
  return dump(j);
}

std::string events_json(const TimeRange& range, const std::vector<Occurrence>& occurrences) {
  json list = json::array();
  Settings all_fields;  // the events API always shows locations
  for (const Occurrence& o : occurrences) list.push_back(occurrence_json(o, all_fields, 0, false));
  json j = {{"start", iso_time(range.from)},
            {"end", iso_time(range.to)},
            {"count", occurrences.size()},
            {"events", std::move(list)}};
  return dump(j);
}

std::string settings_json(const Settings& s) {
  json j = {{"title", s.title},
            {"max_events", s.max_events},
            {"lookahead_days", s.lookahead_days},
            {"show_location", s.show_location},
            {"default_layout", s.default_layout}};
  return dump(j);
}

Settings apply_settings_patch(Settings s, std::string_view body) {
  json patch = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (patch.is_discarded() || !patch.is_object()) {
    throw BadRequest("the body must be a JSON object of settings");
  }
  for (const auto& [name, value] : patch.items()) {
    auto integer = [&](int lo, int hi) {
      if (!value.is_number_integer() || value.get<long long>() < lo || value.get<long long>() > hi) {
        throw BadRequest(fmt::format("setting '{}' must be an integer in {}..{}", name, lo, hi));
      }
      return value.get<int>();
    };
    if (name == "title") {
      if (!value.is_string() || value.get<std::string>().size() > 100) {
        throw BadRequest("setting 'title' must be a string of at most 100 bytes");
      }
      s.title = value.get<std::string>();
    } else if (name == "max_events") {
      s.max_events = integer(1, 50);
    } else if (name == "lookahead_days") {
      s.lookahead_days = integer(1, 60);
    } else if (name == "show_location") {
      if (!value.is_boolean()) throw BadRequest("setting 'show_location' must be true or false");
      s.show_location = value.get<bool>();
    } else if (name == "default_layout") {
      if (!value.is_string()) throw BadRequest("setting 'default_layout' must be a string");
      s.default_layout = kLayoutNames[static_cast<int>(
          parse_layout("default_layout", value.get<std::string>()))];
    } else {
      throw BadRequest(fmt::format("unknown setting '{}'", name.substr(0, 64)));
    }
  }
  return s;
}

std::string error_json(std::string_view message) {
  return dump(json{{"error", std::string(message)}});
}

}  // namespace whatsnext
