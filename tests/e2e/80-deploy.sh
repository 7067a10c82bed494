# Issue: day two. `keel deploy` with no failed request under load, a long Celery task that
# finishes across the worker's restart, the automatic switch back when a release fails its
# checks, `keel deploy --rollback` by hand, and 502/503 (never 200) when Gunicorn is down.

# A request loop inside the container (over loopback): LOG gets one line per request, "ok
# VERSION" or "FAIL ...". A failure: no connection, any status but 200, or a body that is not
# the app's own page (keel's placeholder included). Stops when STOP exists.
load_loop_script() {
  cat <<'SH'
#!/bin/sh
log=$1 stop=$2 body=$(mktemp)
while [ ! -e "$stop" ]; do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 20 http://127.0.0.1/) || code="000:$?"
  if [ "$code" = 200 ] && grep -q 'Django is serving through Gunicorn' "$body"; then
    echo "ok $(grep -o 'demo-home[^:]*' "$body" | head -1 | tr ' ' _)" >>"$log"
  else
    echo "FAIL $code $(head -c 120 "$body" | tr '\n' ' ')" >>"$log"
  fi
  sleep 0.1
done
SH
}

# A copy of the demo app as version VERSION under /srv/VERSION in the container; SED is
# applied to core/views.py on top of the version mark.
app_version() {
  local version=$1 sed_expr=${2:-}
  local root; root=$("$VPS" root "$BOX")
  rm -rf "${root:?}/srv/$version"
  mkdir -p "$root/srv"
  cp -r examples/demo-app "$root/srv/$version"
  sed -i "s/demo-home: /demo-home $version: /" "$root/srv/$version/core/views.py"
  [ -z "$sed_expr" ] || sed -i "$sed_expr" "$root/srv/$version/core/views.py"
}

# Django shell as the app, in the live release.
app_shell() {
  vx sh -c "cd /opt/demo/current && runuser -u demo -- ./venv/bin/python manage.py shell -v 0 -c \"$1\""
}

# KEY's value in the app's Redis (read as the app, with its own credentials), or None.
redis_key() {
  app_shell "import redis; from django.conf import settings; v = redis.Redis.from_url(settings.CELERY_BROKER_URL).get('$1'); print(v.decode() if v else None)"
}
redis_key_set() { [ "$(redis_key "$1")" != None ]; }

load_summary() {
  local log=$1
  local total fails
  total=$(vx sh -c "cat $log | wc -l")
  fails=$(vx sh -c "grep -c '^FAIL' $log || true")
  echo "load: $total requests, $fails failed; versions seen: $(vx sh -c "grep '^ok' $log | cut -d' ' -f2 | uniq | tr '\n' ' '")"
  [ "$fails" = 0 ] || { vx grep '^FAIL' "$log" | head -5; fail "$fails of $total requests failed"; }
  [ "$total" -ge 50 ] || fail "only $total requests: the loop did not run for the deploy"
}

