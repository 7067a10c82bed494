#!/usr/bin/env bash
# Benchmarks, each in fresh containers, one run:
#   1. the floor: plain apt-get install of the same packages + pip install -r requirements.txt
#      into a venv (what any tool must at least do);
#   2. keel's fresh install of the demo stack (Django's own migrate/collectstatic time is
#      read from the django step's duration);
#   3. keel's no-op re-run (wall, through nsenter) and keel's own time for it (the process
#      alone, timed inside), plus keel's peak RSS during the fresh install;
#   4. `keel verify` on the healthy host, parallel vs the same checks one after another;
#   5. `keel deploy` with unchanged requirements, and with one added requirement (requests):
#      the venv build by uv (keel's own figure) against pip into the existing venv (what keel
#      did before releases) and pip into a fresh venv, on the same host, caches warm alike;
#      and the first import of Django + Celery in the deployed venv (bytecode compiled);
#   6. the uv fixture (tests/projects/uvshop: uv.lock, psycopg built from source, an npm
#      build): keel's fresh install against its own floor (apt-get of the same packages,
#      then `uv sync --frozen --no-dev` and `migrate`, in sequence), alternating rounds,
#      then a deploy with the lock unchanged;
#   7. memory: the idle footprint (PSS) of one app's processes, of the host's shared
#      services, and of the whole host with one app and with three (the demo and two named
#      copies). `scripts/bench.sh memory` runs this part alone.
# Prints the figures and the ratios against the targets. Needs what scripts/test.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
V=scripts/vps.sh
B=keel-bench
trap '$V down-all >/dev/null 2>&1 || true' EXIT
cargo build --release --quiet
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }
# The packages keel installs by default (keel.toml defaults plus the baseline's logrotate and
# unattended-upgrades, and nftables for the firewall): the floor installs the same set.
PKGS="postgresql redis-server nginx logrotate unattended-upgrades nftables python3 python3-venv"

# Warm the shared apt archive, so neither side pays for downloads the other did not.
$V up $B >/dev/null
$V exec $B sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only $PKGS >/dev/null"
$V down $B

