# Issue: several hosts. Four containers on a private network of the test's own (a bridge in
# a namespace it made; each container also reaches the registries through its slirp4netns):
# db (database + redis), app1 (web + worker + beat), app2 (web + worker), lb (HAProxy).
# Installed and deployed through examples/ansible (ansible-core from the package index, SSH),
# with a request loop through the balancer from the test's namespace.

FLEET=10.77.0
# name address roles (JSON)
FLEET_HOSTS="db:10:[\"database\",\"redis\"] app1:21:[\"web\",\"worker\",\"beat\"] app2:22:[\"web\",\"worker\"] lb:30:"

fleet_box() { echo "$BOX-$1"; }
fx() { local h=$1; shift; "$VPS" exec "$(fleet_box "$h")" "$@"; }
fkeel() { local h=$1; shift; fx "$h" keel "$@"; }
# A command in the test's namespace (the client side of the private network).
in_net() { ip netns exec "$FLEET_NS" "$@"; }

fleet_down() {
  local h
  for h in db app1 app2 lb; do "$VPS" down "$(fleet_box "$h")" >/dev/null 2>&1 || true; done
  ip netns del "$FLEET_NS" 2>/dev/null || true
}

# ansible-core from the package index, once per machine (cached under target/).
ansible_venv() {
  local v="$here/target/e2e/ansible"
  exec 8>"$here/target/e2e/.ansible.lock"
  flock 8
  if [ ! -x "$v/bin/ansible-playbook" ]; then
    rm -rf "$v"
    python3 -m venv "$v"
    "$v/bin/pip" install -q 'ansible-core>=2.17,<2.20'
  fi
  flock -u 8
  echo "$v"
}

# The test's PKI: a CA, the database host's certificate (IP SAN), and an unrelated CA.
fleet_pki() {
  local d=$1
  mkdir -p "$d/pki"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=keel fleet test CA" \
    -keyout "$d/pki/ca.key" -out "$d/pki/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$FLEET.10" -keyout "$d/pki/db.key" \
    -out "$d/pki/db.csr" 2>/dev/null
  printf 'subjectAltName=IP:%s.10\n' "$FLEET" >"$d/pki/ext"
  openssl x509 -req -in "$d/pki/db.csr" -CA "$d/pki/ca.pem" -CAkey "$d/pki/ca.key" \
    -CAcreateserial -days 2 -extfile "$d/pki/ext" -out "$d/pki/db.pem" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=someone else's CA" \
    -keyout "$d/pki/wrong.key" -out "$d/pki/wrong-ca.pem" 2>/dev/null
}

# The demo app as version VERSION in DIR; with "migration", a new model and its migration.
fleet_release() {
  local dir=$1 version=$2 extra=${3:-}
  rm -rf "$dir"
  cp -r examples/demo-app "$dir"
  find "$dir" -name __pycache__ -prune -exec rm -rf {} +
  sed -i "s/demo-home: /demo-home $version: /" "$dir/core/views.py"
  case $extra in
    migration)
      cat >"$dir/core/models.py" <<'PY'
from django.db import models


class FleetMark(models.Model):
    name = models.CharField(max_length=40)
PY
      mkdir -p "$dir/core/migrations"
      : >"$dir/core/migrations/__init__.py"
      cat >"$dir/core/migrations/0001_initial.py" <<'PY'
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel(
            name="FleetMark",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("name", models.CharField(max_length=40)),
            ],
        ),
    ]
PY
      ;;
    broken)
      sed -i 's/answer = ping.delay().get(timeout=10)/raise RuntimeError("broken on purpose")/' "$dir/core/views.py"
      grep -q 'broken on purpose' "$dir/core/views.py" || fail "$version is not broken"
      ;;
  esac
}

# The request loop through the balancer: one line per request, "MS ok VERSION" or "MS FAIL
# CODE", until STOP exists or after 600 s.
fleet_loop_script() {
  cat <<'SH'
#!/bin/bash
log=$1 stop=$2 url=$3 body=$(mktemp) end=$(( $(date +%s) + 600 ))
while [ ! -e "$stop" ] && [ "$(date +%s)" -lt "$end" ]; do
  code=$(curl -s -o "$body" -w '%{http_code}' --max-time 10 -H 'Host: demo.localhost' "$url") || code="000:$?"
  if [ "$code" = 200 ] && grep -q 'Django is serving through Gunicorn' "$body"; then
    echo "$(date +%s%3N) ok $(grep -o 'demo-home[^:]*' "$body" | head -1 | tr ' ' _)" >>"$log"
  else
    echo "$(date +%s%3N) FAIL $code" >>"$log"
  fi
  sleep 0.05
done
rm -f "$body"
SH
}

