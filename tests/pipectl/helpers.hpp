// Assertions shared by the pipectl tests.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "run.hpp"

namespace pipectl_test {

inline std::string describe(const RunResult& r) {
  return "exit " + std::to_string(r.exit_code) + (r.signal ? " signal " + std::to_string(r.signal) : "") +
         (r.timed_out ? " TIMED OUT" : "") + "\n--- stdout ---\n" + r.out.substr(0, 2000) +
         "\n--- stderr ---\n" + r.err.substr(0, 2000);
}

// The error contract: exactly one line on stderr, from pipectl, mentioning `must_contain`
// (the segment name, the option...).
inline void check_one_line_error(const RunResult& r, const std::string& must_contain) {
  INFO(describe(r));
  CHECK(r.err.rfind("pipectl", 0) == 0);
  CHECK(!r.err.empty());
  CHECK(r.err.back() == '\n');
  CHECK(r.err.find('\n') == r.err.size() - 1);
  CHECK(r.err.find(must_contain) != std::string::npos);
}

}  // namespace pipectl_test
