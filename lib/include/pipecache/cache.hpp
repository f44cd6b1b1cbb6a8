// pipecache — a response cache shared by the processes of one host.
//
// A Cache is a handle on a named shared-memory segment (/dev/shm/pipecache.<name>) holding a
// lock-striped hash table with per-entry TTL, a byte budget and SIEVE eviction. Every process
// that opens the same name sees the same entries.
//
// Thread-safety: a Cache may be used by many threads of one process and by many processes at
// once. Hits take no lock (seqlock-validated copies); writes lock one stripe. Every lock is a
// process-shared robust mutex: a process killed at any instant never blocks the others.
//
// Errors: a miss is a value (std::nullopt / false), not an error. Problems the caller can act
// on (bad name, missing / incompatible / corrupt segment, no room in /dev/shm, oversize key or
// value) throw pipecache::Error whose message names the segment and the problem.
#pragma once

#include <pipecache/export.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pipecache {

class Cache;
namespace detail {
struct RemoteBlock;  // internal: the many-hosts figures in the segment header
RemoteBlock& remote_block(const Cache& cache) noexcept;
class Segment;  // internal: the mapping
const Segment& segment_of(const Cache& cache) noexcept;
}  // namespace detail

// What went wrong, for callers that act on it (pipectl maps it to exit codes).
enum class ErrorKind {
  invalid_argument,   // bad name, option, size, duration, oversize key or value
  not_found,          // the segment does not exist
  already_exists,     // create() of an existing name
  incompatible,       // another layout version or build
  corrupt,            // truncated, foreign object, inconsistent header
  no_space,           // /dev/shm has no room for the segment
  permission_denied,  // the segment's mode forbids this process
  system,             // any other failure of the operating system
};

class PIPECACHE_API Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what, ErrorKind kind = ErrorKind::invalid_argument)
      : std::runtime_error(what), kind_(kind) {}
  explicit Error(const char* what, ErrorKind kind = ErrorKind::invalid_argument)
      : std::runtime_error(what), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Whose segments this process attaches to. A segment is a file in a world-writable directory:
// its name proves nothing, so open() accepts it only if it is a regular file with one link,
// not world-writable, and owned by the effective uid or by a uid listed here; anything else
// is Error(permission_denied) naming the segment, its owner and its mode.
struct PIPECACHE_API Trust {
  std::vector<std::uint32_t> owners;  // uids trusted besides the effective uid
  // Any owner (still a regular file, one link, not world-writable). For read-only inspection
  // by an administrator (root's pipectl stats / keys / get / inspect / verify).
  bool any_owner = false;

  // "www-data,1001": user names or numeric uids, comma-separated (the format of
  // PIPECACHE_TRUSTED_OWNERS and `pipectl --owner`). Error naming an unknown user.
  static Trust parse(std::string_view owners);
  bool trusts(std::uint32_t uid) const noexcept;
};

struct Options {
  std::string name = "default";                 // [A-Za-z0-9._-], 1..64 characters
  std::size_t byte_budget = 64u << 20;          // keys + values + per-entry overhead
  std::size_t max_entries = 0;                  // 0 = only the byte budget limits
  unsigned stripes = 0;                         // power of two; 0 = derived from entries
  std::chrono::milliseconds default_ttl = std::chrono::minutes(5);  // 0 = never expires
  unsigned permissions = 0600;                  // mode of /dev/shm/pipecache.<name>; never o+w
  Trust trust;                                  // open_or_create: whose existing segment to open
};

// Counters kept per request type (namespace = the key prefix before the first ':').
// The store itself counts nothing here; the pipeline (and users) record through
// Cache::record / Cache::record_time. Order is part of the segment layout.
enum class NsCounter : unsigned {
  requests,
  hits,
  misses,
  stale_served,
  computes,
  dedup_waits,
  lease_takeovers,
  fallbacks,
  compute_failures,
  batches,             // batch handler invocations
  batched_requests,    // requests answered by a batch handler
  batchable_requests,  // misses of a batch-eligible type that went to the batcher
  batch_joined,        // requests that joined a batch of 2 or more
  batch_failures,      // batch handler threw or returned the wrong count
  batch_fallbacks,     // requests re-run alone after a batch failure
  batch_wait_ns,       // total time requests spent waiting in a batch window
  bypassed,            // requests answered without the cache by a rollout or switch
  batch_run_ns,        // total time batch handlers ran (with their fallbacks), per batch
  count_
};
inline constexpr unsigned kNsCounters = static_cast<unsigned>(NsCounter::count_);

enum class NsHistogram : unsigned { hit_time, compute_time, count_ };
inline constexpr unsigned kNsHistograms = static_cast<unsigned>(NsHistogram::count_);

