// Namespaces: the request type of a key (its prefix before the first ':'), registered on first
// put in a fixed table of kMaxNamespaces slots. Each carries a generation, bumped by an O(1)
// invalidation of the whole type (scan.cpp, Arena::bump_generation); an entry whose stamp is
// older is a miss (current_generation) and reclaimed lazily by the SIEVE hand.
//
//  N1. A slot is published by its final store (state = kNsReady, release); readers acquire
//      state before they read the name. Slots are never freed, so a lookup may stop at the
//      first free slot of its probe sequence.
//  N2. Registration takes the registry lock; a registrar that died left at most a half-written
//      name in a free slot, which the next registration overwrites: nothing to repair.
#include <algorithm>
#include <cstring>

#include "store/table_internal.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

int Table::namespace_id(std::string_view type, bool register_if_absent) {
  if (type.empty()) return 0;
  if (type.size() > kMaxNamespaceName || type.find(':') != std::string_view::npos) return -1;
  std::uint64_t hh = hash_key(type);
  constexpr unsigned kSlots = kMaxNamespaces - 1;
  auto probe = [&](unsigned i) { return 1 + static_cast<unsigned>((hh + i) % kSlots); };
  auto is = [&](const Namespace& n) {
    return n.name_len == type.size() && std::memcmp(n.name, type.data(), type.size()) == 0;
  };
  for (unsigned i = 0; i < kSlots; ++i) {  // N1
    Namespace& n = ns_[probe(i)];
    if (n.state.load(std::memory_order_acquire) != kNsReady) break;
    if (is(n)) return static_cast<int>(probe(i));
  }
  if (!register_if_absent) return -1;
  if (lock_or_repair(h_.registry_lock, kWriteLockTimeoutNs, [] {}) != LockResult::ok) return -1;  // N2
  int id = -1;
  for (unsigned i = 0; i < kSlots; ++i) {
    Namespace& n = ns_[probe(i)];
    if (n.state.load(std::memory_order_acquire) == kNsReady) {
      if (!is(n)) continue;
      id = static_cast<int>(probe(i));
      break;
    }
    std::memset(n.name, 0, sizeof n.name);
    std::memcpy(n.name, type.data(), type.size());
    n.name_len = static_cast<std::uint32_t>(type.size());
    n.state.store(kNsReady, std::memory_order_release);
    id = static_cast<int>(probe(i));
    break;
  }
  unlock_robust(h_.registry_lock);
  return id;
}

std::vector<std::string> Table::namespace_names() const {
  std::vector<std::string> out;
  for (unsigned i = 1; i < kMaxNamespaces; ++i)
    if (ns_[i].state.load(std::memory_order_acquire) == kNsReady)
      out.emplace_back(ns_[i].name, std::min<std::size_t>(ns_[i].name_len, kMaxNamespaceName));
  return out;
}

unsigned Table::namespace_of_key(std::string_view key) {
  auto colon = key.find(':');
  if (colon == std::string_view::npos || colon == 0) return 0;
  int id = namespace_id(key.substr(0, colon), true);
  return id < 0 ? 0 : static_cast<unsigned>(id);
}

}  // namespace pipecache::detail
