#!/usr/bin/env python3
"""Architecture checks over src/, run by CI (scripts/test.sh):

- the import graph between files (from `use crate::`, `use super::` and inline `crate::`
  paths) has no cycle, and nothing imports the top (lib.rs, commands/) but main.rs and
  commands/ itself;
- lib.rs is at most 60 lines; no fn is longer than 120 lines; no file in config/ over 500;
- `is_fake` and `KEEL_TEST_` appear only in the fake host's own module (exec.rs's fake half:
  see FAKE_HOME); processes are spawned in exec.rs only; `unsafe` in one module at most,
  every block with a `SAFETY:` comment.

Prints the floors (every file with the files it imports), bottom first, so the README's
drawing can be checked against it. Exit 1 on any violation.
"""
import os
import re
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
TOP = ("lib.rs", "main.rs")
FAKE_HOME = {"exec.rs"}
SPAWN_HOME = {"exec.rs"}


def files():
    out = []
    for d, _, fs in os.walk(ROOT):
        for f in fs:
            if f.endswith(".rs"):
                out.append(os.path.relpath(os.path.join(d, f), ROOT))
    return sorted(out)


def module_of(rel):
    """src-relative file -> module path list (lib.rs -> [], a/mod.rs -> [a], a/b.rs -> [a, b])."""
    parts = rel[:-3].split(os.sep)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def resolve(mod, known):
    """Longest module prefix of `mod` that is a file."""
    for n in range(len(mod), 0, -1):
        p = mod[:n]
        for cand in (os.path.join(*p) + ".rs", os.path.join(*(p + ["mod.rs"]))):
            if cand in known:
                return cand
    return None


def strip_tests(text):
    """Drop `#[cfg(test)] mod tests { ... }` blocks: test code may import anything."""
    i = text.find("#[cfg(test)]")
    while i != -1:
        j = text.find("{", i)
        depth, k = 0, j
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        text = text[:i] + text[k + 1 :]
        i = text.find("#[cfg(test)]")
    return text


def expand_use(body):
    """`a::{b, c::d}` -> [a::b, a::c::d] (one level of braces is all this crate uses)."""
    body = re.sub(r"\s+", "", body)
    m = re.match(r"^(.*?)\{(.*)\}$", body)
    if not m:
        return [body]
    prefix, inner = m.groups()
    out, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    if cur:
        out.append(cur)
    res = []
    for o in out:
        res.extend(expand_use(prefix + o))
    return res


def imports(rel, text, known):
    me = module_of(rel)
    parent = me[:-1] if not rel.endswith("mod.rs") else me[:-1]
    if rel.endswith("mod.rs"):
        parent = me[:-1]
    deps = set()
    paths = []
    for m in re.finditer(r"\buse\s+(crate|super)::([^;]+);", text):
        for p in expand_use(m.group(2)):
            paths.append((m.group(1), p))
    for m in re.finditer(r"\b(crate|super)::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", text):
        paths.append((m.group(1), m.group(2)))
    # Children declared here (`mod x;`) and used by their bare name (`x::Item`).
    for m in re.finditer(r"^\s*(?:pub\s+)?mod\s+([a-z_][a-z0-9_]*)\s*;", text, re.M):
        child = m.group(1)
        if re.search(r"(?<![:\w])" + child + r"::", text):
            paths.append(("self", child))
    for base, p in paths:
        segs = [s for s in p.split("::") if s and s != "self"]
        if base == "crate":
            mod = segs
        elif base == "self":
            mod = me + segs
        else:
            mod = parent + segs
        f = resolve(mod, known)
        if f and f != rel:
            deps.add(f)
    return deps


def main():
    fs = files()
    known = set(fs)
    problems = []
    graph = {}
    texts = {}
    for f in fs:
        text = open(os.path.join(ROOT, f)).read()
        texts[f] = text
        graph[f] = imports(f, strip_tests(text), known)

    # Nothing imports the top but the top.
    for f, deps in graph.items():
        for d in deps:
            top = d in TOP or d.startswith("commands" + os.sep)
            if top and not (f in TOP or f.startswith("commands" + os.sep)):
                problems.append(f"{f} imports {d}, which sits above it")

    # Cycles (Tarjan).
    index, low, stack, on, sccs = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            strong(v)
    for c in sccs:
        if len(c) > 1:
            problems.append(f"import cycle among {len(c)} files: {', '.join(sorted(c))}")

    # Floors: 0 for files that import nothing, else 1 + the highest floor imported.
    floor = {}

    def fl(v, seen=()):
        if v in floor:
            return floor[v]
        if v in seen:
            return 0
        floor[v] = 1 + max((fl(w, seen + (v,)) for w in graph[v]), default=-1)
        return floor[v]

    for v in graph:
        fl(v)

    # Size limits.
    lib_lines = texts["lib.rs"].count("\n")
    if lib_lines > 60:
        problems.append(f"lib.rs has {lib_lines} lines (at most 60)")
    # The config is a folder of files one can read whole (schema, checks, host checks, values).
    for f, text in texts.items():
        n = text.count("\n")
        if f.startswith("config" + os.sep) and n > 500:
            problems.append(f"{f} has {n} lines (at most 500 in config/)")
    for f, text in texts.items():
        lines = text.split("\n")
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)(pub(\([a-z]+\))?\s+)?fn\s+(\w+)", line)
            if not m or line.rstrip().endswith(";"):
                continue
            indent = m.group(1)
            for j in range(i + 1, len(lines)):
                if lines[j].startswith(indent + "}") and len(lines[j].strip()) <= 2:
                    if j - i + 1 > 120:
                        problems.append(f"{f}:{i + 1}: fn {m.group(4)} has {j - i + 1} lines (at most 120)")
                    break

    # Fakes, spawning, unsafe.
    unsafe_files = set()
    for f, text in texts.items():
        code = strip_tests(text)
        if f not in FAKE_HOME and re.search(r"\bis_fake\b|KEEL_TEST_", code):
            problems.append(f"{f}: is_fake / KEEL_TEST_ outside the fake host's module")
        if f not in SPAWN_HOME and re.search(r"std::process::Command|duct::cmd", code):
            problems.append(f"{f}: spawns a process outside exec.rs")
        lines = code.split("\n")
        for i, line in enumerate(lines):
            if re.search(r"\bunsafe\s*\{", line):
                unsafe_files.add(f)
                window = "\n".join(lines[max(0, i - 4) : i + 1])
                if "SAFETY:" not in window:
                    problems.append(f"{f}:{i + 1}: unsafe block without a SAFETY: comment")
    if len(unsafe_files) > 1:
        problems.append(f"unsafe in {len(unsafe_files)} modules: {sorted(unsafe_files)}")

    by_floor = {}
    for v, n in floor.items():
        by_floor.setdefault(n, []).append(v)
    for n in sorted(by_floor):
        print(f"floor {n}: {', '.join(sorted(by_floor[n]))}")
    if problems:
        print(f"\n{len(problems)} architecture problem(s):")
        for p in problems:
            print(f"  - {p}")
        sys.exit(1)
    print(f"\nlayers: {len(fs)} files, {max(by_floor) + 1} floors, no cycle, no upward import")


if __name__ == "__main__":
    main()
