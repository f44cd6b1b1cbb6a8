#include "store/arena.hpp"

#include <bit>
#include <cstring>

#include <fmt/format.h>

#include "util/fault.hpp"

namespace pipecache::detail {

namespace {
constexpr auto kRelaxed = std::memory_order_relaxed;
// How far a request may search the free list of its own class when no larger class has a
// block: bounded so one allocation never walks a long list under the arena lock.
constexpr int kOwnClassProbes = 16;
}  // namespace

// Class b holds sizes [bin_floor(b), bin_floor(b + 1)): 4 classes per power of two.
unsigned Arena::bin_of(std::uint32_t units) noexcept {
  unsigned fl = 31u - static_cast<unsigned>(std::countl_zero(units));  // units >= 6 => fl >= 2
  unsigned sl = (units >> (fl - 2)) & 3u;
  return fl * 4 + sl;
}

std::uint32_t Arena::bin_floor(unsigned bin) noexcept {
  unsigned fl = bin / 4, sl = bin % 4;
  return (4u + sl) << (fl - 2);
}

void Arena::reset() noexcept {
  std::memset(a_->bin_map, 0, sizeof a_->bin_map);
  std::memset(a_->bin_head, 0, sizeof a_->bin_head);
  for (auto& b : a_->bin_bytes) b.store(0, kRelaxed);
  a_->fifo_newest = a_->fifo_oldest = a_->hand = 0;
  a_->bytes_used.store(0, kRelaxed);
  a_->entries.store(0, kRelaxed);
  a_->free_bytes.store(0, kRelaxed);
  a_->free_blocks.store(0, kRelaxed);
  for (unsigned i = 0; i < kMaxNamespaces; ++i) {
    ns_[i].entries.store(0, kRelaxed);
    ns_[i].live.store(0, kRelaxed);
  }
  std::uint32_t size = end_ - kFirstUnit;
  write_free(kFirstUnit, size, 0);
  bin_insert(kFirstUnit, size);
  a_->free_bytes.store(std::uint64_t{size} * kUnit, kRelaxed);
  a_->free_blocks.store(1, kRelaxed);
}

void Arena::write_free(std::uint32_t off, std::uint32_t size, std::uint64_t extra_flags) noexcept {
  store_word0(off, make_word0(size, kBlockFree | extra_flags, 0, 0));
  footer(off, size) = size;
}

void Arena::set_prev_free(std::uint32_t off, bool on) noexcept {
  if (off >= end_) return;
  std::uint64_t w = entry(off)->word0;
  std::uint64_t bit = kBlockPrevFree << 32;
  store_word0(off, on ? (w | bit) : (w & ~bit));
}

void Arena::bin_insert(std::uint32_t off, std::uint32_t size) noexcept {
  unsigned b = bin_of(size);
  FreeBlock* f = free_block(off);
  f->bin_prev = 0;
  f->bin_next = a_->bin_head[b];
  if (f->bin_next) free_block(f->bin_next)->bin_prev = off;
  a_->bin_head[b] = off;
  a_->bin_map[b / 64] |= std::uint64_t{1} << (b % 64);
  a_->bin_bytes[b].fetch_add(std::uint64_t{size} * kUnit, kRelaxed);
}

void Arena::bin_remove(std::uint32_t off, std::uint32_t size) noexcept {
  unsigned b = bin_of(size);
  FreeBlock* f = free_block(off);
  if (f->bin_prev) free_block(f->bin_prev)->bin_next = f->bin_next;
  else a_->bin_head[b] = f->bin_next;
  if (f->bin_next) free_block(f->bin_next)->bin_prev = f->bin_prev;
  if (!a_->bin_head[b]) a_->bin_map[b / 64] &= ~(std::uint64_t{1} << (b % 64));
  a_->bin_bytes[b].fetch_sub(std::uint64_t{size} * kUnit, kRelaxed);
}

void Arena::fifo_push(std::uint32_t off) noexcept {
  Entry* e = entry(off);
  e->fifo_newer = 0;
  e->fifo_older = a_->fifo_newest;
  if (a_->fifo_newest) entry(a_->fifo_newest)->fifo_newer = off;
  else a_->fifo_oldest = off;
  a_->fifo_newest = off;
}

void Arena::fifo_unlink(std::uint32_t off) noexcept {
  Entry* e = entry(off);
  if (a_->hand == off) a_->hand = e->fifo_newer;
  if (e->fifo_newer) entry(e->fifo_newer)->fifo_older = e->fifo_older;
  else a_->fifo_newest = e->fifo_older;
  if (e->fifo_older) entry(e->fifo_older)->fifo_newer = e->fifo_newer;
  else a_->fifo_oldest = e->fifo_newer;
}

std::uint32_t Arena::alloc(std::uint32_t units, unsigned stripe, unsigned ns, std::uint16_t flags) noexcept {
  if (units < kMinBlockUnits) units = kMinBlockUnits;
  unsigned b = bin_of(units);
  std::uint32_t off = 0;
  // Classes above b hold only blocks >= units; class b only when units is its floor.
  unsigned first = bin_floor(b) == units ? b : b + 1;
  for (unsigned w = first / 64; w < kBins / 64 && !off; ++w) {
    std::uint64_t bits = a_->bin_map[w];
    if (w == first / 64) bits &= ~std::uint64_t{0} << (first % 64);
    if (bits) off = a_->bin_head[w * 64 + static_cast<unsigned>(std::countr_zero(bits))];
  }
  if (!off) {  // last resort: first fit among the head of class b
    std::uint32_t cand = a_->bin_head[b];
    for (int i = 0; cand && i < kOwnClassProbes; ++i, cand = free_block(cand)->bin_next)
      if (word0_size(entry(cand)->word0) >= units) {
        off = cand;
        break;
      }
  }
  if (!off) return 0;
  std::uint32_t size = word0_size(entry(off)->word0);
  {
    // The free lists are this lock's own structure, but the segment is writable by others:
    // a list head that leaves the arena means a foreign writer, never a crash here.
    FreeBlock* f = in_bounds(off) ? free_block(off) : nullptr;
    if (!f || size < units || size > end_ - off || (f->bin_next && !in_bounds(f->bin_next)) ||
        (f->bin_prev && !in_bounds(f->bin_prev))) {
      h_->corrupt.store(kCorruptFlag, kRelaxed);
      return 0;
    }
  }
  bin_remove(off, size);
  std::uint32_t used = size;
  if (size - units >= kMinBlockUnits) {
    // Split (A1): the remainder's header first, then shrink this block in one store.
    std::uint32_t rest = off + units;
    write_free(rest, size - units, 0);
    fault(FaultPoint::mid_split);
    store_word0(off, make_word0(units, 0, ns, stripe));
    bin_insert(rest, size - units);
    used = units;
  } else {
    store_word0(off, make_word0(size, 0, ns, stripe));
    set_prev_free(off + size, false);
    a_->free_blocks.fetch_sub(1, kRelaxed);
  }
  a_->free_bytes.fetch_sub(std::uint64_t{used} * kUnit, kRelaxed);
  a_->bytes_used.fetch_add(std::uint64_t{used} * kUnit, kRelaxed);
  a_->entries.fetch_add(1, kRelaxed);
  Entry* e = entry(off);
  e->ns_generation = static_cast<std::uint32_t>(ns_[ns].generation.load(kRelaxed));
  e->flags = flags;  // before the lock is released: release() and rebuild() read it
  ns_[ns].entries.fetch_add(1, kRelaxed);
  if (!(flags & kEntryLease)) ns_[ns].live.fetch_add(1, kRelaxed);
  clear_visited(off);
  fifo_push(off);
  return off;
}

void Arena::release(std::uint32_t off) noexcept {
  std::uint64_t w = entry(off)->word0;
  std::uint32_t size = word0_size(w);
  fifo_unlink(off);
  a_->bytes_used.fetch_sub(std::uint64_t{size} * kUnit, kRelaxed);
  a_->entries.fetch_sub(1, kRelaxed);
  Namespace& ns = ns_[word0_ns(w)];
  ns.entries.fetch_sub(1, kRelaxed);
  if (counts_live(off, word0_ns(w))) ns.live.fetch_sub(1, kRelaxed);
  a_->free_bytes.fetch_add(std::uint64_t{size} * kUnit, kRelaxed);

  std::uint32_t start = off, total = size;
  long blocks_delta = 1;
  std::uint32_t next = off + size;
  if (next < end_ && (word0_flags(entry(next)->word0) & kBlockFree)) {
    std::uint32_t nsize = word0_size(entry(next)->word0);
    bin_remove(next, nsize);
    total += nsize;
    --blocks_delta;
  }
  if (word0_flags(w) & kBlockPrevFree) {
    std::uint32_t psize = *reinterpret_cast<std::uint32_t*>(bytes(off) - 4);
    if (psize < kMinBlockUnits || psize > off - kFirstUnit) {  // a foreign writer: stop here
      h_->corrupt.store(kCorruptFlag, kRelaxed);
      psize = 0;
    }
    if (psize) {
      bin_remove(off - psize, psize);
      start = off - psize;
      total += psize;
      --blocks_delta;
    }
  }
  // One store makes the merged block (A1); its left neighbour is used (A2), so no PrevFree.
  store_word0(start, make_word0(total, kBlockFree, 0, 0));
  fault(FaultPoint::mid_free);
  footer(start, total) = total;
  bin_insert(start, total);
  set_prev_free(start + total, true);
  if (blocks_delta > 0) a_->free_blocks.fetch_add(1, kRelaxed);
  else if (blocks_delta < 0) a_->free_blocks.fetch_sub(1, kRelaxed);
}

std::uint64_t Arena::bump_generation(unsigned ns) noexcept {
  std::uint64_t n = ns_[ns].live.exchange(0, kRelaxed);
  ns_[ns].generation.fetch_add(1, std::memory_order_release);
  return n;
}

std::uint32_t Arena::hand() const noexcept { return a_->hand ? a_->hand : a_->fifo_oldest; }

void Arena::step_hand(std::uint32_t from) noexcept { a_->hand = entry(from)->fifo_newer; }

bool Arena::rebuild(std::string* problem) noexcept {
  // Validate the chain before changing anything, so a broken chain leaves the arena as found.
  if (!walk([](std::uint32_t, std::uint64_t) {}, problem)) return false;
  std::memset(a_->bin_map, 0, sizeof a_->bin_map);
  std::memset(a_->bin_head, 0, sizeof a_->bin_head);
  for (auto& b : a_->bin_bytes) b.store(0, kRelaxed);
  a_->fifo_newest = a_->fifo_oldest = a_->hand = 0;
  std::uint64_t used_bytes = 0, entries = 0, free_bytes = 0, free_blocks = 0;
  std::uint64_t ns_entries[kMaxNamespaces] = {};
  std::uint64_t ns_live[kMaxNamespaces] = {};
  std::uint32_t run = 0, run_size = 0;
  auto flush = [&] {
    if (!run) return;
    write_free(run, run_size, 0);
    bin_insert(run, run_size);
    free_bytes += std::uint64_t{run_size} * kUnit;
    ++free_blocks;
    run = 0;
  };
  std::uint32_t off = kFirstUnit;
  bool prev_free = false;
  while (off < end_) {
    std::uint64_t w = entry(off)->word0;
    std::uint32_t size = word0_size(w);
    if (word0_flags(w) & kBlockFree) {
      if (!run) run = off, run_size = 0;
      run_size += size;
      prev_free = true;
    } else {
      flush();
      unsigned ns = word0_ns(w) < kMaxNamespaces ? word0_ns(w) : 0;
      store_word0(off, make_word0(size, prev_free ? kBlockPrevFree : 0, ns, word0_stripe(w)));
      fifo_push(off);
      used_bytes += std::uint64_t{size} * kUnit;
      ++entries;
      ++ns_entries[ns];
      if (counts_live(off, ns)) ++ns_live[ns];
      prev_free = false;
    }
    off += size;
  }
  flush();
  a_->bytes_used.store(used_bytes, kRelaxed);
  a_->entries.store(entries, kRelaxed);
  a_->free_bytes.store(free_bytes, kRelaxed);
  a_->free_blocks.store(free_blocks, kRelaxed);
  for (unsigned i = 0; i < kMaxNamespaces; ++i) {
    ns_[i].entries.store(ns_entries[i], kRelaxed);
    ns_[i].live.store(ns_live[i], kRelaxed);
  }
  return true;
}

Arena::Census Arena::check(unsigned stripes, const std::function<void(std::string)>& problem) const {
  Census census;
  // A1 (the walk itself), A2, the prev-free flags and footers; the used blocks' headers.
  std::uint64_t used = 0, used_bytes = 0, free_blocks = 0, free_bytes = 0;
  std::uint64_t ns_entries[kMaxNamespaces] = {}, ns_live[kMaxNamespaces] = {};
  bool prev_free = false;
  std::string chain_problem;
  bool chain_ok = walk(
      [&](std::uint32_t off, std::uint64_t w) {
        ++census.blocks;
        std::uint32_t size = word0_size(w);
        bool is_free = word0_flags(w) & kBlockFree;
        if (((word0_flags(w) & kBlockPrevFree) != 0) != prev_free)
          problem(fmt::format("block {}: prev-free flag is {} but the previous block is {}", off, !prev_free,
                              prev_free ? "free" : "used"));
        if (is_free) {
          if (prev_free) problem(fmt::format("block {}: two adjacent free blocks (not coalesced)", off));
          if (footer(off, size) != size) problem(fmt::format("free block {}: footer does not repeat its size", off));
          ++free_blocks;
          free_bytes += std::uint64_t{size} * kUnit;
        } else {
          const Entry* e = entry(off);
          if (kEntryHeader + std::uint64_t{e->key_len} + e->value_len > std::uint64_t{size} * kUnit)
            problem(fmt::format("entry {}: key + value exceed its block", off));
          if (word0_stripe(w) >= stripes) problem(fmt::format("entry {}: owner stripe out of range", off));
          unsigned ns = word0_ns(w);
          if (ns >= kMaxNamespaces) {
            problem(fmt::format("entry {}: namespace id {} out of range", off, ns));
          } else {
            ++ns_entries[ns];
            if (counts_live(off, ns)) ++ns_live[ns];
          }
          ++used;
          used_bytes += std::uint64_t{size} * kUnit;
          census.used.insert(off);
        }
        prev_free = is_free;
      },
      &chain_problem);
  if (!chain_ok) problem("arena: " + chain_problem);
  // A3, A5.
  if (a_->bytes_used.load() != used_bytes)
    problem(fmt::format("bytes_used is {} but used blocks sum to {}", a_->bytes_used.load(), used_bytes));
  if (a_->entries.load() != used)
    problem(fmt::format("entries is {} but there are {} used blocks", a_->entries.load(), used));
  if (a_->free_bytes.load() != free_bytes)
    problem(fmt::format("free_bytes is {} but free blocks sum to {}", a_->free_bytes.load(), free_bytes));
  if (a_->free_blocks.load() != free_blocks)
    problem(fmt::format("free_blocks is {} but there are {}", a_->free_blocks.load(), free_blocks));
  if (used_bytes > h_->byte_budget)
    problem(fmt::format("bytes used {} exceed the byte budget {}", used_bytes, h_->byte_budget));
  if (h_->max_entries && used > h_->max_entries)
    problem(fmt::format("{} entries exceed max_entries {}", used, h_->max_entries));
  for (unsigned i = 0; i < kMaxNamespaces; ++i) {
    if (ns_[i].entries.load() != ns_entries[i])
      problem(fmt::format("namespace {}: entries is {} but {} blocks carry it", i, ns_[i].entries.load(),
                          ns_entries[i]));
    if (ns_[i].live.load() != ns_live[i])
      problem(fmt::format("namespace {}: live is {} but {} blocks are of its generation", i, ns_[i].live.load(),
                          ns_live[i]));
  }
  // Free lists: every free block exactly once, in its class.
  std::uint64_t listed = 0;
  for (unsigned b = 0; b < kBins; ++b) {
    bool bit = (a_->bin_map[b / 64] >> (b % 64)) & 1;
    if (bit != (a_->bin_head[b] != 0)) problem(fmt::format("free class {}: bitmap disagrees with its list", b));
    std::uint64_t class_bytes = 0;
    std::uint32_t prev = 0;
    for (std::uint32_t off = a_->bin_head[b]; off; off = free_block(off)->bin_next) {
      if (!in_bounds(off) || listed > census.blocks) {
        problem(fmt::format("free class {}: list leaves the arena or loops", b));
        break;
      }
      const FreeBlock* f = free_block(off);
      std::uint32_t size = word0_size(f->word0);
      if (!(word0_flags(f->word0) & kBlockFree)) problem(fmt::format("free class {}: block {} is not free", b, off));
      if (size >= kMinBlockUnits && bin_of(size) != b)
        problem(fmt::format("free block {} of {} units is in class {}", off, size, b));
      if (f->bin_prev != prev) problem(fmt::format("free block {}: back link broken", off));
      prev = off;
      ++listed;
      class_bytes += std::uint64_t{size} * kUnit;
    }
    if (a_->bin_bytes[b].load() != class_bytes)
      problem(fmt::format("free class {}: byte count {} but its blocks sum to {}", b, a_->bin_bytes[b].load(),
                          class_bytes));
  }
  if (listed != free_blocks)
    problem(fmt::format("{} free blocks listed in classes, {} in the arena", listed, free_blocks));
  // A4: the SIEVE queue holds every used block once.
  std::uint64_t queued = 0;
  std::uint32_t prev = 0;
  for (std::uint32_t off = a_->fifo_oldest; off; off = entry(off)->fifo_newer) {
    if (!census.used.count(off) || queued > used) {
      problem(fmt::format("SIEVE queue holds {} which is not a used block (or loops)", off));
      break;
    }
    if (entry(off)->fifo_older != prev) problem(fmt::format("SIEVE queue: back link of {} broken", off));
    prev = off;
    ++queued;
  }
  if (queued != used) problem(fmt::format("SIEVE queue holds {} entries, the arena {}", queued, used));
  return census;
}

std::uint64_t Arena::largest_free_units() const noexcept {
  for (int b = kBins - 1; b >= 0; --b) {
    if (a_->bin_bytes[b].load(kRelaxed) == 0) continue;
    // Racy: only read sizes of the first few blocks, bounds-checked, under no lock.
    std::uint64_t best = 0;
    std::uint32_t cand = a_->bin_head[b];
    for (int i = 0; cand && i < 8 && in_bounds(cand); ++i) {
      best = std::max<std::uint64_t>(best, word0_size(entry(cand)->word0));
      cand = free_block(cand)->bin_next;
    }
    return best ? std::min<std::uint64_t>(best, end_) : bin_floor(static_cast<unsigned>(b));
  }
  return 0;
}

std::uint64_t Arena::fragmented_bytes(std::uint64_t typical_entry_bytes) const noexcept {
  // Free bytes in classes whose blocks are all smaller than a typical entry: free, yet
  // unusable for the entries this cache actually stores.
  std::uint64_t sum = 0;
  std::uint32_t typical_units = units_for(typical_entry_bytes);
  for (unsigned b = 0; b + 1 < kBins; ++b) {
    if (b < 8) continue;  // classes below 6 units do not exist
    if (bin_floor(b + 1) <= typical_units) sum += a_->bin_bytes[b].load(kRelaxed);
  }
  return sum;
}

}  // namespace pipecache::detail
