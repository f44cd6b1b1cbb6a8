// Mapping an invalidation pattern onto the store's O(1) namespace invalidation.
//
// The store bumps a namespace's generation for "<ns>:*" (O(1), however many entries); any
// other glob scans the keys. plan_invalidation turns the pipeline's pattern forms
// (Pipeline::invalidate) into a list of "<ns>:*" globs plus, when the namespaces alone cannot
// be proven to cover the pattern, a scan of the pattern itself.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pipecache::detail {

struct InvalidationPlan {
  std::vector<std::string> namespace_globs;  // each "<ns>:*", O(1) in the store
  bool scan = false;                         // also Cache::invalidate(pattern)
};

// `namespaces`: the namespace names registered in the segment and the (escaped) types the
// pipeline knows. `namespace_table_full`: some type may have no namespace, so its keys can
// only be found by a scan.
InvalidationPlan plan_invalidation(std::string_view pattern,
                                   const std::vector<std::string>& namespaces,
                                   bool namespace_table_full);

}  // namespace pipecache::detail
