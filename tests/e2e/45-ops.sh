# Issue: every day after the install. One-off commands as the app (`keel run`, `dbshell`),
# the logs (`keel logs`, `-f`, `--failed`), env changes, maintenance mode, scheduled
# commands and more processes, on the demo.

scenario_ops() {
  fresh
  keel install --yes
  local root rel; root=$("$VPS" root "$BOX")
  rel=$(vx readlink -f /opt/demo/current)
  # keel run: the app's user, its exit status, its read-only release, Django's commands.
  [ "$(keel run -- id -un)" = demo ] || fail "keel run -- id -un is not the app's user"
  expect_rc 7 keel run -- sh -c 'exit 7'
  expect_rc 1 keel run -- touch "$rel/x"
  [ ! -e "$root$rel/x" ] || fail "keel run wrote into the release"
  keel run -- touch /opt/demo/shared/media/ops-upload || fail "uploads are not writable"
  keel run -- python manage.py createsuperuser --noinput --username opsuser --email ops@example.com
  output_has '^1$' keel run -- python manage.py shell -c \
    "from django.contrib.auth import get_user_model; print(get_user_model().objects.filter(username='opsuser').count())" \
    || fail "createsuperuser through keel run made no user"
  # keel dbshell in a terminal (script(1) gives it one): select 1 as the app's role, and
  # meanwhile the password is in no process's command line.
  local pw; pw=$(vx cat /etc/keel/secrets/postgres_password)
  vx sh -c "(sleep 3; printf 'select 4242 + 1 as ops;\n\\\\q\n') | nohup script -qec 'keel --config /etc/keel/keel.toml dbshell' /dev/null > /root/dbshell.out 2>&1 &"
  sleep 1.5
  local argv; argv=$(vx sh -c 'for f in /proc/[0-9]*/cmdline; do tr "\0" " " <"$f" 2>/dev/null; echo; done')
  grep -q 'psql' <<<"$argv" || fail "dbshell's psql was not running when its command lines were read"
  ! grep -qF -- "$pw" <<<"$argv" || fail "the database password is on a command line"
  wait_for 20 vx grep -q 4243 /root/dbshell.out
  vx cat /root/dbshell.out
  [ "$(keel dbshell -At -c 'select current_user')" = demo ] || fail "dbshell is not the app's role"
  # keel logs: web and worker, each line named.
  curl_site() { vx curl -s -o /dev/null "http://127.0.0.1$1"; }
  curl_site /celery-ping/
  local out; out=$(keel logs -n 20 web worker)
  echo "$out" | tail -5
  grep -qE '^[0-9T:.-]+Z web ' <<<"$out" || fail "no web line named web: $out"
  grep -qE '^[0-9T:.-]+Z worker ' <<<"$out" || fail "no worker line named worker: $out"
  # -f follows: a request made after it started shows up, then it is stopped.
  vx sh -c 'nohup keel --config /etc/keel/keel.toml logs -f -n 0 web nginx > /root/follow.out 2>&1 & echo $! > /root/follow.pid'
  sleep 2
  curl_site /ops-follow-marker/
  wait_for 20 vx grep -q ops-follow-marker /root/follow.out
  vx sh -c 'kill $(cat /root/follow.pid)'
  vx cat /root/follow.out | tail -3
  # --failed: a deploy whose settings do not load, then its output.
  cp -r examples/demo-app "$root/srv-broken"
  echo 'raise RuntimeError("ops-broken on purpose")' >>"$root/srv-broken/demo/settings.py"
  expect_rc 1 keel deploy --source /srv-broken
  out=$(keel logs --failed)
  echo "$out" | head -3
  grep -q 'deploy-failed' <<<"$out" || fail "logs --failed does not name the failed deploy"
  grep -q 'ops-broken on purpose' <<<"$out" || fail "logs --failed lacks the deploy's error output"
  # keel env set under a request loop: no failed request, Gunicorn has the value, a re-run
  # keeps it; a secret (from stdin) is masked in list and the report, never in keel.toml.
  load_loop_script >"$root/usr/local/bin/keel-load"
  chmod 0755 "$root/usr/local/bin/keel-load"
  vx rm -f /tmp/envload.stop /tmp/envload.log
  vx sh -c 'nohup keel-load /tmp/envload.log /tmp/envload.stop >/dev/null 2>&1 &'
  wait_for 20 vx sh -c 'grep -q "^ok" /tmp/envload.log'
  keel env set OPS_FLAG=bar
  vx sh -c 'printf "tok-%s-secret" "$(date +%s%N)" > /root/tok'
  vx sh -c 'keel --config /etc/keel/keel.toml env set OPS_SECRET_TOKEN=- < /root/tok'
  sleep 1
  vx touch /tmp/envload.stop
  sleep 1
  local total fails; total=$(vx sh -c 'wc -l < /tmp/envload.log'); fails=$(vx sh -c 'grep -c FAIL /tmp/envload.log || true')
  echo "env set under load: $total requests, $fails failed"
  [ "$fails" = 0 ] || fail "keel env set: $fails of $total requests failed: $(vx sh -c 'grep FAIL /tmp/envload.log | head -3')"
  local pid; pid=$(vx systemctl show -p MainPID --value demo-web.service)
  vx sh -c "tr '\0' '\n' < /proc/$pid/environ" | grep -qx 'OPS_FLAG=bar' || fail "Gunicorn does not have OPS_FLAG=bar"
  keel install --yes >/dev/null
  vx grep -qx 'OPS_FLAG=bar' /opt/demo/shared/.env || fail "keel install dropped OPS_FLAG"
  local tok; tok=$(vx cat /root/tok)
  out=$(keel env list)
  grep -qx 'OPS_SECRET_TOKEN=\*\*\*\*    # keel env set' <<<"$out" || fail "env list does not mask the token: $out"
  ! grep -qF "$tok" <<<"$out" || fail "env list shows the token"
  ! vx grep -qF "$tok" /etc/keel/keel.toml || fail "the token is in keel.toml"
  keel diagnose >/dev/null
  ! vx grep -qF "$tok" /var/log/keel/diagnostics-latest.txt /var/log/keel/diagnostics-latest.html /var/lib/keel/state.json || fail "the token is in the report or the state file"
  # Maintenance: a visitor (this host's own non-loopback address) gets 503 with Retry-After
  # and the message, loopback and an allowed address get the app; a re-run keeps the mode.
  local ip hdr; ip=$(vx sh -c "hostname -I | awk '{print \$1}'")
  visitor() { vx curl -s -D - -o /root/maint.html --max-time 20 -H 'Host: demo.localhost' "http://$ip/"; }
  keel maintenance on --message 'Back at 14:00 UTC <soon>'
  hdr=$(visitor)
  grep -q '^HTTP/1.1 503' <<<"$hdr" || fail "maintenance on: a visitor did not get 503: $hdr"
  grep -qi '^Retry-After: 600' <<<"$hdr" || fail "no Retry-After: $hdr"
  vx grep -q 'Back at 14:00 UTC &lt;soon&gt;' /root/maint.html || fail "the page lacks the message"
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/)" = 200 ] || fail "loopback does not get the app"
  keel install --yes --retry-step nginx >/dev/null
  grep -q '^HTTP/1.1 503' <<<"$(visitor)" || fail "a re-run dropped the mode"
  out=$(keel verify --output json) || fail "verify in maintenance must not be unhealthy"
  [ "$(jq_py "[c['level'] for c in d['checks'] if c['name']=='maintenance'][0]" <<<"$out")" = warn ] || fail "verify does not say maintenance"
  keel maintenance on --allow "$ip"
  grep -q '^HTTP/1.1 200' <<<"$(visitor)" || fail "an allowed address does not get the app"
  keel maintenance status | grep -q "$ip" || fail "status does not list the allowed address"
  expect_rc 2 keel maintenance on --allow 'example.com'
  keel maintenance off
  grep -q '^HTTP/1.1 200' <<<"$(visitor)" || fail "maintenance off: the app is not back"
  # [[schedule]]: one every minute writes a mark as the app (an argument with spaces, quotes
  # and a %), one fails: `keel schedules` shows both results, the failure is an event.
  cat >>"$root/etc/keel/keel.toml" <<'EOF'

