"""pipecache: a response cache in shared memory for the worker processes of one host.

Every process that opens the same segment name sees the same entries: a value computed by
one gunicorn / uWSGI worker is a sub-microsecond hit in all the others.

    import pipecache

    cache = pipecache.Cache.open_or_create("myapp", byte_budget="64M", default_ttl=300)
    cache.put("user:42", b"...")
    cache.get("user:42")            # -> b"..." (None on a miss)

    pipeline = pipecache.Pipeline(segment_name="myapp")
    pipeline.set_policy("events_by_range", ttl=300, invalidation_triggers=["data_refresh"])

    @pipeline.cached("events_by_range")
    def events_by_range(start: str, end: str) -> str:
        return render(query(start, end))   # computed once per key across all workers

Cache is the store (get / put / delete / invalidate / clear / keys / stats). Pipeline is
get-or-compute on it: on a miss exactly one process runs the handler while the others wait
for its value; per-type policies set TTL, stale window, de-duplication and invalidation.

Threads and processes: the GIL is released during every store operation and while a request
waits for another process; handlers run with the GIL held, and their exceptions reach the
caller unchanged. Cache and Pipeline objects stay valid in a child after os.fork()
(gunicorn's preload_app, uWSGI without lazy-apps). Failures of the store raise
pipecache.Error (with .kind); a Pipeline never fails a request because of the cache: it
computes instead, and counts the fallback.
"""
from ._native import Cache, Error, Pipeline
from ._decorator import cached as _cached

# The decorator is plain Python: it binds the function's arguments into request params.
Pipeline.cached = _cached

__all__ = ["Cache", "Error", "Pipeline"]
for _cls in (Cache, Error, Pipeline):
    _cls.__module__ = "pipecache"
del _cls