// Log2 latency histogram: bucket i counts samples in [2^i, 2^(i+1)) ns (bucket 0: [0, 2)).
struct PIPECACHE_API Histogram {
  static constexpr unsigned kBuckets = 40;  // up to 2^40 ns ~ 18 minutes
  std::array<std::uint64_t, kBuckets> buckets{};
  std::uint64_t count = 0;
  std::uint64_t sum_ns = 0;

  static unsigned bucket_for(std::uint64_t ns) noexcept;
  double mean_ns() const noexcept;
  // Linear interpolation inside the bucket that holds quantile q (0..1); 0 when empty.
  double percentile_ns(double q) const noexcept;
  Histogram& operator+=(const Histogram& other) noexcept;
};

struct NamespaceStats {
  std::string name;
  unsigned id = 0;
  // The type's runtime switch (Cache::set_type_switch): the percent of keys cached, or nullopt
  // when none is set (each process's policy decides).
  std::optional<double> switch_percent;
  std::uint64_t generation = 0;  // bumped by an O(1) invalidation of "<name>:*"
  std::uint64_t entries = 0;     // live entries of the current and older generations
  std::array<std::uint64_t, kNsCounters> counters{};
  std::array<Histogram, kNsHistograms> histograms{};
  std::uint64_t counter(NsCounter c) const noexcept { return counters[static_cast<unsigned>(c)]; }
  const Histogram& histogram(NsHistogram h) const noexcept {
    return histograms[static_cast<unsigned>(h)];
  }
};

// Opens (open_or_create) whose options asked for another byte budget, entry limit or default
// TTL than the segment was created with: they got the segment's. To resize, create a segment
// under a new name and point the workers at it (README "Resizing").
struct ConfigDrift {
  std::uint64_t opens = 0;  // all processes, since creation
  std::int64_t last_pid = 0;
  std::uint64_t last_unix_ms = 0;
  // What the last drifting opener configured.
  std::uint64_t last_byte_budget = 0;
  std::uint64_t last_max_entries = 0;
  std::chrono::milliseconds last_default_ttl{0};
};

struct Stats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t inserts = 0;        // new keys
  std::uint64_t updates = 0;        // puts that replaced a value
  std::uint64_t evictions = 0;      // removed to make room (budget or max_entries)
  std::uint64_t expirations = 0;    // expired entries reclaimed
  std::uint64_t invalidations = 0;  // removed by erase / invalidate / clear
  std::uint64_t put_failures = 0;   // writes dropped: no room could be made, or lock timeout
  std::uint64_t lock_recoveries = 0;  // robust mutexes found with a dead owner and repaired
  std::uint64_t entries = 0;        // all entries, including stale_entries
  std::uint64_t stale_entries = 0;  // of invalidated generations, not yet reclaimed
  std::uint64_t bytes_used = 0;     // exact: sum of entry blocks (header + key + value + align)
  std::uint64_t byte_budget = 0;
  std::uint64_t max_entries = 0;
  std::uint64_t arena_bytes = 0;    // memory holding entries (budget + fragmentation slack)
  std::uint64_t free_bytes = 0;     // arena bytes in free blocks
  std::uint64_t largest_free_block = 0;
  std::uint64_t fragmented_bytes = 0;  // free, but in blocks smaller than the largest allowed entry
  std::uint64_t attached_processes = 0;
  std::uint64_t segment_bytes = 0;
  std::uint64_t created_unix_ms = 0;
  std::uint64_t uptime_ms = 0;
  std::vector<NamespaceStats> namespaces;  // registered request types, by id
  ConfigDrift config_drift;
};

struct KeyInfo {
  std::string key;
  std::uint64_t value_size = 0;
  std::optional<std::chrono::milliseconds> ttl_left;  // nullopt = never expires
  std::chrono::seconds age{0};
  bool lease = false;  // a pending computation (get-or-compute), not a value
  std::uint16_t flags = 0;
};

struct ProcessInfo {
  unsigned slot = 0;
  std::int64_t pid = 0;
  bool alive = false;
};

struct SegmentInfo {
  std::string name;
  std::string path;
  std::uint32_t layout_version = 0;
  std::uint64_t fingerprint = 0;
  std::uint64_t segment_bytes = 0;
  std::uint64_t arena_bytes = 0;
  std::uint64_t byte_budget = 0;
  std::uint64_t max_entries = 0;
  unsigned stripes = 0;
  std::uint64_t buckets = 0;
  std::chrono::milliseconds default_ttl{0};
  unsigned permissions = 0;       // as created (header)
  std::uint32_t owner_uid = 0;    // the object's owner and mode when it was opened (fstat)
  std::string owner;              // owner_uid's user name, or the number when it has none
  unsigned mode = 0;
  std::uint64_t created_unix_ms = 0;
  std::vector<std::uint64_t> entries_per_stripe;
  std::uint64_t free_blocks = 0;
  std::uint64_t free_bytes = 0;
  std::uint64_t largest_free_block = 0;
  std::uint64_t used_blocks = 0;
  std::uint64_t bytes_used = 0;
  std::vector<ProcessInfo> processes;  // occupied process slots
  unsigned process_slots = 0;
  unsigned namespace_slots = 0;
};

