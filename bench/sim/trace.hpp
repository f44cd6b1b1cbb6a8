// A request trace: one request per line, "<key> <size_bytes>" (whitespace separated; lines
// starting with '#' and blank lines are ignored). Keys are interned to dense ids so the
// simulators index plain vectors instead of hashing strings.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace bench {

struct Trace {
  std::vector<std::string> keys;       // by id
  std::vector<std::uint64_t> sizes;    // by id: the size of the key's last request
  std::vector<std::uint32_t> requests; // ids, in order
  std::vector<std::uint64_t> request_sizes;  // size of each request (a key may change size)

  // Bytes to hold every distinct key once (key + its largest value + overhead each): the
  // "footprint" budgets are given as fractions of.
  std::uint64_t footprint(std::uint64_t overhead_per_entry) const;
  // Every request of the same size (the eviction goals differ for fixed and varied sizes).
  bool fixed_size() const;
};

// Throws std::runtime_error naming the file and line on a malformed line.
Trace load_trace(const std::string& path);

}  // namespace bench
