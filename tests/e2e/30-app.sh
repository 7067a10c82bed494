# Issue: the application stack (Django + Celery behind nginx and Gunicorn).

app_checks() {
  vx systemctl is-active demo-web demo-worker demo-beat postgresql redis-server nginx
  local code; code=$(vx curl -s -o /tmp/home.html -w '%{http_code}' http://127.0.0.1/)
  [ "$code" = 200 ] || fail "GET / answered $code"
  vx grep -q demo-home /tmp/home.html || fail "GET / is not Django's home page"
  [ "$(vx curl -s http://127.0.0.1/celery-ping/)" = pong ] || fail "/celery-ping/ did not answer pong"
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/static/admin/css/base.css)" = 200 ] || fail "static files not served"
}

# Uploads at MEDIA_URL: a file the app wrote is served with nosniff; HTML and SVG come back
# as downloads; a link the app planted to /etc/passwd is not followed; dotfiles stay denied.
media_checks() {
  vx runuser -u demo -- sh -c 'cd /opt/demo/shared/media && echo avatar >a.txt && echo "<script>x</script>" >x.html && echo "<svg/>" >y.svg && echo s >.secret && ln -sf /etc/passwd pw'
  local h
  h=$(vx curl -s -D - -o /tmp/a.txt http://127.0.0.1/media/a.txt)
  grep -q '^HTTP/1.1 200' <<<"$h" || fail "an upload is not served at /media/: $h"
  [ "$(vx cat /tmp/a.txt)" = avatar ] || fail "wrong upload body"
  grep -qi '^X-Content-Type-Options: nosniff' <<<"$h" || fail "no nosniff on uploads: $h"
  if grep -qi '^Content-Disposition' <<<"$h"; then fail "a plain upload is a download: $h"; fi
  for f in x.html y.svg; do
    h=$(vx curl -s -D - -o /dev/null "http://127.0.0.1/media/$f")
    grep -qi '^Content-Disposition: attachment' <<<"$h" || fail "$f is not sent as a download: $h"
    grep -qi '^X-Content-Type-Options: nosniff' <<<"$h" || fail "$f without nosniff"
  done
  local code; code=$(vx curl -s -o /tmp/pw -w '%{http_code}' http://127.0.0.1/media/pw)
  [ "$code" = 403 ] || [ "$code" = 404 ] || fail "a link in media was followed ($code): $(vx head -c 80 /tmp/pw)"
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/media/.secret)" = 404 ] || fail "a dotfile in media is served"
  vx sh -c 'cd /opt/demo/shared/media && rm -f a.txt x.html y.svg .secret pw'
  echo "media: served with nosniff; .html and .svg as downloads; a link to /etc/passwd answered $code"
}

# The trust boundary on a provisioned host: sandboxed units, an app that cannot change what
# runs it or read keel's secrets, nginx, Redis and PostgreSQL locked down.
hardening_checks() {
  local u score
  for u in demo-web demo-worker demo-beat; do
    score=$(vx systemd-analyze security "$u.service" --no-pager | awk '/Overall exposure level/ {print $(NF-2)}')
    echo "systemd-analyze security $u: $score"
    python3 -c "import sys; sys.exit(0 if float('$score') <= 2.0 else 1)" || fail "$u exposure $score > 2.0"
  done
  for f in /opt/demo/current/manage.py /opt/demo/current/demo/settings.py /opt/demo/shared/.env /opt/demo/current/venv/bin/python /opt/demo/current/venv/bin/gunicorn; do
    if vx runuser -u demo -- sh -c "echo x >>$f" 2>/dev/null; then fail "the app user can write $f"; fi
  done
  for d in /opt/demo /opt/demo/releases /opt/demo/current /opt/demo/current/demo /opt/demo/venvs /opt/demo/current/venv /opt/demo/current/venv/bin /opt/demo/shared; do
    if vx runuser -u demo -- touch "$d/keel-probe" 2>/dev/null; then fail "the app user can create files in $d"; fi
  done
  if vx runuser -u demo -- cat /etc/keel/secrets/postgres_password >/dev/null 2>&1; then fail "the app user can read keel's secrets"; fi
  if vx runuser -u demo -- ls /etc/keel/secrets >/dev/null 2>&1; then fail "the app user can list keel's secrets"; fi
  vx runuser -u demo -- touch /opt/demo/current/media/keel-probe || fail "the app user cannot write its media directory"
  vx rm -f /opt/demo/shared/media/keel-probe
  [ "$(vx readlink /opt/demo/current)" = "releases/$(keel releases --output json | jq_py "d['current']")" ] || fail "current is not the state's release"
  # Gunicorn gets its socket from systemd; nginx reaches it without the app in www-data.
  vx systemctl is-active demo-web.socket
  [ "$(vx stat -c '%U %G %a' /run/demo/gunicorn.sock)" = "root www-data 660" ] || fail "socket owner/mode: $(vx stat -c '%U %G %a' /run/demo/gunicorn.sock)"
  if vx id -nG demo | grep -qw www-data; then fail "demo is in www-data"; fi
  # nginx: security headers, dotfiles, unknown Host never reaches Django.
  local h; h=$(vx curl -s -D - -o /dev/null http://127.0.0.1/)
  for x in 'X-Content-Type-Options: nosniff' 'X-Frame-Options: SAMEORIGIN' 'Referrer-Policy: strict-origin-when-cross-origin' "Content-Security-Policy: frame-ancestors 'self'"; do
    grep -qi "^$x" <<<"$h" || fail "missing header $x: $h"
  done
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/.env)" = 404 ] || fail "/.env not denied"
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/static/.hidden)" = 404 ] || fail "dotfile under /static not denied"
  local rc=0; vx curl -s -o /dev/null -H 'Host: evil.example' http://127.0.0.1/ || rc=$?
  [ "$rc" = 52 ] || fail "an unknown Host got an answer (curl exit $rc, want 52: empty reply)"
  media_checks
  # Redis: the app's password cannot reconfigure the server; PostgreSQL: no CONNECT for PUBLIC.
  [ "$(vx runuser -u postgres -- psql -XAtc "select has_database_privilege('public','demo','CONNECT')")" = f ] || fail "PUBLIC may connect to demo"
  vx grep -q '^user default on #' /etc/redis/keel.conf || fail "no redis ACL"
  if vx grep -q "$(vx cat /etc/keel/secrets/redis_password)" /etc/redis/keel.conf; then fail "redis password in clear in keel.conf"; fi
}

