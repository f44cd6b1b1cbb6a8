// Mapping an invalidation pattern onto the store's O(1) namespace invalidation.
//
// The store bumps a namespace's generation for "<ns>:*" (O(1), however many entries); any
// other glob scans the keys. plan_invalidation turns the pipeline's pattern forms
// (Pipeline::invalidate) into a list of "<ns>:*" globs plus, when the namespaces alone cannot
// be proven to cover the pattern, a scan of the pattern itself.
#pragma once

#include <pipecache/cache.hpp>

#include <functional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace pipecache::detail {

struct InvalidationPlan {
  std::vector<std::string> namespace_globs;  // each "<ns>:*", O(1) in the store
  bool scan = false;                         // also Cache::invalidate(pattern)
};

struct NamespaceList {
  std::vector<std::string> names;  // namespaces registered in the segment
  bool table_full = false;         // a type may have no namespace: only a scan finds its keys
};

// `namespaces` is called only for the pattern forms that need the list (not for "<ns>:*").
InvalidationPlan plan_invalidation(std::string_view pattern,
                                   const std::function<NamespaceList()>& namespaces);

// The namespaces registered in `cache`; `slots` is its namespace table size (0: asked here).
NamespaceList segment_namespaces(Cache& cache, unsigned slots = 0);

// Invalidates every pattern, each namespace once however many patterns select it (a rule's
// "whats_next_*" and a trigger's "whats_next_data:*" are one generation bump, not two).
// A failure of one pattern goes to on_error(pattern, what) and the others still run.
// Returns how many entries the store dropped.
std::size_t invalidate_patterns(
    Cache& cache, const std::set<std::string>& patterns,
    const std::function<NamespaceList()>& namespaces,
    const std::function<void(const std::string& pattern, const char* what)>& on_error);

}  // namespace pipecache::detail