loop_start() {
  rm -f "$FLEET_DIR/$1.log" "$FLEET_DIR/$1.stop"
  in_net bash "$FLEET_DIR/loop.sh" "$FLEET_DIR/$1.log" "$FLEET_DIR/$1.stop" "http://$FLEET.30/" &
  FLEET_LOOP_PID=$!
  wait_for 20 grep -q ' ok ' "$FLEET_DIR/$1.log"
}
loop_stop() {
  touch "$FLEET_DIR/$1.stop"
  wait "$FLEET_LOOP_PID" || true
}
loop_fails() { grep -c ' FAIL' "$FLEET_DIR/$1.log" || true; }
loop_total() { wc -l <"$FLEET_DIR/$1.log"; }

# HAProxy's view of a server: UP, DOWN, ... (its stats page, CSV).
lb_status() {
  in_net curl -s --max-time 3 "http://$FLEET.30:8404/stats;csv" | awk -F, -v s="$1" '$1 == "app" && $2 == s {print $18}'
}
lb_is() { [ "$(lb_status "$1")" = "$2" ]; }

fleet_haproxy_cfg() {
  cat <<CFG
global
    log stdout format raw local0
defaults
    mode http
    log global
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    # A connection that fails is tried again, the last time on the other server.
    retries 3
    option redispatch
frontend site
    bind *:80
    default_backend app
backend app
    # keel's endpoint for balancers: 200 when this host's app is healthy, 503 while it drains.
    option httpchk GET /keel-health/lb
    http-check expect status 200
    default-server inter 1s fall 2 rise 2
    server app1 $FLEET.21:80 check
    server app2 $FLEET.22:80 check
listen stats
    bind *:8404
    stats enable
    stats uri /stats
CFG
}

