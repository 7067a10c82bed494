#!/usr/bin/env bash
# End-to-end scenarios on fresh Debian containers (systemd as PID 1), side by side.
#   scripts/e2e.sh                 all scenarios on Debian 12, and the second row of the
#                                  matrix on Debian 13 (KEEL_E2E_TRIXIE=0: without it)
#   scripts/e2e.sh NAME...         only these (see tests/e2e/*.sh); NAME@trixie: on Debian 13
#   KEEL_E2E_JOBS=N                at most N containers at once (default 3; 1 = one by one)
# Only the scenarios that need this machine's network share it (HOST_ONLY below, on lane 0,
# one at a time); every other container boots in a network namespace of its own (slirp4netns
# for the registries), so their ports never collide with each other or with this machine. Every
# container is powered off when its scenario ends, passed or failed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export VPS="$here/scripts/vps.sh"
KEEL_BIN=${KEEL_BIN:-$here/target/release/keel}
[ -x "$KEEL_BIN" ] || cargo build --release --quiet
export KEEL_BIN
JOBS=${KEEL_E2E_JOBS:-3}
# These reach the container from this machine's own network: a veth pair with fixed
# addresses (firewall), a server on this side's loopback (cloud_init).
HOST_ONLY=" firewall cloud_init "

# shellcheck source=tests/e2e/lib.sh
. "$here/tests/e2e/lib.sh"
for f in "$here"/tests/e2e/[0-9]*.sh; do . "$f"; done

all=$(declare -F | awk '{print $3}' | grep '^scenario_' | sed 's/^scenario_//' | sort)
# Second row of the matrix: Debian 13 (PostgreSQL 17, Python 3.13, nginx 1.26: `http2 on;`),
# the full app scenario, HTTPS and the package.
trixie="app@trixie https_files@trixie package@trixie project_groups@trixie"
[ "${KEEL_E2E_TRIXIE:-1}" != 0 ] || trixie=
wanted=${*:-$all $trixie}
for w in $wanted; do
  declare -F "scenario_${w%@*}" >/dev/null || { echo "unknown scenario ${w%@*} (have: $all)"; exit 2; }
done
# Shared inputs first, once: the root filesystems and the package (two scenarios build it).
for w in $wanted; do
  case $w in *@*) KEEL_E2E_SUITE=${w#*@} "$VPS" rootfs ;; esac
done
"$VPS" rootfs
if grep -qwE 'package|cloud_init' <<<"$wanted"; then scripts/package.sh >/dev/null; fi
# The upgrade scenario starts from the last release with one app per host (its source from
# git, built once into target/prev; a debug build: the same behaviour, compiled in half the time).
KEEL_PREV_REF=${KEEL_PREV_REF:-bbe3b16}
export KEEL_PREV_BIN="$here/target/prev/debug/keel"
if grep -qw 'apps_upgrade' <<<"$wanted" && [ ! -x "$KEEL_PREV_BIN" ]; then
  rm -rf target/prev-src && mkdir -p target/prev-src
  git archive "$KEEL_PREV_REF" | tar -x -C target/prev-src
  (cd target/prev-src && cargo build --quiet --target-dir "$here/target/prev")
fi

logs="$here/target/e2e/logs"
mkdir -p "$logs"
trap '"$VPS" down-all || true' EXIT
trap 'exit 130' INT TERM

# One scenario in lane SLOT: its own container name, its own network (lane 0: this
# machine's), its output in its log; the container is powered off at the end.
run_one() {
  local w=$1 slot=$2 s=${1%@*} suite=bookworm log
  case $w in *@*) suite=${w#*@} ;; esac
  log="$logs/${w/@/-}.log"
  export BOX="keel-e2e-$slot" KEEL_E2E_SUITE=$suite
  # Only the scenarios that need this machine's network get it (lane 0 runs them): the
  # others' servers (postfix, a webhook receiver) must never bind this machine's ports.
  if [ "$slot" = 0 ] && [[ $HOST_ONLY == *" $s "* ]]; then export KEEL_E2E_NET=host; else export KEEL_E2E_NET=ns; fi
  local start rc; start=$(date +%s)
  # Not inside `if`: bash ignores set -e in a tested context, and a failed assertion would pass.
  set +e
  ( set -e; "scenario_$s" ) >"$log" 2>&1
  rc=$?
  set -e
  "$VPS" down "$BOX" >>"$log" 2>&1 || true
  echo "$rc $(( $(date +%s) - start ))" >"$log.rc"
}

# Lane 0 first takes the scenarios that need this machine's network; the others take the
# longest first (by the last run's time, when known), so the lanes end close together.
queue_host=() queue=()
for w in $wanted; do
  if [[ $HOST_ONLY == *" ${w%@*} "* ]]; then queue_host+=("$w"); else queue+=("$w"); fi
done
last_time() { local r="$logs/${1/@/-}.log.rc"; if [ -f "$r" ]; then awk '{print $2}' "$r"; else echo 999; fi; }
mapfile -t queue < <(for w in "${queue[@]}"; do echo "$(last_time "$w") $w"; done | sort -rn | awk '{print $2}')
[ "$JOBS" -ge 1 ] || JOBS=1
declare -A lane_of=() busy=()
failed=() t0=$(date +%s)
start_in() {
  local slot=$1 w=$2
  rm -f "$logs/${w/@/-}.log.rc"
  echo "=== e2e: $w (lane $slot)"
  run_one "$w" "$slot" &
  lane_of[$!]="$slot $w"
  busy[$slot]=1
}
finish() {
  local pid=$1 slot w rc secs
  read -r slot w <<<"${lane_of[$pid]}"
  unset "lane_of[$pid]" "busy[$slot]"
  read -r rc secs <"$logs/${w/@/-}.log.rc" || { rc=1; secs=?; }
  if [ "$rc" = 0 ]; then
    echo "=== e2e: $w passed in ${secs}s"
  else
    echo "=== e2e: $w FAILED after ${secs}s"
    failed+=("$w")
  fi
}
while [ ${#queue_host[@]} -gt 0 ] || [ ${#queue[@]} -gt 0 ] || [ ${#lane_of[@]} -gt 0 ]; do
  for slot in $(seq 0 $((JOBS - 1))); do
    [ -z "${busy[$slot]:-}" ] || continue
    if [ "$slot" = 0 ] && [ ${#queue_host[@]} -gt 0 ]; then
      start_in 0 "${queue_host[0]}"; queue_host=("${queue_host[@]:1}")
    elif [ ${#queue[@]} -gt 0 ] && { [ "$slot" != 0 ] || [ "$JOBS" = 1 ] || [ ${#queue_host[@]} = 0 ]; }; then
      start_in "$slot" "${queue[0]}"; queue=("${queue[@]:1}")
    fi
  done
  [ ${#lane_of[@]} -gt 0 ] || continue
  done_pid=
  wait -n -p done_pid "${!lane_of[@]}" || true
  [ -n "$done_pid" ] && finish "$done_pid"
done
echo "e2e: $(echo "$wanted" | wc -w) scenario(s) in $(( $(date +%s) - t0 ))s with $JOBS lane(s)"
if [ ${#failed[@]} -gt 0 ]; then
  for w in "${failed[@]}"; do
    echo "=== e2e: last lines of the failed scenario $w (all of it: $logs/${w/@/-}.log)"
    tail -n 60 "$logs/${w/@/-}.log"
  done
  echo "e2e failed: ${failed[*]}"
  exit 1
fi
echo "e2e: all passed"
exit 0
