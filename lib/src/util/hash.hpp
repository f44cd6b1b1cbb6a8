// Key hash: XXH3-64 (Debian's libxxhash). Its outputs are part of the segment format (they
// place keys in stripes and buckets), pinned by tests/store/golden_test.cpp so that a change
// of hash is a decision, not an accident.
#pragma once

// Inlined (XXH_INLINE_ALL): the hash is on every hit, and the library call through the PLT
// cost more than the hashing of a 32-byte key. Same algorithm and outputs as libxxhash.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstdint>
#include <string_view>

namespace pipecache::detail {

inline std::uint64_t hash_key(std::string_view key) noexcept {
  return XXH3_64bits(key.data(), key.size());
}

}  // namespace pipecache::detail
