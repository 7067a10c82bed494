# Issue: real projects as they come, part 1. Three fixture projects in the shapes real ones
# have (tests/projects), each taken as a new user would: `keel init` in a pseudo-terminal
# (no hand edits), `keel install`, verify healthy, the home page and a built static file
# served, a task round trip, then `keel deploy` of a change under a request loop with no
# failed request, and a change of the lock (or an included requirements file) alone making a
# new venv.
#   project_uv      pyproject.toml + uv.lock (made by `uv lock`), split settings with
#                   manage.py on local and wsgi.py on production, django-environ only,
#                   .envs/.production/*, Celery in config/celery_app.py, psycopg built
#                   from source, a package.json build whose CSS the template links
#                   (ManifestStaticFilesStorage);
#   project_groups  PEP 735 dependency groups without a lock, `# SECRET_KEY=` commented
#                   out, the app's own Redis variable names, a build command, a release
#                   command, gettext catalogues; on Debian 12 first, requires-python >= 3.12
#                   refused before any write; @trixie: the same project on Python 3.13;
#   project_reqs    requirements/production.txt with `-r base.txt`.

# proj_fresh NAME: a fresh container with keel and the fixture project NAME in /root/NAME
# (a uv project gets its uv.lock made here first).
proj_fresh() {
  local name=$1 tmp
  "$VPS" up "$BOX"
  local root; root=$("$VPS" root "$BOX")
  install -m 0755 "$KEEL_BIN" "$root/usr/local/bin/keel"
  tmp=$(mktemp -d)
  cp -r "tests/projects/$name" "$tmp/$name"
  if [ -f "$tmp/$name/pyproject.toml" ] && grep -q '^\[tool.uv\]' "$tmp/$name/pyproject.toml"; then
    scripts/uv-lock.sh "$tmp/$name"
    [ -s "$tmp/$name/uv.lock" ] || fail "uv lock made no uv.lock"
  fi
  rm -rf "${root:?}/root/$name"
  cp -r "$tmp/$name" "$root/root/$name"
  rm -rf "$tmp"
}

# pk ARGS...: keel with the config init wrote
pk() { vx keel --config /root/keel.toml "$@"; }

# proj_init NAME ANSWERS: `keel init` in a pseudo-terminal in the container, answered prompt
# by prompt ([[regex, typed], ...]); the transcript goes to the log.
proj_init() {
  local script; script=$(mktemp)
  printf '%s' "$2" >"$script"
  local rc=0
  python3 tests/pty_drive.py "$script" -- "$VPS" exec "$BOX" keel --config /root/keel.toml init \
    >"$logs/$BOX-$1-init.txt" 2>&1 || rc=$?
  rm -f "$script"
  echo "---- keel init transcript ($1)"
  cat "$logs/$BOX-$1-init.txt"
  [ "$rc" = 0 ] || fail "keel init exited $rc"
  vx cat /root/keel.toml
}

# page PATH: the body the site answers at PATH (over loopback, through nginx)
page() { vx curl -s --max-time 30 "http://127.0.0.1$1"; }
code_of() { vx curl -s -o /dev/null -w '%{http_code}' --max-time 30 "http://127.0.0.1$1"; }

# proj_served MARK CSS_RE CSS_MARK: the home page has MARK, links a stylesheet matching
# CSS_RE that is served with CSS_MARK in it, and a task round-trips through the worker.
proj_served() {
  local home css
  home=$(page /)
  grep -q "$1" <<<"$home" || fail "the home page lacks $1: $(head -c 300 <<<"$home")"
  css=$(grep -Eo "$2" <<<"$home" | head -1)
  [ -n "$css" ] || fail "the home page links no stylesheet like $2"
  [ "$(code_of "$css")" = 200 ] || fail "$css is not served"
  grep -q "$3" <<<"$(page "$css")" || fail "$css is not the built one"
  [ "$(page /task/)" = 5 ] || fail "no task round trip: /task/ said $(page /task/)"
  echo "served: home ($1), $css ($3), /task/ = 5"
}