struct VerifyReport {
  bool ok() const noexcept { return problems.empty(); }
  std::vector<std::string> problems;
  std::uint64_t entries_checked = 0;
  std::uint64_t blocks_checked = 0;
};

// One of the segment's recent invalidations (Cache::invalidate / Cache::clear), kept in a small
// ring in the segment (the last 16) so that operators see what emptied the cache.
struct InvalidationRecord {
  std::string pattern;        // the glob; "*" for clear(); a cut pattern ends in "..."
  std::uint64_t unix_ms = 0;  // when it completed
  std::uint64_t removed = 0;  // entries removed (clear: entries present when it ran)
  bool clear = false;
};

// Leases: the building block of get-or-compute across processes. A lease is a marker entry
// stored beside the key's value (same stripe) naming its holder (pid) and a deadline.
enum class LeaseState {
  acquired,        // the caller now holds the lease: compute, then publish() or release_lease()
  taken_over,      // acquired, replacing a lease whose holder died or ran past its deadline
  held_by_other,   // somebody else computes: wait_lease(), then look again
  unavailable,     // no room for the lease marker, or lock timeout: compute without de-dup
};
struct LeaseResult {
  LeaseState state = LeaseState::unavailable;
  std::uint64_t token = 0;       // identifies the caller's lease (acquired / taken_over)
  std::int64_t holder_pid = 0;   // held_by_other: the computing process
  std::chrono::nanoseconds holder_remaining{0};  // held_by_other: time left on its deadline
};

// Per-entry flags a caller may attach with put(); the store keeps them, never interprets them.
inline constexpr std::uint16_t kUserFlagsMask = 0x00ff;

class PIPECACHE_API Cache {
 public:
  // Creates the segment; Error if it exists. Its full size is reserved up front.
  static Cache create(const Options& options);
  // Opens an existing segment; Error if missing, of another layout, truncated or foreign, and
  // Error(permission_denied) when `trust` does not accept its owner or mode (see Trust).
  static Cache open(std::string_view name);
  static Cache open(std::string_view name, const Trust& trust);
  // Opens the segment, or creates it with `options` when absent. Safe when many processes
  // call it at once: they all end up on one initialised segment. A name it could not create
  // is opened only if it passes options.trust, as open() checks it. An existing segment whose
  // byte budget, max entries or default TTL differ from `options` is used as it is; the
  // difference is counted in the segment (Stats::config_drift) and described by
  // config_drift().
  static Cache open_or_create(const Options& options);
  // Unlinks the segment name; processes that have it open keep using it. False if absent;
  // Error(permission_denied) when another user owns it (/dev/shm is sticky).
  static bool remove(std::string_view name);
  static bool exists(std::string_view name);
  // Throws Error naming the problem when `name` is not a valid segment name.
  static void validate_name(std::string_view name);
  static std::string path_of(std::string_view name);

  Cache(Cache&&) noexcept;
  Cache& operator=(Cache&&) noexcept;
  ~Cache();

  std::optional<std::string> get(std::string_view key);
  // Reuses out's capacity. False (out unspecified) on a miss.
  bool get(std::string_view key, std::string& out);
  // As get(), also returns the flags stored with the value.
  bool get(std::string_view key, std::string& out, std::uint16_t& flags);
  // Zero-copy read: calls `reader` with a view into shared memory while holding the key's
  // stripe lock (writers of that stripe wait; readers do not). `reader` must be short and
  // must not call into this Cache. False on a miss (reader not called).
  bool visit(std::string_view key, const std::function<void(std::string_view)>& reader);

