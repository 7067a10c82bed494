#!/usr/bin/env bash
# End-to-end scenarios on fresh Debian containers (systemd as PID 1), one at a time.
#   scripts/e2e.sh            all scenarios
#   scripts/e2e.sh NAME...    only these (see tests/e2e/*.sh)
# Every container is powered off when its scenario ends, passed or failed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export VPS="$here/scripts/vps.sh"
KEEL_BIN=${KEEL_BIN:-$here/target/release/keel}
[ -x "$KEEL_BIN" ] || cargo build --release --quiet
export KEEL_BIN

# shellcheck source=tests/e2e/lib.sh
. "$here/tests/e2e/lib.sh"
for f in "$here"/tests/e2e/[0-9]*.sh; do . "$f"; done

all=$(declare -F | awk '{print $3}' | grep '^scenario_' | sed 's/^scenario_//' | sort)
wanted=${*:-$all}
"$VPS" rootfs
trap '"$VPS" down-all || true' EXIT
trap 'exit 130' INT TERM
failed=()
# Each scenario's output is kept, and a failed one's tail is repeated at the end: CI shows
# only the last part of a long run, and the cause of a failure must be in it.
logs="$here/target/e2e/logs"
mkdir -p "$logs"
for s in $wanted; do
  declare -F "scenario_$s" >/dev/null || { echo "unknown scenario $s (have: $all)"; exit 2; }
  echo "=== e2e: $s"
  start=$(date +%s)
  # Not inside `if`: bash ignores set -e in a tested context, and a failed assertion would pass.
  set +e
  ( set -e; "scenario_$s" ) 2>&1 | tee "$logs/$s.log"
  rc=${PIPESTATUS[0]}
  set -e
  if [ "$rc" = 0 ]; then
    echo "=== e2e: $s passed in $(( $(date +%s) - start ))s"
  else
    echo "=== e2e: $s FAILED after $(( $(date +%s) - start ))s"
    failed+=("$s")
  fi
  "$VPS" down-all
done
if [ ${#failed[@]} -gt 0 ]; then
  for s in "${failed[@]}"; do
    echo "=== e2e: last lines of the failed scenario $s (all of it: $logs/$s.log)"
    tail -n 60 "$logs/$s.log"
  done
  echo "e2e failed: ${failed[*]}"
  exit 1
fi
echo "e2e: all passed"
exit 0
