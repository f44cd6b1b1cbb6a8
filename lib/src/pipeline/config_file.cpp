// The pipeline's configuration file: JSON (nlohmann-json), every error naming the file, the
// line and the field.
//
// nlohmann's DOM keeps no source positions, so the file is read twice: once through a SAX
// handler that only records the line of every object key (and of every array element), and
// once into the DOM that the fields are read from. The SAX pass reads through an iterator
// that counts the bytes the lexer consumed: when the parser reports a key, the lexer has just
// read its closing quote (strings need no look-ahead), so the count is the key's end.
//
// Layout (README "Configuration file"): the PipelineConfig fields at the top level, and the
// sections "policies" (type -> fields), "batch_profiles" (name -> fields) and
// "invalidation_rules" (change -> list of patterns).
#include "pipeline/config_fields.hpp"
#include "pipeline/json_file.hpp"

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace pipecache {
namespace {

using nlohmann::json;

// Reads chars from [p, end) and remembers how many were consumed.
class CountingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  CountingIterator(const char* base, const char* p, std::size_t* consumed)
      : base_(base), p_(p), consumed_(consumed) {}
  reference operator*() const { return *p_; }
  CountingIterator& operator++() {
    ++p_;
    if (consumed_ != nullptr) *consumed_ = std::max(*consumed_, static_cast<std::size_t>(p_ - base_));
    return *this;
  }
  CountingIterator operator++(int) {
    CountingIterator before = *this;
    ++*this;
    return before;
  }
  bool operator==(const CountingIterator& o) const { return p_ == o.p_; }
  bool operator!=(const CountingIterator& o) const { return p_ != o.p_; }

 private:
  const char* base_;
  const char* p_;
  std::size_t* consumed_;
};

// Path of a value inside the document: its keys (and array indexes) joined by '.'.
std::string join(const std::string& parent, std::string_view child) {
  return parent.empty() ? std::string(child) : fmt::format("{}.{}", parent, child);
}

// Line (1-based) of every key and array element, by path; keys given twice are an error.
class LineIndex : public nlohmann::json_sax<json> {
 public:
  LineIndex(const std::string& text, const std::size_t* consumed) : text_(text), consumed_(consumed) {}

  std::map<std::string, unsigned> lines;
  std::string duplicate;  // path of the first key given twice, "" when none
  unsigned duplicate_line = 0;

  bool null() override { return value(); }
  bool boolean(bool) override { return value(); }
  bool number_integer(number_integer_t) override { return value(); }
  bool number_unsigned(number_unsigned_t) override { return value(); }
  bool number_float(number_float_t, const string_t&) override { return value(); }
  bool string(string_t&) override { return value(); }
  bool binary(binary_t&) override { return value(); }
  bool start_object(std::size_t) override {
    open(false);
    return true;
  }
  bool key(string_t& k) override {
    Frame& f = stack_.back();
    f.key = k;
    const std::string path = join(f.path, k);
    const unsigned line = line_now();
    if (!lines.emplace(path, line).second && duplicate.empty()) {
      duplicate = path;
      duplicate_line = line;
    }
    return true;
  }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override {
    open(true);
    return true;
  }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;  // the DOM pass reports it, with its position
  }

 private:
  struct Frame {
    std::string path;
    bool array = false;
    std::size_t index = 0;
    std::string key;
  };

  unsigned line_now() const {
    const std::size_t end = std::min(*consumed_, text_.size());
    return 1 + static_cast<unsigned>(std::count(text_.begin(), text_.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
  }
  // The path the next value gets (an array records its elements' lines here).
  std::string child_path() {
    if (stack_.empty()) return "";
    Frame& f = stack_.back();
    if (!f.array) return join(f.path, f.key);
    const std::string path = join(f.path, std::to_string(f.index++));
    lines.emplace(path, line_now());
    return path;
  }
  bool value() {
    child_path();
    return true;
  }
  void open(bool array) {
    std::string path = child_path();
    stack_.push_back(Frame{std::move(path), array, 0, {}});
  }
  bool close() {
    stack_.pop_back();
    return true;
  }

  const std::string& text_;
  const std::size_t* consumed_;
  std::vector<Frame> stack_;
};

class FileReader {
 public:
  FileReader(std::string path, std::string text) : path_(std::move(path)), text_(std::move(text)) {}

  // Parses the file (syntax errors and duplicate keys throw here).
  void parse() {
    detail::JsonWithLines parsed = detail::parse_json_with_lines(label(), text_);
    doc_ = std::move(parsed.doc);
    lines_ = std::move(parsed.lines);
    if (!parsed.duplicate.empty()) {
      detail::field_error(at(parsed.duplicate_line), parsed.duplicate,
                          fmt::format("given twice (first on line {})", first_line(parsed.duplicate)));
    }
    if (!doc_.is_object()) {
      throw Error(fmt::format("{} line 1: expected a JSON object at the top", label()));
    }
  }

  // The top-level PipelineConfig fields.
  void apply_globals(PipelineConfig& c) const {
    for (const auto& [name, value] : doc_.items()) {
      if (is_section(name)) continue;
      detail::set_config_field(c, name, field_value(value, name), origin(name), name);
    }
  }

  // The sections; policies after batch_profiles so a policy may name a profile of the file.
  void apply_sections(PipelineConfig& c) const {
    if (auto it = doc_.find("batch_profiles"); it != doc_.end()) {
      for (const auto& [name, fields] : section_items(*it, "batch_profiles")) {
        const std::string path = join("batch_profiles", name);
        BatchProfile profile;
        if (auto p = c.batch_profiles.find(name); p != c.batch_profiles.end()) profile = p->second;
        for (const auto& [field, value] : object_items(fields, path)) {
          const std::string fp = join(path, field);
          detail::set_profile_field(profile, field, field_value(value, fp), origin(fp), fp);
        }
        c.batch_profiles[name] = profile;
      }
    }
    if (auto it = doc_.find("policies"); it != doc_.end()) {
      for (const auto& [type, fields] : section_items(*it, "policies")) {
        const std::string path = join("policies", type);
        RequestPolicy policy = detail::base_policy(c, type);
        for (const auto& [field, value] : object_items(fields, path)) {
          const std::string fp = join(path, field);
          detail::set_policy_field(policy, field, field_value(value, fp), origin(fp), fp);
        }
        // A profile may also come from the environment (PIPECACHE_BATCH_<name>), read later.
        const std::string& profile = policy.batch_profile;
        if (!profile.empty() && c.batch_profiles.count(profile) == 0 &&
            std::getenv(("PIPECACHE_BATCH_" + profile).c_str()) == nullptr) {
          const std::string fp = join(path, "batch_profile");
          detail::field_error(origin(fp), fp, fmt::format("no batch profile is named '{}'", profile));
        }
        c.policies[type] = std::move(policy);
      }
    }
    if (auto it = doc_.find("invalidation_rules"); it != doc_.end()) {
      for (const auto& [change, patterns] : section_items(*it, "invalidation_rules")) {
        const std::string path = join("invalidation_rules", change);
        const detail::FieldValue v = field_value(patterns, path);
        if (!v.is_list) detail::field_error(origin(path), path, "expected a list of patterns");
        for (const auto& p : v.items) {
          if (p.empty()) detail::field_error(origin(path), path, "an empty pattern");
        }
        c.invalidation_rules[change] = v.items;
      }
    }
  }

 private:
  static bool is_section(std::string_view name) {
    return name == "policies" || name == "batch_profiles" || name == "invalidation_rules";
  }

  std::string label() const { return fmt::format("config file {}", path_); }
  detail::Origin at(unsigned line) const {
    return detail::Origin{fmt::format("{} line {}", label(), line)};
  }
  unsigned first_line(const std::string& path) const {
    auto it = lines_.find(path);
    return it == lines_.end() ? 1 : it->second;
  }
  detail::Origin origin(const std::string& path) const { return at(first_line(path)); }

  std::vector<std::pair<std::string, const json*>> object_items(const json& j,
                                                                const std::string& path) const {
    if (!j.is_object()) {
      detail::field_error(origin(path), path, fmt::format("expected an object, found {}", j.type_name()));
    }
    std::vector<std::pair<std::string, const json*>> out;
    for (const auto& [k, v] : j.items()) out.emplace_back(k, &v);
    return out;
  }
  std::vector<std::pair<std::string, const json&>> section_items(const json& j,
                                                                 const std::string& path) const {
    std::vector<std::pair<std::string, const json&>> out;
    for (const auto& [k, v] : object_items(j, path)) {
      if (k.empty()) detail::field_error(origin(path), path, "an empty name");
      out.emplace_back(k, *v);
    }
    return out;
  }
  detail::FieldValue field_value(const json* j, const std::string& path) const {
    return field_value(*j, path);
  }
  detail::FieldValue field_value(const json& j, const std::string& path) const {
    detail::FieldValue v;
    switch (j.type()) {
      case json::value_t::string:
        v.text = j.get<std::string>();
        break;
      case json::value_t::boolean:
      case json::value_t::number_integer:
      case json::value_t::number_unsigned:
      case json::value_t::number_float:
        v.text = j.dump();
        break;
      case json::value_t::array: {
        v.is_list = true;
        std::size_t i = 0;
        for (const auto& item : j) {
          const std::string ip = join(path, std::to_string(i++));
          if (!item.is_string()) {
            detail::field_error(origin(ip), path,
                                fmt::format("expected a list of strings, found a {}", item.type_name()));
          }
          v.items.push_back(item.get<std::string>());
        }
        break;
      }
      default:
        detail::field_error(origin(path), path, fmt::format("unexpected {}", j.type_name()));
    }
    return v;
  }

  std::string path_;
  std::string text_;
  json doc_;
  std::map<std::string, unsigned> lines_;
};

}  // namespace

namespace detail {

std::string read_text_file(const std::string& label, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot be read: {}", label, std::strerror(errno)));
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("{}: read failed", label));
  return s.str();
}

JsonWithLines parse_json_with_lines(const std::string& label, const std::string& text) {
  std::size_t consumed = 0;
  LineIndex index(text, &consumed);
  const char* b = text.data();
  const char* e = b + text.size();
  json::sax_parse(CountingIterator(b, b, &consumed), CountingIterator(b, e, nullptr), &index,
                  json::input_format_t::json, true, false);
  JsonWithLines out;
  try {
    out.doc = json::parse(text);
  } catch (const json::parse_error& err) {
    // nlohmann counts err.byte from 1; the offending character is at byte - 1. Its what() is
    // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error while
    // parsing ...": the line is said once, up front.
    const std::size_t end = std::min(err.byte > 0 ? err.byte - 1 : 0, text.size());
    const unsigned line = 1 + static_cast<unsigned>(
                                  std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(end), '\n'));
    const std::string what = err.what();
    const std::size_t colon = what.find(": ");
    throw Error(fmt::format("{} line {}: {}", label, line,
                            colon == std::string::npos ? what : what.substr(colon + 2)));
  }
  out.lines = std::move(index.lines);
  out.duplicate = std::move(index.duplicate);
  out.duplicate_line = index.duplicate_line;
  return out;
}

// Applies the file in two parts so that the environment can sit between them: globals first
// (a policy's defaults may depend on cache_ttl), then the sections.
struct ConfigFile {
  explicit ConfigFile(const std::string& path)
      : reader(path, read_text_file("config file " + path, path)) {
    reader.parse();
  }
  FileReader reader;
};

void apply_file_globals(PipelineConfig& c, const ConfigFile& f) { f.reader.apply_globals(c); }
void apply_file_sections(PipelineConfig& c, const ConfigFile& f) { f.reader.apply_sections(c); }
std::shared_ptr<ConfigFile> open_config_file(const std::string& path) {
  return std::make_shared<ConfigFile>(path);
}

}  // namespace detail

void PipelineConfig::load_file(const std::string& path) {
  const auto f = detail::open_config_file(path);
  detail::apply_file_globals(*this, *f);
  detail::apply_file_sections(*this, *f);
  config_file = path;
}

PipelineConfig PipelineConfig::from_file(const std::string& path) {
  PipelineConfig c;
  c.load_file(path);
  c.validate();
  return c;
}

}  // namespace pipecache
