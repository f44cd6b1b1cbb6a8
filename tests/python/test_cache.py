"""pipecache.Cache: round trips, TTL, globs, stats and errors."""
import time

import pytest

import pipecache


def test_bytes_round_trip(cache):
    assert cache.put("k", b"\x00value\xff") is True
    assert cache.get("k") == b"\x00value\xff"


def test_str_value_is_stored_as_utf8(cache):
    cache.put("k", "héllo €")
    assert cache.get("k") == "héllo €".encode("utf-8")


def test_bytes_like_values_and_bytes_keys(cache):
    cache.put(b"raw-key", bytearray(b"abc"))
    cache.put("mv", memoryview(b"xyz"))
    assert cache.get("raw-key") == b"abc"
    assert cache.get(b"mv") == b"xyz"


def test_miss_is_none(cache):
    assert cache.get("absent") is None
    assert "absent" not in cache


def test_put_replaces(cache):
    cache.put("k", b"one")
    cache.put("k", b"two, longer than one")
    assert cache.get("k") == b"two, longer than one"
    assert cache.stats()["updates"] == 1


def test_large_value_round_trip(cache):
    value = bytes(range(256)) * 256  # 64 KiB
    assert cache.put("big", value)
    assert cache.get("big") == value


def test_ttl_expires(cache):
    cache.put("short", b"v", ttl=0.15)
    cache.put("long", b"v", ttl=30)
    assert cache.get("short") == b"v"
    time.sleep(0.3)
    assert cache.get("short") is None
    assert cache.get("long") == b"v"


def test_default_ttl_applies_when_ttl_is_none(segment_name):
    c = pipecache.Cache.create(segment_name, byte_budget="4M", default_ttl=0.15)
    assert c.default_ttl == pytest.approx(0.15)
    c.put("k", b"v")
    time.sleep(0.3)
    assert c.get("k") is None


def test_ttl_zero_never_expires(segment_name):
    c = pipecache.Cache.create(segment_name, byte_budget="4M", default_ttl=0.1)
    c.put("k", b"v", ttl=0)
    time.sleep(0.25)
    assert c.get("k") == b"v"


def test_ttl_as_text(cache):
    cache.put("k", b"v", ttl="100ms")
    time.sleep(0.25)
    assert cache.get("k") is None


def test_delete(cache):
    cache.put("k", b"v")
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None


def test_invalidate_glob_counts_removed(cache):
    for i in range(5):
        cache.put(f"user:{i}", b"v")
    cache.put("other:1", b"v")
    assert cache.invalidate("user:*") == 5
    assert cache.keys() == ["other:1"]


def test_keys_glob_and_limit(cache):
    for k in ("a:1", "a:2", "b:1"):
        cache.put(k, b"v")
    assert sorted(cache.keys()) == ["a:1", "a:2", "b:1"]
    assert sorted(cache.keys("a:*")) == ["a:1", "a:2"]
    assert sorted(cache.keys("?:1")) == ["a:1", "b:1"]
    assert len(cache.keys(limit=1)) == 1


def test_clear(cache):
    for i in range(10):
        cache.put(f"k{i}", b"v")
    cache.clear()
    assert cache.keys() == []
    assert cache.stats()["entries"] == 0


def test_stats_has_the_cpp_fields(cache):
    cache.put("k", b"v")
    cache.get("k")
    cache.get("absent")
    s = cache.stats()
    for field in ("hits", "misses", "inserts", "updates", "evictions", "expirations",
                  "invalidations", "put_failures", "lock_recoveries", "entries",
                  "stale_entries", "bytes_used", "byte_budget", "max_entries", "arena_bytes",
                  "free_bytes", "largest_free_block", "fragmented_bytes", "attached_processes",
                  "segment_bytes", "created_unix_ms", "uptime_ms", "namespaces"):
        assert field in s, field
    assert s["hits"] == 1 and s["misses"] == 1 and s["inserts"] == 1
    assert s["byte_budget"] == 8 << 20
    assert s["entries"] == 1 and s["bytes_used"] > 0


def test_options_are_applied(segment_name):
    c = pipecache.Cache.create(segment_name, byte_budget=4 << 20, max_entries=100,
                               default_ttl=12.5, permissions=0o640)
    s = c.stats()
    assert s["byte_budget"] == 4 << 20 and s["max_entries"] == 100
    assert c.default_ttl == pytest.approx(12.5)
    import os
    import stat
    assert stat.S_IMODE(os.stat(pipecache.Cache.path_of(segment_name)).st_mode) == 0o640


def test_max_entries_evicts(segment_name):
    c = pipecache.Cache.create(segment_name, byte_budget="4M", max_entries=10)
    for i in range(50):
        c.put(f"k{i}", b"v")
    s = c.stats()
    assert s["entries"] <= 10
    assert s["evictions"] >= 40


def test_open_sees_the_same_entries(cache, segment_name):
    cache.put("k", b"shared")
    other = pipecache.Cache.open(segment_name)
    assert other.get("k") == b"shared"
    assert pipecache.Cache.open_or_create(segment_name).get("k") == b"shared"


def test_remove(segment_name):
    assert pipecache.Cache.remove(segment_name) is False
    pipecache.Cache.create(segment_name, byte_budget="4M")
    assert pipecache.Cache.exists(segment_name)
    assert pipecache.Cache.remove(segment_name) is True
    assert not pipecache.Cache.exists(segment_name)


# Errors: pipecache.Error with the C++ message and kind.

def test_create_existing_is_already_exists(cache, segment_name):
    with pytest.raises(pipecache.Error) as e:
        pipecache.Cache.create(segment_name)
    assert e.value.kind == "already_exists"
    assert segment_name in str(e.value)


def test_open_missing_is_not_found(segment_name):
    with pytest.raises(pipecache.Error) as e:
        pipecache.Cache.open(segment_name)
    assert e.value.kind == "not_found"
    assert segment_name in str(e.value)


def test_bad_name_is_invalid_argument():
    with pytest.raises(pipecache.Error) as e:
        pipecache.Cache.open_or_create("bad/name")
    assert e.value.kind == "invalid_argument"


def test_oversize_value_raises(segment_name):
    c = pipecache.Cache.create(segment_name, byte_budget="1M")
    with pytest.raises(pipecache.Error) as e:
        c.put("k", b"x" * (2 << 20))
    assert e.value.kind == "invalid_argument"
    assert c.get("k") is None


def test_bad_options_raise(segment_name):
    with pytest.raises(pipecache.Error, match="byte_budget"):
        pipecache.Cache.create(segment_name, byte_budget="64 parsecs")
    with pytest.raises(pipecache.Error, match="default_ttl"):
        pipecache.Cache.create(segment_name, default_ttl=-1)
    with pytest.raises(TypeError, match="colour"):
        pipecache.Cache.create(segment_name, colour="blue")
    assert not pipecache.Cache.exists(segment_name)


def test_bad_arguments_raise_type_error(cache):
    with pytest.raises(TypeError):
        cache.get(42)
    with pytest.raises(TypeError):
        cache.put("k", 42)
    with pytest.raises(pipecache.Error, match="ttl"):
        cache.put("k", b"v", ttl=-0.5)


def test_error_is_an_exception_with_kind():
    assert issubclass(pipecache.Error, Exception)
    assert pipecache.Error("raised by hand").kind is None
