# Issue: PostgreSQL, Redis and Nginx provisioned, secured and verified, with stable secrets.

pg_login() { # run SQL as the demo role over TCP with the stored password
  vx sh -c "PGPASSWORD=\$(cat /etc/keel/secrets/postgres_password) psql -X -h 127.0.0.1 -U demo -d demo -Atc \"$1\""
}
redis_auth() { vx sh -c 'REDISCLI_AUTH=$(cat /etc/keel/secrets/redis_password) redis-cli -h 127.0.0.1 '"$*"; }
secrets_sum() { vx sh -c 'sha256sum /etc/keel/secrets/*'; }

# Sample every process's command line on this host (the container's processes are visible
# here) while keel runs, to prove no secret is ever passed in argv.
start_cmdline_sampler() {
  SAMPLES=$(mktemp); : >"$SAMPLES"
  ( set +e +o pipefail; while :; do cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\0' ' ' >>"$SAMPLES"; echo >>"$SAMPLES"; sleep 0.01; done ) &
  SAMPLER=$!
}
stop_cmdline_sampler() { kill "$SAMPLER" 2>/dev/null || true; wait "$SAMPLER" 2>/dev/null || true; }

no_secret_leaks() {
  local f v
  for f in $(vx sh -c 'ls /etc/keel/secrets'); do
    v=$(vx cat "/etc/keel/secrets/$f")
    [ -n "$v" ] || fail "secret $f is empty"
    if vx grep -rqF -- "$v" /var/lib/keel /var/log/keel; then fail "secret $f found under keel's state/log dirs"; fi
    if [ -n "${SAMPLES:-}" ] && grep -qF -- "$v" "$SAMPLES"; then fail "secret $f seen in a process command line"; fi
  done
}

scenario_services() {
  fresh
  start_cmdline_sampler
  local rc=0; keel install --yes postgres redis nginx || rc=$?
  stop_cmdline_sampler
  [ "$rc" = 0 ] || fail "install exited $rc"
  echo "sampled $(wc -l <"$SAMPLES") process listings during the run"
  grep -q 'apt-get' "$SAMPLES" || fail "the sampler did not see keel's apt-get run"
  vx systemctl is-active postgresql redis-server nginx
  [ "$(pg_login 'select current_user')" = demo ] || fail "demo role cannot log in over TCP"
  vx redis-cli -h 127.0.0.1 ping | grep -q NOAUTH || fail "redis answered a client without the password"
  [ "$(redis_auth ping)" = PONG ] || fail "redis refused the stored password"
  local addrs; addrs=$(vx ss -ltnH 'sport = :6379' | awk '{print $4}')
  echo "redis listens on: $addrs"
  [ -n "$addrs" ] || fail "redis not listening"
  if grep -vqE '^(127\.0\.0\.1|\[::1\]):6379$' <<<"$addrs"; then fail "redis listens beyond loopback: $addrs"; fi
  [ "$(vx curl -s -o /tmp/ph.html -w "%{http_code}" http://127.0.0.1/)" = 503 ] && vx grep -q keel-placeholder /tmp/ph.html || fail "nginx does not serve keel's placeholder with 503 on :80 before the app runs"
  [ "$(vx stat -c %a /etc/keel/secrets)" = 700 ] || fail "secrets dir not 0700"
  for m in $(vx sh -c 'stat -c %a /etc/keel/secrets/*'); do [ "$m" = 600 ] || fail "secret file mode $m"; done
  no_secret_leaks
  # Second identical run: exit 0, nothing regenerated, the password still works.
  local before; before=$(secrets_sum)
  keel install --yes postgres redis nginx
  [ "$(secrets_sum)" = "$before" ] || fail "secrets changed on re-run"
  [ "$(pg_login 'select 1')" = 1 ] || fail "stored password stopped working"
  [ "$(redis_auth ping)" = PONG ] || fail "redis password stopped working"
  # A re-run of the service steps re-verifies against the same secrets.
  keel install --yes --retry-step postgres --retry-step redis postgres redis
  [ "$(secrets_sum)" = "$before" ] || fail "secrets changed on --retry-step"
  no_secret_leaks
}

scenario_nginx_broken() {
  fresh
  keel install --yes postgres redis nginx
  pg_login "create table keep_me (x int); insert into keep_me values (7)" >/dev/null
  local site=/etc/nginx/sites-available/keel-demo.conf
  local old; old=$(vx sha256sum $site)
  # A config change for nginx plus a broken file elsewhere: nginx -t must fail the step.
  vx sed -i 's/client_max_body_mb = 20/client_max_body_mb = 30/' /etc/keel/keel.toml
  vx sh -c 'echo "this is not nginx syntax" > /etc/nginx/conf.d/broken.conf'
  local out rc=0; out=$(keel install --yes --retry-step nginx postgres redis nginx 2>&1) || rc=$?
  echo "$out"
  [ "$rc" = 1 ] || fail "expected exit 1, got $rc"
  grep -q 'broken.conf' <<<"$out" || fail "the error must name the broken file"
  [ "$(vx sha256sum $site)" = "$old" ] || fail "the nginx step's files were not restored"
  vx systemctl is-active nginx
  vx curl -sS http://127.0.0.1/ | grep -q keel-placeholder || fail "nginx stopped serving"
  [ "$(step_status nginx)" = failed ] || fail "nginx step should be failed"
  [ "$(pg_login 'select x from keep_me')" = 7 ] || fail "database data lost"
  vx rm /etc/nginx/conf.d/broken.conf
  keel install --yes --retry-step nginx postgres redis nginx
  vx grep -q 'client_max_body_size 30m' $site || fail "new config not applied after the fix"
  vx curl -sS http://127.0.0.1/ | grep -q keel-placeholder
}

# What the service steps touch, to compare before/after a failed run.
snapshot() {
  vx sh -c 'find /etc/nginx /etc/redis /etc/postgresql /var/www -xdev \( -type f -o -type l \) 2>/dev/null | sort | while read -r f; do
      if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"; else echo "$f $(stat -c %a:%U "$f") $(sha256sum <"$f" | cut -c1-16)"; fi
    done; for u in postgresql redis-server nginx; do echo "$u $(systemctl is-active $u)"; done'
}

# A tool that fails the way a broken host would, placed first in the PATH keel gives its
# children (/usr/local), after the step has changed files: psql for postgres, `systemctl
# restart redis-server` for redis, `nginx -t` for nginx. No test hook in keel itself.
inject_failure() {
  case $1 in
    postgres) vx sh -c 'printf "#!/bin/sh\necho \"psql: injected failure: permission denied\" >&2\nexit 2\n" >/usr/local/bin/psql; chmod 755 /usr/local/bin/psql' ;;
    redis) vx sh -c 'printf "#!/bin/sh\nif [ \"\$*\" = \"restart redis-server\" ]; then echo \"injected failure: permission denied\" >&2; exit 1; fi\nexec /usr/bin/systemctl \"\$@\"\n" >/usr/local/bin/systemctl; chmod 755 /usr/local/bin/systemctl' ;;
    nginx) vx sh -c 'printf "#!/bin/sh\nif [ \"\$1\" = -t ]; then echo \"nginx: [emerg] injected failure in /etc/nginx/conf.d/injected.conf:1\" >&2; exit 1; fi\nexec /usr/sbin/nginx \"\$@\"\n" >/usr/local/sbin/nginx; chmod 755 /usr/local/sbin/nginx' ;;
  esac
}
clear_failures() { vx rm -f /usr/local/bin/psql /usr/local/bin/systemctl /usr/local/sbin/nginx; }

scenario_injected_failures() {
  fresh
  keel install --yes packages
  local before after s rc
  before=$(snapshot)
  for s in postgres redis nginx; do
    inject_failure "$s"
    rc=0; keel install --yes postgres redis nginx || rc=$?
    clear_failures
    [ "$rc" = 1 ] || fail "injected failure in $s: exit $rc"
    [ "$(step_status "$s")" = failed ] || fail "the $s step should be the failed one"
    after=$(snapshot)
    if [ "$before" != "$after" ]; then diff <(echo "$before") <(echo "$after") || true; fail "host changed after failed run ($s)"; fi
    vx curl -fsS -o /dev/null http://127.0.0.1/ || fail "nginx not serving after rollback ($s)"
    echo "injected failure in $s: host as before"
  done
  keel status
  keel install --yes postgres redis nginx
  [ "$(pg_login 'select 1')" = 1 ]
  [ "$(redis_auth ping)" = PONG ]
  vx curl -sS http://127.0.0.1/ | grep -q keel-placeholder
}