# The idle PSS (kB) of the units named, and of every process (the host), inside the box.
mem_sample() {
  $V exec $B python3 - "$@" <<'PYEND2'
import os, subprocess, sys
def pss(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0
def unit(u):
    cg = subprocess.run(["systemctl", "show", "-p", "ControlGroup", "--value", u],
                        capture_output=True, text=True).stdout.strip()
    # cgroup v2, or the hybrid layout a container may see (systemd's own hierarchy).
    for top in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"):
        try:
            return sum(pss(p) for p in open(f"{top}{cg}/cgroup.procs").read().split()) if cg else 0
        except OSError:
            pass
    return 0
out = [str(unit(u)) for u in sys.argv[1:]]
out.append(str(sum(pss(p) for p in os.listdir("/proc") if p.isdigit())))
print(" ".join(out))
PYEND2
}

memory_bench() {
  export VPS=$V BOX=$B KEEL_BIN=target/release/keel
  . tests/e2e/lib.sh
  . tests/e2e/88-apps.sh
  fresh >/dev/null
  keel install --yes >/dev/null
  sleep 30
  local units="demo-web demo-worker demo-beat redis-server postgresql@15-main nginx"
  read -r web worker beat redis pg nginx one <<<"$(mem_sample $units)"
  named_app shop 6380; named_app blog 6381
  vx keel --app shop install --yes >/dev/null
  vx keel --app blog install --yes >/dev/null
  sleep 30
  read -r sweb sworker sbeat sredis pg3 nginx3 three <<<"$(mem_sample shop-web shop-worker shop-beat redis-server@shop postgresql@15-main nginx)"
  $V down $B >/dev/null
  python3 - "$web" "$worker" "$beat" "$redis" "$pg" "$nginx" "$one" "$sweb" "$sworker" "$sbeat" "$sredis" "$pg3" "$nginx3" "$three" <<'PYEND3'
import sys
(web, worker, beat, redis, pg, nginx, one, sweb, sworker, sbeat, sredis, pg3, nginx3, three) = [int(x) / 1024 for x in sys.argv[1:]]
app = web + worker + beat + redis
print()
print("| memory, idle (PSS) | one app (demo, the host's) | a named app (shop), beside two others |")
print("|---|---|---|")
print(f"| Gunicorn (2 workers) | {web:.0f} MB | {sweb:.0f} MB |")
print(f"| Celery worker (concurrency 2) | {worker:.0f} MB | {sworker:.0f} MB |")
print(f"| Celery beat | {beat:.0f} MB | {sbeat:.0f} MB |")
print(f"| its Redis | {redis:.0f} MB | {sredis:.0f} MB |")
print(f"| the app's processes | {app:.0f} MB | {sweb + sworker + sbeat + sredis:.0f} MB |")
print(f"| PostgreSQL (shared; the apps' connections included) | {pg:.0f} MB | {pg3:.0f} MB with 3 apps |")
print(f"| nginx (shared) | {nginx:.0f} MB | {nginx3:.0f} MB with 3 apps |")
print(f"| the whole host (every process) | {one:.0f} MB with 1 app | {three:.0f} MB with 3 apps: {(three - one) / 2:.0f} MB per added app |")
PYEND3
}
if [ "${1:-}" = memory ]; then
  memory_bench
  exit 0
fi


# Fresh installs vary by seconds from one container to the next (the disk, the mirror's
# answers): floor and keel alternate, ROUNDS each, and the medians are compared.
ROUNDS=${KEEL_BENCH_ROUNDS:-5}
[ $((ROUNDS % 2)) = 1 ] || { echo "KEEL_BENCH_ROUNDS must be odd" >&2; exit 2; }
ART=target/bench; mkdir -p "$ART"
FLOORS=(); FRESHES=(); DJANGOS=()
dpkg_conf() { (cd "$1" && find etc/dpkg etc/apt/apt.conf.d -type f ! -name '*keel*' -exec sha256sum {} + | sort); }
keel_round() { # a fresh install in a fresh container; leaves it up
  $V up $B >/dev/null
  root=$($V root $B)
  install -m 0755 target/release/keel "$root/usr/local/bin/keel"
  mkdir -p "$root/etc/keel" && cp -r examples/. "$root/etc/keel/" && cp examples/demo.toml "$root/etc/keel/keel.toml"
  sync
  # Sample keel's peak RSS (VmHWM) from this side while it runs.
  ( peak=0; while :; do for p in $(pgrep -x keel); do h=$(awk '/VmHWM/ {print $2}' /proc/$p/status 2>/dev/null || echo 0); [ "${h:-0}" -gt "$peak" ] && peak=$h && echo "$peak" >/tmp/keel-bench-rss; done; sleep 0.05; done ) &
  SAMPLER=$!
  t0=$(now)
  $V exec $B keel --config /etc/keel/keel.toml install --yes >/tmp/keel-bench.log 2>&1 || { tail -30 /tmp/keel-bench.log; exit 1; }
  t1=$(now); FRESHES+=("$(secs "$t0" "$t1")")
  kill $SAMPLER 2>/dev/null || true
  # dpkg's and apt's configuration as the plain install leaves it (keel's own baseline
  # files aside): nothing keel did for speed stays behind.
  [ "$(dpkg_conf "$root")" = "$FLOOR_DPKG" ] || { echo "dpkg/apt configuration differs from the floor's:"; diff <(echo "$FLOOR_DPKG") <(dpkg_conf "$root"); exit 1; }
  # Django's own work, one command after another (what a plain setup runs): the django
  # step's migrate, collectstatic and admin-user commands, from its log.
  DJANGOS+=("$(awk '/\$ .*manage.py (migrate --noinput|collectstatic|shell)/ {want=1; next} want && /^--- exit 0 in/ {sub("s","",$5); t+=$5; want=0} END {printf "%.2f", t}' "$root/var/log/keel/steps/django.log")")
  cp "$root/var/log/keel/events.jsonl" "$ART/keel-events.jsonl"
  cp "$root/var/log/dpkg.log" "$ART/keel-dpkg.log"
  echo "keel fresh: ${FRESHES[-1]}s (Django's commands ${DJANGOS[-1]} s)"
}
floor_round() {
  $V up $B >/dev/null
  root=$($V root $B); cp examples/demo-app/requirements.txt "$root/root/requirements.txt"
  sync
  t0=$(now)
  $V exec $B sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >/dev/null \
    && python3 -m venv /root/venv && /root/venv/bin/pip install -q --disable-pip-version-check -r /root/requirements.txt gunicorn"
  t1=$(now); FLOORS+=("$(secs "$t0" "$t1")")
  cp "$root/var/log/dpkg.log" "$ART/floor-dpkg.log"
  FLOOR_DPKG=$(dpkg_conf "$root")
  $V down $B
  echo "floor: ${FLOORS[-1]}s"
}
# Odd rounds floor then keel, even rounds keel then floor (what a previous container's
# teardown leaves to the disk falls on both sides alike); the last round ends with keel's
# container up for the measurements below.
for i in $(seq "$ROUNDS"); do
  if [ $((i % 2)) = 1 ]; then
    echo "== round $i/$ROUNDS: floor (apt-get install + pip install), then keel's fresh install"
    floor_round
    keel_round
    [ "$i" = "$ROUNDS" ] || $V down $B
  else
    echo "== round $i/$ROUNDS: keel's fresh install, then the floor"
    keel_round
    $V down $B
    floor_round
  fi
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
FLOOR=$(median "${FLOORS[@]}"); FRESH=$(median "${FRESHES[@]}"); DJANGO_S=$(median "${DJANGOS[@]}")
# Each round's ratio (its keel run over its own floor + Django's commands, back to back), and
# their median: the figure the target is judged on.
RATIOS=(); for i in "${!FLOORS[@]}"; do RATIOS+=("$(python3 -c "print(f'{${FRESHES[$i]} / (${FLOORS[$i]} + ${DJANGOS[$i]}):.3f}')")"); done
RATIO=$(median "${RATIOS[@]}")
echo "per-round ratios: ${RATIOS[*]}; median $RATIO"
DJANGO_MS=$(python3 -c "print(int($DJANGO_S * 1000))")
RSS_KB=$(cat /tmp/keel-bench-rss 2>/dev/null || echo 0)
VERIFY_MS=$($V exec $B keel --config /etc/keel/keel.toml status --output json | python3 -c "import json,sys; print([s['duration_ms'] for s in json.load(sys.stdin)['steps'] if s['id']=='verify'][0])")
echo "floor (apt + pip): ${FLOORS[*]} s, median $FLOOR; keel: ${FRESHES[*]} s, median $FRESH; Django's commands median ${DJANGO_S} s"
echo "== where the time went (the last keel round; dpkg from its log)"
python3 scripts/breakdown.py "$ART/keel-events.jsonl" "$ART/keel-dpkg.log" "$ART/floor-dpkg.log" | tee "$ART/breakdown.txt"

echo "== keel: no-op re-run"
best=999; for i in 1 2 3 4 5; do
  t0=$(now); $V exec $B keel --config /etc/keel/keel.toml install --yes >/dev/null 2>&1; t1=$(now)
  w=$(secs "$t0" "$t1"); best=$(python3 -c "print(min($best, $w))")
done
NOOP=$best
# keel's own time, measured inside the container (python3 is there: keel installed it).
OWN_MS=$($V exec $B python3 -c "
import subprocess, time
best = 1e9
for _ in range(10):
    t = time.perf_counter()
    subprocess.run(['keel', '--config', '/etc/keel/keel.toml', 'install', '--yes'], capture_output=True, check=True)
    best = min(best, time.perf_counter() - t)
print(f'{best*1000:.1f}')")
echo "no-op re-run: ${NOOP}s wall (best of 5, through nsenter); keel's own time ${OWN_MS} ms (best of 10)"

echo "== keel verify: parallel vs one after another"
vt() { $V exec $B python3 -c "
import subprocess, time
best = 1e9
for _ in range(5):
    t = time.perf_counter()
    subprocess.run(['keel', '--config', '/etc/keel/keel.toml', 'verify'] + '$1'.split(), capture_output=True)
    best = min(best, time.perf_counter() - t)
print(f'{best:.3f}')"; }
VPAR=$(vt "")
VSEQ=$(vt "--sequential")
echo "verify: ${VPAR}s parallel, ${VSEQ}s sequential"

echo "== keel deploy: unchanged requirements, then one added requirement"
root=$($V root $B)
mkdir -p "$root/srv"
cp -r examples/demo-app "$root/srv/v2"; sed -i 's/demo-home: /demo-home v2: /' "$root/srv/v2/core/views.py"
cp -r examples/demo-app "$root/srv/v3"; echo 'requests>=2.31,<3' >>"$root/srv/v3/requirements.txt"
t0=$(now); $V exec $B keel --config /etc/keel/keel.toml deploy --source /srv/v2 >/tmp/keel-bench-deploy.log 2>&1; t1=$(now)
DEPLOY_SAME=$(secs "$t0" "$t1")
t0=$(now); $V exec $B keel --config /etc/keel/keel.toml deploy --source /srv/v3 >>/tmp/keel-bench-deploy.log 2>&1; t1=$(now)
DEPLOY_CHANGED=$(secs "$t0" "$t1")
UV_S=$(grep -o 'venv [0-9a-f]* ready in [0-9.]* s' /tmp/keel-bench-deploy.log | tail -1 | awk '{print $5}')
# pip as keel ran it before releases: into the venv that has the old requirements (made
# first, untimed; it also warms pip's cache like uv's), then into a fresh venv.
$V exec $B sh -c 'python3 -m venv /root/pvenv && /root/pvenv/bin/pip install -q --disable-pip-version-check -r /srv/v2/requirements.txt gunicorn'
t0=$(now); $V exec $B /root/pvenv/bin/pip install -q --disable-pip-version-check -r /srv/v3/requirements.txt gunicorn; t1=$(now)
PIP_INPLACE=$(secs "$t0" "$t1")
t0=$(now); $V exec $B sh -c 'python3 -m venv /root/pvenv2 && /root/pvenv2/bin/pip install -q --disable-pip-version-check -r /srv/v3/requirements.txt gunicorn'; t1=$(now)
PIP_FRESH=$(secs "$t0" "$t1")
# The first import in the deployed venv: .pyc files are there (uv --compile-bytecode).
IMPORT_MS=$($V exec $B sh -c 'cd /opt/demo/current && runuser -u demo -- ./venv/bin/python -c "import time; t=time.perf_counter(); import django.core.management, celery, gunicorn; print(f\"{(time.perf_counter()-t)*1000:.0f}\")"')
PYC=$($V exec $B sh -c 'd=$(readlink -f /opt/demo/current/venv); echo "$(find $d -name "*.pyc" | wc -l) .pyc for $(find $d -name "*.py" | wc -l) .py"')
echo "deploy: ${DEPLOY_SAME}s same requirements, ${DEPLOY_CHANGED}s changed; venv: uv ${UV_S}s, pip in place ${PIP_INPLACE}s, pip fresh ${PIP_FRESH}s; first import ${IMPORT_MS} ms ($PYC)"
$V down $B

echo "== the uv fixture: keel's fresh install vs apt + uv sync + migrate, then a deploy"
UVROUNDS=${KEEL_BENCH_UV_ROUNDS:-3}
UVSRC=$(mktemp -d); cp -r tests/projects/uvshop "$UVSRC/uvshop"; scripts/uv-lock.sh "$UVSRC/uvshop"
UVPKGS="$PKGS build-essential python3-dev libpq-dev nodejs npm"
UVVER=$(grep -o 'UV_VERSION: &str = "[^"]*"' src/app/venv.rs | cut -d'"' -f2)
UVFLOORS=(); UVKEELS=()
uv_floor() {
  $V up $B >/dev/null; root=$($V root $B); cp -r "$UVSRC/uvshop" "$root/root/uvshop"; sync
  t0=$(now)
  $V exec $B sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $UVPKGS >/dev/null \
    && python3 -m venv /root/tools && /root/tools/bin/pip install -q uv==$UVVER \
    && cd /root/uvshop && UV_SYSTEM_CERTS=1 UV_PROJECT_ENVIRONMENT=/root/venv /root/tools/bin/uv sync -q --frozen --no-dev --python /usr/bin/python3 \
    && runuser -u postgres -- psql -q -c \"CREATE ROLE shop LOGIN PASSWORD 'pw'\" && runuser -u postgres -- createdb -O shop shop \
    && DJANGO_SETTINGS_MODULE=config.settings.production DATABASE_URL=postgres://shop:pw@127.0.0.1/shop CELERY_BROKER_URL=redis://127.0.0.1/0 \
       DJANGO_SECRET_KEY=x SHOP_NAME=x /root/venv/bin/python manage.py migrate -v0"
  t1=$(now); UVFLOORS+=("$(secs "$t0" "$t1")"); $V down $B
  echo "uv floor: ${UVFLOORS[-1]}s"
}
uv_keel() {
  $V up $B >/dev/null; root=$($V root $B); cp -r "$UVSRC/uvshop" "$root/root/uvshop"
  install -m 0755 target/release/keel "$root/usr/local/bin/keel"
  printf '[app]\nname = "uvshop"\ndomain = "shop.test"\n[django]\nsource = "uvshop"\nsettings = "config.settings.production"\ncelery_app = "config.celery_app"\nwsgi = "config.wsgi:application"\n[env]\nSHOP_NAME = "Bench"\n' >"$root/root/keel.toml"
  sync
  t0=$(now)
  $V exec $B keel --config /root/keel.toml install --yes >/tmp/keel-bench-uv.log 2>&1 || { tail -30 /tmp/keel-bench-uv.log; exit 1; }
  t1=$(now); UVKEELS+=("$(secs "$t0" "$t1")")
  echo "uv keel: ${UVKEELS[-1]}s"
}
for i in $(seq "$UVROUNDS"); do
  if [ $((i % 2)) = 1 ]; then uv_floor; uv_keel; $V down $B; else uv_keel; $V down $B; uv_floor; fi
done
UVRATIOS=(); for i in "${!UVFLOORS[@]}"; do UVRATIOS+=("$(python3 -c "print(f'{${UVKEELS[$i]} / ${UVFLOORS[$i]}:.3f}')")"); done
UVRATIO=$(median "${UVRATIOS[@]}")
echo "uv fixture: floor ${UVFLOORS[*]} s, keel ${UVKEELS[*]} s; ratios ${UVRATIOS[*]}; median $UVRATIO"
uv_keel >/dev/null
best=999; for i in 1 2 3; do
  t0=$(now); $V exec $B keel --config /root/keel.toml deploy >>/tmp/keel-bench-uv.log 2>&1; t1=$(now)
  best=$(python3 -c "print(min($best, $(secs "$t0" "$t1")))")
done
UVDEPLOY=$best
echo "uv fixture deploy, lock unchanged: ${UVDEPLOY}s (best of 3)"
$V down $B; rm -rf "$UVSRC"

python3 - "$RATIO" "$FLOOR" "$FRESH" "$DJANGO_MS" "$NOOP" "$OWN_MS" "$RSS_KB" "$VPAR" "$VSEQ" \
  "$DEPLOY_SAME" "$DEPLOY_CHANGED" "$UV_S" "$PIP_INPLACE" "$PIP_FRESH" "$IMPORT_MS" "$UVRATIO" "$UVDEPLOY" <<'PY'
import sys
(ratio, floor, fresh, django_ms, noop, own_ms, rss_kb, vpar, vseq,
 dsame, dchanged, uv, pip_in, pip_fresh, import_ms, uvratio, uvdeploy) = map(float, sys.argv[1:])
seq = floor + django_ms / 1000
print()
print("| measure | value | target |")
print("|---|---|---|")
print(f"| sequential floor: apt-get + pip + Django's migrate/collectstatic/admin | {floor:.1f} + {django_ms/1000:.1f} = {seq:.1f} s (median) | |")
print(f"| keel fresh install (median) | {fresh:.1f} s; median of the rounds' ratios {ratio:.2f} × floor | ≤ 0.85 × floor: {'met' if ratio <= 0.85 else 'NOT met'} |")
print(f"| keel no-op re-run with drift checks (wall) | {noop:.3f} s | ≤ 0.3 s: {'met' if noop <= 0.3 else 'NOT met'} |")
print(f"| keel's own time, no-op | {own_ms:.1f} ms | ≤ 100 ms: {'met' if own_ms <= 100 else 'NOT met'} |")
print(f"| keel peak RSS (fresh install) | {rss_kb/1024:.1f} MB | ≤ 30 MB: {'met' if rss_kb <= 30*1024 else 'NOT met'} |")
print(f"| keel verify (healthy) | {vpar:.3f} s parallel vs {vseq:.3f} s sequential | ≤ 1.5 s: {'met' if vpar <= 1.5 else 'NOT met'} |")
print(f"| keel deploy, unchanged requirements (code only) | {dsame:.1f} s (venv reused; includes checks and restarts) | ≤ 3.5 s: {'met' if dsame <= 3.5 else 'NOT met'} |")
print(f"| keel deploy, one requirement added | {dchanged:.1f} s | |")
best_pip = min(pip_in, pip_fresh)
print(f"| venv for the changed requirements | uv {uv:.1f} s vs pip {pip_in:.1f} s in place / {pip_fresh:.1f} s fresh = {best_pip/uv:.1f}× faster | ≥ 3× pip: {'met' if best_pip >= 3 * uv else 'NOT met'} |")
print(f"| first import of Django + Celery + Gunicorn in the deployed venv | {import_ms:.0f} ms (bytecode compiled) | |")
print(f"| uv fixture: keel fresh install vs apt + uv sync + migrate | median of the rounds' ratios {uvratio:.2f} × floor | ≤ 0.95 × floor: {'met' if uvratio <= 0.95 else 'NOT met'} |")
print(f"| uv fixture: keel deploy, lock unchanged | {uvdeploy:.1f} s (npm build, checks, restarts) | ≤ 5 s: {'met' if uvdeploy <= 5 else 'NOT met'} |")
PY
memory_bench
