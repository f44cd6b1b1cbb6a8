// Mapping an invalidation pattern onto the store's O(1) namespace invalidation.
//
// The store bumps a namespace's generation for "<ns>:*" (O(1), however many entries); any
// other glob scans the keys. plan_invalidation turns the pipeline's pattern forms
// (Pipeline::invalidate) into a list of "<ns>:*" globs plus, when the namespaces alone cannot
// be proven to cover the pattern, a scan of the pattern itself.
#pragma once

#include <functional>
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

}  // namespace pipecache::detail
