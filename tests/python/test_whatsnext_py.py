"""The gunicorn What's Next example (examples/whatsnext-py): its routes under gunicorn with
two sync workers sharing one segment, cache on; a hit's body equals the computed one."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import pipecache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "whatsnext-py")

pytest.importorskip("flask")
pytest.importorskip("gunicorn")
pytest.importorskip("dateutil")


ADMIN_TOKEN = "s3cret-token"


def start(tmp, workers, extra_env):
    """Starts the example under gunicorn; yields its request function, stops it by PID."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    segment = f"pyt-whatsnext-{os.getpid()}-{tmp.name}"
    pkg = os.path.dirname(os.path.dirname(pipecache.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([pkg, EXAMPLE]),
               WHATSNEXT_DB=str(tmp / "cal.sqlite"), WHATSNEXT_BIND=f"127.0.0.1:{port}",
               WHATSNEXT_WORKERS=str(workers), PIPECACHE_NAME=segment, **extra_env)
    log = open(tmp / "gunicorn.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c",
                             os.path.join(EXAMPLE, "gunicorn.conf.py"), "app:app"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)

    def request(method, path, body=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        finally:
            c.close()

    request.db = tmp / "cal.sqlite"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, open(log.name).read()
            time.sleep(0.1)
        yield request
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
        pipecache.Cache.remove(segment)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from start(tmp_path_factory.mktemp("whatsnext-py"), 2,
                     {"WHATSNEXT_ALLOW_DEBUG_TIME": "1", "WHATSNEXT_ADMIN_TOKEN": ADMIN_TOKEN})


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory):
    """As deployed: no debug_time, no admin token."""
    yield from start(tmp_path_factory.mktemp("whatsnext-py-plain"), 1, {})


def test_whats_next_hit_equals_computed(server):
    path = "/api/whats-next/data?debug_time=2026-12-04T12:00&layout=full"
    s1, b1, h1 = server("GET", path)
    s2, b2, h2 = server("GET", path)
    assert s1 == s2 == 200 and b1 == b2
    assert (h1["X-Pipecache"], h2["X-Pipecache"]) == ("computed", "hit")
    view = json.loads(b1)
    assert view["now"] == "2026-12-04T12:00:00Z"
    assert [o["summary"] for o in view["current"]] == ["Lunch"]


def test_every_layout_and_spelling_of_a_time(server):
    for layout in ("full", "compact", "agenda"):
        assert server("GET", f"/api/whats-next/data?debug_time=1796385600&layout={layout}")[0] == 200
    # Two spellings of one instant share one key: the second is a hit.
    _, b1, _ = server("GET", "/api/whats-next/data?debug_time=2026-12-07T08:00:00Z")
    _, b2, h2 = server("GET", "/api/whats-next/data?debug_time=1796630400")
    assert b1 == b2 and h2["X-Pipecache"] == "hit"


def test_events_range_served_across_workers(server):
    path = "/api/events?start=2026-12-01&end=2026-12-08"
    bodies, pids = set(), set()
    for _ in range(6):
        status, body, headers = server("GET", path)
        assert status == 200
        bodies.add(body)
        pids.add(headers["X-Worker-Pid"])
    assert len(bodies) == 1
    events = json.loads(bodies.pop())["events"]
    assert any(e["uid"] == "standup@example.org" for e in events)


def test_settings_change_invalidates(server):
    status, body, _ = server("GET", "/api/settings")
    assert status == 200 and json.loads(body)["max_events"] == 5
    server("GET", "/api/whats-next/data?debug_time=2026-12-02T12:00")
    status, _, _ = server("PUT", "/api/settings", json.dumps({"max_events": 2, "title": "Soon"}))
    assert status == 200
    assert json.loads(server("GET", "/api/settings")[1])["title"] == "Soon"
    _, body, headers = server("GET", "/api/whats-next/data?debug_time=2026-12-02T12:00")
    assert headers["X-Pipecache"] == "computed"
    assert json.loads(body)["title"] == "Soon" and len(json.loads(body)["next"]) == 2
    server("PUT", "/api/settings", json.dumps({"max_events": 5, "title": "What's Next"}))


def test_refresh_invalidates_events(server):
    path = "/api/events?start=2026-03-01&end=2026-03-08"
    server("GET", path)
    status, body, _ = server("POST", "/api/refresh")
    assert status == 200 and json.loads(body)["events"] == 16
    assert server("GET", path)[2]["X-Pipecache"] == "computed"


def test_bad_requests_are_400_and_not_cached(server):
    for path in ("/api/whats-next/data?layout=sideways",
                 "/api/events?start=2026-02-01&end=2025-01-01",
                 "/api/events?start=yesterday&end=2026-01-01"):
        status, body, _ = server("GET", path)
        assert status == 400 and "error" in json.loads(body)
    assert server("PUT", "/api/settings", "not json")[0] == 400


def test_metrics_report_the_request_types(server):
    m = json.loads(server("GET", "/metrics")[1])
    assert m["cache_available"] is True
    assert m["types"]["whats_next_data"]["hits"] >= 1


def test_a_body_over_the_limit_is_413_and_changes_nothing(server):
    before = json.loads(server("GET", "/api/settings")[1])
    big = json.dumps({"title": "x" * 70000})
    status, body, _ = server("PUT", "/api/settings", big)
    assert status == 413 and b"65536" in body
    assert json.loads(server("GET", "/api/settings")[1]) == before


def test_changes_from_another_origin_or_with_a_bad_token_are_403(server):
    before = json.loads(server("GET", "/api/settings")[1])
    patch = json.dumps({"title": "Pwned"})
    for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Authorization": "Bearer wrong"}, {"Authorization": "Basic " + ADMIN_TOKEN}):
        status, body, _ = server("PUT", "/api/settings", patch, headers)
        assert status == 403, (headers, body)
        assert server("POST", "/api/refresh", None, headers)[0] == 403
    assert json.loads(server("GET", "/api/settings")[1]) == before
    # The token opens the door whatever the origin; a same-origin local call needs none.
    status, _, _ = server("PUT", "/api/settings", json.dumps({"title": before["title"]}),
                          {"Origin": "http://evil.example", "Authorization": "Bearer " + ADMIN_TOKEN})
    assert status == 200


def test_same_origin_local_changes_need_no_token(plain_server):
    status, body, _ = plain_server("POST", "/api/refresh")
    assert status == 200 and json.loads(body)["events"] == 16
    # With no token configured any Authorization header is refused, not ignored.
    assert plain_server("POST", "/api/refresh", None, {"Authorization": "Bearer "})[0] == 403


def test_debug_time_is_refused_unless_enabled(plain_server):
    status, body, _ = plain_server("GET", "/api/whats-next/data?debug_time=2026-12-04T12:00")
    assert status == 400 and b"WHATSNEXT_ALLOW_DEBUG_TIME" in body
    assert plain_server("GET", "/api/whats-next/data")[0] == 200


def test_a_time_past_year_9999_is_a_client_mistake(plain_server):
    # It reached the handler and failed there (datetime's year range): a 500 for a 400.
    for query in ("start=99999999999999&end=100000000000000", "start=253402300800&end=253402300801"):
        status, body, _ = plain_server("GET", "/api/events?" + query)
        assert status == 400 and b"past 9999-12-31" in body, body


def test_an_unknown_route_is_flasks_404_not_an_internal_error(plain_server):
    status, body, _ = plain_server("GET", "/no/such/route")
    assert status == 404 and b"internal error" not in body


def test_a_failing_handler_is_500_internal_error_without_its_text(plain_server):
    # Runs last against this server: the table its handlers read is dropped under them.
    import sqlite3
    with sqlite3.connect(plain_server.db) as db:
        db.execute("DROP TABLE events")
    status, body, _ = plain_server("GET", "/api/events?start=2025-01-01&end=2025-01-08")
    assert status == 500
    assert json.loads(body) == {"error": "internal error"}
