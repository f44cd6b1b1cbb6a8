#include "sim/trace.hpp"

#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <stdexcept>
#include <unordered_map>

namespace bench {

std::uint64_t Trace::footprint(std::uint64_t overhead_per_entry) const {
  std::vector<std::uint64_t> largest(keys.size(), 0);
  for (std::size_t i = 0; i < requests.size(); ++i)
    largest[requests[i]] = std::max(largest[requests[i]], request_sizes[i]);
  std::uint64_t total = 0;
  for (std::size_t id = 0; id < keys.size(); ++id)
    total += keys[id].size() + largest[id] + overhead_per_entry;
  return total;
}

Trace load_trace(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open", path));
  Trace trace;
  std::unordered_map<std::string, std::uint32_t> ids;
  std::string line;
  std::size_t line_number = 0;
  while (std::getline(in, line)) {
    ++line_number;
    std::size_t start = line.find_first_not_of(" \t\r");
    if (start == std::string::npos || line[start] == '#') continue;
    std::size_t key_end = line.find_first_of(" \t", start);
    std::size_t size_start = key_end == std::string::npos ? key_end : line.find_first_not_of(" \t", key_end);
    std::uint64_t size = 0;
    const char* size_end = nullptr;
    if (size_start != std::string::npos) {
      std::size_t stop = line.find_first_of(" \t\r", size_start);
      if (stop == std::string::npos) stop = line.size();
      auto [ptr, ec] = std::from_chars(line.data() + size_start, line.data() + stop, size);
      size_end = ec == std::errc() && ptr == line.data() + stop ? ptr : nullptr;
    }
    if (size_end == nullptr)
      throw std::runtime_error(fmt::format("{}:{}: expected \"<key> <size_bytes>\"", path, line_number));
    std::string key = line.substr(start, key_end - start);
    auto [it, inserted] = ids.try_emplace(key, static_cast<std::uint32_t>(trace.keys.size()));
    if (inserted) {
      trace.keys.push_back(key);
      trace.sizes.push_back(size);
    }
    trace.sizes[it->second] = size;
    trace.requests.push_back(it->second);
    trace.request_sizes.push_back(size);
  }
  return trace;
}

bool Trace::fixed_size() const {
  for (std::uint64_t s : request_sizes)
    if (s != request_sizes.front()) return false;
  return true;
}

}  // namespace bench
