// Self-checking values: every value read by a benchmark can be proven to be one that was
// written for that key, whole — so a system that returns a torn, stale-of-another-key or
// truncated value fails the benchmark instead of winning it.
//
// Layout of a value of `size` bytes (size >= kHeaderBytes):
//   [0, 8)   key index (little endian)
//   [8, 16)  version: which writer / which write
//   [16, size) body: a window of a fixed random pool, starting at (version % kVariants) * 64
//
// Because the body is a window of one pool, building a value is two memcpy's (no hashing on
// the put path), and the checksum of each of the kVariants possible bodies is computed once.
// A full check hashes the body (XXH3) and compares it with the checksum the header's version
// implies: a value torn between two writes, or with bytes of another key, mismatches.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace bench {

class ValueFactory {
 public:
  static constexpr std::size_t kHeaderBytes = 16;
  static constexpr std::size_t kVariants = 64;
  static constexpr std::size_t kVariantStride = 64;

  explicit ValueFactory(std::size_t value_size);

  std::size_t size() const noexcept { return size_; }
  void make(std::uint64_t key_index, std::uint64_t version, std::string& out) const;

  // On every read: right length and right key. Touches only the first cache line, which the
  // read itself just brought in.
  bool check_cheap(std::string_view value, std::uint64_t key_index) const noexcept {
    if (value.size() != size_) return false;
    std::uint64_t stored;
    std::memcpy(&stored, value.data(), sizeof stored);
    return stored == key_index;
  }
  // On a sample of reads: the whole body is the one its version implies.
  bool check_full(std::string_view value, std::uint64_t key_index) const noexcept;

 private:
  std::size_t size_;
  std::string pool_;
  std::array<std::uint64_t, kVariants> body_hash_{};
};

// Keys like the real request keys: "whats_next:layout=4x8:t=00000042", 32 bytes.
std::string make_key(std::uint64_t index);

}  // namespace bench
