#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "segment/segment.hpp"
#include "store/arena.hpp"
#include "store/table.hpp"
#include "support/process.hpp"

using namespace pipecache::detail;

namespace {
struct ArenaFixture {
  testing::SegmentGuard guard{testing::unique_name("arena")};
  std::unique_ptr<Segment> seg = Segment::create(testing::small_options(guard.name(), 1u << 20), Table::format);
  Arena arena{*seg};
  ArenaState& st = seg->header().arena;

  bool consistent() {
    std::uint64_t used = 0, free_bytes = 0, blocks = 0;
    bool prev_free = false, ok = true;
    ok &= arena.walk([&](std::uint32_t, std::uint64_t w) {
      bool f = word0_flags(w) & kBlockFree;
      if (f && prev_free) ok = false;  // A2
      if (((word0_flags(w) & kBlockPrevFree) != 0) != prev_free) ok = false;
      (f ? free_bytes : used) += std::uint64_t{word0_size(w)} * kUnit;
      blocks += f;
      prev_free = f;
    });
    return ok && used == st.bytes_used.load() && free_bytes == st.free_bytes.load() &&
           blocks == st.free_blocks.load();
  }
};
}  // namespace

TEST_SUITE("arena") {
  TEST_CASE("size_classes_are_monotonic_and_floors_fit") {
    for (std::uint32_t u = kMinBlockUnits; u < 1u << 20; u += 7) {
      unsigned b = Arena::bin_of(u);
      CHECK(Arena::bin_floor(b) <= u);
      CHECK(Arena::bin_floor(b + 1) > u);
    }
  }

  TEST_CASE("alloc_and_release_coalesce_back_to_one_block") {
    ArenaFixture f;
    std::vector<std::uint32_t> offs;
    for (int i = 0; i < 100; ++i) offs.push_back(f.arena.alloc(6 + i % 40, 0, 0));
    for (auto o : offs) REQUIRE(o != 0);
    CHECK(f.st.entries.load() == 100);
    CHECK(f.consistent());
    std::mt19937 rng(7);
    std::shuffle(offs.begin(), offs.end(), rng);
    for (auto o : offs) f.arena.release(o);
    CHECK(f.st.entries.load() == 0);
    CHECK(f.st.bytes_used.load() == 0);
    CHECK(f.st.free_blocks.load() == 1);
    CHECK(f.consistent());
  }

  TEST_CASE("alloc_fails_cleanly_when_nothing_fits") {
    ArenaFixture f;
    std::uint32_t all = f.arena.end() - kFirstUnit;
    std::uint32_t o = f.arena.alloc(all, 0, 0);
    REQUIRE(o != 0);
    CHECK(f.arena.alloc(6, 0, 0) == 0);
    f.arena.release(o);
    CHECK(f.arena.alloc(6, 0, 0) != 0);
  }

  TEST_CASE("rebuild_restores_lists_and_counters_from_the_blocks") {
    ArenaFixture f;
    std::vector<std::uint32_t> offs;
    for (int i = 0; i < 200; ++i) offs.push_back(f.arena.alloc(6 + (i * 13) % 90, i % 4, 0));
    for (int i = 0; i < 200; i += 3) f.arena.release(offs[i]);
    std::uint64_t used = f.st.bytes_used.load(), entries = f.st.entries.load();
    // Wreck every derived structure, as a holder dying mid-operation could.
    std::memset(f.st.bin_head, 0xAB, sizeof f.st.bin_head);
    f.st.bytes_used.store(12345);
    f.st.fifo_newest = 99;
    std::string problem;
    REQUIRE(f.arena.rebuild(&problem));
    CHECK(f.st.bytes_used.load() == used);
    CHECK(f.st.entries.load() == entries);
    CHECK(f.consistent());
    // and it allocates again
    CHECK(f.arena.alloc(20, 0, 0) != 0);
    CHECK(f.consistent());
  }

  TEST_CASE("rebuild_refuses_a_broken_chain") {
    ArenaFixture f;
    std::uint32_t o = f.arena.alloc(10, 0, 0);
    f.arena.entry(o)->word0 = make_word0(3, 0, 0, 0);  // below the minimum block size
    std::string problem;
    CHECK_FALSE(f.arena.rebuild(&problem));
    CHECK(problem.find("bad size") != std::string::npos);
  }

  TEST_CASE("visited_bits_are_per_block_start") {
    ArenaFixture f;
    std::uint32_t a = f.arena.alloc(8, 0, 0), b = f.arena.alloc(8, 0, 0);
    f.arena.mark_visited(a);
    CHECK(f.arena.visited(a));
    CHECK_FALSE(f.arena.visited(b));
    f.arena.clear_visited(a);
    CHECK_FALSE(f.arena.visited(a));
  }
}
