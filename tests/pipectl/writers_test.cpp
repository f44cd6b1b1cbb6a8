// pipectl's two output writers on their own, for the edge cases a live segment rarely
// produces: every malformed UTF-8 form, misuse of the writer API, names Prometheus rejects.

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "json_writer.hpp"
#include "prometheus.hpp"

using pipectl::JsonWriter;
using pipectl::PrometheusWriter;

namespace {

std::string escaped(std::string_view s) {
  std::string out;
  JsonWriter::append_escaped(out, s);
  return out;
}

}  // namespace

TEST_SUITE("pipectl_output") {
  TEST_CASE("json_strings_are_valid_utf8_whatever_the_bytes") {
    struct Case {
      std::string in;
      std::string decoded;  // what a JSON parser must read back
    };
    const std::string fffd = "\xef\xbf\xbd";
    std::vector<Case> cases = {
        {"plain", "plain"},
        {"\xc3\xa9", "\xc3\xa9"},                    // 2-byte
        {"\xe2\x82\xac", "\xe2\x82\xac"},            // 3-byte
        {"\xf4\x8f\xbf\xbf", "\xf4\x8f\xbf\xbf"},    // U+10FFFF, the last code point
        {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},  // above U+10FFFF
        {"\xc0\xaf", fffd + fffd},                   // overlong '/'
        {"\xe0\x80\xaf", fffd + fffd + fffd},        // overlong, 3 bytes
        {"\xed\xa0\x80", fffd + fffd + fffd},        // UTF-16 surrogate
        {"a\xe2\x82", "a" + fffd + fffd},            // truncated at the end
        {"\x80x", fffd + "x"},                       // lone continuation byte
        {std::string("\0\x1f\x7f", 3), std::string("\0\x1f\x7f", 3)},
        {"\"\\/\b\f\n\r\t", "\"\\/\b\f\n\r\t"},
    };
    for (const auto& c : cases) {
      CAPTURE(c.in);
      std::string json = escaped(c.in);
      nlohmann::json parsed;
      REQUIRE_NOTHROW(parsed = nlohmann::json::parse(json));
      CHECK(parsed.get<std::string>() == c.decoded);
    }
  }

  TEST_CASE("json_writer_refuses_unbalanced_documents") {
    JsonWriter a;
    a.begin_object();
    CHECK_THROWS_AS(a.finish(), std::logic_error);
    JsonWriter b;
    b.begin_object();
    CHECK_THROWS_AS(b.value(1), std::logic_error);  // a value without a key
    JsonWriter c;
    c.begin_array();
    CHECK_THROWS_AS(c.key("k"), std::logic_error);
    JsonWriter d;
    d.begin_object().member("nan", std::nan("")).member("n", std::uint64_t{18446744073709551615u});
    d.key("empty").begin_array().end_array();
    d.end_object();
    auto parsed = nlohmann::json::parse(d.finish());
    CHECK(parsed["nan"].is_null());
    CHECK(parsed["n"].get<std::uint64_t>() == 18446744073709551615u);
    CHECK(parsed["empty"].empty());
  }

  TEST_CASE("prometheus_writer_refuses_invalid_names_and_double_declarations") {
    PrometheusWriter p;
    CHECK_THROWS_AS(p.sample("", {}, std::uint64_t{1}), std::logic_error);  // no family yet
    CHECK_THROWS_AS(p.family("9lives", PrometheusWriter::Type::gauge, "h"), std::logic_error);
    CHECK_THROWS_AS(p.family("has-dash", PrometheusWriter::Type::gauge, "h"), std::logic_error);
    p.family("ok_metric", PrometheusWriter::Type::gauge, "line\nbreak \\ slash");
    CHECK_THROWS_AS(p.family("ok_metric", PrometheusWriter::Type::gauge, "h"), std::logic_error);
    CHECK_THROWS_AS(p.sample("", {{"__reserved", "x"}}, std::uint64_t{1}), std::logic_error);
    p.sample("", {{"type", "a\"b\\c\nd"}}, 2.5);
    CHECK(p.text() ==
          "# HELP ok_metric line\\nbreak \\\\ slash\n# TYPE ok_metric gauge\n"
          "ok_metric{type=\"a\\\"b\\\\c\\nd\"} 2.5\n");
  }

  TEST_CASE("prometheus_label_values_from_any_bytes_are_valid_utf8_without_control_characters") {
    PrometheusWriter p;
    p.family("m", PrometheusWriter::Type::gauge, "h");
    // Request type names come from the segment: any writer of it can put any bytes there.
    p.sample("", {{"type", std::string("caf\xc3\xa9\x01tab\there\xff\xed\xa0\x80\xe2\x82") + '\0' + "\x7f"}},
             std::uint64_t{1});
    const std::string fffd = "\xef\xbf\xbd";
    CHECK(p.text() == "# HELP m h\n# TYPE m gauge\nm{type=\"caf\xc3\xa9" + fffd + "tab" + fffd + "here" + fffd +
                          fffd + fffd + fffd + fffd + fffd + fffd + fffd + "\"} 1\n");
  }
}
