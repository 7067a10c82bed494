# Issue: the engine and the first real steps (preflight, packages).

# packages succeeds while another apt-get holds the dpkg lock; the re-run is a fast no-op.
scenario_dpkg_lock() {
  fresh
  vx apt-get update -qq
  # A real apt-get install holds the lock when keel starts.
  vx sh -c 'DEBIAN_FRONTEND=noninteractive nohup apt-get install -y -q python3 python3-venv >/tmp/blocker.log 2>&1 &'
  wait_for 30 vx pgrep -x dpkg
  local out; out=$(keel install --yes packages 2>&1) || { echo "$out"; fail "keel install packages failed"; }
  echo "$out"
  grep -q 'waiting for the dpkg lock held by pid [0-9]* (apt-get install' <<<"$out" || fail "keel did not report the lock holder"
  vx grep -q '"event":"dpkg-lock-wait"' /var/log/keel/events.jsonl || fail "no dpkg-lock-wait event"
  vx dpkg-query -W -f '${db:Status-Abbrev}' nginx | grep -q '^ii' || fail "nginx not installed"
  [ "$(step_status packages)" = completed ] || fail "packages not completed"
  # Second identical run: keel's own time well under a second.
  local t0 t1; t0=$(date +%s%N)
  out=$(keel install --yes packages 2>&1)
  t1=$(date +%s%N)
  echo "$out"
  grep -q '\[packages\] skip: completed' <<<"$out" || fail "second run did not skip packages"
  local ms=$(( (t1 - t0) / 1000000 ))
  echo "no-op re-run: ${ms} ms (including nsenter)"
  [ "$ms" -lt 1000 ] || fail "no-op re-run took ${ms} ms"
  keel status --output json | jq_py "all(s['status']=='completed' for s in d['steps'] if s['id'] in ('preflight','packages'))" | grep -q True
}

# kill -9 in the middle of packages, then the same command converges.
scenario_kill9_packages() {
  fresh
  vx sh -c 'nohup keel --config /etc/keel/keel.toml install --yes packages >/tmp/keel1.log 2>&1 &'
  wait_for 60 vx pgrep -x dpkg
  vx pkill -9 -x keel
  [ "$(step_status packages)" = running ] || [ "$(step_status python-packages)" = running ] || fail "state should show an apt step running after kill -9"
  keel install --yes packages
  [ "$(step_status packages)" = completed ] || fail "packages not completed after re-run"
  keel status --output json | jq_py "d['last_run']['outcome']" | grep -qx succeeded
  vx systemctl is-active postgresql redis-server nginx
}

# Bad input changes nothing: config errors and a corrupt state file exit 2; a held lock exits 4.
scenario_bad_input() {
  fresh
  vx sh -c 'printf "[app]\nname = \"demo\"\ndomain = \"x.test\"\ncolour = 1\n" > /tmp/bad.toml'
  local out rc=0
  out=$(vx keel --config /tmp/bad.toml install --yes 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "bad config: exit $rc"
  grep -q '/tmp/bad.toml' <<<"$out" && grep -q 'app.colour' <<<"$out" || fail "message must name file and key: $out"
  vx test ! -e /var/lib/keel/state.json || fail "bad config must not create a state file"
  vx sh -c 'mkdir -p /var/lib/keel && echo "{broken" > /var/lib/keel/state.json'
  rc=0; out=$(keel install --yes 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "corrupt state: exit $rc"
  [ "$(vx cat /var/lib/keel/state.json)" = "{broken" ] || fail "corrupt state file was modified"
  vx rm /var/lib/keel/state.json
  # A second run while one holds the lock: exit 4 naming the pid.
  vx sh -c 'nohup keel --config /etc/keel/keel.toml install --yes packages >/tmp/k1.log 2>&1 &'
  wait_for 30 vx pgrep -x dpkg
  rc=0; out=$(keel install --yes packages 2>&1) || rc=$?
  [ "$rc" = 4 ] || fail "second run: exit $rc ($out)"
  grep -q 'pid [0-9]' <<<"$out" || fail "lock message must name the pid: $out"
  wait_for 120 sh -c "! $VPS exec $BOX pgrep -x keel"
}
