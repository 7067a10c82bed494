# Helpers for e2e scenarios. A scenario is a function `scenario_NAME` in tests/e2e/NN-*.sh;
# it runs in a subshell with `set -e`, so any failing command fails it.
BOX=${BOX:-keel-e2e}

fail() { echo "ASSERTION FAILED: $*" >&2; exit 1; }
# in CMD...: run inside the container (no TTY, clean environment)
vx() { "$VPS" exec "$BOX" "$@"; }
# keel ARGS...: run keel inside with the demo config
keel() { vx keel --config /etc/keel/keel.toml "$@"; }
# expect_rc N CMD...: run CMD and require exit status N
expect_rc() {
  local want=$1; shift
  local rc=0; "$@" || rc=$?
  [ "$rc" = "$want" ] || fail "expected exit $want, got $rc from: $*"
}
# fresh: boot a fresh container with keel and the examples in it
fresh() {
  "$VPS" up "$BOX"
  local root; root=$("$VPS" root "$BOX")
  install -m 0755 "$KEEL_BIN" "$root/usr/local/bin/keel"
  mkdir -p "$root/etc/keel" "$root/root/examples"
  cp -r examples/. "$root/root/examples/"
  cp examples/demo.toml "$root/etc/keel/keel.toml"
  cp -r examples/demo-app "$root/etc/keel/demo-app"
}
# wait_for SECS CMD...: poll until CMD succeeds
wait_for() {
  local secs=$1; shift
  local end=$(( $(date +%s) + secs ))
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "timed out after ${secs}s waiting for: $*"
    sleep 0.2
  done
}
# jq_py EXPR: evaluate a Python expression over JSON on stdin bound to `d` (host python3;
# the container has no python until keel installs it)
jq_py() { python3 -c "import json,sys; d=json.load(sys.stdin); r=($1); print(r if not isinstance(r,(dict,list)) else json.dumps(r))"; }
step_status() { keel status --output json | jq_py "[s['status'] for s in d['steps'] if s['id']=='$1'][0]"; }
step_is() { [ "$(step_status "$1" 2>/dev/null)" = "$2" ]; }
# The number of steps, from the graph (never a number written into a test).
step_count() { "$KEEL_BIN" plan --output json | jq_py "len(d['steps'])"; }
# output_has PATTERN CMD...: CMD's output (stdout and stderr, whatever its exit status)
# matches the extended regex PATTERN. Read whole first: `CMD | grep -q` under pipefail
# fails at random when grep exits early and CMD dies of SIGPIPE.
output_has() {
  local pat=$1; shift
  local out; out=$("$@" 2>&1) || true
  grep -Eq -- "$pat" <<<"$out"
}

# render_report NAME: this host's headless Chromium renders the container's
# diagnostics-latest.html (from a file:// URL, no network) to target/e2e/artifacts/NAME.png
# and dumps the DOM it built to target/e2e/artifacts/NAME.dom.html; prints the DOM's path.
render_report() {
  local art="$here/target/e2e/artifacts" root page
  mkdir -p "$art"
  root=$("$VPS" root "$BOX")
  page=$(vx readlink -f /var/log/keel/diagnostics-latest.html)
  cp "$root$page" "$art/$1.html"
  # Chromium's profile in a throwaway directory; it answers on stdout, chatters on stderr.
  local prof; prof=$(mktemp -d)
  timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$prof" \
    --window-size=1100,1500 --screenshot="$art/$1.png" "file://$art/$1.html" >/dev/null 2>&1 \
    || fail "chromium could not render $1.html"
  timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$prof" \
    --dump-dom "file://$art/$1.html" >"$art/$1.dom.html" 2>/dev/null || fail "chromium could not dump $1.html"
  rm -rf "$prof"
  [ -s "$art/$1.png" ] || fail "no PNG for $1"
  echo "$art/$1.dom.html"
}
# dom_count FILE PATTERN: occurrences of PATTERN in FILE
dom_count() { grep -o -- "$2" "$1" | wc -l; }
