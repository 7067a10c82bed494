# Issue: operate — cloud-init, status --wait, verify (+heal, prometheus), diagnose.

scenario_verify_diagnose() {
  fresh
  keel install --yes
  keel status --wait --timeout 5
  local out rc
  out=$(keel verify --output json)
  local nchecks; nchecks=$(echo "$out" | jq_py "len(d['checks'])")
  [ "$nchecks" -ge 10 ] || fail "verify ran only $nchecks checks"
  echo "$out" | jq_py "d['verdict']" | grep -qE '^(healthy|degraded)$' || fail "verify on a healthy host: $out"
  # Not the load: a container reads the machine's /proc/loadavg, and the lanes side by side
  # (plus whatever else runs here) can pass 4 per CPU on a 2-core machine.
  echo "$out" | jq_py "[c['name'] for c in d['checks'] if c['level']=='error' and c['name'] != 'load']" | grep -qx '\[\]' || fail "errors on a healthy host: $out"
  # Prometheus textfile format, checked by promtool itself.
  vx sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null 2>&1; systemctl stop prometheus 2>/dev/null || true'
  vx sh -c 'keel --config /etc/keel/keel.toml verify --output prometheus | promtool check metrics' || fail "promtool rejected keel's metrics"
  # Redis down: unhealthy, named, with a hint; --heal brings it back.
  vx systemctl stop redis-server
  rc=0; out=$(keel verify 2>&1) || rc=$?
  echo "$out"
  [ "$rc" = 1 ] || fail "verify with redis stopped exited $rc"
  grep -q '^redis .*ERROR.*redis-server is not active' <<<"$out" || fail "verify must name redis"
  grep -q 'hint: see journalctl -u redis-server' <<<"$out" || fail "verify must give a hint for redis"
  keel verify --heal
  vx systemctl is-active redis-server
  keel verify
  # A hanging check is cut at its timeout; the others still report.
  local t0 t1; t0=$(date +%s)
  # psql hangs (a wedged tool), so the postgres check does: no test hook in keel itself.
  vx sh -c 'printf "#!/bin/sh\nsleep 3600\n" >/usr/local/bin/psql; chmod 755 /usr/local/bin/psql'
  rc=0; out=$(keel verify --output json) || rc=$?
  vx rm -f /usr/local/bin/psql
  t1=$(date +%s)
  [ $((t1 - t0)) -le 9 ] || fail "verify with a hung check took $((t1 - t0))s"
  echo "$out" | jq_py "[c['message'] for c in d['checks'] if c['name']=='postgres'][0]" | grep -q 'timed out' || fail "hung check not reported: $out"
  echo "$out" | jq_py "len(d['checks'])" | grep -qx "$nchecks" || fail "other checks missing (want $nchecks): $out"
  echo "$out" | jq_py "[c['level'] for c in d['checks'] if c['name']=='redis'][0]" | grep -qx ok || fail "redis check did not report beside the hung one"
  # Diagnostics: written, 0600, verdicts, and no secret anywhere under keel's dirs.
  keel diagnose
  vx test -L /var/log/keel/diagnostics-latest.txt
  [ "$(vx stat -L -c %a /var/log/keel/diagnostics-latest.txt)" = 600 ] || fail "report not 0600"
  vx grep -q 'SUMMARY' /var/log/keel/diagnostics-latest.txt
  vx grep -q 'python packages' /var/log/keel/diagnostics-latest.txt
  # Every section of a full report is there, each with a verdict.
  vx sh -c 'cat /var/log/keel/diagnostics-latest.json' | jq_py "sorted(s['title'] for s in d['sections'] if s['verdict'] in ('ok','warn','error'))" \
    | grep -qx '\["backups", "health checks", "keel steps", "listening ports", "nginx -t", "permissions", "postgres and redis", "python packages", "recent events", "services", "system", "tls"\]' \
    || fail "report sections: $(vx cat /var/log/keel/diagnostics-latest.json | jq_py "[(s['title'], s['verdict']) for s in d['sections']]")"
  no_secret_leaks
  report_pages
}

