# Issue: many apps on one host. The host's app (demo, /etc/keel/keel.toml) and two named
# apps (/etc/keel/apps/NAME.toml), one with self-signed HTTPS: each serves its own domain,
# none reaches another's database, files or Redis; one app's deploy, broken site and
# rollback leave the others serving.

# A copy of the demo app as app NAME (its page says "demo-home NAME:"), its config with
# Redis on PORT; TLS "self-signed" or off.
named_app() {
  local name=$1 port=$2 tls=${3:-off}
  local root; root=$("$VPS" root "$BOX")
  mkdir -p "$root/etc/keel/apps"
  rm -rf "${root:?}/etc/keel/apps/$name-app"
  cp -r examples/demo-app "$root/etc/keel/apps/$name-app"
  sed -i "s/demo-home: /demo-home $name: /" "$root/etc/keel/apps/$name-app/core/views.py"
  sed -e "s/^name = \"demo\"/name = \"$name\"/" -e "s/^user = \"demo\"/user = \"$name\"/" \
      -e "s/demo\.localhost/$name.localhost/g" -e "s#/opt/demo#/opt/$name#" \
      -e "s/^port = 6379/port = $port/" -e "s/^source = \"demo-app\"/source = \"$name-app\"/" \
      -e '/^\[database\]/,/^\[/{s/^name = "demo"/name = "'"$name"'"/;s/^user = "demo"/user = "'"$name"'"/}' \
      examples/demo.toml >"$root/etc/keel/apps/$name.toml"
  if [ "$tls" = self-signed ]; then
    sed -i 's/^# mode = "acme".*/mode = "self-signed"/' "$root/etc/keel/apps/$name.toml"
  fi
  grep -q "^name = \"$name\"" "$root/etc/keel/apps/$name.toml" || fail "app $name's config was not written"
}

# The page an app serves for HOST (over HTTP, or HTTPS with "https").
page_of() {
  if [ "${2:-}" = https ]; then
    vx curl -sk --max-time 10 --resolve "$1:443:127.0.0.1" "https://$1/"
  else
    vx curl -s --max-time 10 -H "Host: $1" http://127.0.0.1/
  fi
}

# A request loop for one host name: LOG gets "ok" or "FAIL CODE" per request, until STOP.
apps_loop_script() {
  cat <<'SH'
#!/bin/sh
log=$1 stop=$2 host=$3 mark=$4 body=$(mktemp)
while [ ! -e "$stop" ]; do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 20 -H "Host: $host" http://127.0.0.1/) || code="000:$?"
  if [ "$code" = 200 ] && grep -q "$mark" "$body"; then echo ok >>"$log"; else echo "FAIL $code" >>"$log"; fi
  sleep 0.1
done
SH
}

# MainPID of each of an app's units (and its Redis), one line.
main_pids() {
  local app=$1 redis=$2 u out=""
  for u in "$app-web" "$app-worker" "$app-beat" "$redis"; do
    out="$out $u=$(vx systemctl show -p MainPID --value "$u")"
  done
  echo "$out"
}

loop_result() {
  local log=$1 total fails
  total=$(vx sh -c "wc -l <$log"); fails=$(vx sh -c "grep -c '^FAIL' $log || true")
  echo "$log: $total requests, $fails failed"
  [ "$total" -ge 20 ] || fail "only $total requests in $log"
  [ "$fails" = 0 ] || { vx sh -c "grep '^FAIL' $log | sort | uniq -c"; fail "$fails of $total requests failed ($log)"; }
}