# A request loop in the container: LOG gets "ok" or "FAIL CODE" per request; ok means 200
# with MARK in the body. Stops when STOP exists.
proj_loop_script() {
  cat <<'SH'
#!/bin/sh
log=$1 stop=$2 mark=$3 body=$(mktemp)
while [ ! -e "$stop" ]; do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 20 http://127.0.0.1/) || code="000:$?"
  if [ "$code" = 200 ] && grep -q "$mark" "$body"; then
    echo "ok $(grep -o 'version [a-z]*' "$body" | head -1 | tr ' ' _)" >>"$log"
  else
    echo "FAIL $code $(head -c 120 "$body" | tr '\n' ' ')" >>"$log"
  fi
  sleep 0.05
done
SH
}

# proj_deploy_under_load MARK FILE: change "version one" to "version two" in FILE (in the
# app's source), deploy while two request loops run, and require no failed request.
proj_deploy_under_load() {
  local mark=$1 file=$2 root out
  root=$("$VPS" root "$BOX")
  proj_loop_script >"$root/usr/local/bin/proj-load"
  chmod 0755 "$root/usr/local/bin/proj-load"
  sed -i 's/version one/version two/' "$root/root/$file"
  vx rm -f /tmp/load.stop /tmp/load1.log /tmp/load2.log
  vx sh -c "nohup proj-load /tmp/load1.log /tmp/load.stop '$mark' >/dev/null 2>&1 &"
  vx sh -c "nohup proj-load /tmp/load2.log /tmp/load.stop '$mark' >/dev/null 2>&1 &"
  wait_for 20 vx sh -c 'grep -q "^ok" /tmp/load1.log'
  out=$(pk deploy --output json)
  echo "deploy: $out"
  [ "$(jq_py "d['result']" <<<"$out")" = deployed ] || fail "not deployed"
  wait_for 20 sh -c "\"$VPS\" exec \"$BOX\" curl -s http://127.0.0.1/ | grep -q 'version two'"
  sleep 1
  vx touch /tmp/load.stop
  sleep 1
  local total fails
  total=$(vx sh -c 'cat /tmp/load1.log /tmp/load2.log | wc -l')
  fails=$(vx sh -c 'cat /tmp/load1.log /tmp/load2.log | grep -c "^FAIL" || true')
  echo "load: $total requests, $fails failed; versions: $(vx sh -c "grep -h '^ok' /tmp/load1.log | cut -d' ' -f2 | uniq | tr '\n' ' '")"
  [ "$fails" = 0 ] || { vx sh -c 'grep -h "^FAIL" /tmp/load1.log /tmp/load2.log | head -5'; fail "$fails of $total requests failed"; }
  [ "$total" -ge 40 ] || fail "only $total requests: the loop did not run for the deploy"
}

venv_of() { vx readlink "/opt/$1/current/venv"; }

# proj_new_venv APP CHANGE...: run CHANGE (a command on this side), deploy, and require a
# new venv.
proj_new_venv() {
  local app=$1; shift
  local before after out
  before=$(venv_of "$app")
  "$@"
  out=$(pk deploy --output json)
  [ "$(jq_py "d['result']" <<<"$out")" = deployed ] || fail "not deployed: $out"
  after=$(venv_of "$app")
  [ "$before" != "$after" ] || fail "the venv is still $before after: $*"
  echo "new venv: $before -> $after (after: $*)"
}

