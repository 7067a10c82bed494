# Issue: every day after the install. One-off commands as the app (`keel run`, `dbshell`)
# and the logs (`keel logs`, `-f`, `--failed`), on the demo.

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
  # Bad input: exit 2.
  expect_rc 2 keel logs nosuch
  expect_rc 2 keel logs --since 'not a time at all'
}
