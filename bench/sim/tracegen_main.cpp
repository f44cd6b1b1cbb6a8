// pipecache_tracegen — writes a synthetic trace, "<key> <size_bytes>" per line: requests drawn
// from Zipf(alpha) over `keys` keys; each key has one size, fixed or lognormal (a few large
// responses among many small ones, as JSON responses are). Fixed seed: the same file every run.
#include "common/random.hpp"

#include <cxxopts.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

int main(int argc, char** argv) {
  try {
    cxxopts::Options options("pipecache_tracegen", "synthetic Zipf request traces");
    options.add_options()
        ("keys", "distinct keys", cxxopts::value<std::uint64_t>()->default_value("100000"))
        ("requests", "requests", cxxopts::value<std::uint64_t>()->default_value("1000000"))
        ("alpha", "Zipf exponent", cxxopts::value<double>()->default_value("0.99"))
        ("sizes", "fixed:<bytes> or lognormal:<median bytes>:<sigma>",
         cxxopts::value<std::string>()->default_value("fixed:1024"))
        ("max-size", "clip sizes to this (bytes)", cxxopts::value<std::uint64_t>()->default_value("65536"))
        ("seed", "seed", cxxopts::value<std::uint64_t>()->default_value("7"))
        ("o,out", "output file (default: stdout)", cxxopts::value<std::string>()->default_value(""))
        ("h,help", "this help");
    auto args = options.parse(argc, argv);
    if (args.count("help")) {
      fmt::print("{}\n", options.help());
      return 0;
    }
    const std::uint64_t keys = args["keys"].as<std::uint64_t>();
    const std::uint64_t seed = args["seed"].as<std::uint64_t>();
    const std::uint64_t max_size = args["max-size"].as<std::uint64_t>();
    const std::string sizes = args["sizes"].as<std::string>();
    if (keys == 0 || keys > 0xffffffffu) throw std::invalid_argument("--keys out of range");

    // One size per key, drawn from its own stream so sizes do not depend on request order.
    std::vector<std::uint32_t> size_of(keys);
    bench::SplitMix64 size_rng(seed ^ 0xa5a5a5a5ull);
    if (sizes.rfind("fixed:", 0) == 0) {
      std::fill(size_of.begin(), size_of.end(), static_cast<std::uint32_t>(std::stoull(sizes.substr(6))));
    } else if (sizes.rfind("lognormal:", 0) == 0) {
      std::size_t colon = sizes.find(':', 10);
      if (colon == std::string::npos) throw std::invalid_argument("--sizes lognormal:<median>:<sigma>");
      double median = std::stod(sizes.substr(10, colon - 10));
      double sigma = std::stod(sizes.substr(colon + 1));
      for (auto& s : size_of) {
        double v = median * std::exp(sigma * size_rng.normal());
        s = static_cast<std::uint32_t>(std::clamp<double>(std::round(v), 16, static_cast<double>(max_size)));
      }
    } else {
      throw std::invalid_argument("--sizes must be fixed:<bytes> or lognormal:<median>:<sigma>");
    }

    std::FILE* out = stdout;
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(nullptr, std::fclose);
    if (!args["out"].as<std::string>().empty()) {
      file.reset(std::fopen(args["out"].as<std::string>().c_str(), "w"));
      if (!file) throw std::runtime_error("cannot write " + args["out"].as<std::string>());
      out = file.get();
    }
    bench::ZipfSampler zipf(keys, args["alpha"].as<double>());
    bench::SplitMix64 rng(seed);
    const std::uint64_t requests = args["requests"].as<std::uint64_t>();
    for (std::uint64_t i = 0; i < requests; ++i) {
      std::uint64_t k = zipf.sample(rng);
      fmt::print(out, "obj:{} {}\n", k, size_of[k]);
    }
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "pipecache_tracegen: {}\n", e.what());
    return 2;
  }
}
