#!/usr/bin/env python3
"""Step ids named as strings outside src/steps/, in production code (test modules may name
them as data). Counted where a string is a step id: an argument where keel takes a step id
(State::step, run_targets, require_completed, Graph::get, check_selection, --retry-step's
lists), a comparison with an id, or any hyphenated id (`app-code`: it means nothing else).
Words that are also a unit, a user, a package, a log or a check ("nginx", "postgres",
"backup") are those things there, and are not counted. Prints each hit, then the count."""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from layers import strip_tests  # noqa: E402 (the same reading of test modules)
IDS = [
    "preflight", "python-packages", "packages", "baseline", "firewall", "system-user",
    "secrets", "postgres", "redis", "nginx", "tls", "app-code", "python-env", "app-env",
    "build", "django", "backup", "services", "schedules", "verify",
]
ALT = "|".join(re.escape(i) for i in IDS)
PATTERNS = [
    # a call that takes a step id (or a list of them)
    re.compile(r"\b(?:step|step_mut|run_targets|require_completed|get|check_selection)\(\s*(?:inv,\s*)?&?\[?\s*\"(" + ALT + r")\""),
    # a comparison with a step's id
    re.compile(r"\bid\s*==\s*\"(" + ALT + r")\"|\"(" + ALT + r")\"\s*==\s*id\b"),
    # a hyphenated id: nothing else is called that
    re.compile(r"\"(" + "|".join(re.escape(i) for i in IDS if "-" in i) + r")\""),
]


hits = []
for d, _, fs in os.walk(ROOT):
    for f in sorted(fs):
        path = os.path.join(d, f)
        rel = os.path.relpath(path, ROOT)
        if not f.endswith(".rs") or rel.startswith("steps" + os.sep):
            continue
        text = strip_tests(open(path).read())
        for p in PATTERNS:
            for m in p.finditer(text):
                line = text[: m.start()].count("\n") + 1
                hits.append(f"src/{rel}:{line}: {m.group(0).strip()}")
for h in sorted(set(hits)):
    print(h, file=sys.stderr)
print(len(set(hits)))
