// Glob matching for keys: `*` any run (also empty), `?` one byte, `\x` the byte x literally.
// Iterative with one backtrack point: O(pattern * text) worst case, no recursion, so a
// hostile pattern cannot blow the stack.
#pragma once

#include <string>
#include <string_view>

namespace pipecache::detail {

bool glob_match(std::string_view pattern, std::string_view text) noexcept;

// The literal prefix of a pattern (bytes before its first wildcard, escapes resolved) and
// whether the pattern is exactly "<prefix>*".
struct GlobPrefix {
  std::string prefix;
  bool prefix_star_only = false;  // pattern == escaped(prefix) + "*"
  bool literal = false;           // no wildcard at all
};
GlobPrefix glob_prefix(std::string_view pattern);

}  // namespace pipecache::detail
