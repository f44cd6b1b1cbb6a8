#!/usr/bin/python3
"""The Python benchmark: a get hit from Python, side by side in one run.

    PYTHONPATH=build/python /usr/bin/python3 bench/python/bench.py [--seconds 1] [--reps 3]

Systems (each answers random gets of keys it holds, values checked on a sample first):
  dict          d[k] in the process: the limit for Python (no copy, no sharing)
  dict+copy     bytes(memoryview(d[k])): the limit when the caller gets its own bytes
  pipecache     Cache.get(k): a copy out of shared memory, GIL released
  pipeline      Pipeline.process_request(type, params, handler) answered by a hit
  diskcache     diskcache.Cache (SQLite files in a temp dir)
  redis         redis-py (+ hiredis parser when installed) over a unix socket
  memcached     pymemcache over a unix socket

Cells: 1 KiB values over 10,000 keys and 16 KiB values over 2,000 keys; 1 and 2 processes
(forked after the data is loaded, each with its own client; ops/s summed). Each cell runs
`--reps` times for `--seconds`, the systems interleaved within each repetition; the best
repetition is reported (on a shared host other jobs only ever slow a run down; the JSON keeps
every run and the median). redis-server and memcached are started
on unix sockets in a temporary directory and stopped by PID at exit.

Goals (DESIGN.md section 7): pipecache get within 3x of the dict lookup; >= 20x faster than diskcache,
redis-py and pymemcache, judged on CPU ns per get (client + server processes), which other
jobs on a shared host disturb far less than wall-clock ops/s. The verdict lines say whether
this run met them. Exit status 0 when
every cell read correct values (the goals are reported, not asserted), 1 otherwise.
"""
import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import pipecache

KEY_SETS = {1024: 10_000, 16384: 2_000}  # value size -> number of keys
SEQUENCE = 1 << 16                      # pre-drawn random key indices, walked in a loop


