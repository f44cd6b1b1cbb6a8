"""pipecache.Pipeline in one process: hits keep the handler's type, policies, invalidation,
warming, the decorator, configuration and exception propagation."""
import time
import traceback

import pytest

import pipecache


@pytest.fixture
def pipeline(segment_name):
    return pipecache.Pipeline(segment_name=segment_name, cache_memory_limit_mb=8)


class Counter:
    def __init__(self, value):
        self.calls = 0
        self.value = value

    def __call__(self):
        self.calls += 1
        return self.value


def test_hit_returns_str_when_the_handler_returned_str(pipeline):
    h = Counter("héllo")
    assert pipeline.process_request("t", {"a": "1"}, h) == "héllo"
    hit = pipeline.process_request("t", {"a": "1"}, h)
    assert hit == "héllo" and type(hit) is str and h.calls == 1


def test_hit_returns_bytes_when_the_handler_returned_bytes(pipeline):
    h = Counter(b"\x00\x02raw\x01")
    assert pipeline.process_request("t", {"a": "1"}, h) == b"\x00\x02raw\x01"
    hit = pipeline.process_request("t", {"a": "1"}, h)
    assert hit == b"\x00\x02raw\x01" and type(hit) is bytes and h.calls == 1


def test_params_make_the_key(pipeline):
    a, b = Counter("a"), Counter("b")
    assert pipeline.process_request("t", {"x": 1, "y": "2"}, a) == "a"
    assert pipeline.process_request("t", {"y": "2", "x": "1"}, b) == "a"  # same key
    assert pipeline.process_request("t", {"x": 2}, b) == "b"
    assert pipeline.process_request("t", None, Counter("none")) == "none"
    assert pipeline.cache_key("t", {"x": 1, "y": "2"}) == "t:x=1&y=2"


def test_handler_returning_other_types_is_a_type_error(pipeline):
    with pytest.raises(TypeError, match="str or bytes"):
        pipeline.process_request("t", {}, lambda: 42)


def test_handler_exception_propagates_unchanged(pipeline):
    class Boom(Exception):
        pass

    def failing_handler():
        raise Boom("from the handler")

    with pytest.raises(Boom) as e:
        pipeline.process_request("t", {"k": "1"}, failing_handler)
    frames = [f.name for f in traceback.extract_tb(e.value.__traceback__)]
    assert frames[-1] == "failing_handler"
    assert str(e.value) == "from the handler"
    # The lease was released: the next request computes at once.
    assert pipeline.process_request("t", {"k": "1"}, Counter("ok")) == "ok"
    assert pipeline.stats()["types"]["t"]["compute_failures"] == 1


def test_policy_ttl_expires(pipeline):
    import time
    pipeline.set_policy("short", ttl=0.15)
    first, second = Counter("1"), Counter("2")
    pipeline.process_request("short", {}, first)
    assert pipeline.process_request("short", {}, second) == "1"
    time.sleep(0.3)
    assert pipeline.process_request("short", {}, second) == "2"


def test_set_policy_keeps_fields_not_given(pipeline):
    pipeline.set_policy("t", ttl=30, stale_for=5, invalidation_triggers=["x_change"])
    pipeline.set_policy("t", deduplicate=False)
    p = pipeline.policy("t")
    assert p["ttl"] == 30 and p["stale_for"] == 5 and p["deduplicate"] is False
    assert p["invalidation_triggers"] == ["x_change"]
    with pytest.raises(TypeError, match="colour"):
        pipeline.set_policy("t", colour="blue")


def test_seed_policies_of_the_design(pipeline):
    assert pipeline.policy("events_by_range")["ttl"] == 300
    assert pipeline.policy("events_by_range")["batch_eligible"] is True


def test_invalidate_namespace(pipeline):
    for i in range(3):
        pipeline.process_request("a", {"i": i}, Counter("v"))
    pipeline.process_request("b", {}, Counter("v"))
    assert pipeline.invalidate("a:*") == 3
    h = Counter("new")
    assert pipeline.process_request("a", {"i": 0}, h) == "new" and h.calls == 1
    assert pipeline.process_request("b", {}, Counter("other")) == "v"


