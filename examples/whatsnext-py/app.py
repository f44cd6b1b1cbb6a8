"""What's Next as a WSGI app (Flask) for gunicorn sync workers sharing one pipecache segment.

    WHATSNEXT_DB=/tmp/cal.sqlite WHATSNEXT_ICS=examples/whatsnext/data/sample.ics \\
    gunicorn -c examples/whatsnext-py/gunicorn.conf.py app:app

Routes (as the C++ example): GET /api/whats-next/data?layout=&debug_time=,
GET /api/events?start=&end=, GET|PUT /api/settings, POST /api/refresh, GET /metrics,
GET /healthz. Answers go through pipeline.process_request with the design's request types
and seeded policies (whats_next_data 60 s in minute buckets, events_by_range 300 s,
settings_get 600 s) and invalidation rules (data_refresh, settings_change).

Invariants:
  1. Every body is a pure function of the parameters, the database and the minute it is
     computed for: a cached answer is byte-identical to a computed one (the e2e compares).
  2. A client's mistake is a 400 decided before the pipeline is asked: it is never cached.
  3. A data change is written to the database first, then handle_data_change.
The Pipeline is created at import: with gunicorn's preload_app the master creates it and every
forked worker uses it (pipecache objects survive fork). PIPECACHE_ENABLE_RESPONSE_CACHING=false
turns the cache off (the e2e's baseline).

Exposure (as the C++ example's ServerConfig):
  4. A request body beyond WHATSNEXT_MAX_BODY bytes (65536) is refused with 413 before a
     route runs.
  5. The state-changing routes (PUT /api/settings, POST /api/refresh) need either
     `Authorization: Bearer $WHATSNEXT_ADMIN_TOKEN` (when that is set), or a caller on this
     host's loopback whose request is not cross-origin (Origin, when present, is this server;
     Sec-Fetch-Site is not cross-site): a page from elsewhere can make a local browser POST to
     127.0.0.1, but the browser then names that page. Refused: 403.
  6. ?debug_time= (an answer for any instant) only with WHATSNEXT_ALLOW_DEBUG_TIME=1; else 400.
  7. An unexpected exception is logged with its traceback and answered 500 "internal error",
     never with its text.
"""
import datetime as dt
import hmac
import ipaddress
import json
import os
import sys
import time
import traceback

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

import calendar_db
import pipecache

DB = os.environ.get("WHATSNEXT_DB", "/tmp/whatsnext-py.sqlite")
ICS = os.environ.get("WHATSNEXT_ICS", os.path.join(os.path.dirname(__file__), "..",
                                                   "whatsnext", "data", "sample.ics"))
LAYOUTS = ("full", "compact", "agenda")
MAX_RANGE = 367 * 86400
MAX_BODY = int(os.environ.get("WHATSNEXT_MAX_BODY", "65536"))
ADMIN_TOKEN = os.environ.get("WHATSNEXT_ADMIN_TOKEN", "")
ALLOW_DEBUG_TIME = os.environ.get("WHATSNEXT_ALLOW_DEBUG_TIME", "") in ("1", "true", "yes")

pipeline = pipecache.Pipeline.from_environment(
    segment_name=os.environ.get("PIPECACHE_NAME", "whatsnext-py"))
if not calendar_db.connection(DB).execute("SELECT count(*) FROM events").fetchone()[0]:
    calendar_db.reload(DB, ICS)

app = Flask(__name__)


class BadRequest(ValueError):
    pass


class Forbidden(Exception):
    pass


def error(status, message):
    return Response(as_json({"error": message}), status=status, mimetype="application/json")