# The HTML report, rendered by Chromium: the install's timeline (one bar per step that ran),
# then a failed run rolled back (a failed bar, rollback bars); no secret in either page.
report_pages() {
  local dom steps n
  vx test "$(vx stat -L -c %a /var/log/keel/diagnostics-latest.html)" = 600 || fail "HTML report not 0600"
  dom=$(render_report report-install)
  steps=$(keel status --output json | jq_py "' '.join(s['id'] for s in d['steps'] if s['status']=='completed')")
  n=$(echo "$steps" | wc -w)
  [ "$n" -ge 15 ] || fail "only $n completed steps"
  [ "$(dom_count "$dom" '<rect class="bar ok"')" = "$n" ] || fail "want $n bars in the install's timeline, DOM has $(dom_count "$dom" '<rect class="bar ')"
  for s in $steps; do grep -q "data-step=\"$s\"" "$dom" || fail "no bar for $s"; done
  grep -q 'succeeded, [0-9]* step(s)' "$dom" || fail "run outcome missing"
  grep -q '<td>redis</td>' "$dom" || fail "health checks missing from the page"
  # A failed run rolled back: redis and nginx re-run side by side, nginx -t fails.
  vx sed -i -e 's/^maxmemory_mb = .*/maxmemory_mb = 300/' -e 's/^client_max_body_mb = .*/client_max_body_mb = 21/' /etc/keel/keel.toml
  inject_failure nginx
  local rc=0; keel install --yes --rollback run || rc=$?
  clear_failures
  [ "$rc" = 1 ] || fail "the injected nginx failure exited $rc"
  dom=$(render_report report-failed-rolled-back)
  grep -q '<rect class="bar failed" data-step="nginx"' "$dom" || fail "no failed bar for nginx"
  grep -q 'class="rollback" data-step="redis"' "$dom" || fail "no rollback bar for redis"
  grep -q 'failed, rolled back' "$dom" || fail "the run's outcome is not on the page"
  grep -q 'id="verdict"' "$dom" || fail "no verdict"
  for f in $(vx sh -c 'ls /etc/keel/secrets'); do
    v=$(vx cat "/etc/keel/secrets/$f")
    if grep -qF -- "$v" "$here"/target/e2e/artifacts/report-*.html; then fail "secret $f in an HTML report"; fi
  done
  echo "report pages: $n bars, then a failed bar and rollback bars; PNGs under target/e2e/artifacts"
}

scenario_cloud_init() {
  # The .deb, served from this side (the container shares this network) at the URL put in
  # place of the example's.
  local deb; deb=$(scripts/package.sh "$here/target/e2e/$BOX-keel.deb" | tail -1)
  [ -f "$deb" ] || fail "no package built"
  # Bounded by timeout(1): a failed scenario (exit) cannot leave it holding the port.
  timeout 1200 python3 -m http.server 8089 --bind 127.0.0.1 --directory "$(dirname "$deb")" >/dev/null 2>&1 &
  local server=$!
  local prep; prep=$(mktemp)
  cat >"$prep" <<EOS
#!/bin/sh
set -e
root=\$1
mkdir -p "\$root/var/lib/cloud/seed/nocloud" "\$root/etc/cloud/cloud.cfg.d"
printf 'instance-id: keel-e2e\nlocal-hostname: keel-e2e\n' >"\$root/var/lib/cloud/seed/nocloud/meta-data"
sed 's|https://downloads.example.com/keel/keel_0.1.0-1_amd64.deb|http://127.0.0.1:8089/$(basename "$deb")|' \
  "$PWD/examples/cloud-init/user-data.yaml" >"\$root/var/lib/cloud/seed/nocloud/user-data"
grep -q 127.0.0.1:8089 "\$root/var/lib/cloud/seed/nocloud/user-data"
printf 'datasource_list: [ NoCloud, None ]\n' >"\$root/etc/cloud/cloud.cfg.d/99-datasource.cfg"
EOS
  chmod +x "$prep"
  # The README's example is the user-data under test.
  python3 - "$PWD/README.md" "$PWD/examples/cloud-init/user-data.yaml" <<'PY' || fail "README's cloud-init example differs from examples/cloud-init/user-data.yaml"
import sys
readme, example = open(sys.argv[1]).read(), open(sys.argv[2]).read()
sys.exit(0 if example.strip() in readme else 1)
PY
  KEEL_E2E_FLAVOR=cloudinit KEEL_E2E_PREPARE="$prep" KEEL_E2E_NOWAIT=1 "$VPS" up "$BOX"
  # keel arrives with the package (runcmd); then it is called while it may not have started.
  local i; for i in $(seq 600); do vx test -x /usr/bin/keel && break; sleep 1; done
  vx test -x /usr/bin/keel || { vx tail -40 /var/log/cloud-init-output.log; fail "cloud-init did not install keel's package"; }
  kill "$server" 2>/dev/null || true
  vx dpkg -s keel | grep -q '^Status: install ok installed' || fail "keel's package is not installed"
  local rc=0; vx keel status --wait --timeout 900 || rc=$?
  vx cloud-init status --long || true
  [ "$rc" = 0 ] || { vx tail -40 /var/log/cloud-init-output.log; fail "keel status --wait exited $rc"; }
  vx grep -q 'keel: \[packages\] started' /var/log/cloud-init-output.log || fail "keel's lines are not in cloud-init-output.log"
  if vx grep -qP '\x1b' /var/log/cloud-init-output.log; then fail "escape codes in cloud-init-output.log"; fi
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/)" = 200 ] || fail "the app does not answer through nginx"
  [ "$(vx curl -s http://127.0.0.1/celery-ping/)" = pong ] || fail "/celery-ping/ did not answer pong"
  vx systemctl is-active keel-verify.timer || fail "health timer not active"
  vx systemctl start keel-verify.service
  vx keel --config /etc/keel/keel.toml verify
}