[[schedule]]
name = "mark"
command = ["python", "-c", "import pathlib, time; pathlib.Path('/opt/demo/shared/media/sched-mark').write_text('ran at %d' % time.time())"]
on_calendar = "minutely"

[[schedule]]
name = "broken"
command = ["/bin/false"]
on_calendar = "minutely"

[[process]]
name = "slow-worker"
command = ["celery", "-A", "demo", "worker", "-Q", "slow", "--concurrency", "1", "--hostname", "slow@%h", "--loglevel", "INFO"]
EOF
  keel install --yes >/dev/null
  # [[process]]: a second worker consumes a task sent to its queue (the main one does not).
  vx systemctl is-active demo-slow-worker
  output_has '^pong$' keel run -- python manage.py shell -c \
    "from core.tasks import ping; print(ping.apply_async(queue='slow').get(timeout=60))" \
    || fail "the [[process]] worker did not consume its queue"
  vx journalctl -u demo-slow-worker --no-pager | grep -q 'core.tasks.ping.*succeeded' || fail "the task did not run in the [[process]] worker"
  wait_for 100 vx test -e /opt/demo/shared/media/sched-mark
  [ "$(vx stat -c %U /opt/demo/shared/media/sched-mark)" = demo ] || fail "the schedule did not run as the app"
  vx grep -q '^ran at [0-9]' /opt/demo/shared/media/sched-mark || fail "the schedule's argument was not passed whole"
  broken_failed() { keel schedules | grep -qE '^broken +minutely .*failed'; }
  wait_for 100 broken_failed
  wait_for 30 vx grep -q '"event":"schedule-failed"' /var/log/keel/events.jsonl
  keel schedules
  keel schedules | grep -qE '^mark +minutely +[0-9T:-]+Z +ok +[0-9]{4}-' || fail "keel schedules does not show mark's run as ok with its next run"
  # A calendar systemd cannot read: exit 2, nothing written.
  local sum; sum=$(vx sh -c 'ls -l --time-style=full-iso /etc/systemd/system | sha256sum; sha256sum /var/lib/keel/state.json')
  vx sed -i 's/^on_calendar = "minutely"$/on_calendar = "every minute"/' /etc/keel/keel.toml
  out=$(keel install --yes 2>&1) && fail "a bad calendar was accepted"
  grep -q 'schedule\[0\].on_calendar' <<<"$out" || fail "the refusal does not name the key: $out"
  [ "$(vx sh -c 'ls -l --time-style=full-iso /etc/systemd/system | sha256sum; sha256sum /var/lib/keel/state.json')" = "$sum" ] || fail "a refused install wrote something"
  vx sed -i 's/^on_calendar = "every minute"$/on_calendar = "minutely"/' /etc/keel/keel.toml
  # Bad input: exit 2.
  expect_rc 2 keel logs nosuch
  expect_rc 2 keel logs --since 'not a time at all'
}
