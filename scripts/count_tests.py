#!/usr/bin/env python3
"""Sums test results of one or more meson build dirs into the line CI reads.

Each meson test runs one doctest suite; its output ends with
"[doctest] test cases: N | P passed | F failed | S skipped". A pytest run ends with a line
like "===== 3 failed, 40 passed, 1 skipped in 7.2s =====" (errors count as failures). A meson
test whose output has neither (a crash, a script test) counts as one test, passed or failed by
its result.
Prints per-build totals and a last line "N passed, N failed".
"""
import json
import re
import sys

LINE = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed(?:\s*\|\s*(\d+) skipped)?")
# pytest's closing line: counts joined by ", ", then " in <seconds>s".
PYTEST_LINE = re.compile(r"^=*\s*((?:\d+ (?:passed|failed|errors?|skipped|xfailed|xpassed|"
                         r"warnings?|deselected)(?:, )?)+) in [\d.]+s", re.MULTILINE)
PYTEST_COUNT = re.compile(r"(\d+) (passed|failed|errors?|xpassed)")


def pytest_counts(stdout):
    """(passed, failed) from pytest's last summary line, or None without one."""
    lines = PYTEST_LINE.findall(stdout)
    if not lines:
        return None
    passed = failed = 0
    for n, what in PYTEST_COUNT.findall(lines[-1]):
        if what in ("passed", "xpassed"):
            passed += int(n)
        else:
            failed += int(n)
    return passed, failed


total_pass = total_fail = 0
for build in sys.argv[1:]:
    passed = failed = 0
    try:
        with open(f"{build}/meson-logs/testlog.json") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        print(f"{build}: no test log", file=sys.stderr)
        total_fail += 1
        continue
    for r in records:
        m = LINE.findall(r.get("stdout", "") or "")
        ok = r.get("result") in ("OK", "EXPECTEDFAIL", "SKIP")
        py = None if m else pytest_counts(r.get("stdout", "") or "")
        if py:
            p, fl = py
            if not ok and fl == 0:
                fl = 1  # pytest passed but the run failed (timeout, crash at exit)
            passed += p
            failed += fl
        elif m:
            p = sum(int(x[1]) for x in m)
            fl = sum(int(x[2]) for x in m)
            if not ok and fl == 0:
                fl = 1  # the binary failed after its summary (e.g. a leak report)
            passed += p
            failed += fl
        else:
            passed += 1 if ok else 0
            failed += 0 if ok else 1
        if not ok:
            print(f"{build}: FAILED {r.get('name')} ({r.get('result')})")
    print(f"{build}: {passed} passed, {failed} failed")
    total_pass += passed
    total_fail += failed
print(f"{total_pass} passed, {total_fail} failed")
sys.exit(1 if total_fail else 0)
