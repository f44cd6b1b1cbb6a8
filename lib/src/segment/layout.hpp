// The segment layout: this file IS the file format of /dev/shm/pipecache.<name>.
//
//   offset 0          Header            magic, version, fingerprint, config, offsets, arena state,
//                                       remote (relay and publisher figures, many hosts)
//   slots_off         ProcessSlot[kMaxProcessSlots + 2]   per-process counters (+ retired, overflow)
//   namespaces_off    Namespace[kMaxNamespaces]           request types: name, generation
//   stripes_off       Stripe[stripes]                     robust mutex, seqlock, lease futex word
//   buckets_off       atomic<u32>[stripes * buckets_per_stripe]   chain heads (arena units)
//   visited_off       atomic<u64>[arena_units / 256]     SIEVE visited bits, one per 32 arena bytes
//   arena_off         arena_bytes of blocks (entries and free blocks), 8-byte units
//
// Rules (STYLE.md): offsets, never pointers; no virtuals and no std containers here; every
// atomic is_always_lock_free. A change of any struct's size changes kLayoutFingerprint (checked
// on every attach); the golden test (tests/store/golden_test.cpp) pins the fingerprint and
// every field offset as literals, so ANY change of this file's format fails it. A deliberate
// change bumps kLayoutVersion and updates the golden test in the same commit.
//
// Lock order, stated once for the whole library:
//   stripe locks (ascending index when more than one is held to block) -> arena lock
//   -> registry lock. A stripe lock is only ever *try*-locked while the arena lock is held
//   (eviction of another stripe's entry), so the order cannot invert into a deadlock.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <pipecache/cache.hpp>