def value_for(i, size):
    """A self-checking value: its key index, repeated (a wrong or torn value is detected)."""
    stamp = f"{i:08d}|".encode()
    return (stamp * (size // len(stamp) + 1))[:size]


class Servers:
    """redis-server and memcached on unix sockets in a temp dir, stopped by PID."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []
        self.redis_sock = os.path.join(tmp, "redis.sock")
        self.memcached_sock = os.path.join(tmp, "memcached.sock")

    def start(self, names):
        if "redis" in names and shutil.which("redis-server"):
            self.procs.append(subprocess.Popen(
                ["redis-server", "--port", "0", "--unixsocket", self.redis_sock,
                 "--save", "", "--appendonly", "no", "--maxmemory", "512mb"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if "memcached" in names and shutil.which("memcached"):
            cmd = ["memcached", "-s", self.memcached_sock, "-m", "512", "-I", "1m"]
            if os.geteuid() == 0:
                cmd += ["-u", "root"]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.DEVNULL))
        deadline = time.monotonic() + 10
        for path in (self.redis_sock, self.memcached_sock):
            if not any(path in " ".join(p.args) for p in self.procs):
                continue
            while time.monotonic() < deadline:
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(path)
                    break
                except OSError:
                    time.sleep(0.02)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()


class Ctx:
    def __init__(self, tmp, servers, segment):
        self.tmp = tmp
        self.servers = servers
        self.segment = segment


# Each system: load(ctx, keys, values) in the parent, then reader(ctx) -> get(key) -> bytes,
# created in each measuring process after fork (sockets and SQLite handles are per process).

def dict_system(copy):
    store = {}

    def load(ctx, keys, values):
        store.clear()
        store.update(zip(keys, values))

    def reader(ctx):
        if copy:
            return lambda k: bytes(memoryview(store[k]))
        return store.__getitem__
    return load, reader


def pipecache_load(ctx, keys, values):
    pipecache.Cache.remove(ctx.segment)
    budget = sum(len(k) + len(v) + 64 for k, v in zip(keys, values)) * 2 + (8 << 20)
    ctx.cache = pipecache.Cache.create(ctx.segment, byte_budget=budget, default_ttl=0)
    for k, v in zip(keys, values):
        assert ctx.cache.put(k, v), "pipecache dropped a value while loading"


def pipecache_reader(ctx):
    return ctx.cache.get


def pipeline_load(ctx, keys, values):
    pipecache.Cache.remove(ctx.segment + "-p")
    budget_mb = sum(len(k) + len(v) + 128 for k, v in zip(keys, values)) * 2 // (1 << 20) + 8
    ctx.pipeline = pipecache.Pipeline(segment_name=ctx.segment + "-p",
                                      cache_memory_limit_mb=budget_mb,
                                      cache_max_size=0, enable_request_batching=False)
    ctx.pipeline.set_policy("bench", ttl=0)
    ctx.params = {}
    for k, v in zip(keys, values):
        ctx.params[k] = {"k": k}
        ctx.pipeline.process_request("bench", ctx.params[k], lambda v=v: v)


def pipeline_reader(ctx):
    p, params = ctx.pipeline, ctx.params

    def miss():
        raise AssertionError("process_request missed during the hit benchmark")
    return lambda k: p.process_request("bench", params[k], miss)


def diskcache_load(ctx, keys, values):
    import diskcache
    path = os.path.join(ctx.tmp, "diskcache")
    shutil.rmtree(path, ignore_errors=True)
    with diskcache.Cache(path, size_limit=1 << 30) as c:
        for k, v in zip(keys, values):
            c.set(k, v)
    ctx.diskcache_path = path


def diskcache_reader(ctx):
    import diskcache
    c = diskcache.Cache(ctx.diskcache_path)
    return c.get


def redis_client(ctx):
    import redis
    return redis.Redis(unix_socket_path=ctx.servers.redis_sock, socket_timeout=10)


def redis_load(ctx, keys, values):
    r = redis_client(ctx)
    r.flushall()
    for i in range(0, len(keys), 500):
        pipe = r.pipeline(transaction=False)
        for k, v in zip(keys[i:i + 500], values[i:i + 500]):
            pipe.set(k, v)
        pipe.execute()


def redis_reader(ctx):
    return redis_client(ctx).get


def memcached_client(ctx):
    from pymemcache.client.base import Client
    return Client(ctx.servers.memcached_sock, timeout=10, connect_timeout=10)


def memcached_load(ctx, keys, values):
    c = memcached_client(ctx)
    c.flush_all()
    # In slices: set_many writes every command before reading a reply, so one call with
    # megabytes of values fills both socket buffers and never returns.
    for i in range(0, len(keys), 100):
        failed = c.set_many(dict(zip(keys[i:i + 100], values[i:i + 100])), noreply=False)
        assert not failed, f"memcached refused {len(failed)} keys"


def memcached_reader(ctx):
    return memcached_client(ctx).get


SYSTEMS = {
    "dict": dict_system(copy=False),
    "dict+copy": dict_system(copy=True),
    "pipecache": (pipecache_load, pipecache_reader),
    "pipeline": (pipeline_load, pipeline_reader),
    "diskcache": (diskcache_load, diskcache_reader),
    "redis": (redis_load, redis_reader),
    "memcached": (memcached_load, memcached_reader),
}


def available(name, servers):
    try:
        if name == "diskcache":
            import diskcache  # noqa: F401
        if name == "redis":
            import redis  # noqa: F401
            return os.path.exists(servers.redis_sock)
        if name == "memcached":
            import pymemcache  # noqa: F401
            return os.path.exists(servers.memcached_sock)
    except ImportError:
        return False
    return True


def measure(get, key_seq, seconds):
    """Gets of the keys in key_seq, in order and round again, for `seconds`; returns ops/s.
    The loop is a plain for over a list (the clock is read every 4096 gets), so the dict row
    is the cost of a lookup plus the loop's own ~20-30 ns."""
    chunks = [key_seq[i:i + 4096] for i in range(0, len(key_seq), 4096)]
    ops = 0
    start = time.perf_counter()
    cpu_start = time.process_time()
    deadline = start + seconds
    while True:
        for chunk in chunks:
            for k in chunk:
                get(k)
            ops += len(chunk)
            now = time.perf_counter()
            if now >= deadline:
                return ops / (now - start), ops, time.process_time() - cpu_start


def check(get, keys, size, sample=200):
    """True when a sample of keys reads back its self-checking value."""
    rng = random.Random(7)
    for i in rng.sample(range(len(keys)), min(sample, len(keys))):
        v = get(keys[i])
        if isinstance(v, str):
            v = v.encode()
        if v != value_for(i, size):
            return False
    return True


def server_cpu_seconds(ctx):
    """CPU time used so far by redis-server and memcached (their share of a get's cost)."""
    total = 0
    for p in ctx.servers.procs:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def run_cell(ctx, reader, keys, size, procs, seconds):
    """ops/s summed over `procs` forked processes (each checks its values first), or None."""
    children = []
    server_cpu0 = server_cpu_seconds(ctx)
    for p in range(procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            code = 0
            try:
                get = reader(ctx)
                ok = check(get, keys, size)
                rng = random.Random(1000 + p)
                key_seq = [keys[rng.randrange(len(keys))] for _ in range(SEQUENCE)]
                measure(get, key_seq, min(0.1, seconds))  # warm up
                rate, ops, cpu = measure(get, key_seq, seconds) if ok else (0, 0, 0)
                result = {"ok": ok, "ops": rate, "count": ops, "cpu": cpu}
            except BaseException as e:  # report to the parent, never unwind into it
                result = {"ok": False, "ops": 0, "error": repr(e)}
                code = 1
            os.write(w, json.dumps(result).encode())
            os._exit(code)
        os.close(w)
        children.append((pid, r))
    total = 0.0
    count = 0
    cpu = 0.0
    ok = True
    for pid, r in children:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        res = json.loads(data or b'{"ok": false, "ops": 0, "error": "no report"}')
        if not res["ok"]:
            print(f"    wrong or missing values: {res.get('error', 'value check failed')}",
                  file=sys.stderr)
            ok = False
        total += res["ops"]
        count += res.get("count", 0)
        cpu += res.get("cpu", 0)
    server_cpu = server_cpu_seconds(ctx) - server_cpu0
    return (total, (cpu + server_cpu) * 1e9 / max(1, count)) if ok else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--systems", default=",".join(SYSTEMS))
    ap.add_argument("--sizes", default="1024,16384")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    names = [s for s in args.systems.split(",") if s]
    for n in names:
        if n not in SYSTEMS:
            ap.error(f"unknown system {n} ({', '.join(SYSTEMS)})")
    sizes = [int(s) for s in args.sizes.split(",")]
    procs_list = [int(p) for p in args.procs.split(",")]

    tmp = tempfile.mkdtemp(prefix="pipecache-pybench.")
    servers = Servers(tmp)
    ctx = Ctx(tmp, servers, f"pybench-{os.getpid()}")
    results = []
    failed = False
    try:
        servers.start(names)
        print(f"python {sys.version.split()[0]} ({sys.executable}), pipecache from "
              f"{os.path.dirname(pipecache.__file__)}, {os.cpu_count()} cpus, "
              f"best of {args.reps} x {args.seconds} s per cell (systems interleaved)")
        for size in sizes:
            nkeys = KEY_SETS.get(size, 10_000)
            keys = [f"bench:{i:08d}" for i in range(nkeys)]
            values = [value_for(i, size) for i in range(nkeys)]
            present = []
            for name in names:
                if not available(name, servers):
                    print(f"  {name}: not available, skipped")
                    continue
                SYSTEMS[name][0](ctx, keys, values)
                present.append(name)
            # Repetitions outermost, systems interleaved: a burst of load from other jobs on
            # the host slows one repetition of every system, not every repetition of one.
            for procs in procs_list:
                runs = {name: [] for name in present}
                for _ in range(args.reps):
                    for name in present:
                        runs[name].append(run_cell(ctx, SYSTEMS[name][1], keys, size, procs,
                                                   args.seconds))
                for name in present:
                    if any(r is None for r in runs[name]):
                        failed = True
                        continue
                    # Only the running system's server burns CPU during its cell, so the
                    # servers' CPU delta is charged to it (dict/pipecache cells: ~0).
                    if name not in ("redis", "memcached"):
                        runs[name] = [(ops, cpu_ns) for ops, cpu_ns in runs[name]]
                    results.append({"system": name, "size": size, "procs": procs,
                                    "ops": max(r[0] for r in runs[name]),
                                    "cpu_ns": min(r[1] for r in runs[name]),
                                    "median_ops": statistics.median(r[0] for r in runs[name]),
                                    "runs": runs[name]})
            pipecache.Cache.remove(ctx.segment)
            pipecache.Cache.remove(ctx.segment + "-p")
    finally:
        servers.stop()
        pipecache.Cache.remove(ctx.segment)
        pipecache.Cache.remove(ctx.segment + "-p")
        shutil.rmtree(tmp, ignore_errors=True)

    report(results, sizes, procs_list, names)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "python": sys.version, "seconds": args.seconds,
                       "reps": args.reps}, f, indent=1)
    return 1 if failed else 0


def report(results, sizes, procs_list, names):
    """Two figures per cell: wall ops/s (summed over processes; on a busy host it depends on
    how much CPU the run was given) and CPU ns per get (client + server processes: the cost of
    a get, which other jobs on the host do not change). The goals are judged on CPU ns."""
    ops = {(r["system"], r["size"], r["procs"]): r["ops"] for r in results}
    cpu = {(r["system"], r["size"], r["procs"]): r["cpu_ns"] for r in results}
    print()
    print("| system | value | procs | ops/s (wall) | CPU ns/get | vs dict | pipecache get is |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for size in sizes:
        for procs in procs_list:
            base = cpu.get(("dict", size, procs))
            ours = cpu.get(("pipecache", size, procs))
            for name in names:
                c = cpu.get((name, size, procs))
                if c is None:
                    continue
                vs = f"{c / base:.2f}x" if base else "-"
                faster = f"{c / ours:.1f}x faster" if ours and name != "pipecache" else ""
                print(f"| {name} | {size // 1024} KiB | {procs} | {ops[(name, size, procs)]:,.0f} | "
                      f"{c:,.0f} | {vs} | {faster} |")
    print()
    for size in sizes:
        for procs in procs_list:
            base = cpu.get(("dict", size, procs))
            for ours_name in ("pipecache", "pipeline"):
                ours = cpu.get((ours_name, size, procs))
                if not (base and ours):
                    continue
                verdict = [f"{ours_name} {size // 1024} KiB x{procs}: {ours / base:.2f}x the "
                           f"dict's CPU per get (goal <= 3x: "
                           f"{'met' if ours / base <= 3 else 'NOT met'})"]
                for other in ("diskcache", "redis", "memcached"):
                    o = cpu.get((other, size, procs))
                    if o:
                        verdict.append(f"{o / ours:.0f}x cheaper than {other} "
                                       f"({'met' if o / ours >= 20 else 'NOT met'})")
                print("; ".join(verdict))


if __name__ == "__main__":
    sys.exit(main())