# The "slow" queue left out of the worker's queues: a task sent there waits, and verify is
# unhealthy naming the queue; declared again, the task runs and verify is healthy.
proj_queue_left_out() {
  local root out rc; root=$("$VPS" root "$BOX")
  sed -i 's/^queues = .*/queues = ["celery"]/' "$root/root/keel.toml"
  pk install --yes >/dev/null
  grep -q '^queued ' <<<"$(page '/slow/?wait=0')" || fail "could not queue a task"
  rc=0; out=$(pk verify 2>&1) || rc=$?
  echo "$out" | grep -E 'queues|verdict|Unhealthy' || true
  [ "$rc" = 1 ] || fail "verify exited $rc with a task stuck in a queue no worker consumes"
  grep -q 'wait in queue "slow", which no worker consumes' <<<"$out" || fail "verify did not name the queue"
  sed -i 's/^queues = .*/queues = ["celery", "slow"]/' "$root/root/keel.toml"
  pk install --yes >/dev/null
  wait_for 60 sh -c "\"$VPS\" exec \"$BOX\" keel --config /root/keel.toml verify >/dev/null"
  echo "queue left out: verify named it; declared again: the task ran and verify is healthy"
}

scenario_project_uv() {
  proj_fresh uvshop
  local root; root=$("$VPS" root "$BOX")
  proj_init uvshop '[
    ["App source", "uvshop\r"],
    ["dependencies +uv.lock", ""],
    ["settings +config.settings.production \\(wsgi.py.s default; manage.py.s is config.settings.local", ""],
    ["celery app +config.celery_app \\(config/celery_app.py\\)", ""],
    ["environment +.envs/.production/\\*", ""],
    ["build +npm run build", ""],
    ["queues +celery, slow \\(config/settings/base.py", ""],
    ["App name.*pyproject.toml.s project name.*uvshop", "\r"],
    ["Domain", "shop.test\r"],
    ["HTTPS", "\r"],
    ["admin.s e-mail", "\r"],
    ["Dependency groups", "\r"],
    ["Build command", "\r"],
    ["Release command", "\r"],
    ["SHOP_NAME", "Keel Shop\r"],
    ["Write .*\\?", "\r"]
  ]'
  grep -q 'settings = "config.settings.production"' "$root/root/keel.toml" || fail "no settings module in keel.toml"
  grep -q 'requirements = "uv.lock"' "$root/root/keel.toml" || fail "uv.lock is not the dependency file"
  pk install --yes
  expect_rc 0 pk verify
  vx sh -c 'ls -d /opt/uvshop/current/venv/lib/python3*/site-packages/psycopg_c' >/dev/null \
    || fail "psycopg's C implementation was not built"
  vx grep -q '^DJANGO_SECURE_SSL_REDIRECT=False$' /opt/uvshop/shared/.env \
    || fail "the SSL redirect the production settings default to was not set for plain HTTP"
  proj_served 'uvshop-home Keel Shop' '/static/css/built\.[0-9a-f]+\.css' 'uvshop-built-css'
  # A task routed to the "slow" queue runs: init declared the queue for the worker.
  [ "$(page /slow/)" = indexed ] || fail "the task routed to the slow queue did not run"
  proj_queue_left_out
  proj_deploy_under_load 'uvshop-home' uvshop/shop/templates/home.html
  # Only uv.lock changes: a new venv.
  proj_new_venv uvshop sh -c "echo '# touched by the e2e' >>'$root/root/uvshop/uv.lock'"
  # Unchanged lock: the venv is reused and the deploy is quick.
  local t0 out; t0=$(date +%s%N)
  out=$(pk deploy --output json)
  echo "deploy with an unchanged lock: $(( ($(date +%s%N) - t0) / 1000000 )) ms: $out"
  proj_served 'uvshop-home Keel Shop' '/static/css/built\.[0-9a-f]+\.css' 'uvshop-built-css'
}

# The groups project's pyproject asking for Python SPEC.
groups_python() {
  local root; root=$("$VPS" root "$BOX")
  sed -i "s/^requires-python = .*/requires-python = \"$1\"/" "$root/root/groupsapp/pyproject.toml"
}