namespace pipecache::detail {

inline constexpr char kMagic[8] = {'P', 'I', 'P', 'E', 'C', 'A', 'C', 'H'};
// 3: arena = budget + 1/3; 4: Header::remote (many hosts); 5: ProcessSlot::life, LeaseRecord slot + epoch;
// 6: Namespace::cache_switch, Header::control (change rules, drift), NsCounter bypassed + batch_run_ns
inline constexpr std::uint32_t kLayoutVersion = 6;
inline constexpr std::size_t kCacheLine = 64;
inline constexpr unsigned kMaxProcessSlots = 64;  // more attached processes share kOverflowSlot
inline constexpr unsigned kRetiredSlot = kMaxProcessSlots;       // counters of detached processes
inline constexpr unsigned kOverflowSlot = kMaxProcessSlots + 1;  // shared by slot-less processes
inline constexpr unsigned kAllSlots = kMaxProcessSlots + 2;
inline constexpr unsigned kMaxNamespaces = 32;  // id 0 = keys without a registered prefix
inline constexpr unsigned kMaxNamespaceName = 39;
inline constexpr std::size_t kUnit = 8;  // arena allocation unit; offsets are in units
// SIEVE visited bits: one per 2^kVisitedShift arena units (32 bytes), indexed by block start.
inline constexpr unsigned kVisitedShift = 2;
inline constexpr unsigned kBins = 128;   // segregated free lists: 4 per power of two
inline constexpr std::size_t kMaxKeyBytes = 4096;

template <typename T>
inline constexpr bool kShared = std::atomic<T>::is_always_lock_free;
static_assert(kShared<std::uint32_t> && kShared<std::uint64_t> && kShared<std::int64_t> &&
              kShared<std::uint8_t>);

// A pthread mutex built in place by the creator: PTHREAD_PROCESS_SHARED + PTHREAD_MUTEX_ROBUST.
struct RobustMutex {
  pthread_mutex_t native;
};

// Store counters kept per process slot; summed by Cache::stats().
enum class StoreCounter : unsigned {
  hits,
  misses,
  inserts,
  updates,
  evictions,
  expirations,
  invalidations,
  put_failures,
  lock_recoveries,
  count_
};
inline constexpr unsigned kStoreCounters = static_cast<unsigned>(StoreCounter::count_);

struct NsMetrics {
  std::atomic<std::uint64_t> counters[kNsCounters];
  std::atomic<std::uint64_t> hist[kNsHistograms][Histogram::kBuckets];
  std::atomic<std::uint64_t> hist_count[kNsHistograms];
  std::atomic<std::uint64_t> hist_sum[kNsHistograms];
};

// One per attached process, on its own cache lines: "only ever written by one process" (its
// threads use relaxed fetch_add). pid is claimed/released under the registry lock.
// life: held by the claiming process for as long as it is attached (lock/life.hpp: the kernel,
// not the pid, says whether it lives); life_epoch: [registry lock] bumped at every claim and
// release, so a lease names its holder's incarnation, not just the slot.
struct alignas(kCacheLine) ProcessSlot {
  std::atomic<std::int64_t> pid;  // 0 = free; informative only (another PID namespace's pid)
  std::atomic<std::uint64_t> attached_unix_ms;
  std::atomic<std::uint64_t> life_epoch;
  RobustMutex life;  // [held by a thread of its claimer that holds no other robust mutex]
  alignas(kCacheLine) std::atomic<std::uint64_t> counters[kStoreCounters];
  alignas(kCacheLine) NsMetrics ns[kMaxNamespaces];
};

// A request type. name/name_len are written once, under the registry lock, before state is
// released as kNsReady; readers acquire state. generation is bumped by an O(1) invalidation,
// under the arena lock, which also owns entries/live (own cache line: written on every
// insert/free; recomputed by arena recovery):
//   entries = used blocks of this namespace (any generation),
//   live    = values (not lease markers) whose Entry::ns_generation == (u32)generation — what
//             an invalidation of "<name>:*" removes, so the count it reports is exact.
// An entry's generation is stamped by Arena::alloc under the same lock, so that stamp, live
// and the bump can never disagree.
inline constexpr std::uint32_t kNsFree = 0;
inline constexpr std::uint32_t kNsReady = 1;
//
// cache_switch: the type's runtime switch (pipectl disable / enable / rollout). 0 = none (the
// processes' policies decide); else kSwitchSet | basis points of keys cached (0..10000).
// [no lock] one relaxed store by the switcher, one relaxed load per request by every Pipeline
// (a decision per request, nothing else published through it). It sits in the line a request
// already reads (generation), so obeying it costs a load, not a cache miss.
inline constexpr std::uint32_t kSwitchSet = 0x80000000u;
struct alignas(kCacheLine) Namespace {
  std::atomic<std::uint32_t> state;
  std::uint32_t name_len;
  std::atomic<std::uint64_t> generation;
  char name[kMaxNamespaceName + 1];
  std::atomic<std::uint32_t> cache_switch;
  std::uint32_t pad0;
  alignas(kCacheLine) std::atomic<std::uint64_t> entries;
  std::atomic<std::uint64_t> live;
};

// One lock stripe of the index.
//  - mutex guards the stripe's buckets, the chain links and fields of its entries, dirty,
//    entries, and writes of seq.
//  - seq: seqlock. Odd while a holder changes what readers can reach (links, unlinks).
//    Readers: load seq (acquire), copy, fence(acquire), reload seq; retry if it moved or was
//    odd; after kOptimisticTries they take the mutex (so a seq left odd by a dead writer
//    costs one lock, never a spin).
//  - dirty: 1 from the holder's first mutation until its last; a lock found EOWNERDEAD with
//    dirty set (or seq odd) means the holder died mid-change: the stripe is dropped.
//  - lease_wake: futex word (shared, not private), bumped when a lease of this stripe resolves.
//  - lease_waiters: processes/threads inside wait_lease on this stripe. The resolver skips the
//    futex syscall (~7 us) when it reads 0. Dekker pairing, both sides seq_cst: a waiter
//    increments waiters THEN loads lease_wake; the resolver bumps lease_wake THEN loads
//    waiters, so one of them sees the other. A waiter killed inside leaves the count high:
//    that costs spurious wake syscalls, never a missed wake.
// One cache line per stripe: a hit reads only seq from it, and the stripes of a large table
// stay compact (a second line per stripe cost ~10% of W1 hit throughput in an early build).
struct alignas(kCacheLine) Stripe {
  RobustMutex mutex;
  std::atomic<std::uint32_t> seq;
  std::atomic<std::uint32_t> dirty;
  std::atomic<std::uint32_t> entries;
  std::atomic<std::uint32_t> lease_wake;
  std::atomic<std::uint32_t> lease_waiters;
};
static_assert(sizeof(Stripe) == kCacheLine);

// Arena state, all guarded by arena_lock (racy relaxed reads by stats are fine: they are
// figures, not decisions). Recomputed from a linear walk of the blocks by arena recovery.
struct alignas(kCacheLine) ArenaState {
  RobustMutex lock;
  std::atomic<std::uint64_t> bytes_used;   // sum of used block sizes (entries' accounted size)
  std::atomic<std::uint64_t> entries;      // used blocks (values and lease markers)
  std::atomic<std::uint64_t> free_bytes;
  std::atomic<std::uint64_t> free_blocks;
  std::uint32_t fifo_newest;  // SIEVE queue (units; 0 = none): newest end
  std::uint32_t fifo_oldest;  // oldest end
  std::uint32_t hand;         // SIEVE hand: next candidate, walks oldest -> newest
  std::uint32_t pad0;
  std::uint64_t bin_map[kBins / 64];   // bit b set <=> bin b non-empty
  std::uint32_t bin_head[kBins];       // first free block of each bin (units)
  std::atomic<std::uint64_t> bin_bytes[kBins];  // free bytes per bin (fragmentation figure)
};

// Recent invalidations (pattern, time, entries removed), shown by `pipectl serve` and
// `pipectl stats --json`. Written only by Cache::invalidate and Cache::clear — never on the get
// or put path — and read by observers (invalidation_log.cpp).
//   - A writer takes ticket t = next.fetch_add(1) and owns record t % kInvalidationLogSize.
//   - seq is a per-record seqlock: 2t+1 while record t is written, 2t+2 once complete, 0 for
//     a record never written. A writer claims its record by CAS from the value it read, and
//     only if that value is complete and older (even, < 2t+1) or is an unfinished write at
//     least a full lap older (its writer died or stalled); otherwise it drops its record (two
//     writers a lap apart at once, or it is itself a lap late). The log is a figure for people,
//     not a decision, so dropping one record is the price of never blocking.
//   - Fields are relaxed atomics: a reader racing a writer retries or skips the record on a
//     seq mismatch, never reads a torn value through a data race.
//   - Readers trust nothing in a record beyond the bytes it occupies: pattern_len is clamped.
// 16 records: the page shows "what was invalidated lately", a deploy hook invalidating a few
// request types fits; 128 bytes each keeps the log at 2 KiB + one line.
inline constexpr unsigned kInvalidationLogSize = 16;
inline constexpr unsigned kInvalidationPatternBytes = 96;  // longer patterns are cut
struct InvalidationSlot {
  std::atomic<std::uint64_t> seq;
  std::atomic<std::uint64_t> unix_ms;
  std::atomic<std::uint64_t> removed;
  std::atomic<std::uint32_t> pattern_len;  // full length; > kInvalidationPatternBytes = cut
  std::atomic<std::uint32_t> kind;         // 0 invalidate(glob), 1 clear()
  std::atomic<std::uint64_t> pattern[kInvalidationPatternBytes / 8];
};
static_assert(sizeof(InvalidationSlot) == 128);
struct alignas(kCacheLine) InvalidationLog {
  std::atomic<std::uint64_t> next;  // tickets handed out
  alignas(kCacheLine) InvalidationSlot records[kInvalidationLogSize];
};

// Many hosts (lib/src/remote): this host's identity in invalidation messages and the figures
// of its relay, publishers and second tier. Not guarded by any lock: every field is a relaxed
// atomic (figures, read racily by stats), except
//   origin     a random non-zero id, set once by whoever needs it first (compare-exchange from
//              0), so every publisher and the relay of this segment agree on "own host";
//   relay_pid  the attached relay (0 = none), with relay_connected / relay_since_unix_ms its
//              state; a second relay of the same segment overwrites them (its counters add up).
// counters are indexed by pipecache::RemoteCounter; kRemoteCounters leaves room so that new
// counters do not change the layout. lag_* is a log2 histogram (Histogram's buckets) of the
// time from a message's publication to its application here, in ns of CLOCK_REALTIME.
inline constexpr unsigned kRemoteCounters = 24;
struct alignas(kCacheLine) RemoteBlock {
  std::atomic<std::uint64_t> origin;
  std::atomic<std::int64_t> relay_pid;
  std::atomic<std::uint32_t> relay_connected;
  std::atomic<std::uint32_t> reserved;
  std::atomic<std::uint64_t> relay_since_unix_ms;
  std::atomic<std::uint64_t> last_message_unix_ms;
  alignas(kCacheLine) std::atomic<std::uint64_t> counters[kRemoteCounters];
  std::atomic<std::uint64_t> lag_hist[Histogram::kBuckets];
  std::atomic<std::uint64_t> lag_count;
  std::atomic<std::uint64_t> lag_sum_ns;
};

// Change rules: change type -> invalidation patterns, kept in the segment so that every process
// and `pipectl change` apply the same rule (Pipelines publish theirs when they open the
// segment and when they change one; last writer wins per change).
//   [registry lock] every write and every read of name/patterns. A rule is written as
//   state = kRuleWriting, then name and patterns, then state = kRuleReady. A writer killed in
//   between leaves kRuleWriting: readers skip such a rule and the next writer reuses its slot,
//   so owner death needs no repair here.
//   patterns: '\n'-separated, patterns_len bytes. A rule that does not fit is not stored
//   (its writer says so once); 32 x 464 bytes holds the design's rules many times over.
inline constexpr unsigned kMaxChangeRules = 32;
inline constexpr unsigned kMaxChangeName = 39;
inline constexpr unsigned kMaxRuleBytes = 464;
inline constexpr std::uint32_t kRuleFree = 0;
inline constexpr std::uint32_t kRuleWriting = 1;
inline constexpr std::uint32_t kRuleReady = 2;
struct ChangeRule {
  std::atomic<std::uint32_t> state;
  std::uint16_t name_len;
  std::uint16_t patterns_len;
  char name[kMaxChangeName + 1];
  char patterns[kMaxRuleBytes];
};
static_assert(sizeof(ChangeRule) == 512);

// What the processes configure beside the store: change rules and configuration drift.
//   rules_version [no lock]: bumped (release) after every rule change, so a reader can tell
//     its copy is current.
//   drift_*: [no lock] figures, not decisions. drift_opens counts opens (open_or_create) whose
//     configured budget / max entries / default TTL differ from the segment's; the other
//     fields describe the last such open (racy as a group: two drifting openers may mix).
struct alignas(kCacheLine) ControlBlock {
  std::atomic<std::uint64_t> rules_version;
  std::atomic<std::uint64_t> drift_opens;
  std::atomic<std::uint64_t> drift_byte_budget;
  std::atomic<std::uint64_t> drift_max_entries;
  std::atomic<std::uint64_t> drift_default_ttl_ns;
  std::atomic<std::int64_t> drift_pid;
  std::atomic<std::uint64_t> drift_unix_ms;
  alignas(kCacheLine) ChangeRule rules[kMaxChangeRules];
};

inline constexpr std::uint32_t kInitReady = 0x52454459;  // "READY"
inline constexpr std::uint32_t kCorruptFlag = 1;

struct alignas(kCacheLine) Header {
  char magic[8];
  std::uint32_t layout_version;
  std::uint32_t header_bytes;
  std::uint64_t fingerprint;
  std::uint64_t total_bytes;
  // Configuration, fixed at creation.
  std::uint64_t byte_budget;
  std::uint64_t max_entries;  // 0 = no limit
  std::uint64_t default_ttl_ns;
  std::uint64_t max_value_bytes;
  std::uint64_t max_key_bytes;
  std::uint32_t stripes;
  std::uint32_t stripe_shift;  // stripe = hash >> stripe_shift
  std::uint64_t buckets_per_stripe;
  std::uint32_t permissions;
  std::uint32_t creator_pid;
  std::uint64_t created_unix_ms;
  std::uint64_t created_mono_ns;
  // Where things are (bytes from the segment start).
  std::uint64_t slots_off;
  std::uint64_t namespaces_off;
  std::uint64_t stripes_off;
  std::uint64_t buckets_off;
  std::uint64_t visited_off;
  std::uint64_t arena_off;
  std::uint64_t arena_bytes;
  std::atomic<std::uint32_t> init_state;  // kInitReady once published under the final name
  std::atomic<std::uint32_t> corrupt;     // set when a structural violation is met
  alignas(kCacheLine) RobustMutex registry_lock;  // slots, namespace registration, retired sums
  alignas(kCacheLine) ArenaState arena;
  alignas(kCacheLine) InvalidationLog invalidations;  // [lock-free: per-record seqlock]
  alignas(kCacheLine) RemoteBlock remote;
  alignas(kCacheLine) ControlBlock control;
};

// Entry = a used arena block. 48 bytes of header, then key bytes, then value bytes, rounded up
// to 8. A free block reuses word0 and the two u32 after it as free-list links, and repeats its
// size in its last 4 bytes (footer) for backward coalescing.
//
// word0 (one 8-byte store changes size, state and owner together, so the chain of block
// sizes that arena recovery walks is valid at every instant):
//   bits  0..31 size in units     bits 32..39 block flags
//   bits 40..47 namespace id      bits 48..63 owner stripe
struct Entry {
  std::uint64_t word0;                   // [arena lock]
  std::uint64_t expiry_ns;               // CLOCK_MONOTONIC_COARSE ns; 0 = never
  std::uint32_t hash_tag;                // bits 24..55 of the key hash (a filter before memcmp)
  std::atomic<std::uint32_t> chain_next; // [stripe lock] next in the bucket chain (units)
  std::uint32_t fifo_newer;              // [arena lock] SIEVE queue links (units)
  std::uint32_t fifo_older;
  std::uint32_t value_len;
  std::uint16_t key_len;
  std::uint16_t flags;                   // kEntryLease | user flags (kUserFlagsMask)
  std::uint32_t ns_generation;           // [arena lock] namespace generation at allocation
  std::uint32_t created_s;               // seconds since segment creation (monotonic)
};
inline constexpr std::size_t kEntryHeader = 48;
static_assert(sizeof(Entry) == kEntryHeader);
static_assert(offsetof(Entry, chain_next) == 20);
static_assert(kShared<std::uint32_t>);

inline constexpr std::uint64_t kBlockFree = 1;      // block flags (word0 bits 32..39)
inline constexpr std::uint64_t kBlockPrevFree = 2;  // the block just before this one is free
inline constexpr std::uint16_t kEntryLease = 0x8000;
inline constexpr std::uint32_t kMinBlockUnits = kEntryHeader / kUnit;  // 6
// No two blocks start in one visited-bit region, so each block has a bit of its own.
static_assert(kMinBlockUnits >= (1u << kVisitedShift));
// Bytes of the visited bitmap of an arena (whole 64-bit words, one spare).
inline constexpr std::uint64_t visited_bitmap_bytes(std::uint64_t arena_bytes) {
  return 8 * (arena_bytes / kUnit / (1u << kVisitedShift) / 64 + 1);
}

inline constexpr std::uint32_t word0_size(std::uint64_t w) { return static_cast<std::uint32_t>(w); }
inline constexpr std::uint64_t word0_flags(std::uint64_t w) { return (w >> 32) & 0xff; }
inline constexpr unsigned word0_ns(std::uint64_t w) { return static_cast<unsigned>((w >> 40) & 0xff); }
inline constexpr unsigned word0_stripe(std::uint64_t w) { return static_cast<unsigned>(w >> 48); }
inline constexpr std::uint64_t make_word0(std::uint32_t size, std::uint64_t flags, unsigned ns,
                                          unsigned stripe) {
  return std::uint64_t{size} | (flags << 32) | (std::uint64_t{ns} << 40) |
         (std::uint64_t{stripe} << 48);
}

// Free block: links in the bytes after word0.
struct FreeBlock {
  std::uint64_t word0;
  std::uint32_t bin_next;
  std::uint32_t bin_prev;
};

// Lease marker value (entry flag kEntryLease, same key as the value it guards).
// Held while deadline_ns is ahead and its holder lives: slot_holder_alive(slot, life_epoch)
// (lock/life.hpp); a holder without a slot (slot >= kMaxProcessSlots: all were taken) is
// judged by pid, the old way.
struct LeaseRecord {
  std::int64_t pid;  // the holder's pid in its own PID namespace: reported, not trusted
  std::uint64_t token;
  std::uint64_t deadline_ns;  // CLOCK_MONOTONIC
  std::uint32_t slot;         // the holder's process slot
  std::uint32_t reserved;
  std::uint64_t life_epoch;   // that slot's life_epoch when the lease was taken
};

// Changes whenever a shared struct's size, one of the few offsets mixed in, or a table size
// changes. It does not see a reordering of fields within an unchanged size: the golden test
// pins every offset for that.
constexpr std::uint64_t layout_fingerprint() {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&h](std::uint64_t v) { h = (h ^ v) * 1099511628211ull; };
  mix(sizeof(Header));
  mix(offsetof(Header, arena));
  mix(offsetof(Header, invalidations));
  mix(sizeof(InvalidationSlot));
  mix(kInvalidationLogSize);
  mix(sizeof(ArenaState));
  mix(sizeof(ProcessSlot));
  mix(offsetof(ProcessSlot, ns));
  mix(offsetof(ProcessSlot, life));
  mix(sizeof(NsMetrics));
  mix(sizeof(Namespace));
  mix(offsetof(Namespace, cache_switch));
  mix(sizeof(ControlBlock));
  mix(offsetof(Header, control));
  mix(sizeof(Stripe));
  mix(offsetof(Stripe, lease_wake));
  mix(offsetof(Stripe, lease_waiters));
  mix(sizeof(Entry));
  mix(sizeof(LeaseRecord));
  mix(sizeof(RobustMutex));
  mix(kMaxProcessSlots);
  mix(kMaxNamespaces);
  mix(kBins);
  mix(kUnit);
  mix(kStoreCounters);
  mix(kNsCounters);
  mix(Histogram::kBuckets);
  mix(sizeof(RemoteBlock));
  mix(offsetof(Header, remote));
  mix(kRemoteCounters);
  return h;
}
inline constexpr std::uint64_t kLayoutFingerprint = layout_fingerprint();

}  // namespace pipecache::detail
