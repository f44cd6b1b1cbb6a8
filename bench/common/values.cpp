#include "common/values.hpp"

#include "common/random.hpp"

#include <fmt/format.h>
#include <xxhash.h>

#include <stdexcept>

namespace bench {

ValueFactory::ValueFactory(std::size_t value_size) : size_(value_size) {
  if (size_ < kHeaderBytes) throw std::invalid_argument("value size below the 16-byte header");
  pool_.resize(size_ - kHeaderBytes + kVariants * kVariantStride);
  SplitMix64 rng(0x5eed'0f'9a1a'e5ull);
  for (char& c : pool_) c = static_cast<char>(rng.next());
  const std::size_t body = size_ - kHeaderBytes;
  for (std::size_t v = 0; v < kVariants; ++v)
    body_hash_[v] = XXH3_64bits(pool_.data() + v * kVariantStride, body);
}

void ValueFactory::make(std::uint64_t key_index, std::uint64_t version, std::string& out) const {
  out.resize(size_);
  std::memcpy(out.data(), &key_index, 8);
  std::memcpy(out.data() + 8, &version, 8);
  std::memcpy(out.data() + kHeaderBytes, pool_.data() + (version % kVariants) * kVariantStride,
              size_ - kHeaderBytes);
}

bool ValueFactory::check_full(std::string_view value, std::uint64_t key_index) const noexcept {
  if (!check_cheap(value, key_index)) return false;
  std::uint64_t version;
  std::memcpy(&version, value.data() + 8, sizeof version);
  return XXH3_64bits(value.data() + kHeaderBytes, size_ - kHeaderBytes) ==
         body_hash_[version % kVariants];
}

std::string make_key(std::uint64_t index) {
  return fmt::format("whats_next:layout=4x8:t={:08}", index);
}

}  // namespace bench
