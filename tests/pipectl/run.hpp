// Driving the built pipectl binary as a subprocess: arguments in, exit status and both output
// streams out, with a deadline so a hung pipectl fails the test instead of the whole suite.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace pipectl_test {

struct RunResult {
  int exit_code = -1;     // -1 when killed by a signal or timed out
  int signal = 0;
  bool timed_out = false;
  std::string out;
  std::string err;
};

struct RunOptions {
  std::string input;                  // written to stdin, then stdin is closed
  std::vector<std::string> env;       // "NAME=value" added to (or, "NAME=", set empty in) env
  bool keep_pipecache_name = false;   // else PIPECACHE_NAME is removed from the child's env
  std::chrono::milliseconds timeout{30'000};
};

// Path of the pipectl binary under test ($PIPECTL, set by tests/pipectl/meson.build).
const std::string& pipectl_path();
// Other paths meson passes: $PIPECTL_MAN (the man page), $PIPECTL_SYNC_SCRIPT.
std::string env_path(const char* variable);

RunResult run_program(const std::string& program, const std::vector<std::string>& args,
                      const RunOptions& options = {});
inline RunResult pipectl(const std::vector<std::string>& args, const RunOptions& options = {}) {
  return run_program(pipectl_path(), args, options);
}

// Path of the segment's file in /dev/shm.
std::string segment_file(const std::string& name);

// Lines of `text` (without their '\n'); a final line without '\n' counts too.
std::vector<std::string> lines_of(const std::string& text);

}  // namespace pipectl_test
