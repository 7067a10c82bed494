#!/usr/bin/env bash
# uv-lock.sh DIR: `uv lock` in a fixture project (tests/projects/*), with the uv that keel
# pins, installed once under target/. The lock is made when a test needs it and never
# committed: it names the package index it was resolved against.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ver=$(grep -o 'UV_VERSION: &str = "[^"]*"' "$here/src/app/venv.rs" | cut -d'"' -f2)
tool="$here/target/uvtool"
mkdir -p "$here/target"
(
  flock 9
  if [ ! -x "$tool/bin/uv" ] || [ "$("$tool/bin/uv" --version | awk '{print $2}')" != "$ver" ]; then
    python3 -m venv --clear "$tool"
    "$tool/bin/pip" install -q "uv==$ver"
  fi
) 9>"$here/target/uvtool.lock"
cd "$1"
"$tool/bin/uv" lock -q
