#include <doctest/doctest.h>

#include "util/glob.hpp"

using pipecache::detail::glob_match;
using pipecache::detail::glob_prefix;

TEST_SUITE("util") {
  TEST_CASE("glob_star_matches_any_run_including_empty") {
    CHECK(glob_match("whats_next:*", "whats_next:"));
    CHECK(glob_match("whats_next:*", "whats_next:layout=4x8"));
    CHECK_FALSE(glob_match("whats_next:*", "whats_nex:"));
    CHECK(glob_match("*", ""));
    CHECK(glob_match("a*b*c", "aXXbYYc"));
    CHECK_FALSE(glob_match("a*b*c", "aXXbYY"));
    CHECK(glob_match("*:t=1?", "x:t=12"));
  }
  TEST_CASE("glob_question_mark_matches_exactly_one_byte") {
    CHECK(glob_match("k?", "k1"));
    CHECK_FALSE(glob_match("k?", "k"));
    CHECK_FALSE(glob_match("k?", "k12"));
  }
  TEST_CASE("glob_backslash_escapes_wildcards") {
    CHECK(glob_match("a\\*", "a*"));
    CHECK_FALSE(glob_match("a\\*", "ab"));
    CHECK(glob_match("a\\?b", "a?b"));
  }
  TEST_CASE("glob_hostile_pattern_finishes") {
    std::string text(5000, 'a');
    std::string pat;
    for (int i = 0; i < 200; ++i) pat += "*a";
    pat += "b";
    CHECK_FALSE(glob_match(pat, text));
  }
  TEST_CASE("glob_prefix_reports_literal_prefix_and_shape") {
    auto p = glob_prefix("whats_next:*");
    CHECK(p.prefix == "whats_next:");
    CHECK(p.prefix_star_only);
    CHECK_FALSE(p.literal);
    auto q = glob_prefix("whats_*_data");
    CHECK(q.prefix == "whats_");
    CHECK_FALSE(q.prefix_star_only);
    auto r = glob_prefix("exact\\*key");
    CHECK(r.prefix == "exact*key");
    CHECK(r.literal);
  }
}
