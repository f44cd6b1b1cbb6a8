#!/usr/bin/python3
"""The status page of `pipectl serve`, opened in a real browser as an operator would.

A segment is kept under load (serve_load), `pipectl serve` serves it, and Debian's headless
Chromium opens the page. The test drives Chromium over the DevTools protocol on a pipe
(--remote-debugging-pipe: no port, nothing else can connect) and checks that
  1. every figure of the page shows a value (not the "-" placeholder), charts are drawn, the
     request types and the recent invalidations are listed;
  2. the figures CHANGE while the page stays loaded (it refreshes itself once a second);
  3. an invalidation typed into the page (with the token) reaches the segment and shows up in
     the page's list of recent invalidations;
  4. the page logs no console error, throws no exception, and the browser logs no error (a
     failed request, a blocked resource, a Content-Security-Policy violation);
then saves a screenshot (SCREENSHOT, default status-page.png in the working directory; the
README's docs/status-page.png is a copy of one, taken with SETTLE_SECONDS=60 so that the charts
hold a minute of history).
Environment: PIPECTL, SERVE_LOAD. Chromium: /usr/bin/chromium (or $CHROMIUM).
"""
import base64
import fcntl
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

PIPECTL = os.environ["PIPECTL"]
SERVE_LOAD = os.environ["SERVE_LOAD"]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SCREENSHOT = os.environ.get("SCREENSHOT", os.path.abspath("status-page.png"))
TOKEN = "page-test-token-0123456789"


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class DevTools:
    """A DevTools protocol client over Chromium's --remote-debugging-pipe (fd 3: commands to the
    browser, fd 4: its answers and events; each message is JSON followed by a NUL byte)."""

    def __init__(self, args):
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        # Move the child's ends above 10 so that placing them on 3 and 4 cannot clobber each other.
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)

        def place_pipes():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self.log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                     f"page-test-chromium-{os.getpid()}.log"), "w+")
        self.proc = subprocess.Popen([CHROMIUM, *args], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=place_pipes, pass_fds=(3, 4),
                                     start_new_session=True)
        os.close(child_in)
        os.close(child_out)
        self.out = os.fdopen(to_browser_w, "wb", buffering=0)
        self.inbox = queue.Queue()
        self.events = []
        self.next_id = 0
        threading.Thread(target=self._read, args=(from_browser_r,), daemon=True).start()

    def _read(self, fd):
        buffer = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                chunk = f.read(65536)
                if not chunk:
                    self.inbox.put(None)
                    return
                buffer += chunk
                while b"\0" in buffer:
                    message, buffer = buffer.split(b"\0", 1)
                    self.inbox.put(json.loads(message))

    def _take(self, timeout):
        try:
            message = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return None
        if message is None:
            raise Failure("Chromium closed the DevTools pipe (crashed?): " + self.browser_log())
        if "id" not in message:
            self.events.append(message)
        return message

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self.out.write(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self._take(deadline - time.monotonic())
            if m and m.get("id") == self.next_id:
                if "error" in m:
                    raise Failure(f"{method}: {m['error']}")
                return m.get("result", {})
        raise Failure(f"{method}: no answer within {timeout} s")

    def wait_event(self, method, timeout=30):
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for e in self.events[seen:]:
                if e.get("method") == method:
                    return e
            seen = len(self.events)
            self._take(0.1)
        raise Failure(f"no {method} within {timeout} s")

    def pump(self, seconds):
        """Lets time pass while collecting events."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._take(max(0.0, min(0.2, deadline - time.monotonic())))

    def browser_log(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-3000:]

    def close(self):
        try:
            self.send("Browser.close", timeout=5)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the renderers go too
            self.proc.wait()


def start_chromium(profile):
    args = ["--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-default-apps", "--disable-extensions", "--no-default-browser-check",
            "--disable-dev-shm-usage",  # Docker's 64 MiB /dev/shm also holds the segments
            "--no-proxy-server", "--mute-audio", "--hide-scrollbars",
            f"--user-data-dir={profile}", "--remote-debugging-pipe", "--window-size=1280,1000",
            "about:blank"]
    if os.geteuid() == 0:
        args.insert(0, "--no-sandbox")  # Chromium refuses to run its sandbox as root
    return DevTools(args)


# Reads what the page shows: the figure elements, the tables, and whether the canvases hold
# drawn pixels.
READ_PAGE = r"""
(() => {
  const text = (id) => document.getElementById(id).textContent.trim();
  const figures = {};
  for (const e of document.querySelectorAll("[data-figure]")) figures[e.id] = e.textContent.trim();
  const rows = (id) => Array.from(document.querySelectorAll(`#${id} tbody tr`))
      .map((r) => Array.from(r.cells).map((c) => c.textContent.trim()));
  const drawn = {};
  for (const c of document.querySelectorAll("canvas")) {
    // Read through a copy made for reading (willReadFrequently): reading the page's own
    // canvas would make Chromium log a performance warning, caused by this test, not the page.
    const copy = document.createElement("canvas");
    copy.width = c.width; copy.height = c.height;
    const g = copy.getContext("2d", {willReadFrequently: true});
    g.drawImage(c, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let coloured = 0;
    for (let i = 0; i < d.length; i += 4) {
      // a pixel of a data line: opaque and clearly coloured (grid and labels are grey)
      const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
      if (a > 200 && Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
    }
    drawn[c.id] = coloured;
  }
  return JSON.stringify({figures, live: text("live-text"), types: rows("types"),
                         invalidations: rows("invalidations"), drawn,
                         writes_visible: !document.getElementById("writes").hidden,
                         write_result: text("write-result")});
})()
"""


def read_page(dt, session):
    r = dt.send("Runtime.evaluate", {"expression": READ_PAGE, "returnByValue": True}, session)
    check("exceptionDetails" not in r, f"reading the page threw: {r.get('exceptionDetails')}")
    return json.loads(r["result"]["value"])


def page_errors(events):
    errors = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
            errors.append("console." + p["type"] + ": " +
                          " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"]))
        elif method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            errors.append("exception: " + d.get("exception", {}).get("description", d.get("text")))
        elif method == "Log.entryAdded" and p["entry"]["level"] in ("error", "warning"):
            errors.append(f"browser {p['entry']['level']}: {p['entry']['text']} {p['entry'].get('url', '')}")
    return errors


def main():
    check(shutil.which(CHROMIUM) is not None, f"{CHROMIUM} not installed (bash scripts/deps)")
    segment = f"serve-page-{os.getpid()}"
    subprocess.run([PIPECTL, "create", "--name", segment, "--budget", "2MiB"], check=True)
    load = server = dt = None
    profile = tempfile.mkdtemp(prefix="page-test-profile.")
    started = time.monotonic()
    try:
        load = subprocess.Popen([SERVE_LOAD, segment], stdout=subprocess.PIPE, text=True)
        check(load.stdout.readline().strip() == "ready", "serve_load did not start")
        server = subprocess.Popen([PIPECTL, "serve", "--name", segment, "--listen", "127.0.0.1:0",
                                   "--allow-writes"], stdout=subprocess.PIPE, text=True,
                                  env={**os.environ, "PIPECTL_SERVE_TOKEN": TOKEN})
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", server.stdout.readline())
        check(m is not None, "pipectl serve did not start")
        url = f"http://127.0.0.1:{m.group(1)}/"

        dt = start_chromium(profile)
        page = next(t for t in dt.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = dt.send("Target.attachToTarget",
                          {"targetId": page["targetId"], "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            dt.send(domain, session=session)
        dt.send("Emulation.setDeviceMetricsOverride",
                {"width": 1280, "height": 1000, "deviceScaleFactor": 1, "mobile": False}, session)
        dt.send("Page.navigate", {"url": url}, session)
        dt.wait_event("Page.loadEventFired")
        browser_ready = time.monotonic()

        # 1. Figures appear (the first poll has no rates yet: give it three).
        dt.pump(3.5)
        first = read_page(dt, session)
        placeholders = [k for k, v in first["figures"].items() if v in ("-", "")]
        check(not placeholders, f"figures still empty after 3.5 s: {placeholders}")
        check(first["live"].startswith("live"), f"status: {first['live']}")
        types = {row[0]: row for row in first["types"]}
        check({"user_profile", "feed", "search"} <= set(types), f"request types: {list(types)}")
        for name in ("user_profile", "feed", "search"):
            row = types[name]
            # requests/s, requests, hit %, ..., hit p50, hit p99, compute mean, compute p99
            check(re.fullmatch(r"\d+(\.\d)?%", row[3]) is not None, f"{name} hit%: {row}")
            check(row[10] != "-" and row[11] != "-", f"{name} compute time missing: {row}")
        check(first["invalidations"], "no recent invalidations listed (the load makes some)")
        for canvas, coloured in first["drawn"].items():
            check(coloured > 10, f"chart {canvas} is not drawn ({coloured} coloured pixels)")
        check(first["writes_visible"], "write controls hidden although --allow-writes")

        # 2. ... and change while the page stays open.
        dt.pump(3.0)
        second = read_page(dt, session)
        check(second["live"] != first["live"], "the page did not refresh (same timestamp)")
        changed = [k for k in ("lookups-total", "entries", "memory-used", "evictions-total")
                   if second["figures"][k] != first["figures"][k]]
        check("lookups-total" in changed, f"lookup count did not move: {first['figures']['lookups-total']}")
        check(len(changed) >= 2, f"only {changed} changed in 3 s under load")
        check(second["types"] != first["types"], "request-type table did not change")
        # The charts grow to the left as samples accumulate (hit ratio and rates: one line
        # each; the memory chart's used line may stay flat at a full budget).
        for canvas in ("chart-hit", "chart-rate"):
            check(second["drawn"][canvas] > first["drawn"][canvas],
                  f"chart {canvas} did not grow: {first['drawn'][canvas]} -> "
                  f"{second['drawn'][canvas]} coloured pixels")

        # 3. An invalidation typed into the page.
        dt.send("Runtime.evaluate", {"expression": f"""
            document.getElementById("token").value = {json.dumps(TOKEN)};
            document.getElementById("pattern").value = "user_profile:*";
            document.getElementById("write-form").requestSubmit();""", "returnByValue": True},
                session)
        deadline = time.monotonic() + 5
        while True:
            dt.pump(0.5)
            third = read_page(dt, session)
            listed = [row[0] for row in third["invalidations"]]
            if third["write_result"].startswith("removed") and "user_profile:*" in listed:
                break
            check(time.monotonic() < deadline,
                  f"the page's invalidation did not show: {third['write_result']!r} {listed}")

        # 4. No errors anywhere (SETTLE_SECONDS: let the charts fill before the screenshot).
        dt.pump(1.0 + float(os.environ.get("SETTLE_SECONDS", "0")))
        errors = page_errors(dt.events)
        check(not errors, "page errors:\n  " + "\n  ".join(errors))

        shot = dt.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                       session)
        with open(SCREENSHOT, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print(f"ok: figures appear and change, page invalidation listed, no console errors; "
              f"browser ready in {browser_ready - started:.1f} s, whole test "
              f"{time.monotonic() - started:.1f} s; screenshot {SCREENSHOT}")
    finally:
        if dt:
            dt.close()
        for p in (server, load):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        subprocess.run([PIPECTL, "destroy", "--name", segment], capture_output=True)
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
