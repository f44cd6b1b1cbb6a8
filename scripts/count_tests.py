#!/usr/bin/env python3
"""Sums test results of one or more meson build dirs into the line CI reads.

Each meson test runs one doctest suite; its output ends with
"[doctest] test cases: N | P passed | F failed | S skipped". A meson test whose output has no
such line (a crash, a script test) counts as one test, passed or failed by its result.
Prints per-build totals and a last line "N passed, N failed".
"""
import json
import re
import sys

LINE = re.compile(r"\[doctest\] test cases:\s*(\d+)\s*\|\s*(\d+) passed\s*\|\s*(\d+) failed(?:\s*\|\s*(\d+) skipped)?")
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
        if m:
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
