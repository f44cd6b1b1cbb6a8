// Pins what other processes (and other builds) depend on: the hash that places keys, and the
// segment layout. Every figure is a literal, so a change to the hash, to a struct or to the
// fingerprint fails here: bump kLayoutVersion deliberately and update these figures in the
// same commit (a change of format is a decision, not an accident).
#include <doctest/doctest.h>

#include <string>

#include "segment/layout.hpp"
#include "util/hash.hpp"

using namespace pipecache::detail;

TEST_SUITE("golden") {
  TEST_CASE("hash_outputs_are_pinned") {
    // XXH3-64, seed 0 (libxxhash): places keys in stripes and buckets.
    CHECK(hash_key("") == 0x2d06800538d394c2ull);
    CHECK(hash_key("a") == 0xe6c632b61e964e1full);
    CHECK(hash_key("whats_next_data:layout=4x8") == 0x452252e8f322c07aull);
    CHECK(hash_key("events_by_range:from=1764547200:to=1765152000") == 0xfa0cceb943562a3bull);
    CHECK(hash_key(std::string(100, 'x')) == 0xc90984ffdf50ce42ull);
  }

  TEST_CASE("layout_version_and_fingerprint_are_pinned") {
    CHECK(kLayoutVersion == 6);
    CHECK(kLayoutFingerprint == 0xf3146c1ec9a797f0ull);
    CHECK(std::string(kMagic, sizeof kMagic) == "PIPECACH");
    CHECK(kUnit == 8);
    CHECK(kBins == 128);
    CHECK(kVisitedShift == 2);
    CHECK(kMaxProcessSlots == 64);
    CHECK(kMaxNamespaces == 32);
    CHECK(kMaxNamespaceName == 39);
    CHECK(kStoreCounters == 9);
    CHECK(pipecache::kNsCounters == 18);
    CHECK(pipecache::Histogram::kBuckets == 40);
    CHECK(sizeof(RobustMutex) == 40);
    CHECK(kInvalidationLogSize == 16);
    CHECK(kInvalidationPatternBytes == 96);
  }

  TEST_CASE("every_offset_of_the_shared_structures_is_pinned") {
    CHECK(sizeof(Header) == 21120);
    CHECK(offsetof(Header, magic) == 0);
    CHECK(offsetof(Header, layout_version) == 8);
    CHECK(offsetof(Header, header_bytes) == 12);
    CHECK(offsetof(Header, fingerprint) == 16);
    CHECK(offsetof(Header, total_bytes) == 24);
    CHECK(offsetof(Header, byte_budget) == 32);
    CHECK(offsetof(Header, max_entries) == 40);
    CHECK(offsetof(Header, default_ttl_ns) == 48);
    CHECK(offsetof(Header, max_value_bytes) == 56);
    CHECK(offsetof(Header, max_key_bytes) == 64);
    CHECK(offsetof(Header, stripes) == 72);
    CHECK(offsetof(Header, stripe_shift) == 76);
    CHECK(offsetof(Header, buckets_per_stripe) == 80);
    CHECK(offsetof(Header, permissions) == 88);
    CHECK(offsetof(Header, creator_pid) == 92);
    CHECK(offsetof(Header, created_unix_ms) == 96);
    CHECK(offsetof(Header, created_mono_ns) == 104);
    CHECK(offsetof(Header, slots_off) == 112);
    CHECK(offsetof(Header, namespaces_off) == 120);
    CHECK(offsetof(Header, stripes_off) == 128);
    CHECK(offsetof(Header, buckets_off) == 136);
    CHECK(offsetof(Header, visited_off) == 144);
    CHECK(offsetof(Header, arena_off) == 152);
    CHECK(offsetof(Header, arena_bytes) == 160);
    CHECK(offsetof(Header, init_state) == 168);
    CHECK(offsetof(Header, corrupt) == 172);
    CHECK(offsetof(Header, registry_lock) == 192);
    CHECK(offsetof(Header, arena) == 256);
    CHECK(offsetof(Header, invalidations) == 1920);
    CHECK(offsetof(Header, remote) == 4032);
    CHECK(sizeof(RemoteBlock) == 640);
    CHECK(offsetof(Header, control) == 4672);  // right after remote: no overlap

    CHECK(sizeof(ControlBlock) == 16448);
    CHECK(offsetof(ControlBlock, rules_version) == 0);
    CHECK(offsetof(ControlBlock, drift_opens) == 8);
    CHECK(offsetof(ControlBlock, drift_byte_budget) == 16);
    CHECK(offsetof(ControlBlock, drift_max_entries) == 24);
    CHECK(offsetof(ControlBlock, drift_default_ttl_ns) == 32);
    CHECK(offsetof(ControlBlock, drift_pid) == 40);
    CHECK(offsetof(ControlBlock, drift_unix_ms) == 48);
    CHECK(offsetof(ControlBlock, rules) == 64);
    CHECK(kMaxChangeRules == 32);
    CHECK(sizeof(ChangeRule) == 512);
    CHECK(offsetof(ChangeRule, state) == 0);
    CHECK(offsetof(ChangeRule, name_len) == 4);
    CHECK(offsetof(ChangeRule, patterns_len) == 6);
    CHECK(offsetof(ChangeRule, name) == 8);
    CHECK(offsetof(ChangeRule, patterns) == 48);

    CHECK(sizeof(ArenaState) == 1664);
    CHECK(offsetof(ArenaState, lock) == 0);
    CHECK(offsetof(ArenaState, bytes_used) == 40);
    CHECK(offsetof(ArenaState, entries) == 48);
    CHECK(offsetof(ArenaState, free_bytes) == 56);
    CHECK(offsetof(ArenaState, free_blocks) == 64);
    CHECK(offsetof(ArenaState, fifo_newest) == 72);
    CHECK(offsetof(ArenaState, fifo_oldest) == 76);
    CHECK(offsetof(ArenaState, hand) == 80);
    CHECK(offsetof(ArenaState, pad0) == 84);
    CHECK(offsetof(ArenaState, bin_map) == 88);
    CHECK(offsetof(ArenaState, bin_head) == 104);
    CHECK(offsetof(ArenaState, bin_bytes) == 616);

    CHECK(sizeof(ProcessSlot) == 26304);
    CHECK(offsetof(ProcessSlot, pid) == 0);
    CHECK(offsetof(ProcessSlot, attached_unix_ms) == 8);
    CHECK(offsetof(ProcessSlot, life_epoch) == 16);
    CHECK(offsetof(ProcessSlot, life) == 24);
    CHECK(offsetof(ProcessSlot, counters) == 64);
    CHECK(offsetof(ProcessSlot, ns) == 192);

    CHECK(sizeof(NsMetrics) == 816);
    CHECK(offsetof(NsMetrics, counters) == 0);
    CHECK(offsetof(NsMetrics, hist) == 144);
    CHECK(offsetof(NsMetrics, hist_count) == 784);
    CHECK(offsetof(NsMetrics, hist_sum) == 800);

    CHECK(sizeof(Namespace) == 128);
    CHECK(offsetof(Namespace, state) == 0);
    CHECK(offsetof(Namespace, name_len) == 4);
    CHECK(offsetof(Namespace, generation) == 8);
    CHECK(offsetof(Namespace, name) == 16);
    CHECK(offsetof(Namespace, cache_switch) == 56);
    CHECK(offsetof(Namespace, pad0) == 60);
    CHECK(offsetof(Namespace, entries) == 64);
    CHECK(offsetof(Namespace, live) == 72);

    CHECK(sizeof(Stripe) == 64);
    CHECK(offsetof(Stripe, mutex) == 0);
    CHECK(offsetof(Stripe, seq) == 40);
    CHECK(offsetof(Stripe, dirty) == 44);
    CHECK(offsetof(Stripe, entries) == 48);
    CHECK(offsetof(Stripe, lease_wake) == 52);
    CHECK(offsetof(Stripe, lease_waiters) == 56);

    CHECK(sizeof(Entry) == 48);
    CHECK(offsetof(Entry, word0) == 0);
    CHECK(offsetof(Entry, expiry_ns) == 8);
    CHECK(offsetof(Entry, hash_tag) == 16);
    CHECK(offsetof(Entry, chain_next) == 20);
    CHECK(offsetof(Entry, fifo_newer) == 24);
    CHECK(offsetof(Entry, fifo_older) == 28);
    CHECK(offsetof(Entry, value_len) == 32);
    CHECK(offsetof(Entry, key_len) == 36);
    CHECK(offsetof(Entry, flags) == 38);
    CHECK(offsetof(Entry, ns_generation) == 40);
    CHECK(offsetof(Entry, created_s) == 44);

    CHECK(sizeof(FreeBlock) == 16);
    CHECK(offsetof(FreeBlock, word0) == 0);
    CHECK(offsetof(FreeBlock, bin_next) == 8);
    CHECK(offsetof(FreeBlock, bin_prev) == 12);

    CHECK(sizeof(LeaseRecord) == 40);
    CHECK(offsetof(LeaseRecord, pid) == 0);
    CHECK(offsetof(LeaseRecord, token) == 8);
    CHECK(offsetof(LeaseRecord, deadline_ns) == 16);
    CHECK(offsetof(LeaseRecord, slot) == 24);
    CHECK(offsetof(LeaseRecord, life_epoch) == 32);

    CHECK(sizeof(InvalidationSlot) == 128);
    CHECK(offsetof(InvalidationSlot, seq) == 0);
    CHECK(offsetof(InvalidationSlot, unix_ms) == 8);
    CHECK(offsetof(InvalidationSlot, removed) == 16);
    CHECK(offsetof(InvalidationSlot, pattern_len) == 24);
    CHECK(offsetof(InvalidationSlot, kind) == 28);
    CHECK(offsetof(InvalidationSlot, pattern) == 32);

    CHECK(sizeof(InvalidationLog) == 2112);
    CHECK(offsetof(InvalidationLog, next) == 0);
    CHECK(offsetof(InvalidationLog, records) == 64);
  }
}
