// Fuzz target: key canonicalisation of the request pipeline (pipecache/keys.hpp).
//
// Input: byte 0 picks options (time bucket, key length limit), the rest is split at 0xFF
// bytes into request type, then alternating param names and values. Checks the invariants
// stated in keys.hpp:
//  1. parse_canonical_params(canonical_params(p)) == p, for every p;
//  2. canonical text uses only [A-Za-z0-9-_.~:,/+@%=&] (no glob wildcard, '|' or '#');
//  3. the key's namespace (bytes before the first ':') is exactly escape_request_type(type),
//     which holds no ':'; or the key is hashed ("<type>:#<32 hex>" / "#<32 hex>") and is
//     never longer than the limit;
//  4. keys of different params differ (a second, different param set gives another key);
//  5. parse_canonical_params on arbitrary text never crashes, and whatever it accepts
//     re-canonicalises to params that parse back equal.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include <pipecache/keys.hpp>

namespace {

[[noreturn]] void fail(const char* what, std::string_view detail) {
  std::fprintf(stderr, "keys: %s: '%.*s'\n", what, static_cast<int>(detail.size()), detail.data());
  std::abort();
}

bool canonical_byte(char c) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-_.~:,/+@%=&").find(c) != std::string_view::npos;
}

bool hex32(std::string_view s) {
  if (s.size() != 32) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

}  // namespace

namespace fuzz {

int keys_one(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > 4096) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  std::vector<std::string> parts;
  for (;;) {
    std::size_t cut = rest.find('\xff');
    parts.emplace_back(rest.substr(0, cut));
    if (cut == std::string_view::npos) break;
    rest.remove_prefix(cut + 1);
  }
  std::string type = parts[0];
  pipecache::Params params;
  for (std::size_t i = 1; i + 1 < parts.size(); i += 2) params[parts[i]] = parts[i + 1];

  // 5: arbitrary text into the parser (the whole input, as if it were a stored key's tail).
  if (auto parsed = pipecache::parse_canonical_params(rest)) {
    auto again = pipecache::parse_canonical_params(pipecache::canonical_params(*parsed));
    if (!again || *again != *parsed) fail("accepted text does not round-trip", rest);
  }

  std::string canon = pipecache::canonical_params(params);
  auto back = pipecache::parse_canonical_params(canon);  // 1
  if (!back || *back != params) fail("canonical params do not parse back", canon);
  for (char c : canon)
    if (!canonical_byte(c)) fail("canonical text holds a byte it must escape", canon);  // 2

  pipecache::KeyOptions options;
  options.time_bucket = std::chrono::seconds(data[0] % 4 == 0 ? 60 : 0);
  options.max_length = 64 + (data[0] >> 2) * 4;
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000 + data[0]));
  std::string key = pipecache::make_cache_key(type, params, now, options);
  std::string ns = pipecache::escape_request_type(type);
  if (ns.find(':') != std::string::npos) fail("escaped type holds ':'", ns);  // 3
  bool hashed_with_ns = key.size() == ns.size() + 34 && key.compare(0, ns.size(), ns) == 0 &&
                        key.compare(ns.size(), 2, ":#") == 0 && hex32(std::string_view(key).substr(ns.size() + 2));
  bool hashed_bare = key.size() == 33 && key[0] == '#' && hex32(std::string_view(key).substr(1));
  if (hashed_with_ns || hashed_bare) {
    if (key.size() > options.max_length) fail("hashed key longer than the limit", key);
  } else {
    if (key.size() > options.max_length) fail("plain key longer than the limit", key);
    if (key.compare(0, ns.size() + 1, ns + ":") != 0) fail("namespace is not the escaped type", key);
    std::string_view tail = std::string_view(key).substr(ns.size() + 1);
    std::size_t bar = tail.find('|');
    if (options.time_bucket.count() == 0 && bar != std::string_view::npos) fail("'|' in a key without a bucket", key);
    if (tail.substr(0, bar) != canon) fail("key tail is not the canonical params", key);
  }
  // 4: a different param set (one more pair) never yields the same key.
  pipecache::Params other = params;
  std::string& extra = other["\x01zz"];
  extra = extra == "1" ? "2" : "1";
  if (pipecache::make_cache_key(type, other, now, options) == key) fail("two param sets share a key", key);
  return 0;
}

}  // namespace fuzz

#ifndef FUZZ_NO_ENTRY
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return fuzz::keys_one(data, size);
}
#endif
