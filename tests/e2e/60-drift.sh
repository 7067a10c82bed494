# Issue: day two. An app that is down answers 503, never 200; a converged host whose files
# or units were changed by hand is found out and repaired by one `keel install`.

scenario_drift() {
  fresh
  keel install --yes
  # Gunicorn down (socket and service): the placeholder with 503, and verify unhealthy.
  vx systemctl stop demo-web.socket demo-web.service
  local code; code=$(vx curl -s -o /tmp/down.html -w '%{http_code}' http://127.0.0.1/)
  [ "$code" = 503 ] || [ "$code" = 502 ] || fail "with Gunicorn down / answered $code, want 502 or 503"
  output_has '^Retry-After: 30' vx curl -sI http://127.0.0.1/ || fail "the 503 has no Retry-After"
  output_has '^X-Content-Type-Options: nosniff' vx curl -sI http://127.0.0.1/ || fail "the 503 lost the security headers"
  expect_rc 1 keel verify
  # Drift: a stopped worker, a hand-edited Redis config, a deleted site link, a changed unit.
  vx systemctl stop demo-worker
  vx sh -c 'echo "maxmemory 1mb" >>/etc/redis/keel.conf'
  vx rm /etc/nginx/sites-enabled/keel-demo.conf
  vx sed -i 's/^Restart=on-failure/Restart=no/' /etc/systemd/system/demo-beat.service
  local plan; plan=$(keel install --dry-run)
  echo "$plan" | grep -E 'drifted|^[-+@]' || true
  grep -qx -- '-maxmemory 1mb' <<<"$plan" || fail "the dry run does not show the Redis diff"
  grep -q 'demo-worker.service is inactive' <<<"$plan" || fail "the stopped worker is not named"
  grep -q 'sites-enabled/keel-demo.conf is missing' <<<"$plan" || fail "the deleted link is not named"
  grep -q 'demo-beat.service was changed by hand' <<<"$plan" || fail "the changed unit is not named"
  vx grep -qx 'maxmemory 1mb' /etc/redis/keel.conf || fail "the dry run changed the file"
  local out; out=$(keel install --yes 2>&1)
  grep -q '3 step(s) run' <<<"$out" || { echo "$out"; fail "drift should re-run redis, nginx and services only"; }
  vx systemctl is-active demo-worker demo-web.socket
  if vx grep -qx 'maxmemory 1mb' /etc/redis/keel.conf; then fail "the Redis edit is still there"; fi
  vx test -L /etc/nginx/sites-enabled/keel-demo.conf || fail "the site link was not restored"
  vx grep -qx 'Restart=on-failure' /etc/systemd/system/demo-beat.service || fail "the unit file was not restored"
  local backup; backup=$(grep -o 'backup: [^ ]*keel.conf' <<<"$out" | head -1 | cut -d' ' -f2)
  [ -n "$backup" ] && vx grep -qx 'maxmemory 1mb' "$backup" || { echo "$out"; fail "no backup of the edited file"; }
  [ "$(vx stat -c '%a %U' "$backup")" = "600 root" ] || fail "backup mode"
  app_checks
  # Converged: nothing drifts, and the checks keep a no-op fast.
  local t0 t1; t0=$(date +%s%N)
  out=$(keel install --yes 2>&1)
  t1=$(date +%s%N)
  grep -q "0 step(s) run, $(step_count) already done" <<<"$out" || { echo "$out"; fail "not converged after the repair"; }
  echo "no-op install with drift checks: $(( (t1 - t0) / 1000000 )) ms"
  [ $(( (t1 - t0) / 1000000 )) -le 300 ] || fail "the no-op took more than 300 ms"
}
