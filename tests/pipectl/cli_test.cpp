// pipectl's command-line contract: exit codes, one-line errors naming the segment, help on
// every subcommand, argument validation, values round-tripping byte for byte.

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "support/process.hpp"

using namespace pipectl_test;
using testing::SegmentGuard;
using testing::unique_name;

namespace {

const char* const kSubcommands[] = {"stats",      "top",   "keys",    "get",
                                    "set",        "del",   "invalidate", "clear",
                                    "inspect",    "verify", "create",  "destroy",
                                    "change",     "rules",  "disable", "enable",
                                    "rollout",    "validate"};

pipecache::Cache make_segment(const std::string& name, std::size_t budget = 4u << 20) {
  return pipecache::Cache::create(testing::small_options(name, budget));
}

}  // namespace

TEST_SUITE("pipectl_usage") {
  TEST_CASE("every_subcommand_has_help") {
    for (const char* sub : kSubcommands) {
      CAPTURE(sub);
      RunResult r = pipectl({sub, "--help"});
      INFO(describe(r));
      CHECK(r.exit_code == 0);
      CHECK(r.out.find(std::string("pipectl ") + sub) != std::string::npos);
      CHECK(r.out.find("--name") != std::string::npos);
      CHECK(r.err.empty());
    }
    RunResult top = pipectl({"--help"});
    CHECK(top.exit_code == 0);
    for (const char* sub : kSubcommands) CHECK(top.out.find(sub) != std::string::npos);
    RunResult help_form = pipectl({"help", "keys"});
    CHECK(help_form.exit_code == 0);
    CHECK(help_form.out.find("--limit") != std::string::npos);
  }

  TEST_CASE("man_page_documents_every_subcommand_and_exit_code") {
    std::ifstream in(env_path("PIPECTL_MAN"));
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    std::string page = ss.str();
    CHECK(page.rfind(".TH PIPECTL 1", 0) == 0);
    for (const char* sub : kSubcommands) {
      CAPTURE(sub);
      // Each subcommand is a tagged paragraph starting with its bold name.
      bool found = page.find(std::string("\n.B ") + sub) != std::string::npos ||
                   page.find(std::string("\n.BR ") + sub) != std::string::npos ||
                   page.find(std::string("\n\\fB") + sub + "\\fP") != std::string::npos;
      CHECK(found);
    }
    CHECK(page.find(".SH EXIT STATUS") != std::string::npos);
    CHECK(page.find("PIPECACHE_NAME") != std::string::npos);
  }

  TEST_CASE("no_subcommand_or_unknown_subcommand_is_usage_error") {
    RunResult none = pipectl({});
    CHECK(none.exit_code == 2);
    RunResult unknown = pipectl({"frobnicate"});
    CHECK(unknown.exit_code == 2);
    check_one_line_error(unknown, "frobnicate");
    RunResult bad_global = pipectl({"--bogus", "stats"});
    CHECK(bad_global.exit_code == 2);
  }

  TEST_CASE("malformed_sizes_durations_numbers_and_names_exit_2_and_create_nothing") {
    std::string name = unique_name("pctl-malformed");
    SegmentGuard guard(name);
    struct Case {
      std::vector<std::string> args;
      std::string mentions;
      // Errors found once the segment name is known also name the segment; the option
      // parser's own (unknown option, missing value) come before that.
      bool names_segment = true;
    };
    std::vector<Case> cases = {
        {{"create", "--name", name, "--budget", "64Q"}, "64Q"},
        {{"create", "--name", name, "--budget", "-5M"}, "-5M"},
        {{"create", "--name", name, "--budget", ""}, "budget"},
        {{"create", "--name", name, "--budget", "99999999999T"}, "99999999999T"},
        {{"create", "--name", name, "--budget", "1K"}, "byte budget"},  // below the library's minimum
        {{"create", "--name", name, "--ttl", "5x"}, "5x"},
        {{"create", "--name", name, "--ttl", "m5"}, "m5"},
        {{"create", "--name", name, "--max-entries", "lots"}, "lots"},
        {{"create", "--name", name, "--stripes", "3"}, "stripes"},
        {{"create", "--name", name, "--mode", "0999"}, "0999"},
        {{"create", "--name", name, "--budget"}, "budget", false},
        {{"create", "--name", "bad/name"}, "bad/name", false},
        {{"create", "--name", "sp ace"}, "sp ace", false},
        {{"create", "--name", std::string(65, 'x')}, "xxxx", false},
        {{"stats", "--name", "../etc"}, "../etc", false},
        {{"stats", "--name", name, "--format", "xml"}, "xml"},
        {{"stats", "--name", name, "--json", "--format", "prometheus"}, "json"},
        {{"set", "--name", name, "k", "v", "--ttl", "soon"}, "soon"},
        {{"keys", "--name", name, "--limit", "ten"}, "ten"},
        {{"keys", "--name", name, "--limit", "0"}, "limit"},
        {{"top", "--name", name, "--interval", "1parsec"}, "1parsec"},
        {{"top", "--name", name, "--interval", "1ms"}, "interval"},
        {{"top", "--name", name, "--count", "-1"}, "1", false},
        {{"get", "--name", name}, "KEY"},
        {{"get", "--name", name, "a", "b"}, "'b'", false},
        {{"invalidate", "--name", name}, "GLOB"},
        {{"invalidate", "--name", name, ""}, "GLOB"},
        {{"stats", "--name", name, "--bogus"}, "bogus", false},
    };
    for (const auto& c : cases) {
      std::string joined;
      for (const auto& a : c.args) joined += "[" + a + "] ";
      CAPTURE(joined);
      RunResult r = pipectl(c.args);
      CHECK(r.exit_code == 2);
      check_one_line_error(r, c.mentions);
      if (c.names_segment) check_one_line_error(r, "segment '" + name + "'");
      CHECK_FALSE(pipecache::Cache::exists(name));
    }
    // An invalid PIPECACHE_NAME is as much a usage error as an invalid --name.
    RunOptions env;
    env.env = {"PIPECACHE_NAME=no/slashes"};
    RunResult r = pipectl({"stats"}, env);
    CHECK(r.exit_code == 2);
    check_one_line_error(r, "no/slashes");
  }

  TEST_CASE("valid_spellings_of_sizes_and_durations_are_accepted") {
    std::string name = unique_name("pctl-spell");
    SegmentGuard guard(name);
    RunResult c = pipectl({"create", "--name", name, "--budget", "2M", "--ttl", "90s"});
    REQUIRE_MESSAGE(c.exit_code == 0, describe(c));
    for (const char* ttl : {"300", "5m", "100ms", "2h", "0", "1d"}) {
      CAPTURE(ttl);
      RunResult r = pipectl({"set", "--name", name, "key", "v", "--ttl", ttl});
      CHECK_MESSAGE(r.exit_code == 0, describe(r));
    }
    RunResult i = pipectl({"inspect", "--name", name, "--json"});
    REQUIRE_MESSAGE(i.exit_code == 0, describe(i));
    auto j = nlohmann::json::parse(i.out);
    CHECK(j["byte_budget"].get<std::uint64_t>() == 2u << 20);
    CHECK(j["default_ttl_ms"].get<std::int64_t>() == 90'000);
  }
}

TEST_SUITE("pipectl_segment_errors") {
  TEST_CASE("missing_segment_exits_3_naming_it_for_every_subcommand") {
    std::string name = unique_name("pctl-missing");
    REQUIRE_FALSE(pipecache::Cache::exists(name));
    std::vector<std::vector<std::string>> commands = {
        {"stats"}, {"stats", "--format", "prometheus"}, {"keys"}, {"get", "k"},
        {"set", "k", "v"}, {"del", "k"}, {"invalidate", "a:*"}, {"clear"}, {"inspect"},
        {"verify"}, {"top", "--count", "1", "--interval", "50ms"}, {"destroy"}};
    for (auto args : commands) {
      CAPTURE(args.front());
      args.insert(args.begin() + 1, {"--name", name});
      RunResult r = pipectl(args);
      CHECK(r.exit_code == 3);
      CHECK(r.out.empty());
      check_one_line_error(r, name);
    }
    CHECK_FALSE(pipecache::Cache::exists(name));  // nothing created by looking
  }

  TEST_CASE("truncated_segment_exits_3_naming_it") {
    for (off_t size : {off_t(0), off_t(64), off_t(4096), off_t(-1)}) {
      CAPTURE(size);
      std::string name = unique_name("pctl-trunc");
      SegmentGuard guard(name);
      off_t full = 0;
      {
        auto cache = make_segment(name);
        cache.put("some:key", "some value");
        full = static_cast<off_t>(cache.inspect().segment_bytes);
      }
      // -1: cut off the last page, so header and table are intact and only the arena's end is
      // missing — a reader trusting the header would fault on it.
      off_t to = size >= 0 ? size : full - 4096;
      REQUIRE(::truncate(segment_file(name).c_str(), to) == 0);
      for (const char* sub : {"stats", "inspect", "verify", "keys"}) {
        CAPTURE(sub);
        RunResult r = pipectl({sub, "--name", name});
        CHECK(r.exit_code == 3);
        check_one_line_error(r, name);
      }
    }
  }

  TEST_CASE("foreign_file_in_place_of_segment_exits_3_naming_it") {
    struct Foreign {
      std::string what;
      std::string bytes;
    };
    std::vector<Foreign> foreign = {
        {"text", "this is not a pipecache segment\n"},
        {"zeros", std::string(1 << 20, '\0')},
        {"pattern", std::string(1 << 20, '\xab')},
    };
    for (const auto& f : foreign) {
      CAPTURE(f.what);
      std::string name = unique_name("pctl-foreign");
      SegmentGuard guard(name);
      {
        std::ofstream out(segment_file(name), std::ios::binary);
        out.write(f.bytes.data(), static_cast<std::streamsize>(f.bytes.size()));
      }
      for (const char* sub : {"stats", "inspect", "verify", "get"}) {
        CAPTURE(sub);
        std::vector<std::string> args = {sub, "--name", name};
        if (std::string(sub) == "get") args.push_back("k");
        RunResult r = pipectl(args);
        CHECK(r.exit_code == 3);
        check_one_line_error(r, name);
      }
      // create must not overwrite somebody else's file.
      RunResult c = pipectl({"create", "--name", name});
      CHECK(c.exit_code == 3);
      check_one_line_error(c, name);
    }
  }

  TEST_CASE("segment_of_another_layout_version_exits_3_naming_it") {
    std::string name = unique_name("pctl-version");
    SegmentGuard guard(name);
    std::uint32_t version = 0;
    {
      auto cache = make_segment(name);
      version = cache.inspect().layout_version;
    }
    // The header starts with an 8-byte magic then the 32-bit layout version (pinned by
    // tests/store/golden_test.cpp): a binary of another layout would have written another one.
    std::fstream f(segment_file(name), std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f.good());
    std::uint32_t stored = 0;
    f.seekg(8);
    f.read(reinterpret_cast<char*>(&stored), sizeof stored);
    REQUIRE(stored == version);
    std::uint32_t other = version + 1;
    f.seekp(8);
    f.write(reinterpret_cast<const char*>(&other), sizeof other);
    f.close();
    for (const char* sub : {"stats", "inspect", "verify"}) {
      CAPTURE(sub);
      RunResult r = pipectl({sub, "--name", name});
      CHECK(r.exit_code == 3);
      check_one_line_error(r, name);
      check_one_line_error(r, "version");
    }
  }

  TEST_CASE("verify_prints_each_problem_and_exits_3_on_a_corrupted_entry") {
    std::string name = unique_name("pctl-corrupt");
    SegmentGuard guard(name);
    {
      auto cache = make_segment(name, 1u << 20);
      for (int i = 0; i < 3; ++i) cache.put("corrupt-me:" + std::to_string(i), "value");
    }
    RunResult healthy = pipectl({"verify", "--name", name});
    REQUIRE_MESSAGE(healthy.exit_code == 0, describe(healthy));
    // Scribble over the bytes just before a key: its entry header (lengths, links). The
    // segment still opens; only verify's walk can find the damage.
    std::fstream f(segment_file(name), std::ios::in | std::ios::out | std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::size_t at = bytes.find("corrupt-me:1");
    REQUIRE(at != std::string::npos);
    REQUIRE(at >= 16);
    f.clear();
    f.seekp(static_cast<std::streamoff>(at - 16));
    f.write(std::string(16, '\xff').data(), 16);
    f.close();
    RunResult r = pipectl({"verify", "--name", name});
    CHECK(r.exit_code == 3);
    check_one_line_error(r, name);
    check_one_line_error(r, "failed verification");
    auto lines = lines_of(r.out);
    REQUIRE(!lines.empty());
    for (const auto& l : lines) CHECK(l.rfind("problem: ", 0) == 0);
    // keys must not dump arena bytes as a key from the damaged header.
    RunResult k = pipectl({"keys", "--name", name});
    CHECK(k.out.size() < 4096);
    if (k.exit_code != 0) {
      CHECK(k.exit_code == 3);
      check_one_line_error(k, name);
    }
    RunResult j = pipectl({"verify", "--name", name, "--json"});
    CHECK(j.exit_code == 3);
    auto parsed = nlohmann::json::parse(j.out);
    CHECK(parsed["ok"] == false);
    CHECK(parsed["problems"].size() == lines.size());
  }

  TEST_CASE("create_sets_options_refuses_existing_and_destroy_removes") {
    std::string name = unique_name("pctl-create");
    SegmentGuard guard(name);
    RunResult c = pipectl({"create", "--name", name, "--budget", "1M", "--ttl", "30s",
                           "--mode", "0640", "--max-entries", "100", "--stripes", "8"});
    REQUIRE_MESSAGE(c.exit_code == 0, describe(c));
    struct stat st {};
    REQUIRE(::stat(segment_file(name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0640);
    RunResult i = pipectl({"inspect", "--name", name, "--json"});
    REQUIRE_MESSAGE(i.exit_code == 0, describe(i));
    auto j = nlohmann::json::parse(i.out);
    CHECK(j["byte_budget"].get<std::uint64_t>() == 1u << 20);
    CHECK(j["default_ttl_ms"].get<std::int64_t>() == 30'000);
    CHECK(j["permissions"].get<unsigned>() == 0640);
    CHECK(j["stripes"].get<unsigned>() == 8);
    CHECK(j["max_entries"].get<std::uint64_t>() == 100);

    RunResult again = pipectl({"create", "--name", name});
    CHECK(again.exit_code == 3);
    check_one_line_error(again, name);

    RunResult d = pipectl({"destroy", "--name", name});
    CHECK_MESSAGE(d.exit_code == 0, describe(d));
    CHECK(::access(segment_file(name).c_str(), F_OK) != 0);
    RunResult d2 = pipectl({"destroy", "--name", name});
    CHECK(d2.exit_code == 3);
    check_one_line_error(d2, name);
  }

  TEST_CASE("segment_name_from_environment_and_before_subcommand") {
    std::string name = unique_name("pctl-env");
    std::string other = unique_name("pctl-env-other");
    SegmentGuard guard(name);
    auto cache = make_segment(name);
    cache.put("env:key", "from env");
    RunOptions env;
    env.env = {"PIPECACHE_NAME=" + name};
    RunResult r = pipectl({"get", "env:key"}, env);
    CHECK_MESSAGE(r.exit_code == 0, describe(r));
    CHECK(r.out == "from env");
    RunResult global = pipectl({"--name", name, "get", "env:key"});
    CHECK(global.out == "from env");
    RunResult global_eq = pipectl({"--name=" + name, "get", "env:key"});
    CHECK(global_eq.out == "from env");
    // --name wins over the environment: `other` does not exist, so this must fail naming it.
    RunResult wins = pipectl({"get", "--name", other, "env:key"}, env);
    CHECK(wins.exit_code == 3);
    check_one_line_error(wins, other);
  }
}

TEST_SUITE("pipectl_values") {
  TEST_CASE("get_of_absent_key_exits_1_with_empty_stdout") {
    std::string name = unique_name("pctl-absent");
    SegmentGuard guard(name);
    auto cache = make_segment(name);
    cache.put("present", "here");
    RunResult r = pipectl({"get", "--name", name, "absent:key"});
    CHECK(r.exit_code == 1);
    CHECK(r.out.empty());
    check_one_line_error(r, "absent:key");
    check_one_line_error(r, name);
    RunResult d = pipectl({"del", "--name", name, "absent:key"});
    CHECK(d.exit_code == 1);
    RunResult ok = pipectl({"get", "--name", name, "present"});
    CHECK(ok.exit_code == 0);
    CHECK(ok.out == "here");
  }

  TEST_CASE("set_from_stdin_round_trips_binary_bytes") {
    std::string name = unique_name("pctl-stdin");
    SegmentGuard guard(name);
    auto cache = make_segment(name);
    std::string value;
    for (int i = 0; i < 70000; ++i) value += static_cast<char>((i * 131 + 7) & 0xff);
    value += std::string("\0\n\r\xff", 4);
    RunOptions in;
    in.input = value;
    RunResult s = pipectl({"set", "--name", name, "bin:key", "-"}, in);
    REQUIRE_MESSAGE(s.exit_code == 0, describe(s));
    CHECK(cache.get("bin:key") == value);  // the library sees exactly the bytes
    RunResult g = pipectl({"get", "--name", name, "bin:key"});
    CHECK(g.exit_code == 0);
    CHECK(g.out == value);  // and get gives them back, no newline added

    // No VALUE at all also reads stdin; '--' lets a value start with '-'.
    in.input = "from stdin";
    CHECK(pipectl({"set", "--name", name, "implicit"}, in).exit_code == 0);
    CHECK(cache.get("implicit") == std::string("from stdin"));
    CHECK(pipectl({"set", "--name", name, "dash", "--", "-5"}).exit_code == 0);
    CHECK(cache.get("dash") == std::string("-5"));
    CHECK(pipectl({"set", "--name", name, "comma", "a,b,c"}).exit_code == 0);
    CHECK(cache.get("comma") == std::string("a,b,c"));
    // An empty stdin stores an empty value, which is a hit, not a miss.
    in.input.clear();
    CHECK(pipectl({"set", "--name", name, "empty", "-"}, in).exit_code == 0);
    RunResult e = pipectl({"get", "--name", name, "empty"});
    CHECK(e.exit_code == 0);
    CHECK(e.out.empty());
  }

  TEST_CASE("oversize_value_is_usage_error_naming_the_limit") {
    std::string name = unique_name("pctl-oversize");
    SegmentGuard guard(name);
    auto cache = make_segment(name, 1u << 20);
    RunOptions in;
    in.input = std::string(cache.max_value_size() + 1, 'v');
    RunResult r = pipectl({"set", "--name", name, "big", "-"}, in);
    CHECK(r.exit_code == 2);
    check_one_line_error(r, name);
    CHECK_FALSE(cache.get("big").has_value());
    in.input.resize(cache.max_value_size() / 2);
    CHECK(pipectl({"set", "--name", name, "fits", "-"}, in).exit_code == 0);
  }

  TEST_CASE("set_ttl_expires_and_keys_reports_it") {
    std::string name = unique_name("pctl-ttl");
    SegmentGuard guard(name);
    auto cache = make_segment(name);
    // Long enough that a loaded machine still lists the key before it expires.
    REQUIRE(pipectl({"set", "--name", name, "short", "v", "--ttl", "1500ms"}).exit_code == 0);
    REQUIRE(pipectl({"set", "--name", name, "forever", "v", "--ttl", "0"}).exit_code == 0);
    RunResult k = pipectl({"keys", "--name", name, "--json"});
    REQUIRE_MESSAGE(k.exit_code == 0, describe(k));
    auto j = nlohmann::json::parse(k.out);
    REQUIRE(j["keys"].size() == 2);
    for (const auto& e : j["keys"]) {
      if (e["key"] == "short") {
        CHECK(e["ttl_left_ms"].get<std::int64_t>() <= 1500);
        CHECK(e["ttl_left_ms"].get<std::int64_t>() > 0);
      } else {
        CHECK(e["key"] == "forever");
        CHECK(e["ttl_left_ms"].is_null());
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1700));
    CHECK(pipectl({"get", "--name", name, "short"}).exit_code == 1);
    CHECK(pipectl({"get", "--name", name, "forever"}).exit_code == 0);
  }

  TEST_CASE("del_and_clear_remove_entries") {
    std::string name = unique_name("pctl-del");
    SegmentGuard guard(name);
    auto cache = make_segment(name);
    for (int i = 0; i < 20; ++i) cache.put("k:" + std::to_string(i), "v");
    CHECK(pipectl({"del", "--name", name, "k:3"}).exit_code == 0);
    CHECK_FALSE(cache.get("k:3").has_value());
    CHECK(cache.get("k:4").has_value());
    // del is literal: a glob character is part of the key, not a pattern.
    CHECK(pipectl({"del", "--name", name, "k:*"}).exit_code == 1);
    CHECK(cache.stats().entries == 19);
    CHECK(pipectl({"clear", "--name", name}).exit_code == 0);
    CHECK(cache.stats().entries == 0);
    CHECK(pipecache::Cache::exists(name));
  }
}
