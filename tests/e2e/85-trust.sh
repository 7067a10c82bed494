# Issue: the trust boundary, round 2. What the app's user or its build user controls must
# never turn keel against the host:
#   C1  a child of keel never has the admin's terminal (/dev/tty gives ENXIO), under a
#       pty-driven `keel verify` and `keel deploy`; and the running app (its user, its
#       group) cannot open /proc/PID/mem of a command keel runs as that user;
#   H1  `keel restore` runs nothing of the archive in a superuser session (a CHECK
#       constraint that would run `COPY ... TO PROGRAM` as postgres);
#   M2  an [env] secret echoed into the app's journal stays masked in all three reports;
#   M4  a `venv.py` planted in keel's working directory is not run by root's Python.

# A .pth line in the live venv, written by the build user (who owns the venvs): every Python
# of the venv runs it. Outside the app's own units (so: in a command keel runs) it records
# whether /dev/tty opens, and, while /opt/demo/shared/media/hold exists, waits there with
# its pid written down.
plant_probe() {
  local site
  site=$(vx sh -c 'ls -d /opt/demo/current/venv/lib/python3*/site-packages')
  vx runuser -u demo-build -- sh -c "cat >$site/zz_keel_probe.pth" <<'PTH'
import os, errno; exec("try:\n cg = open('/proc/self/cgroup').read()\nexcept Exception:\n cg = ''\nif '-web.service' not in cg and '-worker.service' not in cg and '-beat.service' not in cg:\n m = '/opt/demo/shared/media'\n try:\n  os.close(os.open('/dev/tty', os.O_RDWR)); r = 'OPENED'\n except OSError as e:\n  r = errno.errorcode.get(e.errno, str(e.errno))\n try:\n  open(m + '/tty-probe-%d' % os.getpid(), 'w').write(r)\n  if os.path.exists(m + '/hold'):\n   open(m + '/held-%d' % os.getpid(), 'w').write('')\n   import time; time.sleep(8)\n except OSError:\n  pass")
PTH
}

# Every probe file a keel-run child left: each must say ENXIO, and there must be some.
tty_probes() {
  local what=$1 n bad
  n=$(vx sh -c 'ls /opt/demo/shared/media/tty-probe-* 2>/dev/null | wc -l')
  [ "$n" -ge 1 ] || fail "$what: no keel child ran the venv's Python (the probe is not armed)"
  bad=$(vx sh -c 'cat /opt/demo/shared/media/tty-probe-* | sort | uniq -c | grep -v ENXIO || true')
  [ -z "$bad" ] || fail "$what: a child of keel reached the admin's terminal: $bad"
  echo "$what: $n children of keel ran Python, /dev/tty gave ENXIO to each"
  vx sh -c 'rm -f /opt/demo/shared/media/tty-probe-*'
}

# keel under a pseudo-terminal, as an admin at a shell runs it (`script` gives it a
# controlling terminal; before the fix every child inherited it).
keel_pty() {
  vx script -qec "keel --config /etc/keel/keel.toml $*" /dev/null
}

TRUST_SECRET=sk_live_e2eTRUSTb7Qx9mZp4Lr2Vt8Ks

# A fresh host with an [env] secret, installed.
trust_host() {
  fresh
  vx sed -i "s/^\[env\].*/&\nSTRIPE_SECRET_KEY = \"$TRUST_SECRET\"/" /etc/keel/keel.toml
  keel install --yes
  app_checks
}

scenario_trust() {
  trust_host
  trust_tty
  trust_proc
  trust_restore
  trust_report
  trust_cwd
}

trust_tty() {
  # C1: pty-driven verify (manage.py check --deploy) and deploy (checks, migrate,
  # collectstatic in the new release).
  plant_probe
  keel_pty verify >/dev/null || true
  tty_probes "keel verify in a pty"
  app_version v2
  keel_pty deploy --source /srv/v2
  tty_probes "keel deploy in a pty"
  app_checks
}

