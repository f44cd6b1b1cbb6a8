// pipectl's machine-readable outputs hold to their formats: the Prometheus text exposition
// format (checked by a parser written here from the format's description, not by pipectl's
// own writer), JSON (parsed by nlohmann::json, also not pipectl's writer) — and `top` on a real
// terminal (a pty) gives the terminal back however it is stopped.

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <iterator>
#include <sstream>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include <doctest/doctest.h>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipectl_test;
using testing::SegmentGuard;
using testing::unique_name;

namespace {

// ---- a parser of the Prometheus text format (version 0.0.4) ---------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> counter/gauge/histogram/summary/untyped
  std::set<std::string> helps;
  std::vector<Sample> samples;
  std::vector<std::string> errors;
};

bool valid_metric_name(const std::string& s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
              (i > 0 && std::isdigit(static_cast<unsigned char>(c)));
    if (!ok) return false;
  }
  return true;
}

bool valid_label_name(const std::string& s) {
  return valid_metric_name(s) && s.find(':') == std::string::npos;
}

bool parse_value(const std::string& text, double& out) {
  if (text == "+Inf" || text == "Inf") { out = HUGE_VAL; return true; }
  if (text == "-Inf") { out = -HUGE_VAL; return true; }
  if (text == "NaN") { out = std::nan(""); return true; }
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  // strtod also takes "inf", "nan" and hex floats; the format does not.
  bool plain = text.find_first_not_of("0123456789+-.eE") == std::string::npos;
  return plain && end == text.c_str() + text.size();
}

// The family a sample belongs to: its own name, or for histograms / summaries its name minus
// a _bucket / _sum / _count suffix.
std::string family_of(const Exposition& e, const std::string& sample) {
  if (e.types.count(sample)) return sample;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    std::size_t n = std::strlen(suffix);
    if (sample.size() > n && sample.compare(sample.size() - n, n, suffix) == 0) {
      std::string base = sample.substr(0, sample.size() - n);
      auto it = e.types.find(base);
      if (it != e.types.end() && (it->second == "histogram" || it->second == "summary")) {
        if (std::string(suffix) == "_bucket" && it->second != "histogram") return {};
        return base;
      }
    }
  }
  return {};
}

Exposition parse_exposition(const std::string& text) {
  Exposition e;
  std::set<std::string> seen_series;
  std::set<std::string> families_with_samples;
  std::string last_family;
  int line_no = 0;
  for (const std::string& line : lines_of(text)) {
    ++line_no;
    auto fail = [&](const std::string& why) {
      e.errors.push_back("line " + std::to_string(line_no) + ": " + why + ": " + line);
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream in(line.substr(1));
      std::string keyword, name, rest;
      in >> keyword >> name;
      if (keyword == "TYPE") {
        in >> rest;
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!valid_metric_name(name)) fail("bad metric name in TYPE");
        if (!kTypes.count(rest)) fail("unknown type");
        if (e.types.count(name)) fail("second TYPE line for a family");
        if (families_with_samples.count(name)) fail("TYPE after samples of the family");
        e.types[name] = rest;
      } else if (keyword == "HELP") {
        if (!valid_metric_name(name)) fail("bad metric name in HELP");
        if (e.helps.count(name)) fail("second HELP line");
        e.helps.insert(name);
      }
      continue;  // other comments are allowed
    }
    Sample s;
    std::size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = line.substr(0, i);
    if (!valid_metric_name(s.name)) {
      fail("bad metric name");
      continue;
    }
    std::string series = s.name;
    if (i < line.size() && line[i] == '{') {
      ++i;
      bool closed = false;
      while (i < line.size()) {
        if (line[i] == '}') {
          closed = true;
          ++i;
          break;
        }
        std::size_t eq = line.find('=', i);
        if (eq == std::string::npos) break;
        std::string label = line.substr(i, eq - i);
        if (!valid_label_name(label)) fail("bad label name '" + label + "'");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') {
          fail("label value not quoted");
          break;
        }
        ++i;
        std::string value;
        bool terminated = false;
        while (i < line.size()) {
          char c = line[i++];
          if (c == '"') {
            terminated = true;
            break;
          }
          if (c == '\\') {
            if (i >= line.size()) break;
            char n = line[i++];
            if (n == 'n') value += '\n';
            else if (n == '\\') value += '\\';
            else if (n == '"') value += '"';
            else fail("bad escape in label value");
          } else {
            value += c;
          }
        }
        if (!terminated) {
          fail("unterminated label value");
          break;
        }
        if (s.labels.count(label)) fail("duplicate label");
        s.labels[label] = value;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (!closed) {
        fail("label set not closed");
        continue;
      }
    }
    if (i >= line.size() || line[i] != ' ') {
      fail("no space before value");
      continue;
    }
    std::string rest = line.substr(i + 1);
    std::string value_text = rest.substr(0, rest.find(' '));  // an optional timestamp may follow
    if (!parse_value(value_text, s.value)) fail("value is not a number: '" + value_text + "'");
    std::string family = family_of(e, s.name);
    if (family.empty()) {
      fail("sample without a TYPE declared before it");
    } else {
      if (!e.helps.count(family)) fail("family without HELP");
      if (family != last_family && families_with_samples.count(family)) {
        fail("samples of a family are not contiguous");
      }
      families_with_samples.insert(family);
      last_family = family;
    }
    for (const auto& [k, v] : s.labels) series += "|" + k + "=" + v;
    if (!seen_series.insert(series).second) fail("duplicate series");
    e.samples.push_back(std::move(s));
  }
  return e;
}

