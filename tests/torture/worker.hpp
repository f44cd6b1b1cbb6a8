// One torture worker: a forked process running a random mix of every cache operation on
// self-checking values until the board says stop (or it is killed).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "torture/board.hpp"
#include "util/fault.hpp"

namespace torture {

struct WorkerPlan {
  std::string segment;
  unsigned slot = 0;
  std::uint64_t seed = 0;
  unsigned keys = 2000;
  std::size_t max_value = 4096;     // typical values are below this
  std::size_t large_value = 65536;  // occasional large values, to stress splitting
  bool pipeline = true;             // use Pipeline::process_request in the mix
  // Armed in the child only (arm_fault): the process kills itself with SIGKILL on the n-th
  // passage of this point, i.e. inside the critical section it names.
  pipecache::detail::FaultPoint fault = pipecache::detail::FaultPoint::none;
  long fault_n = 0;
};

// Runs in the forked child; returns the exit code (0 when stopped by the board).
int run_worker(const WorkerPlan& plan, Board& board);

// The checker process: Cache::verify() every `period_ms` while the workers run.
int run_checker(const std::string& segment, Board& board, unsigned period_ms);

// The keys of the mix: four registered namespaces ("t0:".."t3:") plus keys outside any.
std::string key_of(unsigned k);

}  // namespace torture