scenario_project_groups() {
  proj_fresh groupsapp
  local root; root=$("$VPS" root "$BOX")
  if [ "$KEEL_E2E_SUITE" = bookworm ]; then
    # Python >= 3.12 on Debian 12 (3.11), managed Pythons off: refused before any write.
    groups_python '>=3.12'
    printf '[app]\nname = "groups-app"\ndomain = "groups.test"\n[django]\nsource = "groupsapp"\ncelery_app = "groupsapp.celerysetup:tasks"\n[python]\ngroups = ["main"]\n' \
      | vx sh -c 'cat >/root/refused.toml'
    local out rc=0
    out=$(vx keel --config /root/refused.toml install --yes 2>&1) || rc=$?
    echo "$out"
    [ "$rc" = 2 ] || fail "exit $rc, want 2"
    for want in 'Python >=3.12 \(pyproject.toml requires-python\)' '3\.11\.2' 'python\.managed = true' 'Debian 13'; do
      grep -Eq "$want" <<<"$out" || fail "the refusal lacks $want"
    done
    vx test ! -e /opt/groups-app || fail "/opt/groups-app was made"
    vx test ! -e /var/lib/keel/state.json || fail "a state file was written"
    vx test ! -e /etc/keel/secrets || fail "secrets were made"
    output_has '^ii +python3-venv' vx dpkg -l python3-venv && fail "apt ran"
    groups_python '>=3.11'
  else
    # Debian 13's python3 (3.13) satisfies >= 3.12: no managed Python needed.
    groups_python '>=3.12'
  fi
  proj_init groupsapp '[
    ["App source", "groupsapp\r"],
    ["dependencies +pyproject.toml", ""],
    ["groups +main", ""],
    ["celery app +groupsapp.celerysetup:tasks", ""],
    ["media +/images/", ""],
    ["App name.*groups-app", "\r"],
    ["Domain", "groups.test\r"],
    ["HTTPS", "\r"],
    ["admin.s e-mail", "\r"],
    ["Dependency groups.*main", "\r"],
    ["Build command", "python manage.py compile_themes\r"],
    ["Build command", "\r"],
    ["Release command", "python manage.py initdb\r"],
    ["Release command", "\r"],
    ["DOMAIN", "groups.test\r"],
    ["EMAIL_HOST_PASSWORD \\(hidden", "\r"],
    ["Write .*\\?", "\r"]
  ]'
  pk install --yes
  expect_rc 0 pk verify
  local env; env=$(vx cat /opt/groups-app/shared/.env)
  grep -q '^EMAIL_HOST_PASSWORD=$' <<<"$env" || fail "the empty answer was not kept as empty"
  grep -Eq '^SECRET_KEY=.{50}' <<<"$env" || fail "the commented-out SECRET_KEY was not generated"
  [ "$(grep '^REDIS_BROKER_PASSWORD=' <<<"$env" | cut -d= -f2-)" = "$(vx cat /etc/keel/secrets/redis_password)" ] \
    || fail "REDIS_BROKER_PASSWORD is not keel's Redis password"
  grep -q '^REDIS_BROKER_HOST=127.0.0.1$' <<<"$env" || fail "REDIS_BROKER_HOST not derived"
  proj_served 'groupsapp-home site=initialised greeting=Willkommen' '/static/css/theme\.css' 'groupsapp-theme-css'
  vx sh -c 'echo e2e-upload >/opt/groups-app/shared/media/e2e.txt'
  [ "$(page /images/e2e.txt)" = e2e-upload ] || fail "uploads are not served at MEDIA_URL /images/"
  local py; py=$(vx readlink -f /opt/groups-app/current/venv/bin/python)
  echo "venv python: $py"
  if [ "$KEEL_E2E_SUITE" != bookworm ]; then
    grep -q 'python3\.13' <<<"$py" || fail "the venv is not on Debian 13's Python 3.13"
  fi
  proj_deploy_under_load 'groupsapp-home' groupsapp/groupsapp/templates/home.html
  # The release command ran once per release: the deploy's release ran it again (kept).
  output_has 'site initialised \(kept\)' vx cat /var/log/keel/steps/deploy.log || fail "initdb did not run for the new release"
}

