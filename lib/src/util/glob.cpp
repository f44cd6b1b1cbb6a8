#include "util/glob.hpp"

namespace pipecache::detail {

// Greedy match with a single backtrack point (the last '*'): when a later literal fails, the
// last star absorbs one more byte. Correct for '*' and '?' because any earlier star's choice
// can be subsumed by the later one.
bool glob_match(std::string_view p, std::string_view t) noexcept {
  std::size_t pi = 0, ti = 0;
  std::size_t star_p = std::string_view::npos, star_t = 0;
  while (ti < t.size()) {
    if (pi < p.size()) {
      char c = p[pi];
      if (c == '*') {
        star_p = ++pi;
        star_t = ti;
        continue;
      }
      if (c == '?') {
        ++pi;
        ++ti;
        continue;
      }
      if (c == '\\' && pi + 1 < p.size()) c = p[++pi];
      if (c == t[ti]) {
        ++pi;
        ++ti;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    pi = star_p;
    ti = ++star_t;
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

GlobPrefix glob_prefix(std::string_view p) {
  GlobPrefix r;
  std::size_t i = 0;
  for (; i < p.size(); ++i) {
    char c = p[i];
    if (c == '*' || c == '?') break;
    if (c == '\\' && i + 1 < p.size()) c = p[++i];
    r.prefix += c;
  }
  r.literal = i == p.size();
  r.prefix_star_only = i + 1 == p.size() && p[i] == '*';
  return r;
}

}  // namespace pipecache::detail
