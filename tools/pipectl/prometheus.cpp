#include "prometheus.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include <fmt/core.h>

namespace pipectl {
namespace {

bool name_char(char c, bool first, bool colon_allowed) {
  bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               (colon_allowed && c == ':');
  return alpha || (!first && c >= '0' && c <= '9');
}

bool valid_name(std::string_view name, bool colon_allowed) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, colon_allowed)) return false;
  }
  return true;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

bool PrometheusWriter::valid_metric_name(std::string_view name) { return valid_name(name, true); }

bool PrometheusWriter::valid_label_name(std::string_view name) {
  // Names starting with "__" are reserved for Prometheus itself.
  return valid_name(name, false) && name.substr(0, 2) != "__";
}

void PrometheusWriter::family(std::string_view name, Type type, std::string_view help) {
  if (!valid_metric_name(name)) {
    throw std::logic_error(fmt::format("invalid Prometheus metric name '{}'", name));
  }
  if (std::find(declared_.begin(), declared_.end(), name) != declared_.end()) {
    throw std::logic_error(fmt::format("Prometheus family '{}' declared twice", name));
  }
  declared_.emplace_back(name);
  current_ = std::string(name);
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  static constexpr std::string_view kTypeNames[] = {"counter", "gauge", "histogram", "summary"};
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escaped, name,
                      kTypeNames[static_cast<int>(type)]);
}

namespace {

// Length of the well-formed UTF-8 sequence starting at s[i] (1..4), or 0 when it is not one
// (a stray continuation byte, an overlong form, a surrogate, beyond U+10FFFF, cut short).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k)
    if ((b(k) & 0xc0) != 0x80) return 0;
  if (c == 0xe0 && b(1) < 0xa0) return 0;  // overlong
  if (c == 0xed && b(1) >= 0xa0) return 0;  // surrogate
  if (c == 0xf0 && b(1) < 0x90) return 0;  // overlong
  if (c == 0xf4 && b(1) >= 0x90) return 0;  // beyond U+10FFFF
  return n;
}

}  // namespace

// A label value as the exposition format accepts it whatever bytes it came from (request
// type names are read from the segment, which any writer of it can fill with anything):
// backslash, quote and newline escaped; other control characters and bytes that are not
// well-formed UTF-8 replaced by U+FFFD, so that one bad name cannot make a scraper reject
// the whole document.
void PrometheusWriter::append_label_value(std::string& line, std::string_view value) {
  for (std::size_t i = 0; i < value.size();) {
    const char c = value[i];
    std::size_t n = utf8_sequence(value, i);
    if (c == '\\') {
      line += "\\\\";
    } else if (c == '"') {
      line += "\\\"";
    } else if (c == '\n') {
      line += "\\n";
    } else if (n == 0 || (n == 1 && (static_cast<unsigned char>(c) < 0x20 || c == 0x7f))) {
      line += "\xef\xbf\xbd";  // U+FFFD
      n = 1;
    } else {
      line.append(value.substr(i, n));
    }
    i += n;
  }
}

// Built apart and appended whole by the caller: a bad label name throws before anything
// reaches the document, so a caught error never leaves half a line behind.
std::string PrometheusWriter::sample_prefix(std::string_view suffix, const Labels& labels,
                                            std::string_view le) const {
  if (current_.empty()) throw std::logic_error("Prometheus sample before any family");
  std::string line = current_;
  line += suffix;
  if (labels.empty() && le.empty()) {
    line += ' ';
    return line;
  }
  line += '{';
  bool first = true;
  auto add = [&](std::string_view label, std::string_view value) {
    if (!valid_label_name(label)) {
      throw std::logic_error(fmt::format("invalid Prometheus label name '{}'", label));
    }
    if (!first) line += ',';
    first = false;
    line += label;
    line += "=\"";
    append_label_value(line, value);
    line += '"';
  };
  for (const auto& [label, value] : labels) add(label, value);
  if (!le.empty()) add("le", le);
  line += "} ";
  return line;
}

void PrometheusWriter::sample(std::string_view suffix, const Labels& labels, std::uint64_t value) {
  out_ += sample_prefix(suffix, labels, {}) + fmt::format("{}\n", value);
}

void PrometheusWriter::sample(std::string_view suffix, const Labels& labels, double value) {
  out_ += sample_prefix(suffix, labels, {}) + format_value(value) + '\n';
}

void PrometheusWriter::bucket(const Labels& labels, double upper_bound, std::uint64_t cumulative) {
  std::string le = format_value(upper_bound);
  out_ += sample_prefix("_bucket", labels, le) + fmt::format("{}\n", cumulative);
}

}  // namespace pipectl
