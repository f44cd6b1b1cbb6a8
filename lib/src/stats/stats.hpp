// Statistics in the segment: process slots and their counters, summed by the reader.
//
// Slots: each attached process claims one ProcessSlot (pid) under the registry lock and is
// the only process writing its counters (its threads use relaxed fetch_add), so a hit never
// writes a cache line another process reads. A slot whose pid is dead is reclaimed: its
// counters are first folded into the retired slot, so totals never go backwards. When all
// slots are taken, processes share the overflow slot (correct, only slower).
// Readers (stats, pipectl) sum all slots with relaxed loads: each counter is exact, the sum is
// a moment's approximation, as with any live counter.
#pragma once

#include <pipecache/cache.hpp>

#include "segment/segment.hpp"

namespace pipecache::detail {

inline constexpr unsigned kNoSlot = ~0u;

unsigned claim_slot(Segment& seg);
void release_slot(Segment& seg, unsigned slot) noexcept;
Stats collect_stats(Segment& seg);
std::vector<ProcessInfo> collect_processes(Segment& seg);

}  // namespace pipecache::detail
