// A small streaming JSON writer for pipectl's --json output.
//
// Why not nlohmann::json: it is used by the tests to PARSE this output, and a writer that shares
// the parser's library could share its mistakes. This one is ~150 lines, appends to a string,
// and guarantees valid JSON (RFC 8259) for any input:
//   1. Strings are valid UTF-8 on output: keys are arbitrary bytes, so an invalid UTF-8
//      sequence is written as U+FFFD (the Unicode replacement character) rather than passed
//      through (which would make the whole document unparsable for jq and friends).
//   2. Control characters are escaped; '/' and non-ASCII are not (both are legal raw).
//   3. Non-finite doubles (a ratio of nothing) are written as null: JSON has no NaN.
//   4. Commas and nesting are tracked by a stack, so callers cannot forget one; an unbalanced
//      document is a programming error caught by finish().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pipectl {

class JsonWriter {
 public:
  explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}

  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  // Inside an object: the next value's member name.
  JsonWriter& key(std::string_view name);

  JsonWriter& value(std::string_view s);
  JsonWriter& value(const char* s) { return value(std::string_view(s)); }
  JsonWriter& value(std::uint64_t n);
  JsonWriter& value(std::int64_t n);
  JsonWriter& value(unsigned n) { return value(static_cast<std::uint64_t>(n)); }
  JsonWriter& value(int n) { return value(static_cast<std::int64_t>(n)); }
  JsonWriter& value(double d);
  JsonWriter& value(bool b);
  JsonWriter& null();

  template <typename T>
  JsonWriter& member(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }

  // The finished document, with a trailing newline. Throws std::logic_error if unbalanced.
  const std::string& finish();

  static void append_escaped(std::string& out, std::string_view s);

 private:
  struct Level {
    bool object;
    bool empty = true;
  };
  void before_value();
  void newline_indent();

  std::string out_;
  std::vector<Level> stack_;
  bool pretty_;
  bool after_key_ = false;
};

}  // namespace pipectl