scenario_app() {
  fresh
  start_cmdline_sampler
  local rc=0; keel install --yes || rc=$?
  stop_cmdline_sampler
  [ "$rc" = 0 ] || fail "install exited $rc"
  echo "on $(vx sh -c '. /etc/os-release; echo $PRETTY_NAME'): PostgreSQL $(vx ls /etc/postgresql), $(vx python3 --version)"
  app_checks
  [ "$(vx stat -c '%a %U %G' /opt/demo/shared/.env)" = "640 root demo" ] || fail ".env must be 0640 root:demo"
  hardening_checks
  local sk; sk=$(vx sh -c ". /opt/demo/shared/.env >/dev/null 2>&1; printf %s \"\$SECRET_KEY\"")
  [ "${#sk}" -ge 50 ] || fail "SECRET_KEY has ${#sk} characters"
  vx grep -qx 'DEBUG=False' /opt/demo/shared/.env || fail "DEBUG is not off"
  vx test -s /etc/keel/secrets/admin_password || fail "admin password is not a keel secret"
  vx test -s /etc/keel/secrets/env_secret_key || fail "SECRET_KEY is not stored as a keel secret"
  [ "$(vx sh -c 'cd /opt/demo/current && printf "%s\n" "from django.contrib.auth import authenticate" "print(authenticate(username=\"admin\", password=open(\"/etc/keel/secrets/admin_password\").read().strip()) is not None)" | /opt/demo/current/venv/bin/python manage.py shell -v 0')" = True ] \
    || fail "the admin user does not log in with the stored password"
  no_secret_leaks
  # Beat ticks.
  local h1 h2; h1=$(vx curl -s http://127.0.0.1/heartbeat/); sleep 6; h2=$(vx curl -s http://127.0.0.1/heartbeat/)
  [ "$h1" != "$h2" ] || fail "beat heartbeat did not advance ($h1)"
  # Second identical run: nothing runs.
  local out; out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run, $(step_count) already done" <<<"$out" || { echo "$out"; fail "second run was not a no-op"; }
  # A config value re-runs only the steps it affects.
  vx sed -i 's/^web_workers = 2/web_workers = 3/' /etc/keel/keel.toml
  local plan; plan=$(keel install --dry-run --output json)
  echo "$plan" | jq_py "sorted(s['id'] for s in d['steps'] if s['runs'])" | grep -qx '\["services", "verify"\]' \
    || fail "web_workers change should re-run services and verify only: $plan"
  keel install --yes
  [ "$(vx pgrep -c -f 'gunicorn --workers 3')" = 4 ] || fail "gunicorn did not restart with 3 workers"
  app_checks
  # An operator's template override re-runs exactly the steps that use it.
  local root; root=$("$VPS" root "$BOX")
  mkdir -p "$root/etc/keel/templates"
  { echo "# operator override"; cat templates/nginx-site.conf.j2; } >"$root/etc/keel/templates/nginx-site.conf.j2"
  plan=$(keel install --dry-run --output json)
  echo "$plan" | jq_py "sorted(s['id'] for s in d['steps'] if s['runs'])" | grep -qx '\["nginx", "tls", "verify"\]' \
    || fail "a template override should re-run nginx, tls (which renders the same site) and verify only: $plan"
  keel install --yes
  vx grep -q '^# operator override' /etc/nginx/sites-available/keel-demo.conf || fail "override not applied"
  app_checks
  # A module deleted from the source leaves the deployed app; the app's own files stay.
  vx sh -c 'echo "X = 1" >/etc/keel/demo-app/core/extra.py'
  keel install --yes
  vx test -f /opt/demo/current/core/extra.py || fail "new source file not deployed"
  vx runuser -u demo -- sh -c 'echo data >/opt/demo/current/media/upload.txt'
  vx rm /etc/keel/demo-app/core/extra.py
  keel install --yes
  vx test ! -e /opt/demo/current/core/extra.py || fail "a file deleted from the source is still deployed"
  vx test -f /opt/demo/current/media/upload.txt || fail "the app's uploads did not follow the new release"
  app_checks
}

scenario_kill9_app() {
  fresh
  vx sh -c 'nohup keel --config /etc/keel/keel.toml install --yes >/tmp/keel1.log 2>&1 &'
  # KEEL_E2E_KILL_DELAY pins the moment, to replay a failure seen at a random one.
  local delay=${KEEL_E2E_KILL_DELAY:-$(( (RANDOM % 25) + 3 ))}
  echo "killing keel after ${delay}s"
  sleep "$delay"
  vx pkill -9 -x keel || echo "keel had already finished"
  keel status || true
  keel install --yes
  app_checks
  keel status --output json | jq_py "all(s['status']=='completed' for s in d['steps'])" | grep -qx True
}

# `keel rollback` on a provisioned host: keel's units and config go, data stays; install again.
scenario_rollback_all() {
  fresh
  keel install --yes
  pg_login "create table keep_me (x int); insert into keep_me values (7)" >/dev/null
  local before; before=$(secrets_sum)
  local rc=0; keel rollback || rc=$?
  [ "$rc" = 2 ] || fail "rollback without --yes and without a terminal must refuse (exit 2), got $rc"
  keel rollback --yes
  for u in demo-web demo-worker demo-beat; do
    vx test ! -e /etc/systemd/system/$u.service || fail "$u unit left behind"
    if vx systemctl is-active --quiet $u; then fail "$u still running"; fi
  done
  vx test ! -e /etc/redis/keel.conf || fail "redis config left behind"
  vx test ! -e /etc/nginx/sites-enabled/keel-demo.conf || fail "nginx site left behind"
  vx test -L /etc/nginx/sites-enabled/default || fail "nginx default site not restored"
  vx systemctl is-active nginx postgresql redis-server
  # Data kept: database and role, secrets, the app directory.
  [ "$(pg_login 'select x from keep_me')" = 7 ] || fail "database data lost"
  [ "$(secrets_sum)" = "$before" ] || fail "secrets changed"
  vx test -f /opt/demo/shared/.env || fail "app directory not kept"
  keel status
  keel install --yes
  app_checks
  [ "$(secrets_sum)" = "$before" ] || fail "secrets changed on re-install"
}

# A run killed while a venv is built leaves it half full (seen with kill -9 at a random
# moment): without keel's completion mark, the next run rebuilds it rather than trusting it.
scenario_partial_venv() {
  fresh
  keel install --yes python-env
  local venv; venv=$(vx readlink -f /opt/demo/current/venv)
  vx rm "$venv/.keel-complete"
  vx sh -c "rm -rf $venv/lib/python3*/site-packages/django"
  keel install --yes --retry-step python-env python-env
  vx test -f "$venv/.keel-complete" || fail "venv not rebuilt"
  vx /opt/demo/current/venv/bin/python -c 'import django, celery, gunicorn'
}

# The app from a git repository (a file:// URL, no network needed) on a host without git:
# keel installs git itself before fetching; a new commit is deployed by --retry-step app-code.
scenario_git_source() {
  fresh
  if vx sh -c 'command -v git' >/dev/null; then fail "the fresh host already has git"; fi
  local root; root=$("$VPS" root "$BOX")
  local repo="$root/srv/demo-app"
  mkdir -p "$repo"
  cp -r examples/demo-app/. "$repo/"
  git -C "$repo" init -q -b main
  gitc() { git -C "$repo" -c safe.directory="*" -c user.name=keel-e2e -c user.email=e2e@localhost "$@"; }
  gitc add -A
  gitc commit -qm v1
  vx sed -i 's|^source = .*|git = "file:///srv/demo-app"|' /etc/keel/keel.toml
  vx grep -q '^git = "file:///srv/demo-app"' /etc/keel/keel.toml
  # keel fetches as root into root's checkout; git refuses to read a repository another
  # user owns as root, so a same-host repository is root's (an https/ssh one has no owner here).
  keel install --yes
  vx dpkg -s git >/dev/null || fail "git was not installed"
  vx test -d /opt/demo/current/.git || fail "the app is not a git checkout"
  [ "$(vx stat -c %U /opt/demo/current/manage.py)" = root ] || fail "checkout not owned by root"
  app_checks
  # A new commit on the branch: the fingerprint is URL + ref, so a plain run keeps v1 ...
  sed -i 's/demo-home: /demo-home v2: /' "$repo/core/views.py"
  gitc commit -qam v2
  local out; out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run, $(step_count) already done" <<<"$out" || { echo "$out"; fail "a plain re-run should change nothing"; }
  # ... and --retry-step app-code deploys it, restarting what depends on the code.
  keel install --yes --retry-step app-code
  vx grep -q 'demo-home v2' /opt/demo/current/core/views.py || fail "v2 not checked out"
  wait_for 30 sh -c "\"$VPS\" exec $BOX curl -s http://127.0.0.1/ | grep -q 'demo-home v2'"
  app_checks
}

# A power cut in the middle of the first install: at the next boot keel-resume.service
# resumes the run by itself (nobody re-runs cloud-init's runcmd), and `status --wait` waits
# for that rather than reporting the interruption.
scenario_reboot_resume() {
  fresh
  vx sh -c 'nohup keel --config /etc/keel/keel.toml install --yes packages django >/tmp/keel1.log 2>&1 &'
  wait_for 120 step_is packages running
  local delay=${KEEL_E2E_KILL_DELAY:-$(( RANDOM % 8 ))}
  echo "power cut ${delay}s into the packages step"
  sleep "$delay"
  "$VPS" powercut "$BOX"
  local rc=0; keel status --wait --timeout 600 || rc=$?
  local journal; journal=$(vx journalctl -b -u keel-resume --no-pager -o cat | grep -v pam_unix)
  echo "$journal" | tail -n 25
  [ "$rc" = 0 ] || fail "status --wait after the reboot exited $rc"
  grep -q 'resuming run' <<<"$journal" || fail "keel-resume did not resume the run"
  # The resumed run kept the selection (packages django): services and verify never ran.
  [ "$(step_status services)" = pending ] || fail "the resumed run ran more than was asked"
  keel install --yes
  app_checks
}
