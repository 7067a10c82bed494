#!/usr/bin/env python3
"""Where a fresh install's time went, for scripts/bench.sh.

    breakdown.py KEEL_EVENTS.jsonl KEEL_DPKG.log FLOOR_DPKG.log

Prints keel's steps on one time axis (from the event log's millisecond stamps: start,
duration, what ran beside what), then dpkg's own phases for keel's run and the floor's (from
/var/log/dpkg.log, second precision): each apt run's unpack and configure spans, PostgreSQL's
configure (initdb of the main cluster), and the triggers processed.
"""
import datetime
import json
import sys


def steps(path):
    evs = [json.loads(line) for line in open(path) if line.strip()]
    start = max(i for i, e in enumerate(evs) if e.get("event") == "run-started")
    run = evs[start]["run_id"]
    evs = [e for e in evs[start:] if e.get("run_id") == run]
    t0 = evs[0]["t_ms"]
    spans = {}
    for e in evs:
        s = e.get("step")
        if e["event"] == "step-started":
            spans[s] = [e["t_ms"] - t0, None]
        elif e["event"] in ("step-finished", "step-failed") and s in spans:
            spans[s][1] = e["t_ms"] - t0
    end = max(e["t_ms"] for e in evs) - t0
    print(f"keel: {end / 1000:.1f} s from the first event to the last")
    print(f"  {'step':<16}{'start':>8}{'took':>8}  beside")
    rows = sorted(spans.items(), key=lambda kv: kv[1][0])
    for name, (a, b) in rows:
        b = a if b is None else b
        beside = [n for n, (x, y) in rows if n != name and y is not None and x < b and y > a and (y - x) > 200]
        print(f"  {name:<16}{a / 1000:>7.1f}s{(b - a) / 1000:>7.1f}s  {', '.join(beside)}")
    apt = sum((b - a) for n, (a, b) in spans.items() if n in ("python-packages", "packages") and b)
    last_apt = max((b for n, (a, b) in spans.items() if n in ("python-packages", "packages") and b), default=0)
    print(f"  apt steps: {apt / 1000:.1f} s; after the last apt step: {(end - last_apt) / 1000:.1f} s")


def stamp(line):
    return datetime.datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S")


def dpkg(path, who):
    lines = [l.rstrip("\n") for l in open(path) if l[:2] == "20"]
    runs, cur = [], []
    for l in lines:
        if "startup archives unpack" in l and cur:
            runs.append(cur)
            cur = []
        cur.append(l)
    if cur:
        runs.append(cur)
    # The image's own history is in the log too: only the runs of the last ten minutes.
    end = stamp(lines[-1])
    runs = [r for r in runs if (end - stamp(r[0])).total_seconds() < 600]
    print(f"dpkg ({who}): {len(runs)} dpkg call(s) by apt in this install")
    for i, r in enumerate(runs, 1):
        unpack = [stamp(l) for l in r if " unpack " in l or " install " in l]
        conf = [stamp(l) for l in r if " configure " in l or "status installed" in l]
        trig = [l for l in r if " trigproc " in l]
        pkgs = len({l.split()[3] for l in r if " install " in l})
        span = (stamp(r[-1]) - stamp(r[0])).total_seconds()
        u = (max(unpack) - min(unpack)).total_seconds() if unpack else 0
        c = (max(conf) - min(conf)).total_seconds() if conf else 0
        print(f"  call {i}: {pkgs} packages, {span:.0f} s: unpack {u:.0f} s, configure {c:.0f} s, {len(trig)} trigger runs ({', '.join(sorted({l.split()[3].split(':')[0] for l in trig}))})")
        pg = [l for l in r if "postgresql-1" in l and (" configure " in l or "status installed postgresql-1" in l)]
        if len(pg) >= 2:
            print(f"    postgresql configure (initdb of the main cluster): {(stamp(pg[-1]) - stamp(pg[0])).total_seconds():.0f} s")


steps(sys.argv[1])
dpkg(sys.argv[2], "keel")
dpkg(sys.argv[3], "floor")
