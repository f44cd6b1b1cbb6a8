// Fuzz target: size and duration parsing (pipecache/units.hpp).
//
// Checks, for any text: each parser returns or throws pipecache::Error (nothing else escapes:
// no std::out_of_range from a stoull, no UB on overflow under UBSan); a size that parses
// re-parses from its decimal spelling to the same number; a whole-number text without a unit
// is read as the number itself (sizes: bytes, durations: seconds); parse_duration and
// parse_duration_ns agree where milliseconds can express the value; format_* never throw.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <pipecache/cache.hpp>
#include <pipecache/units.hpp>

namespace {

[[noreturn]] void fail(const char* what, std::string_view text) {
  std::fprintf(stderr, "units: %s: '%.*s'\n", what, static_cast<int>(text.size()), text.data());
  std::abort();
}

bool all_digits(std::string_view s) {
  if (s.empty() || s.size() > 18) return false;  // 18 digits cannot overflow 64 bits
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

}  // namespace

namespace fuzz {

int units_one(const std::uint8_t* data, std::size_t size) {
  if (size > 256) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    std::uint64_t n = pipecache::parse_size(text, "fuzz");
    if (pipecache::parse_size(std::to_string(n), "fuzz") != n) fail("size does not re-parse", text);
    if (all_digits(text) && n != std::strtoull(std::string(text).c_str(), nullptr, 10)) fail("plain size misread", text);
    (void)pipecache::format_size(n);
  } catch (const pipecache::Error&) {
    if (all_digits(text)) fail("plain number rejected as a size", text);
  }
  bool ms_ok = false;
  std::chrono::milliseconds ms{0};
  try {
    ms = pipecache::parse_duration(text, "fuzz");
    ms_ok = true;
    if (ms.count() < 0) fail("negative duration", text);
    if (all_digits(text) && text.size() <= 12 &&
        ms.count() != static_cast<std::int64_t>(std::strtoull(std::string(text).c_str(), nullptr, 10)) * 1000)
      fail("plain duration is not seconds", text);
    (void)pipecache::format_duration(ms);
  } catch (const pipecache::Error&) {
  }
  try {
    auto ns = pipecache::parse_duration_ns(text, "fuzz");
    if (ns.count() < 0) fail("negative duration_ns", text);
    if (ms_ok && std::chrono::duration_cast<std::chrono::milliseconds>(ns) != ms && ns.count() % 1000000 == 0)
      fail("parse_duration and parse_duration_ns disagree", text);
    (void)pipecache::format_duration(ns);
  } catch (const pipecache::Error&) {
  }
  try {
    (void)pipecache::parse_bool(text, "fuzz");
  } catch (const pipecache::Error&) {
  }
  return 0;
}

}  // namespace fuzz

#ifndef FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzz::units_one(data, size);
}
#endif
