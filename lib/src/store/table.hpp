// The table: a lock-striped hash index over the arena, with seqlock reads, SIEVE eviction,
// TTL, namespaces, leases and crash recovery. One job per source file:
//   index.cpp       get / visit / put / erase: the seqlock read path and the locked write path
//   eviction.cpp    allocation under the budget, the SIEVE hand
//   lease.cpp       leases: take, renew, publish, release, wait and wake
//   namespaces.cpp  request types (key prefixes) and their registry
//   scan.cpp        whole-table passes: invalidate, purge, clear, keys
//   recovery.cpp    owner death: the stripe and arena repairs lock_or_repair runs
//   verify.cpp      the full consistency check (pipectl verify)
//   table_internal.hpp  what those files share: timeouts, lock guards, the chain walk
//
// Index: stripe = hash >> stripe_shift (top bits), bucket = hash & (buckets_per_stripe - 1);
// each bucket heads a chain of entries linked by Entry::chain_next (arena units, 0 = end).
// A key has at most one value entry and at most one lease entry (flag kEntryLease).
//
// Readers (get) — the seqlock essay:
//  R1. A reader never writes the stripe: it loads seq (acquire); if odd it spins briefly,
//      else walks the chain and copies the value, loading every header field ONCE into a
//      local and bounds-checking it against the arena before use (a concurrent free can
//      hand it garbage, never an address outside the segment).
//  R2. fence(acquire), reload seq: equal => nothing it read changed (writers make seq odd
//      around every change a reader can reach, and free a block only after unlinking it),
//      so the copy is exact. Otherwise retry; after kOptimisticTries it takes the stripe lock
//      (a seq left odd by a dead writer therefore costs a lock, which repairs it).
//  R3. The only write of a hit: the SIEVE visited bit, outside the block (Arena::mark_visited),
//      and only when it is clear.
// Writers (put, erase, evict, invalidate, leases) — under the stripe lock:
//  W1. dirty = 1 before the first change, 0 after the last: a holder found dead with dirty
//      set died mid-change and its stripe is dropped (repair_stripe); dropping is always safe.
//  W2. A new entry is filled while private (allocated, not linked), then linked with seq odd.
//      A replaced or removed entry is unlinked with seq odd, then released to the arena.
//  W3. The library's own code is all that runs under a lock, with one exception: visit() runs
//      the caller's reader under the stripe lock (so the view cannot be freed under it); that
//      stripe's writers wait for the reader, readers and other stripes do not. The longest
//      hold of the library's own is one eviction sweep.
//  W4. One exception to W2: an update that fits the old value's block exactly is written over
//      it in place with seq odd (index.cpp, overwrite_locked); readers retry as for a link.
// Eviction (SIEVE over the arena's global queue): the hand skips visited entries (clearing
// the bit) and takes the first unvisited one; expired and invalidated entries go regardless.
// A victim of another stripe is only try-locked (lock order, layout.hpp): if busy, skipped.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <pipecache/cache.hpp>

#include "lock/robust_mutex.hpp"
#include "segment/layout.hpp"
#include "segment/segment.hpp"
#include "store/arena.hpp"
#include "util/hash.hpp"

namespace pipecache::detail {

using Counters = std::atomic<std::uint64_t>*;  // a process slot's StoreCounter array

inline void count(Counters c, StoreCounter which, std::uint64_t n = 1) noexcept {
  c[static_cast<unsigned>(which)].fetch_add(n, std::memory_order_relaxed);
}

class Table {
 public:
  explicit Table(Segment& segment);
  // The format step of Segment::create: lays out an empty table (every mutex of the segment,
  // namespace 0, one free block over the arena) in a segment not yet published.
  static void format(Segment& segment);

  // Inline, with corrupt(): both are on every hit (a call each cost ~10 instructions there).
  std::uint64_t hash(std::string_view key) const noexcept { return hash_key(key); }
  // The hit path: hashes the key itself (a key over kMaxKeyBytes is a miss), so that the
  // public get is one call with nothing around it.
  bool get(std::string_view key, std::string& out, std::uint16_t* flags, Counters c);
  bool visit(std::string_view key, std::uint64_t h, const std::function<void(std::string_view)>& fn,
             Counters c);
  // ttl_ns 0 = never expires. False when dropped (no room, lock timeout, corrupt segment).
  bool put(std::string_view key, std::uint64_t h, std::string_view value, std::uint64_t ttl_ns,
           std::uint16_t flags, Counters c);
  bool erase(std::string_view key, std::uint64_t h, Counters c);
  std::size_t invalidate(std::string_view glob, Counters c);
  // False when some lock was not obtained within the timeout: nothing was cleared.
  bool clear(Counters c);
  std::size_t purge(Counters c);