def test_handle_data_change_applies_triggers(pipeline):
    pipeline.set_policy("feed", ttl=60, invalidation_triggers=["post_added"])
    pipeline.process_request("feed", {"u": "1"}, Counter("old"))
    pipeline.process_request("feed", {"u": "2"}, Counter("old"))
    assert pipeline.handle_data_change("post_added") == 2
    assert pipeline.process_request("feed", {"u": "1"}, Counter("new")) == "new"
    assert pipeline.handle_data_change("nothing_listens") == 0


def test_invalidation_rules(pipeline):
    pipeline.set_invalidation_rule("custom", ["a:*"])
    assert pipeline.invalidation_rules()["custom"] == ["a:*"]
    pipeline.process_request("a", {}, Counter("old"))
    assert pipeline.handle_data_change("custom") == 1


def test_warm_stores_ahead(pipeline):
    pipeline.warm("t", {"k": "1"}, lambda: "warmed")
    h = Counter("computed")
    assert pipeline.process_request("t", {"k": "1"}, h) == "warmed" and h.calls == 0


def test_warm_ahead_fills_time_buckets(pipeline):
    pipeline.set_policy("clock", ttl=60, time_bucket=60)
    starts = []
    stored = pipeline.warm_ahead("clock", {}, lambda t: (starts.append(t), f"at {t}")[1])
    assert stored == 4 and len(starts) == 4
    assert all(s % 60 == 0 for s in starts)


def test_cached_decorator_builds_params_from_arguments(pipeline):
    calls = []

    @pipeline.cached("events_by_range")
    def events(start, end, tz="UTC"):
        calls.append((start, end, tz))
        return f"{start}..{end} {tz}"

    assert events("2024-01-01", "2024-01-31") == "2024-01-01..2024-01-31 UTC"
    assert events("2024-01-01", end="2024-01-31", tz="UTC") == "2024-01-01..2024-01-31 UTC"
    assert events("2024-01-01", "2024-02-29") == "2024-01-01..2024-02-29 UTC"
    assert len(calls) == 2
    assert events.__name__ == "events" and events.request_type == "events_by_range"
    keys = pipeline.cache.keys("events_by_range:*")
    assert "events_by_range:end=2024-01-31&start=2024-01-01&tz=UTC" in keys


def test_cached_decorator_on_methods_ignores_self(pipeline):
    class Repo:
        def __init__(self, tag):
            self.tag = tag

        @pipeline.cached("user")
        def user(self, uid):
            return f"{self.tag}:{uid}".encode()

    assert Repo("first").user(7) == b"first:7"
    assert Repo("second").user(7) == b"first:7"  # self is not part of the key


def test_stats(pipeline):
    pipeline.process_request("t", {}, Counter("v"))
    pipeline.process_request("t", {}, Counter("v"))
    s = pipeline.stats()
    assert s["cache_available"] is True and s["segment_name"] == pipeline.config["segment_name"]
    t = s["types"]["t"]
    assert t["requests"] == 2 and t["hits"] == 1 and t["misses"] == 1 and t["computes"] == 1
    assert t["hit_ratio"] == pytest.approx(0.5)
    assert s["store"]["entries"] >= 1
    assert set(s["local_fallbacks"]) >= {"caching_disabled", "segment_unavailable"}
    assert s["segment_reopened"] == 0


def test_a_removed_segment_is_created_again_and_counted(pipeline):
    name = pipeline.config["segment_name"]
    assert pipeline.process_request("t", {}, Counter("v")) == "v"
    assert pipecache.Cache.remove(name)
    deadline = time.monotonic() + 3
    while not pipecache.Cache.exists(name) and time.monotonic() < deadline:
        pipeline.process_request("t", {}, Counter("v"))  # about once a second, one checks
        time.sleep(0.01)
    assert pipecache.Cache.exists(name)
    assert pipeline.stats()["segment_reopened"] == 1


