"""The What's Next calendar: an iCalendar file loaded into SQLite, occurrences expanded with
dateutil's rrule (Debian python3-dateutil), the user's settings.

The same data as the C++ example (examples/whatsnext/data/sample.ics). One row per VEVENT:
DTSTART/DTEND as Unix seconds, the TZID (expanded in that zone, so 09:30 Berlin stays 09:30
across DST), RRULE text, EXDATEs; an override (RECURRENCE-ID) is a single event and removes
the occurrence it replaces from its series. Every function returns data in a fixed order, so
a view built from it is a pure function of the database and its arguments.

Thread/process safety: one sqlite3 connection per thread (connection()); WAL mode lets
readers in every worker read while reload() replaces the events in one transaction.
"""
import datetime as dt
import json
import sqlite3
import threading
from zoneinfo import ZoneInfo

from dateutil import rrule

UTC = dt.timezone.utc
DEFAULT_SETTINGS = {"title": "What's Next", "max_events": 5, "lookahead_days": 7,
                    "show_location": True, "default_layout": "full"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS events (uid TEXT, summary TEXT, location TEXT, start INTEGER,
  end_ INTEGER, all_day INTEGER, tzid TEXT, rrule TEXT, exdates TEXT, recurrence_id INTEGER);
CREATE TABLE IF NOT EXISTS settings (id INTEGER PRIMARY KEY CHECK (id = 1), json TEXT);
"""

_local = threading.local()


def connection(path):
    """This thread's connection to the database at `path`."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    if path not in conns:
        c = sqlite3.connect(path, timeout=30, isolation_level=None)
        c.execute("PRAGMA journal_mode=WAL")
        c.executescript(SCHEMA)
        conns[path] = c
    return conns[path]


def _unfold(text):
    out = []
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and out:
            out[-1] += line[1:]
        elif line:
            out.append(line)
    return out


def _time(value, params):
    """(unix seconds, all_day, tzid) of a DATE or DATE-TIME property value."""
    if params.get("VALUE") == "DATE" or len(value) == 8:
        d = dt.datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)
        return int(d.timestamp()), True, None
    if value.endswith("Z"):
        return int(dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()), False, None
    tzid = params.get("TZID")
    zone = ZoneInfo(tzid) if tzid else UTC
    return int(dt.datetime.strptime(value, "%Y%m%dT%H%M%S").replace(tzinfo=zone).timestamp()), False, tzid


def parse_ics(text):
    events, current = [], None
    for line in _unfold(text):
        name_params, _, value = line.partition(":")
        name, *raw = name_params.split(";")
        params = dict(p.split("=", 1) for p in raw if "=" in p)
        if name == "BEGIN" and value == "VEVENT":
            current = {"exdates": [], "location": "", "summary": "", "rrule": None,
                       "recurrence_id": None, "tzid": None}
        elif name == "END" and value == "VEVENT":
            events.append(current)
            current = None
        elif current is not None:
            if name == "UID":
                current["uid"] = value
            elif name == "SUMMARY":
                current["summary"] = value.replace("\\,", ",").replace("\\;", ";")
            elif name == "LOCATION":
                current["location"] = value.replace("\\,", ",")
            elif name == "DTSTART":
                current["start"], current["all_day"], current["tzid"] = _time(value, params)
            elif name == "DTEND":
                current["end"] = _time(value, params)[0]
            elif name == "RRULE":
                current["rrule"] = value
            elif name == "EXDATE":
                current["exdates"] += [_time(v, params)[0] for v in value.split(",")]
            elif name == "RECURRENCE-ID":
                current["recurrence_id"] = _time(value, params)[0]
    return events


def reload(path, ics_path):
    """Replaces the events with the file's, in one transaction; returns a summary dict."""
    with open(ics_path, encoding="utf-8") as f:
        events = parse_ics(f.read())
    c = connection(path)
    c.execute("BEGIN IMMEDIATE")
    try:
        c.execute("DELETE FROM events")
        for e in events:
            c.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (e["uid"], e["summary"], e["location"], e["start"],
                       e.get("end", e["start"]), int(e["all_day"]), e["tzid"], e["rrule"],
                       json.dumps(e["exdates"]), e["recurrence_id"]))
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise
    return {"events": len(events), "recurring": sum(1 for e in events if e["rrule"]),
            "overrides": sum(1 for e in events if e["recurrence_id"] is not None)}


def occurrences(path, start, end):
    """Occurrences overlapping [start, end) as dicts, ordered by (start, uid, summary)."""
    rows = connection(path).execute(
        "SELECT uid, summary, location, start, end_, all_day, tzid, rrule, exdates, "
        "recurrence_id FROM events").fetchall()
    overridden = {(r[0], r[9]) for r in rows if r[9] is not None}
    out = []
    for uid, summary, location, s, e, all_day, tzid, rule, exdates, rec_id in rows:
        length = e - s
        if not rule or rec_id is not None:
            starts = [s] if s < end and s + length > start else []
        else:
            zone = ZoneInfo(tzid) if tzid else UTC
            first = dt.datetime.fromtimestamp(s, zone).replace(tzinfo=None)
            r = rrule.rrulestr(rule, dtstart=first, ignoretz=True)
            lo = dt.datetime.fromtimestamp(start - length, zone).replace(tzinfo=None)
            hi = dt.datetime.fromtimestamp(end, zone).replace(tzinfo=None)
            excluded = set(json.loads(exdates))
            starts = []
            for local in r.between(lo, hi, inc=True):
                t = int(local.replace(tzinfo=zone).timestamp())
                if t in excluded or (uid, t) in overridden:
                    continue
                if t < end and t + length > start:
                    starts.append(t)
        for t in starts:
            out.append({"uid": uid, "summary": summary, "location": location, "start": t,
                        "end": t + length, "all_day": bool(all_day),
                        "recurring": bool(rule) or rec_id is not None})
    out.sort(key=lambda o: (o["start"], o["uid"], o["summary"]))
    return out


def settings(path):
    row = connection(path).execute("SELECT json FROM settings WHERE id = 1").fetchone()
    return {**DEFAULT_SETTINGS, **(json.loads(row[0]) if row else {})}


def save_settings(path, values):
    connection(path).execute("INSERT OR REPLACE INTO settings VALUES (1, ?)",
                             (json.dumps(values, sort_keys=True),))