def loopback_peer(addr):
    try:
        ip = ipaddress.ip_address(addr or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def authorize_change():
    """Invariant 5: raises Forbidden unless this request may change data."""
    auth = request.headers.get("Authorization", "")
    if auth:
        given = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if not ADMIN_TOKEN or not given or not hmac.compare_digest(given.encode(), ADMIN_TOKEN.encode()):
            raise Forbidden("bad admin token")
        return
    if not loopback_peer(request.remote_addr):
        raise Forbidden("changes are accepted only from this host, or with the admin token")
    origin = request.headers.get("Origin", "")
    if (origin and origin != "http://" + request.headers.get("Host", "")) \
            or request.headers.get("Sec-Fetch-Site") == "cross-site":
        raise Forbidden(f"cross-origin change refused (origin {origin!r})")


def as_json(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def iso(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


LATEST = 253402300799  # 9999-12-31T23:59:59Z: the last instant a date can be written for


def parse_time(name, text):
    if text.isdigit():
        if len(text) > 12 or int(text) > LATEST:
            raise BadRequest(f"{name}: {text} is past 9999-12-31")
        return int(text)
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return int(dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc).timestamp())
        except ValueError:
            pass
    raise BadRequest(f"{name}: not a time (unix seconds or ISO 8601 UTC): {text!r}")


def occurrence_json(o, show_location=True):
    d = {"uid": o["uid"], "summary": o["summary"], "start": iso(o["start"]),
         "end": iso(o["end"]), "all_day": o["all_day"], "recurring": o["recurring"]}
    if show_location:
        d["location"] = o["location"]
    return d


def whats_next_view(layout, now):
    s = calendar_db.settings(DB)
    layout = layout or s["default_layout"]
    occ = calendar_db.occurrences(DB, now, now + s["lookahead_days"] * 86400)
    current = [o for o in occ if o["start"] <= now < o["end"]]
    upcoming = [o for o in occ if o["start"] > now][: s["max_events"]]
    view = {"title": s["title"], "now": iso(now), "layout": layout}
    if layout == "compact":
        view["next"] = upcoming[0]["summary"] if upcoming else None
        view["current"] = [o["summary"] for o in current]
    elif layout == "agenda":
        days = {}
        for o in upcoming:
            days.setdefault(iso(o["start"])[:10], []).append(occurrence_json(o, s["show_location"]))
        view["days"] = days
    else:
        view["current"] = [occurrence_json(o, s["show_location"]) for o in current]
        view["next"] = [occurrence_json(o, s["show_location"]) for o in upcoming]
    return as_json(view)


def answer(request_type, params, handler):
    computed = []

    def run():
        computed.append(True)
        return handler()

    body = pipeline.process_request(request_type, params, run)
    how = "off" if not pipeline.cache_available else "computed" if computed else "hit"
    return Response(body, mimetype="application/json", headers={"X-Pipecache": how})


@app.before_request
def limit_body():
    if request.content_length is not None and request.content_length > MAX_BODY:
        return error(413, f"request body over {MAX_BODY} bytes")
    return None


@app.errorhandler(BadRequest)
def bad_request(e):
    return error(400, str(e))


@app.errorhandler(Forbidden)
def forbidden(e):
    return error(403, str(e))


@app.errorhandler(Exception)
def internal_error(e):
    if isinstance(e, HTTPException):  # 404, 405, 413...: Flask's own answer
        return e
    print(f"whatsnext-py worker {os.getpid()}: internal error: {e!r}\n{traceback.format_exc()}",
          file=sys.stderr, flush=True)
    return error(500, "internal error")


@app.after_request
def worker_pid(r):
    r.headers["X-Worker-Pid"] = str(os.getpid())
    return r


@app.get("/api/whats-next/data")
def whats_next():
    params = {}
    layout = request.args.get("layout") or None
    if layout is not None:
        if layout not in LAYOUTS:
            raise BadRequest(f"layout: one of {', '.join(LAYOUTS)}, not {layout!r}")
        params["layout"] = layout
    pinned = None
    if "debug_time" in request.args:
        if not ALLOW_DEBUG_TIME:
            raise BadRequest("debug_time is disabled on this server "
                             "(start it with WHATSNEXT_ALLOW_DEBUG_TIME=1)")
        pinned = parse_time("debug_time", request.args["debug_time"])
        params["debug_time"] = str(pinned)  # normalised: one key per instant
    # The view of the minute (the type is keyed by minute bucket): computed for its start.
    return answer("whats_next_data", params,
                  lambda: whats_next_view(layout, pinned if pinned is not None
                                          else int(time.time()) // 60 * 60))


@app.get("/api/events")
def events():
    start = parse_time("start", request.args.get("start", ""))
    end = parse_time("end", request.args.get("end", ""))
    if not start < end <= start + MAX_RANGE:
        raise BadRequest("end must be after start, at most 367 days later")
    return answer("events_by_range", {"start": start, "end": end},
                  lambda: as_json({"start": iso(start), "end": iso(end), "events": [
                      occurrence_json(o) for o in calendar_db.occurrences(DB, start, end)]}))


@app.get("/api/settings")
def get_settings():
    return answer("settings_get", {}, lambda: as_json(calendar_db.settings(DB)))


@app.put("/api/settings")
def put_settings():
    authorize_change()
    try:
        patch = json.loads(request.get_data(as_text=True))
    except ValueError as e:
        raise BadRequest(f"body: not JSON ({e})")
    if not isinstance(patch, dict):
        raise BadRequest("body: a JSON object of settings")
    updated = calendar_db.settings(DB)
    for k, v in patch.items():
        if k not in calendar_db.DEFAULT_SETTINGS or type(v) is not type(calendar_db.DEFAULT_SETTINGS[k]):
            raise BadRequest(f"settings: unknown field or wrong type: {k}")
        updated[k] = v
    calendar_db.save_settings(DB, updated)
    pipeline.handle_data_change("settings_change")
    return Response(as_json(updated), mimetype="application/json")


@app.post("/api/refresh")
def refresh():
    authorize_change()
    summary = calendar_db.reload(DB, ICS)
    pipeline.handle_data_change("data_refresh")
    return Response(as_json(summary), mimetype="application/json")


@app.get("/metrics")
def metrics():
    return Response(as_json(pipeline.stats()), mimetype="application/json")


@app.get("/healthz")
def healthz():
    return Response(as_json({"status": "ok", "cache": pipeline.cache_available}),
                    mimetype="application/json")
