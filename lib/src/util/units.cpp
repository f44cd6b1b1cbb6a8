#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

#include <fmt/format.h>

#include <cctype>
#include <cstdint>
#include <limits>

namespace pipecache {

namespace {

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return r;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// Splits "<digits><unit>"; false when there are no digits or they overflow.
bool split_number(std::string_view s, std::uint64_t& number, std::string& unit) {
  std::size_t i = 0;
  number = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    std::uint64_t d = static_cast<std::uint64_t>(s[i] - '0');
    if (number > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    number = number * 10 + d;
    ++i;
  }
  if (i == 0) return false;
  unit = lower(trim(s.substr(i)));
  return true;
}

[[noreturn]] void bad(std::string_view what, std::string_view text, std::string_view expected) {
  throw Error(fmt::format("{}: malformed value '{}' (expected {})", what, text, expected));
}

bool mul_ok(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return false;
  out = a * b;
  return true;
}

}  // namespace

std::uint64_t parse_size(std::string_view text, std::string_view what) {
  constexpr std::string_view kExpected = "a size like 4096, 512K, 64M or 1G";
  std::uint64_t n = 0;
  std::string unit;
  if (!split_number(trim(text), n, unit)) bad(what, text, kExpected);
  std::uint64_t mult = 0;
  if (unit.empty() || unit == "b") mult = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") mult = 1ull << 10;
  else if (unit == "m" || unit == "mb" || unit == "mib") mult = 1ull << 20;
  else if (unit == "g" || unit == "gb" || unit == "gib") mult = 1ull << 30;
  else if (unit == "t" || unit == "tb" || unit == "tib") mult = 1ull << 40;
  else bad(what, text, kExpected);
  std::uint64_t out = 0;
  if (!mul_ok(n, mult, out)) bad(what, text, "a size that fits in 64 bits");
  return out;
}

std::chrono::nanoseconds parse_duration_ns(std::string_view text, std::string_view what) {
  constexpr std::string_view kExpected = "a duration like 300, 100ms, 5m or 2h (no unit = seconds)";
  std::uint64_t n = 0;
  std::string unit;
  if (!split_number(trim(text), n, unit)) bad(what, text, kExpected);
  std::uint64_t mult = 0;
  if (unit == "ns") mult = 1;
  else if (unit == "us" || unit == "µs") mult = 1000;
  else if (unit == "ms") mult = 1000000;
  else if (unit.empty() || unit == "s" || unit == "sec") mult = 1000000000ull;
  else if (unit == "m" || unit == "min") mult = 60ull * 1000000000ull;
  else if (unit == "h") mult = 3600ull * 1000000000ull;
  else if (unit == "d") mult = 86400ull * 1000000000ull;
  else bad(what, text, kExpected);
  std::uint64_t out = 0;
  if (!mul_ok(n, mult, out) || out > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
    bad(what, text, "a duration that fits in 64-bit nanoseconds");
  return std::chrono::nanoseconds(static_cast<std::int64_t>(out));
}

std::chrono::milliseconds parse_duration(std::string_view text, std::string_view what) {
  auto ns = parse_duration_ns(text, what);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(ns);
  if (ms.count() == 0 && ns.count() != 0) ms = std::chrono::milliseconds(1);  // never round to "no TTL"
  return ms;
}

bool parse_bool(std::string_view text, std::string_view what) {
  std::string v = lower(trim(text));
  if (v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  bad(what, text, "true/false, 1/0, yes/no or on/off");
}

std::string format_size(std::uint64_t bytes) {
  if (bytes < 1024) return fmt::format("{} B", bytes);
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes) / 1024.0;
  unsigned u = 0;
  while (v >= 1024.0 && u < 3) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, units[u]);
}

std::string format_duration(std::chrono::nanoseconds d) {
  double ns = static_cast<double>(d.count());
  if (ns < 1e3) return fmt::format("{:.0f} ns", ns);
  if (ns < 1e6) return fmt::format("{:.2f} us", ns / 1e3);
  if (ns < 1e9) return fmt::format("{:.2f} ms", ns / 1e6);
  if (ns < 60e9) return fmt::format("{:.2f} s", ns / 1e9);
  if (ns < 3600e9) return fmt::format("{:.1f} min", ns / 60e9);
  return fmt::format("{:.1f} h", ns / 3600e9);
}

}  // namespace pipecache
