// Cache keys: canonical parameter encoding, time buckets, hashing of over-long keys.
// The invariants are stated in <pipecache/keys.hpp>; key_golden tests pin the output.
#include <pipecache/keys.hpp>

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstdint>

namespace pipecache {
namespace {

constexpr char kHexDigits[] = "0123456789ABCDEF";

// Bytes kept as they are: readable and free of separators ('%' '=' '&' '|' '#') and of glob
// wildcards ('*' '?' '\'). ':' is kept inside params (times read well) but not in a type.
constexpr std::array<bool, 256> make_plain_table(bool allow_colon) {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (char c : std::string_view("-_.~,/+@")) t[static_cast<unsigned char>(c)] = true;
  t[':'] = allow_colon;
  return t;
}
constexpr auto kPlainInParams = make_plain_table(true);
constexpr auto kPlainInType = make_plain_table(false);

void append_escaped(std::string& out, std::string_view text, const std::array<bool, 256>& plain) {
  // Appends runs of plain bytes at once: most names and values need no escape at all.
  std::size_t run = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (plain[c]) continue;
    out.append(text.data() + run, i - run);
    const char escaped[3] = {'%', kHexDigits[c >> 4], kHexDigits[c & 15]};
    out.append(escaped, 3);
    run = i + 1;
  }
  out.append(text.data() + run, text.size() - run);
}

void append_canonical(std::string& out, const Params& params) {
  bool first = true;
  for (const auto& [name, value] : params) {  // std::map iterates in name order
    if (!first) out += '&';
    first = false;
    append_escaped(out, name, kPlainInParams);
    out += '=';
    append_escaped(out, value, kPlainInParams);
  }
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // lower case is never produced, so it is not accepted either
}

// Decodes one escaped component; nullopt if it holds a byte escape_key_component would have
// escaped, or a malformed / non-canonical escape.
std::optional<std::string> unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch != '%') {
      if (!kPlainInParams[static_cast<unsigned char>(ch)]) return std::nullopt;
      out += ch;
      continue;
    }
    if (i + 2 >= text.size()) return std::nullopt;
    const int hi = hex_value(text[i + 1]);
    const int lo = hex_value(text[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto decoded = static_cast<unsigned char>(hi * 16 + lo);
    if (kPlainInParams[decoded]) return std::nullopt;  // would have been written plain
    out += static_cast<char>(decoded);
    i += 2;
  }
  return out;
}

std::string hex128(const XXH128_hash_t& h) {
  std::string out(32, '0');
  const std::uint64_t parts[2] = {h.high64, h.low64};
  for (int p = 0; p < 2; ++p) {
    for (int i = 0; i < 16; ++i) {
      out[p * 16 + i] = "0123456789abcdef"[(parts[p] >> (60 - 4 * i)) & 15];
    }
  }
  return out;
}

}  // namespace

std::string escape_key_component(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_escaped(out, text, kPlainInParams);
  return out;
}

std::string escape_request_type(std::string_view request_type) {
  std::string out;
  out.reserve(request_type.size());
  append_escaped(out, request_type, kPlainInType);
  return out;
}

std::string canonical_params(const Params& params) {
  std::string out;
  append_canonical(out, params);
  return out;
}

std::optional<Params> parse_canonical_params(std::string_view text) {
  Params params;
  if (text.empty()) return params;
  std::string previous;
  bool first = true;
  while (true) {
    const std::size_t amp = text.find('&');
    const std::string_view pair = text.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (eq == std::string_view::npos) return std::nullopt;
    auto name = unescape(pair.substr(0, eq));
    auto value = unescape(pair.substr(eq + 1));
    if (!name || !value) return std::nullopt;
    // Canonical text lists names strictly ascending: anything else was not produced by us.
    if (!first && !(previous < *name)) return std::nullopt;
    first = false;
    previous = *name;
    params.emplace(std::move(*name), std::move(*value));
    if (amp == std::string_view::npos) break;
    text.remove_prefix(amp + 1);
  }
  return params;
}

std::chrono::system_clock::time_point bucket_start(std::chrono::system_clock::time_point now,
                                                   std::chrono::seconds bucket) {
  if (bucket.count() <= 0) return now;
  const auto since_epoch = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch());
  auto index = since_epoch.count() / bucket.count();
  if (since_epoch.count() < 0 && since_epoch.count() % bucket.count() != 0) --index;  // floor
  return std::chrono::system_clock::time_point(std::chrono::seconds(index * bucket.count()));
}

std::string make_cache_key(std::string_view request_type, const Params& params,
                           std::chrono::system_clock::time_point now, const KeyOptions& options) {
  std::size_t estimate = request_type.size() + 16;
  for (const auto& [name, value] : params) estimate += name.size() + value.size() + 2;
  std::string key;
  key.reserve(estimate);
  append_escaped(key, request_type, kPlainInType);
  const std::size_t type_length = key.size();
  key += ':';
  append_canonical(key, params);
  if (options.time_bucket.count() > 0 && params.find(std::string(kDebugTimeParam)) == params.end()) {
    const auto start = bucket_start(now, options.time_bucket);
    key += "|t=";
    key += std::to_string(
        std::chrono::duration_cast<std::chrono::seconds>(start.time_since_epoch()).count());
  }
  const std::size_t limit = std::max<std::size_t>(options.max_length, 64);
  if (key.size() <= limit) return key;

  const std::string digest = hex128(XXH3_128bits(key.data(), key.size()));
  std::string hashed;
  if (type_length + 2 + digest.size() <= limit) {
    hashed.assign(key, 0, type_length);
    hashed += ":#";
  } else {
    // The type alone is too long to stay readable: no namespace, the digest covers it.
    hashed = "#";
  }
  hashed += digest;
  return hashed;
}

}  // namespace pipecache
