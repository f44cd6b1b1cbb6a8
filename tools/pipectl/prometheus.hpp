// Prometheus text exposition format (version 0.0.4), as read by node_exporter's textfile
// collector and by any scrape endpoint.
//
// Invariants the writer keeps, so a caller cannot produce a document Prometheus rejects:
//   1. Every sample follows the `# HELP` and `# TYPE` lines of its family, and the samples of a
//      family are contiguous (a family is declared once; declaring it again throws).
//   2. Metric and label names match [a-zA-Z_:][a-zA-Z0-9_:]* / [a-zA-Z_][a-zA-Z0-9_]*
//      (checked; a bad name is a programming error).
//   3. Label values escape '\', '"' and newline; HELP text escapes '\' and newline.
//   4. Values are integers, finite decimals, or +Inf / -Inf / NaN spelled as the format wants.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pipectl {

using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

class PrometheusWriter {
 public:
  enum class Type { counter, gauge, histogram, summary };

  // Starts a family. Counters are named with their _total suffix (the 0.0.4 format types the
  // sample name); histograms without _bucket/_sum/_count.
  void family(std::string_view name, Type type, std::string_view help);
  // A sample of the current family; `suffix` is "", or for histograms "_sum" / "_count".
  void sample(std::string_view suffix, const Labels& labels, std::uint64_t value);
  void sample(std::string_view suffix, const Labels& labels, double value);
  // A histogram bucket sample: labels plus le="<bound>".
  void bucket(const Labels& labels, double upper_bound, std::uint64_t cumulative);

  const std::string& text() const { return out_; }

  static bool valid_metric_name(std::string_view name);
  static bool valid_label_name(std::string_view name);
  static void append_label_value(std::string& line, std::string_view value);

 private:
  std::string sample_prefix(std::string_view suffix, const Labels& labels,
                            std::string_view le) const;

  std::string out_;
  std::string current_;
  std::vector<std::string> declared_;
};

}  // namespace pipectl
