// Pins what other processes (and other builds) depend on: the hash that places keys, and the
// segment layout. A failure here means a change of format: bump kLayoutVersion deliberately
// and update these figures in the same commit.
#include <doctest/doctest.h>

#include "segment/layout.hpp"
#include "util/hash.hpp"

using namespace pipecache::detail;

TEST_SUITE("golden") {
  TEST_CASE("hash_outputs_are_pinned") {
    CHECK(hash_key("") == 0x2d06800538d394c2ull);
    CHECK(hash_key("whats_next_data:layout=4x8") == hash_key("whats_next_data:layout=4x8"));
    CHECK(hash_key("a") != hash_key("b"));
  }
  TEST_CASE("layout_is_pinned") {
    CHECK(kLayoutVersion == 3);
    CHECK(sizeof(Entry) == 48);
    CHECK(sizeof(LeaseRecord) == 24);
    CHECK(sizeof(Stripe) == 64);
    CHECK(sizeof(Namespace) == 128);
    CHECK(offsetof(Header, arena) % 64 == 0);
    CHECK(sizeof(InvalidationSlot) == 128);
    CHECK(kInvalidationLogSize == 16);
    CHECK(offsetof(Header, invalidations) % 64 == 0);
    CHECK(sizeof(InvalidationLog) == 64 + 16 * 128);
    CHECK(kLayoutFingerprint == layout_fingerprint());
  }
}
