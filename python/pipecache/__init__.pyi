"""Type stubs of pipecache (the extension pipecache._native and its Python package)."""
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

Duration = Union[int, float, str]  # seconds, or text with a unit: "50ms", "5m"
Size = Union[int, str]             # bytes, or text with a suffix: "64M", "1G"
Text = Union[str, bytes]
Value = Union[str, bytes, bytearray, memoryview]
T = TypeVar("T", str, bytes)

class Error(Exception):
    """A failure reported by pipecache; str(e) names the segment and the problem."""
    kind: Optional[str]
    """invalid_argument, not_found, already_exists, incompatible, corrupt, no_space,
    permission_denied or system (None when raised from Python)."""

class Cache:
    """A handle on the shared-memory segment /dev/shm/pipecache.<name>.

    Thread- and process-safe; the GIL is released during every operation. Survives os.fork().
    """
    @staticmethod
    def create(name: str, *, byte_budget: Size = ..., max_entries: int = ...,
               default_ttl: Duration = ..., permissions: int = ..., stripes: int = ...) -> Cache:
        """Creates the segment (its whole size reserved up front). Error(kind="already_exists")
        if it exists. byte_budget bounds keys + values + per-entry overhead (default 64M);
        max_entries 0 = only the budget limits; default_ttl 0 = never expires (default 300 s);
        permissions: the file mode (default 0o600)."""
    @staticmethod
    def open(name: str) -> Cache:
        """Opens an existing segment; Error(kind="not_found"/"incompatible"/...) otherwise."""
    @staticmethod
    def open_or_create(name: str, *, byte_budget: Size = ..., max_entries: int = ...,
                       default_ttl: Duration = ..., permissions: int = ...,
                       stripes: int = ...) -> Cache:
        """Opens the segment, or creates it with these options; safe when many processes race."""
    @staticmethod
    def remove(name: str) -> bool:
        """Unlinks the segment name (open handles keep working). False if it did not exist."""
    @staticmethod
    def exists(name: str) -> bool: ...
    @staticmethod
    def path_of(name: str) -> str: ...
    def get(self, key: Text) -> Optional[bytes]:
        """The value (a copy), or None on a miss or after its TTL."""
    def put(self, key: Text, value: Value, ttl: Optional[Duration] = None) -> bool:
        """Stores value (str as UTF-8) for ttl seconds (None = the segment's default_ttl,
        0 = never expires). False when the write was dropped (no room could be made);
        Error(kind="invalid_argument") for a key or value larger than the store accepts."""
    def delete(self, key: Text) -> bool:
        """Removes the key; False if it was absent."""
    def invalidate(self, glob: Text) -> int:
        """Removes the keys matching glob (* and ?); "<type>:*" is O(1). Returns how many."""
    def clear(self) -> None: ...
    def purge(self) -> int:
        """Reclaims expired and invalidated entries now; returns how many."""
    def keys(self, glob: Text = "*", limit: Optional[int] = None) -> list[str]:
        """Keys holding a value that match glob (pending computations are not listed)."""
    def stats(self) -> dict[str, Any]:
        """The C++ Stats fields by name (hits, misses, inserts, updates, evictions,
        expirations, invalidations, put_failures, lock_recoveries, entries, stale_entries,
        bytes_used, byte_budget, max_entries, arena_bytes, free_bytes, largest_free_block,
        fragmented_bytes, attached_processes, segment_bytes, created_unix_ms, uptime_ms) and
        "namespaces": one dict per request type with its counters and latency summaries."""
    def healthy(self) -> bool: ...
    @property
    def name(self) -> str: ...
    @property
    def default_ttl(self) -> float: ...
    @property
    def max_value_size(self) -> int: ...
    @property
    def max_key_size(self) -> int: ...
    def __contains__(self, key: Text) -> bool: ...

