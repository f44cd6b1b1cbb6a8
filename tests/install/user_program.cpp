// A user's program built only with `pkg-config --cflags --libs pipecache`: creates a segment,
// stores and reads back a value, removes the segment. Prints "ok <value>" and exits 0.
#include <cstdio>
#include <string>

#include <pipecache/cache.hpp>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: user_program SEGMENT_NAME\n");
    return 2;
  }
  pipecache::Options options;
  options.name = argv[1];
  options.byte_budget = 1u << 20;
  pipecache::Cache cache = pipecache::Cache::create(options);
  cache.put("greeting:1", "hello from the installed library");
  std::optional<std::string> value = cache.get("greeting:1");
  pipecache::Cache::remove(options.name);
  if (!value) {
    std::fprintf(stderr, "user_program: stored value not found\n");
    return 1;
  }
  std::printf("ok %s\n", value->c_str());
  return 0;
}