  // slot: the caller's process slot (its liveness is the lease's, L1 in lease.cpp).
  LeaseResult try_lease(std::string_view key, std::uint64_t h, std::uint64_t lease_ns, unsigned slot, Counters c);
  bool publish(std::string_view key, std::uint64_t h, std::string_view value, std::uint64_t ttl_ns,
               std::uint16_t flags, std::uint64_t token, Counters c);
  void release_lease(std::string_view key, std::uint64_t h, std::uint64_t token, Counters c);
  bool renew_lease(std::string_view key, std::uint64_t h, std::uint64_t token, std::uint64_t lease_ns, Counters c);
  std::uint32_t lease_wake_seq(std::uint64_t h) const noexcept;
  void wait_lease(std::uint64_t h, std::uint32_t seen, std::uint64_t timeout_ns) const noexcept;
  std::vector<std::string> namespace_names() const;

  // Namespaces: the key prefix before the first ':' (registered on first put).
  int namespace_id(std::string_view type, bool register_if_absent);
  unsigned namespace_of_key(std::string_view key);

  std::vector<KeyInfo> keys(std::string_view glob, std::size_t limit, Counters c);
  VerifyReport verify(Counters c);
  bool corrupt() const noexcept { return h_.corrupt.load(std::memory_order_relaxed) != 0; }

 private:
  struct Found {
    std::uint32_t off = 0;
    std::uint32_t pred = 0;  // 0 = the bucket head points at it
  };
  // A linked entry whose header was checked against its block, with the key and value as
  // checked. Every use of an entry's bytes goes through these copies, never through a second
  // load of key_len / value_len: another writer of the segment may change them in between.
  struct EntryView {
    std::uint32_t off = 0;  // 0: the entry did not fit its block (or no entry)
    std::string_view key;
    std::string_view value;
    explicit operator bool() const noexcept { return off != 0; }
  };
  // What a chain walk's visitor asks of walk_stripe (table_internal.hpp).
  enum class Walk { keep, unlink, end_chain, stop };
  class StripeLock;
  class ArenaLock;
  class LockedTable;

  std::uint32_t stripe_index(std::uint64_t h) const noexcept {
    return stripe_shift_ >= 64 ? 0 : static_cast<std::uint32_t>(h >> stripe_shift_);
  }
  std::atomic<std::uint32_t>* stripe_buckets(unsigned idx) const noexcept {
    return buckets_ + std::uint64_t{idx} * bps_;
  }
  std::atomic<std::uint32_t>& bucket(std::uint64_t h) const noexcept {
    return stripe_buckets(stripe_index(h))[h & (bps_ - 1)];
  }
  static std::uint32_t tag_of(std::uint64_t h) noexcept { return static_cast<std::uint32_t>(h >> 24); }

  // --- index.cpp ---
  int read_racy(const std::atomic<std::uint32_t>& head, std::string_view key, std::uint32_t tag,
                std::uint64_t now, std::string* out, std::uint16_t* flags, std::uint32_t* found,
                std::string_view* view = nullptr) const noexcept;
  Found find_locked(std::uint64_t h, std::string_view key, bool lease) const noexcept;
  bool current_generation(const Entry& e) const noexcept;
  bool usable(const Entry& e, std::uint64_t now) const noexcept;
  bool store_locked(unsigned stripe, std::uint64_t h, std::string_view key, const char* value,
                    std::uint32_t value_len, std::uint64_t expiry_ns, std::uint16_t flags,
                    unsigned ns, Counters c, bool* replaced);
  bool overwrite_locked(unsigned stripe, std::uint64_t h, std::string_view key, std::string_view value,
                        std::uint64_t expiry_ns, std::uint16_t flags, unsigned ns);
  void unlink_locked(unsigned stripe, std::uint64_t h, const Found& f) noexcept;
  void remove_locked(unsigned stripe, std::uint64_t h, const Found& f, Counters c);
  EntryView checked_entry(std::uint32_t off) const noexcept;
  void begin_write(Stripe& s) noexcept;
  void end_write(Stripe& s) noexcept;
  template <typename Visit>
  bool walk_stripe(unsigned idx, Visit&& visit);
  template <typename Visit, typename Broken>
  bool walk_stripe(unsigned idx, Visit&& visit, Broken&& broken);
  // --- eviction.cpp ---
  std::uint32_t allocate(unsigned stripe, std::uint32_t units, unsigned ns, std::uint16_t flags, Counters c);
  bool evict_one(unsigned held_stripe, Counters c);
  // --- lease.cpp ---
  std::optional<LeaseRecord> read_lease(const EntryView& v) const noexcept;
  bool lease_holder_alive(const LeaseRecord& rec) const noexcept;
  void wake_lease_waiters(unsigned stripe) noexcept;
  // --- scan.cpp ---
  std::size_t scan_remove(const std::function<bool(const Entry&, std::string_view key)>& match,
                          Counters c, StoreCounter counter);
  // --- recovery.cpp ---
  // Run with a dead holder's mutex held, before it is marked consistent: they never throw
  // (an exception there would leave the mutex held by a live thread and inconsistent).
  void repair_stripe(unsigned stripe, bool arena_held, Counters c) noexcept;
  void repair_arena(Counters c) noexcept;

  Segment& seg_;
  Header& h_;
  Arena arena_;
  Stripe* stripes_;
  std::atomic<std::uint32_t>* buckets_;
  Namespace* ns_;
  std::uint32_t stripe_count_;
  std::uint32_t stripe_shift_;
  std::uint64_t bps_;
};

}  // namespace pipecache::detail