fleet_up() {
  FLEET_NS="$BOX-net"
  ip netns del "$FLEET_NS" 2>/dev/null || true
  ip netns add "$FLEET_NS"
  in_net ip link set lo up
  in_net ip link add br0 type bridge
  in_net ip addr add "$FLEET.1/24" dev br0
  in_net ip link set br0 up
  local e h addr pids=()
  for e in $FLEET_HOSTS; do
    h=${e%%:*}
    # keel's hosts set up their firewall (mode "on"): each keeps CAP_NET_ADMIN in a network
    # namespace of its own, so no rule reaches this machine.
    if [ "$h" != lb ]; then
      KEEL_E2E_NETADMIN=1 "$VPS" up "$(fleet_box "$h")" &
    else
      "$VPS" up "$(fleet_box "$h")" &
    fi
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a fleet container did not boot"; done
  # A cloud image: its host name, sshd, python3 (Ansible's modules), root's key.
  ssh-keygen -q -t ed25519 -N '' -f "$FLEET_DIR/id" >/dev/null
  pids=()
  for e in $FLEET_HOSTS; do
    h=${e%%:*}; addr=${e#*:}; addr=${addr%%:*}
    "$VPS" link "$(fleet_box "$h")" "$FLEET_NS" br0 "$FLEET.$addr/24"
    fx "$h" sh -c "echo $h >/etc/hostname && hostname $h"
    fx "$h" install -d -m 0700 /root/.ssh
    cp "$FLEET_DIR/id.pub" "$("$VPS" root "$(fleet_box "$h")")/root/.ssh/authorized_keys"
    local pkgs="openssh-server python3"
    [ "$h" = lb ] && pkgs="$pkgs haproxy"
    fx "$h" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || fail "a fleet container could not install its image's packages"; done
  fleet_haproxy_cfg >"$("$VPS" root "$(fleet_box lb)")/etc/haproxy/haproxy.cfg"
  fx lb systemctl restart haproxy
}

fleet_ansible_files() {
  local d=$FLEET_DIR e h addr roles
  {
    echo "[db]"
    echo "db ansible_host=$FLEET.10 keel_private_address=$FLEET.10 keel_roles='[\"database\", \"redis\"]'"
    echo "[web]"
    echo "app1 ansible_host=$FLEET.21 keel_roles='[\"web\", \"worker\", \"beat\"]'"
    echo "app2 ansible_host=$FLEET.22 keel_roles='[\"web\", \"worker\"]'"
    echo "[worker]"
    echo "[app:children]"
    echo "web"
    echo "worker"
  } >"$d/inventory.ini"
  scripts/package.sh "$d/keel.deb" >/dev/null
  fleet_release "$d/v1" v1
  cat >"$d/vars.yml" <<YML
keel_deb: $d/keel.deb
keel_app_name: demo
keel_domain: demo.localhost
keel_app_source: $d/v1
keel_allow_from: ["$FLEET.21/32", "$FLEET.22/32"]
keel_ca_file: $d/pki/ca.pem
keel_db_cert: $d/pki/db.pem
keel_db_key: $d/pki/db.key
keel_drain_secs: 4
keel_wsgi: demo.wsgi:application
keel_celery_app: demo
keel_django:
  celery_ping_path: /celery-ping/
  heartbeat_path: /heartbeat/
  heartbeat_interval_secs: 5
keel_secrets:
  postgres_password: "$(openssl rand -hex 24)"
  redis_password: "$(openssl rand -hex 24)"
  admin_password: "$(openssl rand -hex 24)"
  env_secret_key: "$(openssl rand -hex 40)"
YML
}

playbook() {
  local book=$1; shift
  in_net env ANSIBLE_HOST_KEY_CHECKING=False ANSIBLE_PRIVATE_KEY_FILE="$FLEET_DIR/id" \
    ANSIBLE_REMOTE_USER=root ANSIBLE_FORCE_COLOR=0 ANSIBLE_NOCOLOR=1 ANSIBLE_PIPELINING=True \
    ANSIBLE_LOCAL_TEMP="$FLEET_DIR/ansible-tmp" ANSIBLE_SSH_CONTROL_PATH_DIR="$FLEET_DIR/cp" \
    "$ANSIBLE/bin/ansible-playbook" -i "$FLEET_DIR/inventory.ini" -e "@$FLEET_DIR/vars.yml" \
    "examples/ansible/$book" "$@"
}

# What a host serves itself (from the test's namespace, past the balancer).
served_by() { in_net curl -s --max-time 10 -H 'Host: demo.localhost' "http://$FLEET.$1/"; }
current_release() { fkeel "$1" releases --output json | jq_py "d['current']"; }

scenario_fleet() {
  FLEET_DIR=$(mktemp -d)
  trap 'loop_stop_all; fleet_down; rm -rf "$FLEET_DIR"' EXIT
  loop_stop_all() { touch "$FLEET_DIR"/*.stop 2>/dev/null || true; }
  local t0 t; t0=$(date +%s)
  ANSIBLE=$(ansible_venv)
  fleet_pki "$FLEET_DIR"
  fleet_up
  fleet_ansible_files
  fleet_loop_script >"$FLEET_DIR/loop.sh"
  echo "fleet: 4 containers up, images ready in $(( $(date +%s) - t0 )) s"

  # 1. Installed through the playbook: every host healthy; the app hosts reach PostgreSQL
  # over TLS (verify-full against the fleet's CA).
  t=$(date +%s)
  playbook install.yml || fail "install.yml failed"
  echo "fleet: install.yml in $(( $(date +%s) - t )) s"
  local out h
  for h in db app1 app2; do
    out=$(fkeel "$h" verify 2>&1) || { echo "$out"; fail "keel verify on $h"; }
  done
  for h in app1 app2; do
    out=$(fkeel "$h" verify 2>&1)
    grep -q 'TLS verify-full' <<<"$out" || { echo "$out"; fail "$h: the database check is not over TLS"; }
    # The app itself: libpq with sslmode=verify-full, its session encrypted.
    out=$(fkeel "$h" run -- python manage.py shell -v 0 -c "from django.db import connection; c = connection.cursor(); c.execute('select ssl from pg_stat_ssl where pid = pg_backend_pid()'); print(c.fetchone()[0], connection.get_connection_params().get('sslmode'))" 2>&1 | tail -1)
    [ "$out" = "True verify-full" ] || fail "$h: the app's database session: $out"
  done
  wait_for 20 lb_is app1 UP
  wait_for 20 lb_is app2 UP
  output_has 'demo-home v1' in_net curl -s -H 'Host: demo.localhost' "http://$FLEET.30/" || fail "lb does not serve v1"

  # 2. A rolling deploy with a new migration, under load through the balancer.
  fleet_release "$FLEET_DIR/v2" v2 migration
  local v1_app1; v1_app1=$(current_release app1)
  loop_start deploy
  t=$(date +%s)
  playbook deploy.yml -e keel_release=v2 -e "keel_release_source=$FLEET_DIR/v2" || { loop_stop deploy; fail "deploy.yml v2 failed"; }
  echo "fleet: deploy.yml v2 in $(( $(date +%s) - t )) s"
  sleep 3
  loop_stop deploy
  local total fails
  total=$(loop_total deploy); fails=$(loop_fails deploy)
  echo "fleet: the loop through lb during the rollout: $total requests, $fails failed; answers by version: $(awk '$2 == "ok" {print $3}' "$FLEET_DIR/deploy.log" | sort | uniq -c | tr -s ' \n' ' ')"
  [ "$total" -ge 100 ] || fail "only $total requests during the rollout"
  [ "$fails" = 0 ] || { grep ' FAIL' "$FLEET_DIR/deploy.log" | head; fail "$fails requests failed during the rollout"; }
  # Then only the new version: the last 20 requests.
  [ "$(tail -20 "$FLEET_DIR/deploy.log" | grep -c 'ok demo-home_v2')" = 20 ] || fail "the last requests were not all v2"
  for a in 21 22; do output_has 'demo-home v2' served_by "$a" || fail "$FLEET.$a does not serve v2"; done
  local applied
  applied=$(fx db runuser -u postgres -- psql -d demo -tAc "select count(*) from django_migrations where app = 'core' and name = '0001_initial'")
  [ "$applied" = 1 ] || fail "core.0001_initial applied $applied times"
  fx db runuser -u postgres -- psql -d demo -tAc "select to_regclass('core_fleetmark') is not null" | grep -qx t || fail "the new table is missing"
  echo "fleet: core.0001_initial in django_migrations: $applied row"
  local v2_app1 v2_app2 n_app2; v2_app1=$(current_release app1); v2_app2=$(current_release app2)
  [ "$v2_app1" != "$v1_app1" ] || fail "app1's release did not change"
  n_app2=$(fkeel app2 releases --output json | jq_py "len(d['releases'])")

  # 3. A release that fails its checks on app1 stops the rollout: app1 switched back, app2
  # never touched, no failed request.
  fleet_release "$FLEET_DIR/v3" v3 broken
  loop_start broken
  local rc=0
  playbook deploy.yml -e keel_release=v3 -e "keel_release_source=$FLEET_DIR/v3" >"$FLEET_DIR/v3.out" 2>&1 || rc=$?
  sleep 3
  loop_stop broken
  tail -25 "$FLEET_DIR/v3.out"
  [ "$rc" != 0 ] || fail "deploy.yml with a failing release succeeded"
  grep -q 'failed its checks' "$FLEET_DIR/v3.out" || fail "the playbook does not say the release failed its checks"
  [ "$(current_release app1)" = "$v2_app1" ] || fail "app1 did not switch back"
  [ "$(current_release app2)" = "$v2_app2" ] || fail "app2's release changed"
  [ "$(fkeel app2 releases --output json | jq_py "len(d['releases'])")" = "$n_app2" ] || fail "app2 got a release"
  if fx app2 test -e /var/lib/keel-releases/v3; then fail "app2 was touched (v3's source is there)"; fi
  output_has 'demo-home v2' served_by 21 || fail "app1 does not serve v2 again"
  fkeel app1 verify >/dev/null || fail "app1 is not healthy after switching back"
  fails=$(loop_fails broken); total=$(loop_total broken)
  echo "fleet: the loop during the failed rollout: $total requests, $fails failed"
  [ "$fails" = 0 ] || { grep ' FAIL' "$FLEET_DIR/broken.log" | head; fail "$fails requests failed during the failed rollout"; }
  wait_for 20 lb_is app1 UP

  # 4. Beat on app2 by hand (app1's unit, copied) while app1 holds the lock: it waits.
  fx app1 cat /etc/systemd/system/demo-beat.service >"$("$VPS" root "$(fleet_box app2)")/etc/systemd/system/demo-beat.service"
  fx app2 systemctl daemon-reload
  fx app2 systemctl start demo-beat
  local end=$(( $(date +%s) + 30 ))
  until output_has 'beat runs on app1' fx app2 journalctl -u demo-beat --no-pager; do
    [ "$(date +%s)" -lt "$end" ] || {
      fx app2 systemctl status demo-beat --no-pager | tail -15
      fail "app2's beat guard does not say within 30 s that beat runs on app1"
    }
    sleep 0.5
  done
  sleep 6
  fx app2 systemctl is-active demo-beat >/dev/null || fail "app2's hand-started beat unit is not running (its guard should wait)"
  local guard; guard=$(fx app2 systemctl show -p MainPID --value demo-beat)
  if fx app2 pgrep -P "$guard" >/dev/null; then fail "app2's beat started while app1 holds the lock"; fi
  # Celery beat itself is the venv's Python running celery (the guard's own command line
  # names celery too, after its "--").
  local beat_re='^[^ ]*/python[^ ]* [^ ]*/celery -A demo beat'
  if fx app2 pgrep -f "$beat_re" >/dev/null; then fail "a celery beat process runs on app2"; fi
  fx app1 pgrep -f "$beat_re" >/dev/null || { fx app1 ps -eo pid,ppid,args | grep -i celery; fail "no beat on app1"; }
  fx app2 journalctl -u demo-beat --no-pager | tail -3
  out=$(fkeel app2 verify 2>&1) || true
  grep -q 'beat runs on app1' <<<"$out" || { echo "$out"; fail "keel verify on app2 does not name app1 as the beat host"; }
  out=$(fkeel app1 verify 2>&1) || true
  grep -q 'this host runs beat' <<<"$out" || { echo "$out"; fail "keel verify on app1 does not say it runs beat"; }
  fx app2 systemctl stop demo-beat
  fx app2 rm /etc/systemd/system/demo-beat.service
  fx app2 systemctl daemon-reload

  # 5. A wrong CA on an app host: exit 2 before any write, naming database.url and the CA.
  cp "$FLEET_DIR/pki/wrong-ca.pem" "$("$VPS" root "$(fleet_box app2)")/etc/keel/wrong-ca.pem"
  # (keel.toml itself: a second file naming the same app is refused as another app's.)
  fx app2 cp -p /etc/keel/keel.toml /root/keel.toml.good
  fx app2 sed -i "s#/etc/keel/fleet-ca.pem#/etc/keel/wrong-ca.pem#" /etc/keel/keel.toml
  fx app2 sh -c 'sleep 1; touch /tmp/before-wrong-ca'
  rc=0; out=$(fkeel app2 install --yes 2>&1) || rc=$?
  echo "$out" | tail -4
  [ "$rc" = 2 ] || fail "a wrong CA: exit $rc, not 2"
  grep -q 'database.url' <<<"$out" || fail "the error does not name database.url"
  grep -q 'wrong-ca.pem' <<<"$out" || fail "the error does not name the CA file"
  if grep -q "$(sed -n 's/^  postgres_password: "\(.*\)"/\1/p' "$FLEET_DIR/vars.yml")" <<<"$out"; then fail "the password is in the error"; fi
  local written
  written=$(fx app2 find /etc /opt/demo /var/lib/keel /srv -newer /tmp/before-wrong-ca -not -type d)
  [ -z "$written" ] || fail "the failed install wrote: $written"
  fx app2 cp -p /root/keel.toml.good /etc/keel/keel.toml

  # The database host's 5432 and 6379: open to allow_from (app1), closed to the rest (the
  # test's own address, lb).
  fx app1 bash -c "timeout 3 bash -c '</dev/tcp/$FLEET.10/5432'" || fail "app1 cannot reach 5432"
  if in_net timeout 3 bash -c "</dev/tcp/$FLEET.10/5432" 2>/dev/null; then fail "5432 is reachable from $FLEET.1"; fi
  if fx lb bash -c "timeout 3 bash -c '</dev/tcp/$FLEET.10/5432'" 2>/dev/null; then fail "5432 is reachable from lb"; fi
  if fx lb bash -c "timeout 3 bash -c '</dev/tcp/$FLEET.10/6379'" 2>/dev/null; then fail "6379 is reachable from lb"; fi
  echo "fleet: 5432 and 6379 on db answer app1, not $FLEET.1 or lb"

  # 6. app1 powered off mid-loop: the balancer takes it out; failures only until then.
  loop_start poweroff
  sleep 3
  local cut down_at; cut=$(date +%s%3N)
  "$VPS" kill "$(fleet_box app1)"
  wait_for 20 lb_is app1 DOWN
  down_at=$(date +%s%3N)
  sleep 8
  loop_stop poweroff
  fails=$(loop_fails poweroff); total=$(loop_total poweroff)
  local late
  late=$(awk -v t="$down_at" '$1 > t && $2 == "FAIL"' "$FLEET_DIR/poweroff.log" | wc -l)
  echo "fleet: app1 off: lb marked it DOWN after $(( down_at - cut )) ms; $total requests, $fails failed (all before DOWN), $late after"
  [ "$late" = 0 ] || fail "$late requests failed after the balancer took app1 out"
  [ "$(awk -v t="$down_at" '$1 > t && $2 == "ok"' "$FLEET_DIR/poweroff.log" | wc -l)" -ge 20 ] || fail "too few requests after app1 went down"
  echo "fleet: done in $(( $(date +%s) - t0 )) s"
}