def test_config_keywords(segment_name):
    p = pipecache.Pipeline(segment_name=segment_name, cache_ttl=12, batch_timeout="20ms",
                           enable_request_batching=False, cache_memory_limit_mb=4,
                           dedup_max_wait=3.5)
    c = p.config
    assert c["cache_ttl"] == 12 and c["batch_timeout"] == pytest.approx(0.02)
    assert c["enable_request_batching"] is False and c["dedup_max_wait"] == 3.5
    assert p.cache.stats()["byte_budget"] == 4 << 20
    with pytest.raises(TypeError, match="colour"):
        pipecache.Pipeline(segment_name=segment_name, colour=1)
    with pytest.raises(pipecache.Error):
        pipecache.Pipeline(segment_name=segment_name, batch_size=0)


def test_from_environment(segment_name, monkeypatch):
    monkeypatch.setenv("PIPECACHE_NAME", segment_name)
    monkeypatch.setenv("CACHE_TTL_SECONDS", "42")
    p = pipecache.Pipeline.from_environment()
    assert p.config["segment_name"] == segment_name and p.config["cache_ttl"] == 42
    assert pipecache.Pipeline.from_environment(cache_ttl=7).config["cache_ttl"] == 7
    monkeypatch.setenv("CACHE_TTL_SECONDS", "soon")
    with pytest.raises(pipecache.Error, match="CACHE_TTL_SECONDS"):
        pipecache.Pipeline.from_environment()


def test_caching_disabled_always_computes(segment_name):
    p = pipecache.Pipeline(segment_name=segment_name, enable_response_caching=False)
    h = Counter("v")
    p.process_request("t", {}, h)
    p.process_request("t", {}, h)
    assert h.calls == 2 and p.cache is None and p.cache_available is False
    assert p.stats()["local_fallbacks"]["caching_disabled"] == 2


def test_batch_handler_answers_a_window(segment_name):
    import threading
    p = pipecache.Pipeline(segment_name=segment_name, batch_size=4, batch_timeout=0.5)
    batches = []

    def batch(params_list):
        batches.append(len(params_list))
        return [f"v{d['i']}" for d in params_list]

    p.register_batch_handler("events_by_range", batch)
    results = {}

    def ask(i):
        results[i] = p.process_request("events_by_range", {"i": i}, lambda: "alone")

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"v{i}" for i in range(4)}
    assert sum(batches) == 4
    p.register_batch_handler("events_by_range", None)


def test_rollout_zero_turns_caching_off_for_the_type(pipeline):
    pipeline.set_policy("t", ttl=60, rollout_percent=0)
    h = Counter("v")
    pipeline.process_request("t", {}, h)
    pipeline.process_request("t", {}, h)
    assert h.calls == 2 and pipeline.policy("t")["rollout_percent"] == 0
    with pytest.raises(pipecache.Error, match="rollout"):
        pipeline.set_policy("t", rollout_percent=150)


def test_batch_profiles_and_config_file(segment_name, tmp_path):
    p = pipecache.Pipeline(segment_name=segment_name,
                           batch_profiles={"tiny": {"batch_size": 2, "batch_timeout": "5ms"}})
    assert p.config["batch_profiles"]["tiny"] == {"batch_size": 2, "batch_timeout": 0.005,
                                                  "merge": "identical_keys"}
    assert "database_query" in p.config["batch_profiles"]  # the seeded ones stay
    p.set_policy("events_by_range", batch_profile="tiny")
    assert p.policy("events_by_range")["batch_profile"] == "tiny"
    missing = tmp_path / "absent.json"
    with pytest.raises(pipecache.Error, match="absent.json"):
        pipecache.Pipeline(segment_name=segment_name, config_file=str(missing))
    with pytest.raises(pipecache.Error, match="absent.json"):
        pipecache.Pipeline.from_file(str(missing))