trust_proc() {
  # C1, /proc: the app's user with the app's group (as its units run) cannot open the
  # memory of a command keel runs as that user (its group is another).
  plant_probe
  vx sh -c 'touch /opt/demo/shared/media/hold; chown demo /opt/demo/shared/media/hold'
  vx sh -c 'keel --config /etc/keel/keel.toml verify >/dev/null 2>&1 &'
  wait_for 60 vx sh -c 'ls /opt/demo/shared/media/held-*'
  local pid; pid=$(vx sh -c 'ls /opt/demo/shared/media/held-* | head -1 | sed "s/.*held-//"')
  local who; who=$(vx ps -o user=,group= -p "$pid")
  echo "keel's app command $pid runs as: $who"
  local r; r=$(vx setpriv --reuid=demo --regid=demo --init-groups python3 -c "
import sys
try:
    open('/proc/$pid/mem', 'r+b'); print('OPENED')
except OSError as e:
    print(type(e).__name__)")
  echo "the app's user opening /proc/$pid/mem: $r"
  [ "$r" = PermissionError ] || fail "the app reached keel's command through /proc: $r"
  r=$(vx setpriv --reuid=demo --regid=demo --init-groups sh -c "cat /proc/$pid/environ >/dev/null 2>&1 && echo READ || echo denied")
  [ "$r" = denied ] || fail "the app read the environment of keel's command"
  vx rm -f /opt/demo/shared/media/hold
  wait_for 30 sh -c "! \"$VPS\" exec $BOX test -e /proc/$pid"
  vx sh -c 'rm -f /opt/demo/shared/media/held-* /opt/demo/shared/media/tty-probe-*'
  vx rm -f "$(vx sh -c 'ls /opt/demo/current/venv/lib/python3*/site-packages/zz_keel_probe.pth')"
}

trust_restore() {
  # H1: the app's role plants a CHECK constraint whose function would run a program as the
  # postgres OS user in a superuser session, and says who runs it in the server log.
  local root; root=$("$VPS" root "$BOX")
  cat >"$root/root/h1.sql" <<'SQL'
CREATE FUNCTION h1_probe() RETURNS boolean LANGUAGE plpgsql AS $f$
BEGIN
  RAISE LOG 'keel-h1-probe session_user=% current_user=%', session_user, current_user;
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
    EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch /var/lib/postgresql/keel-h1-pwned''';
  END IF;
  RETURN true;
END $f$;
CREATE TABLE h1_table (x int CHECK (h1_probe()));
INSERT INTO h1_table VALUES (1), (2);
SQL
  vx sh -c 'PGPASSWORD=$(cat /etc/keel/secrets/postgres_password) psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -U demo -d demo -f /root/h1.sql'
  local out file; out=$(keel backup --output json); file=$(jq_py "d['file']" <<<"$out")
  # Only what the server logs from here on: the rows' own INSERT above ran the probe too.
  local seen; seen=$(vx sh -c 'cat /var/log/postgresql/postgresql-*-main.log | wc -l')
  keel restore --yes "$file"
  local log; log=$(vx sh -c "tail -n +$((seen + 1)) /var/log/postgresql/postgresql-*-main.log")
  if grep -q 'keel-h1-probe session_user=postgres' <<<"$log"; then
    fail "the restore ran the archive's SQL in a superuser session: $(grep keel-h1 <<<"$log" | tail -2)"
  fi
  vx test ! -e /var/lib/postgresql/keel-h1-pwned || fail "the restore ran a program as the postgres user"
  grep -q 'keel-h1-probe session_user=demo current_user=demo' <<<"$log" \
    || fail "the probe did not run during the restore (the test proves nothing): $(grep keel-h1 <<<"$log" | tail -3)"
  echo "H1: the restore loaded h1_table as demo ($(grep -c 'keel-h1-probe session_user=demo' <<<"$log") probe calls), none as a superuser"
  [ "$(pg_login 'select count(*) from h1_table')" = 2 ] || fail "h1_table rows not restored"
  app_checks
}

trust_report() {
  # M2: an [env] secret in the app's journal (Gunicorn's access log), then keel diagnose.
  local secret=$TRUST_SECRET i
  for i in 1 2 3 4 5; do vx curl -s -o /dev/null "http://127.0.0.1/?q=$secret"; done
  output_has "$secret" vx journalctl -u demo-web --no-pager || fail "the secret is not in the journal (the test proves nothing)"
  keel diagnose >/dev/null
  local f
  for f in txt json html; do
    local rep; rep=$(vx cat "/var/log/keel/diagnostics-latest.$f")
    grep -q 'GET /?q=' <<<"$rep" || fail "the journal line is not in the $f report (the test proves nothing)"
    if grep -qF "$secret" <<<"$rep"; then fail "the [env] secret is in the $f report"; fi
  done
  echo "M2: the [env] secret is in the journal, masked in the text, JSON and HTML reports"
}

trust_cwd() {
  # M4: the build user leaves /tmp/venv.py; root's Python, started from /tmp, must not run
  # it when it rebuilds keel's tools venv.
  vx runuser -u demo-build -- sh -c 'printf "open(\"/tmp/keel-m4-ran\", \"w\").write(\"x\")\n" >/tmp/venv.py'
  # keel's tools and the live venv's completion mark gone: the venv is rebuilt, uv first.
  vx sh -c 'rm -rf /var/lib/keel/tools; rm -f /opt/demo/current/venv/.keel-complete'
  vx sh -c 'cd /tmp && keel --config /etc/keel/keel.toml install --yes --retry-step python-env' >/dev/null || true
  vx sh -c 'test -e /var/lib/keel/tools/.uv-* || test -e /tmp/keel-m4-ran' \
    || fail "the tools venv was not rebuilt (the test proves nothing)"
  vx test ! -e /tmp/keel-m4-ran || fail "root ran the planted /tmp/venv.py"
  echo "M4: tools venv rebuilt from /tmp; the planted venv.py did not run"
  app_checks
}
