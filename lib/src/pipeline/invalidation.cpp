#include "pipeline/invalidation.hpp"

#include "util/glob.hpp"

#include <algorithm>

namespace pipecache::detail {

InvalidationPlan plan_invalidation(std::string_view pattern,
                                   const std::function<NamespaceList()>& namespaces) {
  InvalidationPlan plan;
  const GlobPrefix gp = glob_prefix(pattern);
  const std::size_t first_colon = gp.prefix.find(':');

  // "<type>:*": already the store's O(1) form (it scans by itself for an unknown type).
  if (gp.prefix_star_only && first_colon != std::string::npos &&
      first_colon + 1 == gp.prefix.size()) {
    plan.namespace_globs.emplace_back(pattern);
    return plan;
  }

  // Which namespaces the pattern selects, if it is one of the namespace forms.
  std::vector<std::string> selected;
  NamespaceList known;
  bool namespace_form = false;
  if (gp.prefix_star_only && first_colon == std::string::npos && !gp.prefix.empty()) {
    // "<prefix>*": every key of a namespace starting with prefix, and nothing else (keys
    // always have a namespace: keys.hpp). A bare "*" also means keys of other clients
    // that have none: it scans.
    namespace_form = true;
    known = namespaces();
    for (const auto& ns : known.names) {
      if (ns.compare(0, gp.prefix.size(), gp.prefix) == 0) selected.push_back(ns);
    }
  } else if (pattern.size() >= 2 && pattern.substr(pattern.size() - 2) == ":*" &&
             pattern.substr(0, pattern.size() - 2).find(':') == std::string_view::npos) {
    // "<type glob>:*": the glob is matched against type names, not across the ':'.
    namespace_form = true;
    known = namespaces();
    const std::string_view type_glob = pattern.substr(0, pattern.size() - 2);
    for (const auto& ns : known.names) {
      if (glob_match(type_glob, ns)) selected.push_back(ns);
    }
  }
  if (!namespace_form) {
    plan.scan = true;
    return plan;
  }
  std::sort(selected.begin(), selected.end());
  selected.erase(std::unique(selected.begin(), selected.end()), selected.end());
  for (const auto& ns : selected) plan.namespace_globs.push_back(ns + ":*");
  // Some type may have no namespace (the table is full): only a scan can prove every
  // matching key gone. Otherwise every key the pipeline stored has a registered namespace
  // (it registers the type before storing), so no match means nothing to remove.
  plan.scan = known.table_full;
  return plan;
}

NamespaceList segment_namespaces(Cache& cache, unsigned slots) {
  NamespaceList list;
  for (auto& name : cache.namespaces()) list.names.push_back(std::move(name));
  if (slots == 0) {
    try {
      slots = cache.inspect().namespace_slots;
    } catch (...) {
    }
  }
  // Unknown slot count: be correct rather than fast.
  list.table_full = slots == 0 || list.names.size() >= slots;
  return list;
}

std::size_t invalidate_patterns(
    Cache& cache, const std::set<std::string>& patterns,
    const std::function<NamespaceList()>& namespaces,
    const std::function<void(const std::string& pattern, const char* what)>& on_error) {
  std::set<std::string> namespace_globs;
  std::set<std::string> scans;
  for (const auto& pattern : patterns) {
    try {
      auto plan = plan_invalidation(pattern, namespaces);
      namespace_globs.insert(plan.namespace_globs.begin(), plan.namespace_globs.end());
      if (plan.scan) scans.insert(pattern);
    } catch (const std::exception& e) {
      on_error(pattern, e.what());
    }
  }
  std::size_t removed = 0;
  auto apply = [&](const std::string& glob) {
    try {
      removed += cache.invalidate(glob);
    } catch (const std::exception& e) {
      on_error(glob, e.what());
    }
  };
  for (const auto& glob : namespace_globs) apply(glob);
  for (const auto& glob : scans) apply(glob);
  return removed;
}

}  // namespace pipecache::detail