class Pipeline:
    """Get-or-compute on a shared segment, for the workers of a prefork server.

    Keyword arguments are the C++ PipelineConfig fields: segment_name, enable_response_caching,
    cache_ttl, cache_max_size, cache_memory_limit_mb, enable_request_batching, batch_size,
    batch_timeout, enable_request_deduplication, lease_time, dedup_max_wait,
    default_stale_for, max_key_length (durations in seconds or as "50ms"). The segment is
    opened or created; if it cannot be, every request is computed directly (and counted).
    """
    def __init__(self, *, segment_name: str = ..., enable_response_caching: bool = ...,
                 cache_ttl: Duration = ..., cache_max_size: int = ...,
                 cache_memory_limit_mb: int = ..., enable_request_batching: bool = ...,
                 batch_size: int = ..., batch_timeout: Duration = ...,
                 enable_request_deduplication: bool = ..., lease_time: Duration = ...,
                 dedup_max_wait: Duration = ..., default_stale_for: Duration = ...,
                 max_key_length: int = ..., config_file: str = ...,
                 batch_profiles: Mapping[str, Mapping[str, Any]] = ...) -> None:
        """config_file: a JSON configuration applied first (PipelineConfig::load_file);
        batch_profiles: {"name": {"batch_size": 10, "batch_timeout": 0.05,
        "merge": "identical_keys" | "none"}} added to the seeded profiles."""
    @staticmethod
    def from_environment(**overrides: Any) -> Pipeline:
        """The configuration from PIPECACHE_* (and the design's ENABLE_RESPONSE_CACHING,
        CACHE_TTL_SECONDS, ...) variables, then the keyword overrides. Error naming the
        variable for a malformed value."""
    @staticmethod
    def from_file(path: str, **overrides: Any) -> Pipeline:
        """The configuration from a JSON file (README "Configuration file"), then the keyword
        overrides. Error naming the file, line and field for a bad file."""
    def process_request(self, request_type: str, params: Optional[Mapping[str, Any]],
                        handler: Callable[[], T]) -> T:
        """The cached answer for (request_type, params), or handler()'s, computed by one
        process at a time per key. A hit returns the type handler returned (str or bytes).
        handler's exceptions propagate unchanged. Param values are turned into text with
        str(). KeyboardInterrupt (or what a signal handler raises) ends a wait."""
    def warm(self, request_type: str, params: Optional[Mapping[str, Any]],
             handler: Callable[[], Union[str, bytes]]) -> None:
        """Computes and stores the value ahead of demand (replacing a cached one)."""
    def warm_ahead(self, request_type: str, params: Optional[Mapping[str, Any]],
                   handler: Callable[[float], Union[str, bytes]],
                   offsets_minutes: list[float] = ...) -> int:
        """For a time-bucketed type: handler(bucket_start_unix_seconds) for the buckets at
        now + each offset (default 0, 1, 2, 5 minutes). Returns how many values were stored."""
    def set_policy(self, request_type: str, *, ttl: Duration = ..., stale_for: Duration = ...,
                   deduplicate: bool = ..., batch_eligible: bool = ...,
                   invalidation_triggers: list[str] = ..., time_bucket: Duration = ...,
                   batch_profile: str = ..., rollout_percent: float = ...) -> None:
        """Sets the type's policy; fields not given keep their current value.
        rollout_percent (0..100): the share of the type's keys that are cached (a stable hash
        of the key decides); batch_profile names a config batch profile."""
    def policy(self, request_type: str) -> dict[str, Any]: ...
    def invalidate(self, pattern: str) -> int:
        """Removes cached answers: "<type>:*" (O(1)), "<prefix>*" for request types, or any
        glob over keys. Returns how many entries the store dropped."""
    def handle_data_change(self, change_type: str) -> int:
        """Applies the invalidation rules and the policies' triggers for change_type."""
    def set_invalidation_rule(self, change_type: str, patterns: list[str]) -> None: ...
    def invalidation_rules(self) -> dict[str, list[str]]: ...
    def register_batch_handler(self, request_type: str,
                               handler: Optional[Callable[[list[dict[str, str]]],
                                                          list[Union[str, bytes]]]]) -> None:
        """Batches the type's misses: handler(list of params) -> one value per params, called
        on the type's batcher thread (with the GIL). None removes it."""
    def cache_key(self, request_type: str, params: Optional[Mapping[str, Any]]) -> str: ...
    def stats(self) -> dict[str, Any]:
        """segment_name, cache_available, types (per request type: requests, hits, misses,
        stale_served, computes, dedup_waits, ..., hit_ratio), store (Cache.stats() or None),
        local_fallbacks (this process, by cause), segment_reopened (this process: times the
        segment's name was found removed or re-created and reopened)."""
    def cached(self, request_type: str, *, ignore: tuple[str, ...] = ...
               ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: the function's calls go through process_request(request_type, params
        bound from its arguments, ...)."""
    @property
    def config(self) -> dict[str, Any]: ...
    @property
    def cache_available(self) -> bool: ...
    @property
    def cache(self) -> Optional[Cache]: ...