scenario_deploy() {
  fresh
  keel install --yes
  local first; first=$(keel releases --output json | jq_py "d['current']")
  local root; root=$("$VPS" root "$BOX")
  load_loop_script >"$root/usr/local/bin/keel-load"
  chmod 0755 "$root/usr/local/bin/keel-load"
  app_version v2
  app_version v3 's/answer = ping.delay().get(timeout=10)/raise RuntimeError("broken on purpose")/'
  grep -q 'broken on purpose' "$root/srv/v3/core/views.py" || fail "v3 is not broken"
  # Two loops side by side, for the whole of the deploys.
  vx rm -f /tmp/load.stop /tmp/load1.log /tmp/load2.log
  vx sh -c 'nohup keel-load /tmp/load1.log /tmp/load.stop >/dev/null 2>&1 &'
  vx sh -c 'nohup keel-load /tmp/load2.log /tmp/load.stop >/dev/null 2>&1 &'
  wait_for 20 vx sh -c 'grep -q "^ok demo-home" /tmp/load1.log'
  # A 25 s task is running when the deploy restarts the worker.
  app_shell "from core.tasks import slow; slow.delay(25, 'e2e:slow')"
  wait_for 30 redis_key_set e2e:slow:started
  local out; out=$(keel deploy --source /srv/v2 --output json)
  echo "deploy v2: $out"
  local v2; v2=$(jq_py "d['release']" <<<"$out")
  [ "$(jq_py "d['result']" <<<"$out")" = deployed ] || fail "v2 not deployed"
  output_has 'demo-home v2' vx curl -s http://127.0.0.1/ || fail "the new version is not served"
  # The long task finished: the worker's warm shutdown waited for it.
  redis_key_set e2e:slow:done || { vx journalctl -u demo-worker -n 30 --no-pager; fail "the long task did not finish across the worker's restart"; }
  # ... and it was running when the worker's stop began: started < stop began < done.
  local started finished stop_began
  started=$(redis_key e2e:slow:started); finished=$(redis_key e2e:slow:done)
  stop_began=$(vx systemctl show demo-worker -p ActiveExitTimestamp --timestamp=unix --value | tr -d @)
  echo "slow task: started $started, worker stop began $stop_began, task done $finished"
  # systemd gives the stop to the second (truncated): a stop within the task's first second
  # reads as earlier than its start.
  python3 -c "import sys; s,b,d=map(float,sys.argv[1:]); sys.exit(0 if s < b + 1 and b < d else 1)" "$started" "$stop_began" "$finished" \
    || fail "the task was not running across the worker's restart"
  # A release that fails its checks (its task round trip errors): exit 1, switched back.
  local rc=0
  out=$(keel deploy --source /srv/v3 2>&1) || rc=$?
  echo "$out" | tail -5
  [ "$rc" = 1 ] || fail "a failing release must exit 1, got $rc"
  grep -q 'failed its checks' <<<"$out" || fail "the failing check is not named"
  grep -q 'celery-ping' <<<"$out" || fail "the failing check is not named"
  [ "$(keel releases --output json | jq_py "d['current']")" = "$v2" ] || fail "v2 is not current again"
  output_has 'demo-home v2' vx curl -s http://127.0.0.1/ || fail "v2 is not served again"
  keel verify >/dev/null || fail "v2 is not healthy after the switch back"
  keel releases
  keel releases --output json | jq_py "[r['status'] for r in d['releases']]" | grep -qx '\["failed", "ok", "ok"\]' \
    || fail "releases: $(keel releases --output json)"
  # Back to the first release by hand.
  keel deploy --rollback
  [ "$(keel releases --output json | jq_py "d['current']")" = "$first" ] || fail "rollback did not return to the first release"
  output_has 'demo-home: ' vx curl -s http://127.0.0.1/ || fail "the first version is not served"
  # One more requirement: the new venv starts from the live one (uv adds what changed), and
  # the live one is left as it was.
  app_version v4
  echo six >>"$root/srv/v4/requirements.txt"
  out=$(keel deploy --source /srv/v4 --output json 2>&1)
  grep -q 'plus what changed' <<<"$out" || { echo "$out"; fail "the new venv did not start from the live one"; }
  local v4; v4=$(tail -1 <<<"$out" | jq_py "d['release']")
  local nv ov; nv=$(vx readlink -f /opt/demo/current/venv); ov=$(vx readlink -f "/opt/demo/releases/$first/venv")
  [ "$nv" != "$ov" ] || fail "the release with a new requirement shares the old venv"
  vx /opt/demo/current/venv/bin/python -c 'import six, django, celery'
  [ "$(vx head -1 "$nv/bin/celery")" = "#!$nv/bin/python" ] || fail "the new venv's scripts point elsewhere: $(vx head -1 "$nv/bin/celery")"
  [ "$(vx head -1 "$ov/bin/celery")" = "#!$ov/bin/python" ] || fail "the seed venv's scripts were changed"
  if vx "$ov/bin/python" -c 'import six' 2>/dev/null; then fail "the seed venv got the new package"; fi
  output_has 'demo-home v4' vx curl -s http://127.0.0.1/ || fail "v4 is not served"
  vx touch /tmp/load.stop
  sleep 1
  load_summary /tmp/load1.log
  load_summary /tmp/load2.log
  # The install after the deploys keeps the release the admin chose.
  out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run" <<<"$out" || { echo "$out"; fail "install after deploys is not a no-op"; }
  [ "$(keel releases --output json | jq_py "d['current']")" = "$v4" ] || fail "install changed the release"
  # Gunicorn down on a deployed host: 502 or 503, never 200; verify unhealthy.
  vx systemctl stop demo-web.socket demo-web.service
  local code; code=$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/)
  [ "$code" = 503 ] || [ "$code" = 502 ] || fail "with Gunicorn down / answered $code"
  expect_rc 1 keel verify
}
