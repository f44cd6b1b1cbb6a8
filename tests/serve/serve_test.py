#!/usr/bin/python3
"""`pipectl serve` over HTTP, as Prometheus and a script use it.

Usage: serve_test.py CASE   (environment: PIPECTL, SERVE_LOAD = the built programs)
Each case is one meson test. Segments and servers are private to the case and removed after.
Run with Debian's /usr/bin/python3: the Prometheus text is checked by python3-prometheus-client's
parser (the reference implementation's), not by this test's own reading of it.
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

PIPECTL = os.environ["PIPECTL"]
SERVE_LOAD = os.environ["SERVE_LOAD"]
# Loopback only, never through a proxy from the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def pipectl(*args, stdin=None, ok=True):
    r = subprocess.run([PIPECTL, *args], input=stdin, capture_output=True, text=True, timeout=30)
    if ok and r.returncode != 0:
        raise Failure(f"pipectl {' '.join(args)} -> {r.returncode}: {r.stderr.strip()}")
    return r


class Segment:
    def __init__(self, tag, budget="4MiB"):
        self.name = f"serve-{tag}-{os.getpid()}"
        pipectl("create", "--name", self.name, "--budget", budget)

    def destroy(self):
        pipectl("destroy", "--name", self.name, ok=False)


class Server:
    """pipectl serve on a free loopback port; stopped by PID."""

    def __init__(self, *args, env=None):
        self.proc = subprocess.Popen([PIPECTL, "serve", "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if not m:
            self.proc.kill()
            raise Failure(f"pipectl serve did not start: {line!r} {self.proc.stderr.read()!r}")
        self.base = f"http://127.0.0.1:{m.group(1)}"

    def request(self, path, method="GET", headers=None):
        req = urllib.request.Request(self.base + path, method=method, headers=headers or {},
                                     data=b"" if method == "POST" else None)
        try:
            with OPENER.open(req, timeout=10) as r:
                return r.status, r.headers.get("Content-Type", ""), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type", ""), e.read().decode()

    def get(self, path):
        status, ctype, body = self.request(path)
        check(status == 200, f"GET {path}: HTTP {status} {body[:200]}")
        return ctype, body

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise Failure("pipectl serve did not stop within 10 s of SIGTERM")
        return self.proc.returncode


def families(text):
    """name -> family, failing on a family declared twice (which Prometheus rejects)."""
    out = {}
    for f in text_string_to_metric_families(text):
        check(f.name not in out, f"family {f.name} appears twice")
        out[f.name] = f
    types = re.findall(r"^# TYPE (\S+)", text, re.M)
    check(len(types) == len(set(types)), "a # TYPE line is repeated")
    return out


def run_load(segment, seconds):
    subprocess.run([SERVE_LOAD, segment.name, str(seconds)], check=True, timeout=60,
                   stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------

def metrics_match_stats_prometheus():
    seg = Segment("metrics")
    server = None
    try:
        run_load(seg, 1.5)  # request types, histograms, evictions, invalidations
        server = Server("--name", seg.name)
        ctype, scraped = server.get("/metrics")
        check(ctype.startswith("text/plain; version=0.0.4"), f"content type {ctype}")
        cli = pipectl("stats", "--name", seg.name, "--format", "prometheus").stdout
        served, expected = families(scraped), families(cli)
        check(set(served) == set(expected),
              f"families differ: {sorted(set(served) ^ set(expected))}")
        # Nothing runs against the segment now: every sample but the uptime agrees.
        for name, fam in expected.items():
            if name == "pipecache_uptime_seconds":
                continue
            got = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in served[name].samples}
            want = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
            check(got == want, f"{name}: served samples differ from pipectl stats")
        check(served["pipecache_hits"].samples[0].value > 0, "no hits recorded under load")
        check(served["pipecache_evictions"].samples[0].value > 0, "the load did not evict")
        types = {s.labels["type"] for s in served["pipecache_requests"].samples}
        check({"user_profile", "feed", "search"} <= types, f"request types {types}")
        # Histograms: cumulative buckets never decrease and +Inf equals _count.
        for fam in (served["pipecache_hit_duration_seconds"],
                    served["pipecache_compute_duration_seconds"]):
            by_type = {}
            for s in fam.samples:
                by_type.setdefault(s.labels["type"], []).append(s)
            for t, samples in by_type.items():
                buckets = [s.value for s in samples if s.name.endswith("_bucket")]
                count = [s.value for s in samples if s.name.endswith("_count")][0]
                check(buckets == sorted(buckets), f"{fam.name} {t}: buckets decrease")
                check(buckets[-1] == count, f"{fam.name} {t}: +Inf bucket != count")
        computes = {s.labels["type"]: s.value
                    for s in served["pipecache_compute_duration_seconds"].samples
                    if s.name.endswith("_count")}
        check(computes["search"] > 0, "no compute times recorded")
    finally:
        if server:
            server.stop()
        seg.destroy()


def all_segments_in_one_document():
    a, b = Segment("all-a"), Segment("all-b")
    c = None
    server = None
    try:
        pipectl("set", "--name", a.name, "k:1", "x")
        pipectl("set", "--name", b.name, "k:1", "y")
        pipectl("set", "--name", b.name, "k:2", "z")
        server = Server("--all")
        fams = families(server.get("/metrics")[1])
        entries = {s.labels["segment"]: s.value for s in fams["pipecache_entries"].samples}
        check(entries.get(a.name) == 1 and entries.get(b.name) == 2, f"entries {entries}")
        # Found again on every scrape: a new segment appears, a destroyed one disappears.
        c = Segment("all-c")
        a.destroy()
        fams = families(server.get("/metrics")[1])
        names = {s.labels["segment"] for s in fams["pipecache_entries"].samples}
        check(c.name in names and a.name not in names and b.name in names, f"segments {names}")
        # Other tests' segments come and go between the two scrapes (meson runs suites in
        # parallel): compare what each says about this test's own three.
        ours = {a.name, b.name, c.name}
        stats = json.loads(server.get("/api/stats")[1])
        listed = {s["segment"] for s in stats["segments"]} & ours
        check(listed == names & ours == {b.name, c.name}, f"api/stats lists {listed}, /metrics {names & ours}")
        check(pipectl("serve", "--all", "--name", b.name, ok=False).returncode == 2,
              "--all with --name accepted")
    finally:
        if server:
            server.stop()
        for s in (a, b, c):
            if s:
                s.destroy()


def api_stats_json():
    seg = Segment("json")
    server = None
    try:
        for i in range(10):
            pipectl("set", "--name", seg.name, f"page:{i}", "v" * 100)
        pipectl("get", "--name", seg.name, "page:1")
        pipectl("get", "--name", seg.name, "page:missing", ok=False)
        pipectl("invalidate", "--name", seg.name, "page:1*")
        pipectl("invalidate", "--name", seg.name, "page:9")
        server = Server("--name", seg.name)
        ctype, body = server.get("/api/stats")
        check(ctype.startswith("application/json"), f"content type {ctype}")
        data = json.loads(body)
        check(data["writes_allowed"] is False, "writes allowed by default")
        check(abs(data["time_unix_ms"] / 1000 - time.time()) < 60, "time_unix_ms is not now")
        (s,) = data["segments"]
        check(s["segment"] == seg.name and s["hits"] == 1 and s["misses"] == 1,
              f"hits {s['hits']} misses {s['misses']}")
        check(s["byte_budget"] == 4 << 20 and s["bytes_used"] > 1000, "memory figures")
        inv = s["recent_invalidations"]
        check(inv[0]["pattern"] == "page:9" and inv[0]["removed"] == 1,
              f"newest invalidation first: {inv}")
        check(len(inv) == 2 and inv[1]["pattern"] == "page:1*", f"invalidations {inv}")
        check(inv[0]["unix_ms"] >= inv[1]["unix_ms"], "invalidation times out of order")
        check(inv[1]["removed"] == 1 and s["entries"] == 8, f"entries {s['entries']}, {inv}")
        # The page itself: self-contained (nothing loaded from elsewhere).
        ctype, page = server.get("/")
        check(ctype.startswith("text/html"), f"page content type {ctype}")
        check(re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page) is None,
              "the page loads something from another host")
        check('id="hit-ratio"' in page and "api/stats" in page, "not the status page")
        status, _, _ = server.request("/nothing-here")
        check(status == 404, f"unknown path: HTTP {status}")
    finally:
        if server:
            server.stop()
        seg.destroy()


def read_only_by_default():
    seg = Segment("ro")
    server = None
    try:
        pipectl("set", "--name", seg.name, "k:1", "x")
        server = Server("--name", seg.name)
        for path in ("/api/clear", "/api/invalidate?pattern=*"):
            status, _, body = server.request(path, method="POST",
                                             headers={"Authorization": "Bearer " + "x" * 20})
            check(status == 403 and "allow-writes" in body, f"POST {path}: HTTP {status} {body}")
        check(pipectl("get", "--name", seg.name, "k:1").stdout == "x", "a read-only server wrote")
    finally:
        if server:
            server.stop()
        seg.destroy()


def writes_need_the_token():
    seg = Segment("rw")
    server = None
    token = "s3cret-token-0123456789"
    try:
        for key in ("a:1", "a:10", "a:11", "a:2", "a:3", "a:4"):
            pipectl("set", "--name", seg.name, key, "x")
        r = pipectl("serve", "--name", seg.name, "--listen", "127.0.0.1:0", "--allow-writes",
                    ok=False)
        check(r.returncode == 2 and "token" in r.stderr, f"--allow-writes without a token: {r}")
        with tempfile.NamedTemporaryFile("w", suffix=".token") as f:
            f.write("short\n")
            f.flush()
            r = pipectl("serve", "--name", seg.name, "--listen", "127.0.0.1:0",
                        "--allow-writes", "--token-file", f.name, ok=False)
            check(r.returncode == 2, "a 5-character token accepted")
        server = Server("--name", seg.name, "--allow-writes", env={"PIPECTL_SERVE_TOKEN": token})
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"},
                        {"Authorization": token}, {"Authorization": "Bearer " + token[:-1]}):
            status, _, _ = server.request("/api/clear", "POST", headers)
            check(status == 401, f"clear with {headers}: HTTP {status}")
        check(len(pipectl("keys", "--name", seg.name).stdout.splitlines()) == 1 + 6,
              "a refused request changed the cache")
        auth = {"Authorization": "Bearer " + token}
        status, _, body = server.request("/api/invalidate?pattern=a:1%2A", "POST", auth)
        check(status == 200 and json.loads(body)["removed"] == 3, f"invalidate: {status} {body}")
        status, _, body = server.request(f"/api/invalidate?pattern=*&segment=other", "POST", auth)
        check(status == 400 and "not served" in body, f"other segment: {status} {body}")
        status, _, body = server.request("/api/clear", "POST", auth)
        check(status == 200, f"clear: {status} {body}")
        check(len(pipectl("keys", "--name", seg.name).stdout.splitlines()) <= 1, "clear left keys")
        inv = json.loads(server.get("/api/stats")[1])["segments"][0]["recent_invalidations"]
        check(inv[0]["clear"] and inv[0]["removed"] == 3 and inv[1]["pattern"] == "a:1*",
              f"writes not in recent invalidations: {inv}")
        check(server.stop() == 0, "serve did not exit 0 on SIGTERM")
        server = None
    finally:
        if server:
            server.stop()
        seg.destroy()


def usage_errors():
    seg = Segment("usage")
    try:
        for listen in ("nonsense", "127.0.0.1:99999", ":80", "127.0.0.1:"):
            r = pipectl("serve", "--name", seg.name, "--listen", listen, ok=False)
            check(r.returncode == 2 and "--listen" in r.stderr, f"--listen {listen}: {r}")
        r = pipectl("serve", "--name", "serve-absent-" + str(os.getpid()), "--listen",
                    "127.0.0.1:0", ok=False)
        check(r.returncode == 3, f"missing segment: {r.returncode}")
        help_text = pipectl("serve", "--help").stdout
        check("127.0.0.1:9180" in help_text, "loopback default not in --help")
        # An address in use is a clear error, not a crash.
        server = Server("--name", seg.name)
        try:
            port = server.base.rsplit(":", 1)[1]
            r = pipectl("serve", "--name", seg.name, "--listen", f"127.0.0.1:{port}", ok=False)
            check(r.returncode == 3 and "cannot listen" in r.stderr, f"port in use: {r}")
        finally:
            server.stop()
    finally:
        seg.destroy()


def owner_is_honoured_on_every_request():
    """A segment of another owner (workers as `nobody`), served with --owner: every request's
    open trusts that owner as the start-up check did, for --name and for --all."""
    if os.geteuid() != 0:
        print("not root: cannot give a segment to another owner here; nothing checked")
        return
    import pwd
    nobody = pwd.getpwnam("nobody")
    seg = Segment("owner")
    servers = []
    try:
        pipectl("set", "--name", seg.name, "page:1", "v")
        os.chown(f"/dev/shm/pipecache.{seg.name}", nobody.pw_uid, nobody.pw_gid)
        r = pipectl("serve", "--name", seg.name, "--listen", "127.0.0.1:0", ok=False)
        check(r.returncode != 0 and "nobody" in r.stderr, f"served without --owner: {r}")
        for args in (["--name", seg.name], ["--all"]):
            server = Server(*args, "--owner", "nobody")
            servers.append(server)
            for _ in range(2):  # the first request opens, the second reuses or reopens
                data = json.loads(server.get("/api/stats")[1])
                names = [s["segment"] for s in data["segments"]]
                check(seg.name in names, f"{args}: {seg.name} not served: {names}, errors {data['errors']}")
                check(not [e for e in data["errors"] if e["segment"] == seg.name], f"{args}: {data['errors']}")
                check(f'segment="{seg.name}"' in server.get("/metrics")[1], f"{args}: not in /metrics")
    finally:
        for server in servers:
            server.stop()
        seg.destroy()


CASES = {f.__name__: f for f in (metrics_match_stats_prometheus, all_segments_in_one_document,
                                  api_stats_json, read_only_by_default, writes_need_the_token,
                                  usage_errors, owner_is_honoured_on_every_request)}

if __name__ == "__main__":
    case = CASES[sys.argv[1]]
    try:
        case()
    except Failure as e:
        print(f"FAIL {sys.argv[1]}: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"ok {sys.argv[1]}")