const Sample* find_sample(const Exposition& e, const std::string& name,
                          const std::map<std::string, std::string>& labels) {
  for (const auto& s : e.samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) return &s;
  }
  return nullptr;
}

}  // namespace

TEST_SUITE("pipectl_output") {
  TEST_CASE("prometheus_parser_rejects_what_it_should") {
    // The parser must be able to fail, or the test below proves nothing.
    CHECK(parse_exposition("x_total 1\n").errors.size() == 1);  // no TYPE
    CHECK(parse_exposition("# HELP x h\n# TYPE x gauge\nx{a=\"1\" 2\n").errors.size() == 1);
    CHECK(parse_exposition("# HELP x h\n# TYPE x gauge\nx{1a=\"1\"} 2\n").errors.size() == 1);
    CHECK(parse_exposition("# HELP x h\n# TYPE x gauge\nx two\n").errors.size() == 1);
    CHECK(parse_exposition("# HELP 9x h\n# TYPE 9x gauge\n9x 2\n").errors.size() >= 1);
    CHECK(parse_exposition("# HELP x h\n# TYPE x gauge\nx 1\nx 2\n").errors.size() == 1);
    CHECK(parse_exposition("# HELP x h\n# TYPE x histogram\nx_bucket{le=\"+Inf\"} 1\n"
                           "x_sum 0.5\nx_count 1\n").errors.empty());
  }

  TEST_CASE("prometheus_output_is_well_formed_and_matches_the_segment") {
    std::string name = unique_name("pctl-prom");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    for (int i = 0; i < 10; ++i) cache.put("whats_next_data:" + std::to_string(i), "v");
    for (int i = 0; i < 15; ++i) cache.get("whats_next_data:" + std::to_string(i));
    // A request type whose name needs escaping in a label value.
    const std::string odd_type = "odd\"type\\x";
    for (const std::string& type : {std::string("whats_next_data"), std::string("events_by_range"),
                                    odd_type}) {
      int ns = cache.namespace_id(type);
      REQUIRE(ns >= 0);
      cache.record(ns, pipecache::NsCounter::requests, 7);
      cache.record(ns, pipecache::NsCounter::hits, 5);
      cache.record(ns, pipecache::NsCounter::batch_wait_ns, 2'000'000'000);
      for (std::uint64_t t : {100u, 1500u, 40'000u, 2'000'000u}) {
        cache.record_time(ns, pipecache::NsHistogram::hit_time, t);
        cache.record_time(ns, pipecache::NsHistogram::compute_time, t * 10);
      }
    }
    RunResult r = pipectl({"stats", "--name", name, "--format", "prometheus"});
    REQUIRE_MESSAGE(r.exit_code == 0, describe(r));
    Exposition e = parse_exposition(r.out);
    for (const auto& err : e.errors) FAIL_CHECK(err);
    CHECK(e.errors.empty());
    REQUIRE(!e.samples.empty());

    for (const auto& s : e.samples) {
      CAPTURE(s.name);
      CHECK(s.name.rfind("pipecache_", 0) == 0);
      CHECK(s.labels.count("segment") == 1);
      std::string family = family_of(e, s.name);
      if (e.types[family] == "counter") {
        CHECK(s.name.size() > 6);
        CHECK(s.name.compare(s.name.size() - 6, 6, "_total") == 0);
        CHECK(s.value >= 0);
      }
    }
    const std::map<std::string, std::string> seg = {{"segment", name}};
    pipecache::Stats st = cache.stats();
    const Sample* hits = find_sample(e, "pipecache_hits_total", seg);
    REQUIRE(hits != nullptr);
    CHECK(hits->value == static_cast<double>(st.hits));
    const Sample* entries = find_sample(e, "pipecache_entries", seg);
    REQUIRE(entries != nullptr);
    CHECK(entries->value == 10);
    CHECK(e.types["pipecache_entries"] == "gauge");

    // Per request type, with the label escaped and parsed back to the original bytes.
    for (const std::string& type : {std::string("whats_next_data"), odd_type}) {
      CAPTURE(type);
      std::map<std::string, std::string> labels = {{"segment", name}, {"type", type}};
      const Sample* req = find_sample(e, "pipecache_requests_total", labels);
      REQUIRE(req != nullptr);
      CHECK(req->value == 7);
      const Sample* wait = find_sample(e, "pipecache_request_batch_wait_seconds_total", labels);
      REQUIRE(wait != nullptr);
      CHECK(wait->value == doctest::Approx(2.0));
      // Histogram: buckets cumulative and non-decreasing, +Inf bucket == _count == 4 samples.
      double previous = -1, previous_le = -1;
      int buckets = 0;
      for (const auto& s : e.samples) {
        if (s.name != "pipecache_hit_duration_seconds_bucket") continue;
        if (s.labels.at("type") != type) continue;
        ++buckets;
        double le = 0;
        REQUIRE(parse_value(s.labels.at("le"), le));
        CHECK(le > previous_le);
        CHECK(s.value >= previous);
        previous = s.value;
        previous_le = le;
      }
      CHECK(buckets > 10);
      CHECK(std::isinf(previous_le));
      CHECK(previous == 4);
      const Sample* count = find_sample(e, "pipecache_hit_duration_seconds_count", labels);
      REQUIRE(count != nullptr);
      CHECK(count->value == 4);
      const Sample* sum = find_sample(e, "pipecache_hit_duration_seconds_sum", labels);
      REQUIRE(sum != nullptr);
      CHECK(sum->value == doctest::Approx((100 + 1500 + 40'000 + 2'000'000) / 1e9));
      // The 100 ns sample is at or below the 127 ns bound, the 1500 ns one is not.
      const Sample* le127 = nullptr;
      for (const auto& s : e.samples) {
        if (s.name == "pipecache_hit_duration_seconds_bucket" && s.labels.at("type") == type &&
            std::abs(std::strtod(s.labels.at("le").c_str(), nullptr) - 127e-9) < 1e-15) {
          le127 = &s;
        }
      }
      REQUIRE(le127 != nullptr);
      CHECK(le127->value == 1);
    }
    CHECK(e.types["pipecache_hit_duration_seconds"] == "histogram");
    CHECK(e.types["pipecache_compute_duration_seconds"] == "histogram");
  }

  TEST_CASE("json_outputs_parse_and_agree_with_the_library") {
    std::string name = unique_name("pctl-json");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    // Keys that stress the escaping: quotes, backslash, control bytes, valid UTF-8 and an
    // invalid byte.
    const std::string weird = std::string("q\"b\\s\x01\t\n-\xc3\xa9-\xff-end");
    cache.put(weird, "x");
    cache.put("plain:1", "12345");
    int ns = cache.namespace_id("plain");
    REQUIRE(ns >= 0);
    cache.record(ns, pipecache::NsCounter::requests, 3);
    cache.record(ns, pipecache::NsCounter::hits, 2);

    RunResult k = pipectl({"keys", "--name", name, "--json"});
    REQUIRE_MESSAGE(k.exit_code == 0, describe(k));
    auto kj = nlohmann::json::parse(k.out);
    CHECK(kj["count"] == 2);
    std::set<std::string> keys;
    for (const auto& e : kj["keys"]) keys.insert(e["key"].get<std::string>());
    CHECK(keys.count("plain:1") == 1);
    // The invalid byte became U+FFFD; everything else survived exactly.
    CHECK(keys.count(std::string("q\"b\\s\x01\t\n-\xc3\xa9-\xef\xbf\xbd-end")) == 1);

    RunResult s = pipectl({"stats", "--name", name, "--format", "json"});
    REQUIRE_MESSAGE(s.exit_code == 0, describe(s));
    auto sj = nlohmann::json::parse(s.out);
    CHECK(sj["segment"] == name);
    CHECK(sj["entries"] == 2);
    bool found = false;
    for (const auto& t : sj["request_types"]) {
      if (t["name"] != "plain") continue;
      found = true;
      CHECK(t["counters"]["requests"] == 3);
      CHECK(t["hit_ratio"].get<double>() == doctest::Approx(2.0 / 3.0));
      CHECK(t["hit_time"]["count"] == 0);
      CHECK(t["hit_time"]["p99_ns"].is_null());  // no samples: null, not NaN
    }
    CHECK(found);
    // An empty segment's ratios are null (JSON has no NaN) and it still parses.
    cache.clear();
    RunResult empty = pipectl({"stats", "--name", name, "--json"});
    REQUIRE(empty.exit_code == 0);
    auto empty_json = nlohmann::json::parse(empty.out);
    CHECK(empty_json["hit_ratio"].is_null() == (empty_json["hits"] == 0 && empty_json["misses"] == 0));

    RunResult i = pipectl({"inspect", "--name", name, "--json"});
    REQUIRE(i.exit_code == 0);
    auto ij = nlohmann::json::parse(i.out);
    CHECK(ij["segment"] == name);
    CHECK(ij["layout_version"].get<std::uint32_t>() == cache.inspect().layout_version);
    RunResult v = pipectl({"verify", "--name", name, "--json"});
    CHECK(v.exit_code == 0);
    CHECK(nlohmann::json::parse(v.out)["ok"] == true);
  }

  TEST_CASE("stats_names_entries_left_by_an_o1_invalidation_apart_from_live_ones") {
    std::string name = unique_name("pctl-stale");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    REQUIRE(cache.namespace_id("user") >= 0);  // registered: "user:*" is an O(1) invalidation
    for (int i = 0; i < 4; ++i) REQUIRE(cache.put(fmt::format("user:{}", i), "v"));
    REQUIRE(cache.put("page:1", "p"));
    RunResult before = pipectl({"stats", "--name", name});
    REQUIRE_MESSAGE(before.exit_code == 0, describe(before));
    CHECK(before.out.find("invalidated") == std::string::npos);

    cache.invalidate("user:*");
    RunResult after = pipectl({"stats", "--name", name});
    REQUIRE_MESSAGE(after.exit_code == 0, describe(after));
    CHECK_MESSAGE(after.out.find("entries        5  (1 live, 4 invalidated") != std::string::npos, after.out);
    RunResult keys = pipectl({"keys", "--name", name, "--json"});
    REQUIRE(keys.exit_code == 0);
    CHECK(nlohmann::json::parse(keys.out)["count"] == 1);  // what the live figure promises

    cache.purge();  // reclaimed: nothing stale is left to name
    RunResult purged = pipectl({"stats", "--name", name});
    REQUIRE(purged.exit_code == 0);
    CHECK(purged.out.find("invalidated:") == std::string::npos);
  }

  TEST_CASE("batch_figures_are_derived_from_the_counters_for_batched_types_only") {
    std::string name = unique_name("pctl-batch");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    using pipecache::NsCounter;
    const int events = cache.namespace_id("events_by_range");
    const int settings = cache.namespace_id("settings_get");
    REQUIRE(events >= 0);
    REQUIRE(settings >= 0);
    // 4 batches answered 10 requests: 8 by the batch handler, 2 re-run alone after the one
    // failure; 9 of the 10 batchable requests joined a batch of 2+; 3 ms in a window each.
    cache.record(events, NsCounter::requests, 12);
    cache.record(events, NsCounter::batchable_requests, 10);
    cache.record(events, NsCounter::batches, 4);
    cache.record(events, NsCounter::batched_requests, 8);
    cache.record(events, NsCounter::batch_fallbacks, 2);
    cache.record(events, NsCounter::batch_joined, 9);
    cache.record(events, NsCounter::batch_failures, 1);
    cache.record(events, NsCounter::batch_wait_ns, 30'000'000);
    cache.record(settings, NsCounter::requests, 3);

    RunResult text = pipectl({"stats", "--name", name});
    REQUIRE_MESSAGE(text.exit_code == 0, describe(text));
    auto lines = lines_of(text.out);
    auto header = std::find_if(lines.begin(), lines.end(),
                               [](const std::string& l) { return l.rfind("batching ", 0) == 0; });
    REQUIRE_MESSAGE(header != lines.end(), text.out);
    REQUIRE_MESSAGE(lines.end() - header == 2, text.out);  // one row: settings_get never batched
    std::istringstream row(*(header + 1));
    std::vector<std::string> cells{std::istream_iterator<std::string>(row), {}};
    CHECK(cells == std::vector<std::string>{"events_by_range", "4", "10", "2.5", "90.0%", "3.00",
                                            "ms", "1", "2"});

    RunResult json = pipectl({"stats", "--name", name, "--json"});
    REQUIRE_MESSAGE(json.exit_code == 0, describe(json));
    auto j = nlohmann::json::parse(json.out);
    int seen = 0;
    for (const auto& t : j["request_types"]) {
      if (t["name"] == "events_by_range") {
        ++seen;
        CHECK(t["counters"]["batches"] == 4);
        CHECK(t["batching"]["average_batch_size"].get<double>() == doctest::Approx(2.5));
        CHECK(t["batching"]["formation_efficiency"].get<double>() == doctest::Approx(0.9));
        CHECK(t["batching"]["mean_wait_ns"].get<double>() == doctest::Approx(3e6));
      } else if (t["name"] == "settings_get") {
        ++seen;
        CHECK(t["batching"].is_null());
      }
    }
    CHECK(seen == 2);

    // No batches anywhere: no batching table at all.
    std::string quiet = unique_name("pctl-nobatch");
    SegmentGuard quiet_guard(quiet);
    auto quiet_cache = pipecache::Cache::create(testing::small_options(quiet));
    quiet_cache.record(quiet_cache.namespace_id("settings_get"), NsCounter::requests, 3);
    RunResult none = pipectl({"stats", "--name", quiet});
    REQUIRE(none.exit_code == 0);
    CHECK(none.out.find("settings_get") != std::string::npos);
    CHECK(none.out.find("\nbatching ") == std::string::npos);
  }

  TEST_CASE("keys_text_output_escapes_and_limit_reports_truncation") {
    std::string name = unique_name("pctl-keystext");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    for (int i = 0; i < 30; ++i) cache.put("page:" + std::to_string(i), std::string(i, 'x'));
    cache.put(std::string("ctl:\n\x02"), "v");
    RunResult all = pipectl({"keys", "--name", name});
    REQUIRE(all.exit_code == 0);
    auto lines = lines_of(all.out);
    CHECK(lines.size() == 1 + 31);  // header + one line per key, even for a key with '\n'
    CHECK(all.out.find("ctl:\\x0a\\x02") != std::string::npos);
    RunResult limited = pipectl({"keys", "--name", name, "page:*", "--limit", "5"});
    REQUIRE(limited.exit_code == 0);
    CHECK(lines_of(limited.out).size() == 1 + 5);
    CHECK(limited.err.find("--limit") != std::string::npos);
    RunResult exact = pipectl({"keys", "--name", name, "page:*", "--limit", "30"});
    CHECK(lines_of(exact.out).size() == 1 + 30);
    CHECK(exact.err.empty());
  }
}

// ---- top on a terminal ----------------------------------------------------------------------

namespace {

struct PtyRun {
  int master = -1;
  int slave = -1;
  pid_t pid = -1;
  std::string output;

  explicit PtyRun(const std::vector<std::string>& args) {
    struct winsize ws {};
    ws.ws_row = 30;
    ws.ws_col = 120;
    REQUIRE(::openpty(&master, &slave, nullptr, nullptr, &ws) == 0);
    std::vector<std::string> storage = {pipectl_path()};
    storage.insert(storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      ::dup2(slave, 0);
      ::dup2(slave, 1);
      ::dup2(slave, 2);
      ::close(master);
      ::unsetenv("PIPECACHE_NAME");
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    // The test keeps `slave` open to read the terminal's modes after pipectl exits.
  }
  ~PtyRun() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(master);
    ::close(slave);
  }

  // Reads until `needle` shows up in the output or the timeout passes.
  bool read_until(const std::string& needle, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (output.find(needle) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{master, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n <= 0) return output.find(needle) != std::string::npos;
      output.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  testing::ExitStatus wait() {
    auto st = testing::wait_for(pid, std::chrono::seconds(10));
    pid = -1;
    read_until("\x1b[?1049l", std::chrono::milliseconds(500));  // drain what is left
    return st;
  }

  bool canonical_with_echo() const {
    termios t{};
    REQUIRE(::tcgetattr(slave, &t) == 0);
    return (t.c_lflag & ICANON) != 0 && (t.c_lflag & ECHO) != 0;
  }
};

}  // namespace

TEST_SUITE("pipectl_top_tty") {
  TEST_CASE("top_on_a_terminal_draws_and_restores_the_terminal_however_it_ends") {
    std::string name = unique_name("pctl-tty");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    cache.put("whats_next_data:1", "v");
    cache.record(cache.namespace_id("whats_next_data"), pipecache::NsCounter::requests, 1);

    enum class How { q_key, ctrl_c, sigterm, sighup };
    for (How how : {How::q_key, How::ctrl_c, How::sigterm, How::sighup}) {
      CAPTURE(static_cast<int>(how));
      PtyRun run({"top", "--name", name, "--interval", "100ms"});
      REQUIRE(run.canonical_with_echo());
      // Wait for a frame after the first (rates known), i.e. the loop is running.
      REQUIRE_MESSAGE(run.read_until("\x1b[?1049h", std::chrono::seconds(10)), run.output);
      REQUIRE_MESSAGE(run.read_until("whats_next_data", std::chrono::seconds(10)), run.output);
      CHECK(run.output.find("pipectl top") != std::string::npos);
      CHECK(run.output.find("memory") != std::string::npos);
      CHECK_FALSE(run.canonical_with_echo());  // cbreak mode while running
      switch (how) {
        case How::q_key: REQUIRE(::write(run.master, "q", 1) == 1); break;
        case How::ctrl_c: REQUIRE(::write(run.master, "\x03", 1) == 1); break;  // ISIG -> SIGINT
        case How::sigterm: ::kill(run.pid, SIGTERM); break;
        case How::sighup: ::kill(run.pid, SIGHUP); break;
      }
      auto st = run.wait();
      CHECK(st.exited);
      CHECK(st.code == 0);
      CHECK(run.output.find("\x1b[?1049l") != std::string::npos);  // left the alternate screen
      CHECK(run.output.find("\x1b[?25h") != std::string::npos);    // cursor shown again
      CHECK(run.canonical_with_echo());                             // modes restored
    }
  }

  TEST_CASE("top_killed_by_a_fatal_signal_still_restores_the_terminal") {
    std::string name = unique_name("pctl-tty-fatal");
    SegmentGuard guard(name);
    auto cache = pipecache::Cache::create(testing::small_options(name));
    PtyRun run({"top", "--name", name, "--interval", "100ms"});
    REQUIRE(run.read_until("pipectl top", std::chrono::seconds(10)));
    CHECK_FALSE(run.canonical_with_echo());
    ::kill(run.pid, SIGABRT);
    auto st = run.wait();
    CHECK(st.signaled);  // it still dies of the signal, as it should
    CHECK(st.signal == SIGABRT);
    CHECK(run.canonical_with_echo());
    CHECK(run.output.find("\x1b[?1049l") != std::string::npos);
  }
}