scenario_project_reqs() {
  proj_fresh reqsapp
  local root; root=$("$VPS" root "$BOX")
  proj_init reqsapp '[
    ["App source", "reqsapp\r"],
    ["dependencies +requirements/production.txt", ""],
    ["extensions +pg_trgm \\(catalog/migrations/0001_initial.py", ""],
    ["App name.*reqsapp", "\r"],
    ["Domain", "reqs.test\r"],
    ["HTTPS", "\r"],
    ["admin.s e-mail", "\r"],
    ["Build command", "\r"],
    ["Release command", "\r"],
    ["Write .*\\?", "\r"]
  ]'
  grep -q 'extensions = \["pg_trgm"\]' "$root/root/keel.toml" || fail "init did not carry the extension"
  pk install --yes
  expect_rc 0 pk verify
  # The migration's pg_trgm was made by the superuser; the app's role stays unprivileged,
  # and finds similarity() on its search_path.
  [ "$(vx runuser -u postgres -- psql -XAtc "SELECT rolsuper FROM pg_roles WHERE rolname = 'reqsapp'")" = f ] \
    || fail "the app's role is a superuser"
  [ "$(vx runuser -u postgres -- psql -XAtd reqsapp -c "SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'pg_trgm'")" = keel_extensions ] \
    || fail "pg_trgm is not in keel's extension schema"
  grep -q '^keel anchor 0\.' <<<"$(page '/search/?q=anchor')" || fail "trigram search failed: $(page '/search/?q=anchor')"
  proj_served 'reqsapp-home' '/static/catalog/site\.css' 'reqsapp-css'
  proj_deploy_under_load 'reqsapp-home' reqsapp/catalog/templates/home.html
  # Only the included base.txt changes: a new venv, with the new package in it.
  proj_new_venv reqsapp sh -c "echo 'six>=1.16' >>'$root/root/reqsapp/requirements/base.txt'"
  vx /opt/reqsapp/current/venv/bin/python -c 'import six' || fail "six is not in the new venv"
}