scenario_apps() {
  fresh
  local t0 t1 t2
  t0=$(date +%s); keel install --yes >/dev/null; t1=$(date +%s)
  named_app shop 6380
  named_app blog 6381 self-signed
  vx keel --app shop install --yes >/dev/null; t2=$(date +%s)
  vx keel --app blog install --yes >/dev/null
  echo "installs: demo (first, with the packages) $((t1 - t0)) s, shop $((t2 - t1)) s, blog $(( $(date +%s) - t2 )) s"
  vx keel apps
  local apps; apps=$(vx keel apps --output json)
  [ "$(jq_py "' '.join(a['app'] + ':' + a['status'] for a in d['apps'])" <<<"$apps")" = "demo:succeeded blog:succeeded shop:succeeded" ] \
    || fail "keel apps: $apps"
  [ "$(jq_py "all(a['release'] is not None for a in d['apps'])" <<<"$apps")" = True ] || fail "keel apps has no release: $apps"

  # 1. Each app serves its own domain; an unknown name gets no app (closed, or no handshake).
  output_has 'demo-home: ' page_of demo.localhost || fail "demo.localhost does not serve demo"
  output_has 'demo-home shop: ' page_of shop.localhost || fail "shop.localhost does not serve shop"
  output_has 'demo-home blog: ' page_of blog.localhost https || fail "blog.localhost does not serve blog over HTTPS"
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' -H 'Host: blog.localhost' http://127.0.0.1/)" = 301 ] || fail "blog's HTTP is not a redirect"
  local code; code=$(vx curl -s -o /dev/null -w '%{http_code}' -H 'Host: nobody.localhost' http://127.0.0.1/ || true)
  [ "$code" = 000 ] || fail "an unknown host name got HTTP $code"
  if vx curl -sk --max-time 5 --resolve nobody.localhost:443:127.0.0.1 https://nobody.localhost/ >/dev/null 2>&1; then
    fail "an unknown host name got a TLS handshake"
  fi
  # Each app's own units, secrets, Redis instance; keel's units named per app.
  for u in redis-server redis-server@shop redis-server@blog keel-resume.service keel-resume-shop.service; do
    vx systemctl is-enabled -q "$u" || fail "$u is not enabled"
  done
  [ "$(vx stat -c '%a %U' /etc/keel/secrets/shop)" = "700 root" ] || fail "shop's secrets directory: $(vx stat -c '%a %U' /etc/keel/secrets/shop)"
  vx test -s /etc/keel/secrets/shop/postgres_password || fail "shop has no secrets of its own"
  [ "$(vx cat /etc/keel/secrets/shop/redis_password)" != "$(vx cat /etc/keel/secrets/redis_password)" ] || fail "shop shares demo's Redis password"
  # Checks, as each app's verify makes them.
  keel verify >/dev/null || fail "demo is not healthy beside the other apps"
  vx keel --app shop verify >/dev/null || fail "shop is not healthy"
  vx keel --app blog verify >/dev/null || fail "blog is not healthy"

  # 2. A's database role cannot connect to B's database (with A's own password).
  local pw='PGPASSWORD=$(cat /etc/keel/secrets/shop/postgres_password)'
  [ "$(vx sh -c "$pw psql -X -h 127.0.0.1 -U shop -d shop -Atc 'select 1'")" = 1 ] || fail "shop cannot reach its own database"
  output_has 'permission denied for database "demo"' vx sh -c "$pw psql -X -h 127.0.0.1 -U shop -d demo -Atc 'select 1'" \
    || fail "shop's role connected to demo's database"
  output_has 'permission denied for database "blog"' vx sh -c "$pw psql -X -h 127.0.0.1 -U shop -d blog -Atc 'select 1'" \
    || fail "shop's role connected to blog's database"
  vx sh -c "PGPASSWORD=\$(cat /etc/keel/secrets/postgres_password) psql -X -h 127.0.0.1 -U demo -d demo -c 'create table keep_me (x int); insert into keep_me values (7)'" >/dev/null

  # 3. A's users cannot read B's .env, secrets or backups.
  keel backup >/dev/null
  local f u
  for u in shop shop-build; do
    for f in /opt/demo/shared/.env /etc/keel/secrets/postgres_password /etc/keel/secrets/blog/redis_password /opt/blog/shared/.env; do
      if vx runuser -u "$u" -- cat "$f" >/dev/null 2>&1; then fail "$u can read $f"; fi
    done
    if vx runuser -u "$u" -- ls /var/backups/keel/demo >/dev/null 2>&1; then fail "$u can list demo's backups"; fi
  done
  vx runuser -u shop -- test -r /opt/shop/shared/.env || fail "shop cannot read its own .env"

  # 4. A's Redis password gets nothing from B's Redis; its own works.
  local rp='REDISCLI_AUTH=$(cat /etc/keel/secrets/shop/redis_password)'
  [ "$(vx sh -c "$rp redis-cli -p 6380 ping")" = PONG ] || fail "shop's password does not open shop's Redis"
  for p in 6379 6381; do
    output_has 'WRONGPASS|NOAUTH' vx sh -c "$rp redis-cli -p $p get x" || fail "shop's password opened the Redis on $p"
  done

  # 5. A deploy of shop under request loops against shop and demo: no failed request, and
  # demo's processes are the same ones.
  local root; root=$("$VPS" root "$BOX")
  apps_loop_script >"$root/usr/local/bin/keel-apps-load"; chmod 0755 "$root/usr/local/bin/keel-apps-load"
  rm -rf "${root:?}/srv/shop-v2"; mkdir -p "$root/srv"
  cp -r "$root/etc/keel/apps/shop-app" "$root/srv/shop-v2"
  sed -i 's/demo-home shop: /demo-home shop v2: /' "$root/srv/shop-v2/core/views.py"
  local before; before=$(main_pids demo redis-server)
  vx rm -f /tmp/apps.stop /tmp/shop.log /tmp/demo.log
  vx sh -c 'nohup keel-apps-load /tmp/shop.log /tmp/apps.stop shop.localhost "demo-home shop" >/dev/null 2>&1 &'
  vx sh -c 'nohup keel-apps-load /tmp/demo.log /tmp/apps.stop demo.localhost "demo-home: " >/dev/null 2>&1 &'
  wait_for 20 vx grep -q '^ok' /tmp/shop.log
  vx keel --app shop deploy --source /srv/shop-v2 >/dev/null
  output_has 'demo-home shop v2: ' page_of shop.localhost || fail "shop v2 is not served"
  # 6. A site for shop that fails nginx -t is refused; the others keep serving.
  vx sh -c "mkdir -p /etc/keel/templates && echo 'keel_broken_on_purpose on;' >/etc/keel/templates/nginx-site.conf.j2"
  local out rc=0; out=$(vx keel --app shop install --yes --retry-step nginx 2>&1) || rc=$?
  vx rm -f /etc/keel/templates/nginx-site.conf.j2
  [ "$rc" = 1 ] || { echo "$out"; fail "a broken site for shop: exit $rc, expected 1"; }
  grep -q 'nginx -t failed' <<<"$out" || { echo "$out"; fail "the refusal does not say nginx -t failed"; }
  vx nginx -t 2>/dev/null || fail "nginx's configuration is broken after the refusal"
  sleep 1
  vx touch /tmp/apps.stop; sleep 0.5
  loop_result /tmp/shop.log
  loop_result /tmp/demo.log
  [ "$(main_pids demo redis-server)" = "$before" ] || fail "demo's processes changed: $before -> $(main_pids demo redis-server)"
  output_has 'demo-home blog: ' page_of blog.localhost https || fail "blog stopped serving"
  output_has 'demo-home shop v2: ' page_of shop.localhost || fail "shop stopped serving its last good site"
  vx keel --app shop install --yes >/dev/null || fail "shop's install after the template was removed"

  # Two apps deploy at once: each has its own lock.
  rm -rf "${root:?}/srv/blog-v2"; cp -r "$root/etc/keel/apps/blog-app" "$root/srv/blog-v2"
  sed -i 's/demo-home blog: /demo-home blog v2: /' "$root/srv/blog-v2/core/views.py"
  vx sh -c 'keel --app blog deploy --source /srv/blog-v2 >/tmp/blog-deploy.log 2>&1; echo $? >/tmp/blog-deploy.rc' &
  local bg=$!
  vx keel --app shop deploy --source /srv/shop-v2 >/dev/null || fail "shop's deploy beside blog's failed"
  wait "$bg"
  [ "$(vx cat /tmp/blog-deploy.rc)" = 0 ] || { vx cat /tmp/blog-deploy.log; fail "blog's deploy beside shop's failed"; }
  output_has 'demo-home blog v2: ' page_of blog.localhost https || fail "blog v2 is not served"

  # 7. A collision is refused before anything is written: a fourth app on demo's domain.
  named_app dup 6382
  sed -i 's/^domain = "dup.localhost"/domain = "demo.localhost"/' "$root/etc/keel/apps/dup.toml"
  out=$(vx keel --app dup install --yes 2>&1) && fail "a domain of another app was accepted"
  grep -q 'app.domain' <<<"$out" && grep -q 'demo.localhost' <<<"$out" || { echo "$out"; fail "the collision is not named"; }
  vx test ! -e /var/lib/keel/apps/dup || fail "a refused app left its state directory"
  vx test ! -e /etc/keel/secrets/dup || fail "a refused app left secrets"
  vx rm -f /etc/keel/apps/dup.toml

  # 8. Rolling shop back removes shop and leaves demo and blog healthy, their data kept.
  before=$(main_pids blog redis-server@blog)
  vx keel --app shop rollback --yes
  vx test ! -e /etc/systemd/system/shop-web.service || fail "shop's units are still there"
  if vx systemctl is-active -q redis-server@shop; then fail "shop's Redis still runs"; fi
  vx test -s /etc/keel/secrets/shop/postgres_password || fail "shop's secrets were not kept"
  keel verify >/dev/null || fail "demo is not healthy after shop's rollback"
  vx keel --app blog verify >/dev/null || fail "blog is not healthy after shop's rollback"
  [ "$(main_pids blog redis-server@blog)" = "$before" ] || fail "blog's processes changed in shop's rollback"
  [ "$(vx sh -c "PGPASSWORD=\$(cat /etc/keel/secrets/postgres_password) psql -X -h 127.0.0.1 -U demo -d demo -Atc 'select x from keep_me'")" = 7 ] \
    || fail "demo's data changed"
  vx test -s /etc/nginx/sites-enabled/keel-catch-all-80.conf || fail "the host's catch-all went with shop"
  local code2; code2=$(vx curl -s -o /dev/null -w '%{http_code}' -H 'Host: shop.localhost' http://127.0.0.1/ || true)
  [ "$code2" = 000 ] || fail "shop.localhost still answers ($code2) after its rollback"
  vx keel apps
}

# A host that the previous keel (one app per host) set up, upgraded in place by this keel
# under a request loop; then a second app beside it.
scenario_apps_upgrade() {
  fresh
  local root; root=$("$VPS" root "$BOX")
  install -m 0755 "$KEEL_PREV_BIN" "$root/usr/local/bin/keel-prev"
  vx keel-prev --config /etc/keel/keel.toml install --yes >/dev/null
  vx keel-prev --version
  vx grep -q 'default_server' /etc/nginx/sites-available/keel-demo.conf || fail "the previous keel's site has no catch-all: not the previous layout"
  local pg='PGPASSWORD=$(cat /etc/keel/secrets/postgres_password) psql -X -h 127.0.0.1 -U demo -d demo'
  vx sh -c "$pg -c 'create table keep_me (x int); insert into keep_me values (7)'" >/dev/null
  local secrets; secrets=$(vx sh -c 'sha256sum /etc/keel/secrets/*')
  apps_loop_script >"$root/usr/local/bin/keel-apps-load"; chmod 0755 "$root/usr/local/bin/keel-apps-load"
  vx rm -f /tmp/up.stop /tmp/up.log
  vx sh -c 'nohup keel-apps-load /tmp/up.log /tmp/up.stop demo.localhost "demo-home: " >/dev/null 2>&1 &'
  wait_for 20 vx grep -q '^ok' /tmp/up.log
  local out; out=$(keel install --yes 2>&1) || { echo "$out"; fail "the upgrade install failed"; }
  echo "$out" | tail -3
  sleep 1
  vx touch /tmp/up.stop; sleep 0.5
  loop_result /tmp/up.log
  [ "$(vx sh -c 'sha256sum /etc/keel/secrets/*')" = "$secrets" ] || fail "the upgrade changed the secrets"
  [ "$(vx sh -c "$pg -Atc 'select x from keep_me'")" = 7 ] || fail "the upgrade lost rows"
  if vx grep -q 'default_server' /etc/nginx/sites-available/keel-demo.conf; then fail "the site still holds the catch-all"; fi
  vx test -s /etc/nginx/sites-enabled/keel-catch-all-80.conf || fail "no catch-all of the host's"
  # Exactly once: the next run has nothing to do.
  out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run" <<<"$out" || { echo "$out"; fail "a second install after the upgrade is not a no-op"; }
  keel verify >/dev/null || fail "demo is not healthy after the upgrade"
  # The upgraded host takes a second app.
  named_app shop 6380
  vx keel --app shop install --yes >/dev/null
  output_has 'demo-home shop: ' page_of shop.localhost || fail "shop is not served on the upgraded host"
  output_has 'demo-home: ' page_of demo.localhost || fail "demo is not served beside shop"
}