  // Every put returns false when the write was dropped (no room could be made, lock timeout)
  // and throws Error for an oversize key or value. Without a ttl, the segment's default TTL;
  // ttl 0 = never expires. flags: kUserFlagsMask bits kept with the value.
  bool put(std::string_view key, std::string_view value);
  bool put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl);
  bool put(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
           std::uint16_t flags);

  bool erase(std::string_view key);
  // Removes the keys matching a glob (`*`, `?`); returns how many. "<type>:*" for a registered
  // request type is O(1) (the namespace's generation is bumped).
  std::size_t invalidate(std::string_view glob);
  // Removes every entry (the one way out of a segment marked corrupt). Dead holders of its
  // locks are recovered first. False when a lock stayed held by a live process past the lock
  // timeout (2 s): then nothing was removed.
  bool clear();
  // Reclaims expired entries and entries of invalidated generations; returns how many.
  std::size_t purge();

  // Lease protocol (see LeaseState). A lease is held_by_other only while its holder process is
  // alive and its deadline has not passed; otherwise try_lease takes it over.
  LeaseResult try_lease(std::string_view key, std::chrono::milliseconds lease_time);
  // Stores the value and drops the caller's lease in one step, then wakes the waiters.
  // If the lease is no longer the caller's, or the key's namespace was invalidated (or the
  // cache cleared) since the lease was taken, the value was computed from superseded data:
  // it is discarded (counted as an invalidation), the waiters wake and one computes again.
  // That is the protocol working, so it returns true. False only if the store had no room
  // (or a lock timed out); the lease is dropped in every case.
  bool publish(std::string_view key, std::string_view value, std::chrono::milliseconds ttl,
               std::uint16_t flags, std::uint64_t token);
  // Extends the caller's lease by lease_time from now (a long computation that should not be
  // taken over). False when the lease is no longer the caller's (taken over or dropped).
  bool renew_lease(std::string_view key, std::uint64_t token, std::chrono::milliseconds lease_time);
  // Drops the caller's lease (computation failed) and wakes the waiters.
  void release_lease(std::string_view key, std::uint64_t token);
  // Wake sequence of the key's stripe: read it BEFORE looking at the key, then pass it to
  // wait_lease, which sleeps (futex in the segment) until a lease of that stripe is resolved
  // or the timeout passes. Spurious returns are allowed: always look again.
  std::uint32_t lease_wake_seq(std::string_view key) const noexcept;
  void wait_lease(std::string_view key, std::uint32_t seen_seq,
                  std::chrono::nanoseconds timeout) const noexcept;

  Stats stats() const;
  // The last invalidations of any process, newest first (at most 16; see InvalidationRecord).
  std::vector<InvalidationRecord> recent_invalidations() const;
  // Registered request types (namespaces), cheap: no counters are summed.
  std::vector<std::string> namespaces() const;
  // False once recovery found the segment structurally broken (every get then misses and
  // every put is dropped until clear() reformats it).
  bool healthy() const noexcept;
  std::vector<KeyInfo> keys(std::string_view glob = "*",
                            std::size_t limit = static_cast<std::size_t>(-1)) const;
  SegmentInfo inspect() const;
  VerifyReport verify() const;

  // Request-type metrics. namespace_id registers the type on first use; -1 when the
  // namespace table is full (then record() is a no-op).
  int namespace_id(std::string_view request_type);
  void record(int ns, NsCounter counter, std::uint64_t delta = 1) noexcept;
  void record_time(int ns, NsHistogram histogram, std::uint64_t ns_elapsed) noexcept;

  // Runtime switches, per request type, kept in the segment: every Pipeline on the segment
  // obeys a type's switch from its next request of that type. `percent` 0 turns caching off
  // for the type, 100 on for every key, a value between caches that share of its keys (a
  // stable hash of the key decides, so a key is always or never cached); nullopt removes the
  // switch (each process's policy decides again). Registers the type. Throws Error for a
  // percent outside 0..100, or when the type cannot be registered (namespace table full).
  void set_type_switch(std::string_view request_type, std::optional<double> percent);
  std::optional<double> type_switch(std::string_view request_type) const;
  // Namespace `ns`'s switch word, for the request path (one relaxed load): 0 = none, else
  // 0x80000000 | basis points of keys cached.
  std::uint32_t type_switch_word(int ns) const noexcept;

  // Change rules kept in the segment: change type -> invalidation patterns (in the forms of
  // Pipeline::invalidate). Pipelines publish theirs; pipecache::apply_data_change and
  // `pipectl change` apply them. Empty `patterns` removes the rule. Throws Error when a
  // pattern is empty or holds a newline, the rule is too long (464 bytes of patterns, 39 of
  // name) or the table (32 rules) is full.
  void set_change_rule(std::string_view change_type, const std::vector<std::string>& patterns);
  std::map<std::string, std::vector<std::string>> change_rules() const;
  // Bumped by every rule change.
  std::uint64_t change_rules_version() const noexcept;
  // What open_or_create found different from its options ("" when nothing, or created).
  const std::string& config_drift() const noexcept;

  const std::string& name() const noexcept;
  std::chrono::milliseconds default_ttl() const noexcept;
  std::size_t max_value_size() const noexcept;
  std::size_t max_key_size() const noexcept;

 private:
  struct Impl;
  explicit Cache(std::unique_ptr<Impl> impl);
  // The many-hosts figures (lib/src/remote) live in the segment header.
  friend detail::RemoteBlock& detail::remote_block(const Cache& cache) noexcept;
  friend const detail::Segment& detail::segment_of(const Cache& cache) noexcept;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pipecache