# Issue: real projects, part 2 (the run), on a members site (tests/projects/accounts): a
# custom user model that logs in by e-mail, `/` redirecting to the login page (accepted by
# [health]), uploads through the app at MEDIA_URL /uploads/, a periodic task, settings that
# fall back to ALLOWED_HOSTS = '*' when the environment is silent.
scenario_project_run() {
  proj_fresh accounts
  local root; root=$("$VPS" root "$BOX")
  printf '[app]\nname = "accounts"\ndomain = "accounts.test"\n[django]\nsource = "accounts"\nmedia_url = "/uploads/"\nadmin_user = ""\n[health]\npath = "/"\nstatuses = [200, 302]\n' \
    >"$root/root/keel.toml"
  pk install --yes
  expect_rc 0 pk verify
  # The admin user: Django's createsuperuser for an e-mail USERNAME_FIELD, once.
  members() {
    vx sh -c "cd /opt/accounts/current && set -a && . /opt/accounts/shared/.env && set +a && runuser -u accounts -- ./venv/bin/python manage.py shell -v 0 -c \"from members.models import Member; print(Member.objects.count(), ','.join(m.email for m in Member.objects.filter(is_superuser=True)))\""
  }
  [ "$(members | tail -1)" = "0 " ] || fail "admin_user = \"\" made a user: $(members)"
  sed -i '/^admin_user = ""$/d' "$root/root/keel.toml"
  pk install --yes >/dev/null
  [ "$(members | tail -1)" = "1 admin@accounts.test" ] || fail "admin user: $(members)"
  pk install --yes >/dev/null
  pk install --yes >/dev/null
  pk install --yes --retry-step django >/dev/null
  [ "$(members | tail -1)" = "1 admin@accounts.test" ] || fail "after three installs and a retried django step: $(members)"
  # / redirects to the login page: accepted, and said so.
  local h; h=$(vx curl -s -D - -o /dev/null http://127.0.0.1/)
  grep -q '^Location: /accounts/login/' <<<"$h" || fail "/ does not redirect to the login page: $h"
  # Effective settings: ALLOWED_HOSTS read from Django (the settings would fall back to '*').
  # Beat proves itself by the due tasks in its journal (one every 5 s here).
  wait_for 60 sh -c "\"$VPS\" exec \"$BOX\" keel --config /root/keel.toml verify --output json | grep -q 'is active and ticks'"
  local v; v=$(pk verify --output json)
  for want in "audit-allowed-hosts ok ALLOWED_HOSTS in Django's effective settings: accounts.test" \
              "beat ok accounts-beat is active and ticks" \
              "worker ok worker active; it answers celery inspect ping" \
              "queues ok tasks waiting per queue: celery"; do
    local name rest level msg
    name=${want%% *}; rest=${want#* }; level=${rest%% *}; msg=${rest#* }
    [ "$(jq_py "[c['level'] for c in d['checks'] if c['name']=='$name'][0]" <<<"$v")" = "$level" ] || fail "$name is not $level: $v"
    jq_py "[c['message'] for c in d['checks'] if c['name']=='$name'][0]" <<<"$v" | grep -qF "$msg" || fail "$name does not say: $msg"
  done
  # No check says ok about something it did not do.
  [ "$(jq_py "len([c for c in d['checks'] if c['level']=='ok' and 'not checked' in c['message']])" <<<"$v")" = 0 ] \
    || fail "a check says ok and not checked: $v"
  # Uploads through the app, served at /uploads/: .html and .svg as downloads with nosniff;
  # a link the app's user planted to /etc/passwd is not followed.
  vx sh -c 'printf "<script>x</script>" >/tmp/x.html && printf "<svg/>" >/tmp/y.svg && printf "hello" >/tmp/a.txt'
  local f url
  for f in a.txt x.html y.svg; do
    url=$(vx curl -s -F "file=@/tmp/$f" http://127.0.0.1/upload/)
    h=$(vx curl -s -D - -o /dev/null "http://127.0.0.1$url")
    grep -q '^HTTP/1.1 200' <<<"$h" || fail "$url is not served: $h"
    grep -qi '^X-Content-Type-Options: nosniff' <<<"$h" || fail "$url without nosniff"
    case $f in
      a.txt) if grep -qi '^Content-Disposition: attachment' <<<"$h"; then fail "$url is a download"; fi ;;
      *) grep -qi '^Content-Disposition: attachment' <<<"$h" || fail "$url is not sent as a download: $h" ;;
    esac
  done
  vx runuser -u accounts -- ln -sf /etc/passwd /opt/accounts/shared/media/pw
  local code; code=$(vx curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/uploads/pw)
  [ "$code" = 403 ] || [ "$code" = 404 ] || fail "a link in media was followed ($code)"
  # A stopped beat makes verify unhealthy.
  vx systemctl stop accounts-beat
  expect_rc 1 pk verify
  vx systemctl start accounts-beat
  # A 500: the error carries the traceback's last line from the journal.
  sed -i 's|^path = "/"|path = "/boom/"|' "$root/root/keel.toml"
  local out; out=$(pk verify 2>&1) || true
  grep -q 'members-boom on purpose' <<<"$out" || fail "the 500's cause is not in the error: $out"
  sed -i 's|^path = "/boom/"|path = "/"|' "$root/root/keel.toml"
  # A failed install's release is listed as failed.
  echo 'raise RuntimeError("broken settings on purpose")' >>"$root/root/accounts/accounts/settings.py"
  expect_rc 1 pk install --yes
  [ "$(pk releases --output json | jq_py "len([r for r in d['releases'] if r['status']=='failed'])")" -ge 1 ] \
    || fail "the failed install's release is not marked failed: $(pk releases)"
  sed -i '$d' "$root/root/accounts/accounts/settings.py"
  pk install --yes >/dev/null
  wait_for 60 sh -c "\"$VPS\" exec \"$BOX\" keel --config /root/keel.toml verify >/dev/null"
  echo "run: admin user once, / -> login accepted, uploads, beat ticks, queues, 500 cause, failed release"
}
