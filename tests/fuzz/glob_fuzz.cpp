// Fuzz target: the glob matcher (util/glob.hpp) against a reference.
//
// Input: pattern and text separated by the first NUL byte (no NUL: the pattern matches
// itself as text). Checks, for every input:
//  1. glob_match agrees with a plain dynamic-programming matcher written from the grammar
//     (`*` any run, `?` one byte, `\x` the byte x, a trailing lone `\` is a literal `\`);
//  2. glob_prefix is consistent with glob_match: a "<prefix>*" pattern matches exactly the
//     texts starting with the prefix, a literal pattern exactly the prefix itself.
// A disagreement aborts (libFuzzer reports it with the input).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "util/glob.hpp"

namespace {

// Tokens: kind 0 literal byte, 1 '?', 2 '*'.
struct Token {
  int kind;
  char c;
};

std::vector<Token> tokens_of(std::string_view p) {
  std::vector<Token> t;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*') t.push_back({2, 0});
    else if (c == '?') t.push_back({1, 0});
    else if (c == '\\' && i + 1 < p.size()) t.push_back({0, p[++i]});
    else t.push_back({0, c});
  }
  return t;
}

// m[i][j]: tokens[i..] match text[j..].
bool reference_match(std::string_view p, std::string_view text) {
  auto t = tokens_of(p);
  std::size_t n = t.size(), m = text.size();
  std::vector<std::vector<char>> ok(n + 1, std::vector<char>(m + 1, 0));
  ok[n][m] = 1;
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m + 1; j-- > 0;) {
      switch (t[i].kind) {
        case 2: ok[i][j] = ok[i + 1][j] || (j < m && ok[i][j + 1]); break;
        case 1: ok[i][j] = j < m && ok[i + 1][j + 1]; break;
        default: ok[i][j] = j < m && text[j] == t[i].c && ok[i + 1][j + 1]; break;
      }
    }
  }
  return ok[0][0];
}

[[noreturn]] void fail(const char* what, std::string_view p, std::string_view t) {
  std::fprintf(stderr, "glob: %s: pattern '%.*s' text '%.*s'\n", what, static_cast<int>(p.size()), p.data(),
               static_cast<int>(t.size()), t.data());
  std::abort();
}

}  // namespace

namespace fuzz {

int glob_one(const std::uint8_t* data, std::size_t size) {
  if (size > 512) return 0;  // the reference is quadratic; long inputs add nothing
  std::string_view all(reinterpret_cast<const char*>(data), size);
  std::size_t nul = all.find('\0');
  std::string_view pattern = all.substr(0, nul);
  std::string_view text = nul == std::string_view::npos ? pattern : all.substr(nul + 1);
  bool got = pipecache::detail::glob_match(pattern, text);
  if (got != reference_match(pattern, text)) fail(got ? "matches, reference does not" : "misses, reference matches", pattern, text);
  auto gp = pipecache::detail::glob_prefix(pattern);
  if (gp.prefix_star_only && got != text.starts_with(gp.prefix)) fail("prefix_star_only disagrees", pattern, text);
  if (gp.literal && got != (text == gp.prefix)) fail("literal disagrees", pattern, text);
  if (gp.prefix_star_only && gp.literal) fail("both literal and prefix*", pattern, text);
  return 0;
}

}  // namespace fuzz

#ifndef FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzz::glob_one(data, size);
}
#endif
