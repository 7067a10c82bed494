#!/usr/bin/env bash
# Fresh-VPS harness: a Debian rootfs booted with systemd as PID 1 under systemd-nspawn.
#   vps.sh rootfs             build (once) the cached rootfs tarball
#   vps.sh up NAME            unpack a fresh copy, boot it, wait until systemd is up
#   vps.sh exec NAME CMD...   run CMD inside (clean environment, no TTY)
#   vps.sh cp NAME SRC DEST   copy a host file into the container
#   vps.sh down NAME          power off, wait, delete
#   vps.sh powercut NAME      kill the container at once (no shutdown), boot the same disk again
#   vps.sh down-all           power off every container this harness started
#   vps.sh private NAME       power off, boot the same disk in its own network namespace
#                             (a veth pair: 10.231.0.2 / fd00:231::2 from here)
#   vps.sh link NAME NS BR ADDR/LEN   a veth from the container's namespace (eth1, ADDR) to
#                             bridge BR in namespace NS (the test's private network)
#   vps.sh kill NAME          pull the plug and leave it off (the disk stays)
# KEEL_E2E_NETADMIN=1 with KEEL_E2E_NET=ns: the container keeps CAP_NET_ADMIN (its firewall is
# its own namespace's, never this machine's).
# KEEL_E2E_NET=ns: `up` boots the container in a network namespace of its own (slirp4netns
# gives it the registries), so containers side by side never collide on ports; otherwise it
# shares this machine's network (one such container at a time).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KEEL_E2E_CACHE:-$here/target/e2e}
SUITE=${KEEL_E2E_SUITE:-bookworm}
# FLAVOR=cloudinit adds cloud-init (and locales) to the image, as on a cloud VPS.
FLAVOR=${KEEL_E2E_FLAVOR:-base}
BASE_TARBALL=$CACHE/rootfs-$SUITE.tar
TARBALL=$CACHE/rootfs-$SUITE-$FLAVOR.tar
[ "$FLAVOR" = base ] && TARBALL=$BASE_TARBALL
RUNS=$CACHE/run
mkdir -p "$CACHE" "$RUNS" "$CACHE/apt-archives"

log() { printf '%s vps: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

mirror() {
  # Use the host's configured mirror rather than hard-coding one.
  local m
  m=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$m" ] || m=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  echo "$m"
}

build_flavor() {
  [ -f "$TARBALL" ] && return 0
  local dir="$CACHE/build-$SUITE-$FLAVOR"
  rm -rf "$dir"; mkdir -p "$dir"; chmod 755 "$dir"
  tar -C "$dir" -xf "$BASE_TARBALL"
  log "adding $FLAVOR to the image (once; cached as $TARBALL)"
  # No service may start inside the chroot.
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"; chmod 755 "$dir/usr/sbin/policy-rc.d"
  mount --bind /proc "$dir/proc"
  local rc=0
  chroot "$dir" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cloud-init locales >/dev/null && apt-get clean' || rc=$?
  umount "$dir/proc"
  rm -f "$dir/usr/sbin/policy-rc.d"
  [ "$rc" = 0 ] || { log "installing cloud-init failed"; exit 1; }
  tar -C "$dir" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$dir"
}

build_rootfs() {
  if [ "$TARBALL" != "$BASE_TARBALL" ]; then
    TARBALL=$BASE_TARBALL build_rootfs
    build_flavor
    return 0
  fi
  [ -f "$TARBALL" ] && return 0
  local dir="$CACHE/build-$SUITE"
  rm -rf "$dir"; mkdir -p "$dir"; chmod 755 "$dir"
  log "debootstrap $SUITE (once; cached as $TARBALL)"
  debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,ca-certificates,iproute2,procps,curl \
    "$SUITE" "$dir" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
  # HTTPS (pip) must trust the same authorities as this host.
  cp /etc/ssl/certs/ca-certificates.crt "$dir/usr/local/share/ca-certificates/host.crt"
  chroot "$dir" update-ca-certificates >/dev/null 2>&1 || true
  echo keel-vps >"$dir/etc/hostname"
  # Don't let the container spend its boot on timers we don't test.
  rm -f "$dir"/etc/systemd/system/timers.target.wants/* 2>/dev/null || true
  chroot "$dir" apt-get clean
  tar -C "$dir" -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf "$dir"
}

leader() { pgrep -P "$(cat "$RUNS/$1/nspawn.pid")" | head -1; }

# A command in the container. nsenter keeps this machine's capabilities: in a container that
# shares this machine's network, CAP_NET_ADMIN would let an `nft` rewrite THIS machine's
# firewall. It is dropped at the door (the container's own systemd lacks it anyway), except
# in a container booted with its own network namespace (`private`).
in_vps() {
  local name=$1; shift
  local guard=(setpriv --bounding-set=-net_admin --)
  [ -e "$RUNS/$name/private-net" ] && guard=()
  nsenter -t "$(leader "$name")" -a "${guard[@]}" env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}

# The veth pair of a private container: this side's name (nspawn: "ve-" + machine name,
# at most 15 characters) and the addresses of both ends.
VETH_HOST4=10.231.0.1 VETH_VPS4=10.231.0.2 VETH_HOST6=fd00:231::1 VETH_VPS6=fd00:231::2
veth() { echo "ve-$1" | cut -c1-15; }

# The container's own network namespace, with slirp4netns on its tap0 (10.0.2.100; the
# registries through this machine, its loopback out of reach). Recorded in the run dir so
# `boot` (also after a power cut) and `down` find it.
netns_up() {
  local name=$1 run="$RUNS/$1" ns="keel-$1"
  ip netns del "$ns" 2>/dev/null || true
  ip netns add "$ns"
  slirp4netns --configure --mtu=65520 --disable-host-loopback --netns-type=path \
    "/run/netns/$ns" tap0 >"$run/slirp.log" 2>&1 &
  echo $! >"$run/slirp.pid"
  echo "$ns" >"$run/netns"
  # Up to 30 s: on a loaded machine (builds beside three containers) it has taken over 5.
  for _ in $(seq 1 300); do
    ip netns exec "$ns" ip -4 addr show tap0 2>/dev/null | grep -q 10.0.2.100 && return 0
    sleep 0.1
  done
  log "slirp4netns did not configure $ns"; cat "$run/slirp.log" >&2; exit 1
}

netns_down() {
  local run="$RUNS/$1"
  if [ -f "$run/slirp.pid" ]; then kill "$(cat "$run/slirp.pid")" 2>/dev/null || true; fi
  if [ -f "$run/netns" ]; then ip netns del "$(cat "$run/netns")" 2>/dev/null || true; fi
  rm -f "$run/slirp.pid" "$run/netns"
}

# apt's download cache: shared by the containers on this machine's network (one at a time);
# a container in its own namespace gets its own copy (hard links; apt's archive lock is per
# directory), so containers side by side never wait on each other's lock.
archives() {
  local name=$1 d="$CACHE/apt-archives"
  if [ -f "$RUNS/$name/netns" ]; then
    d="$CACHE/apt-archives-$name"
    if [ ! -d "$d" ]; then
      cp -al "$CACHE/apt-archives" "$d.tmp" 2>/dev/null || mkdir -p "$d.tmp"
      rm -f "$d.tmp/lock"; mv "$d.tmp" "$d"
    fi
  fi
  echo "$d"
}

up() {
  local name=$1 run="$RUNS/$1"
  build_rootfs
  if [ -d "$run" ]; then down "$name" || true; fi
  mkdir -p "$run/root"; chmod 755 "$run/root"
  tar -C "$run/root" -xf "$TARBALL"
  if [ -n "${KEEL_E2E_PREPARE:-}" ]; then "$KEEL_E2E_PREPARE" "$run/root"; fi
  if [ "${KEEL_E2E_NET:-host}" = ns ]; then
    netns_up "$name"
    if [ -n "${KEEL_E2E_NETADMIN:-}" ]; then touch "$run/private-net"; fi
  fi
  boot "$name"
}

boot() {
  local name=$1 run="$RUNS/$1"
  local net=()
  [ -e "$run/private-net" ] && net=(--network-veth)
  # In a namespace of its own, a container marked private keeps CAP_NET_ADMIN (nspawn drops
  # it with a namespace path): its firewall changes only that namespace.
  [ -f "$run/netns" ] && net=("--network-namespace-path=/run/netns/$(cat "$run/netns")")
  [ -f "$run/netns" ] && [ -e "$run/private-net" ] && net+=(--capability=CAP_NET_ADMIN)
  systemd-nspawn -D "$run/root" --register=no --keep-unit -b --console=passive \
    --machine="$name" --bind="$(archives "$name"):/var/cache/apt/archives" "${net[@]}" \
    </dev/null >"$run/console.log" 2>&1 &
  echo $! >"$run/nspawn.pid"
  local i state
  for i in $(seq 1 120); do
    sleep 0.5
    if ! kill -0 "$(cat "$run/nspawn.pid")" 2>/dev/null; then
      log "container $name died while booting"; tail -20 "$run/console.log"; exit 1
    fi
    [ -n "$(leader "$name" || true)" ] || continue
    state=$(in_vps "$name" systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) log "$name is up ($state)"; return 0 ;; esac
    # KEEL_E2E_NOWAIT: return as soon as systemd answers (boot may still be running cloud-init).
    if [ -n "${KEEL_E2E_NOWAIT:-}" ] && [ -n "$state" ]; then log "$name is booting ($state)"; return 0; fi
  done
  log "container $name did not finish booting"; down "$name"; exit 1
}

# Power the container off, keeping its rootfs.
stop() {
  local name=$1 run="$RUNS/$1"
  local pid; pid=$(cat "$run/nspawn.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    in_vps "$name" systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && { kill -TERM "$pid"; sleep 2; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  return 0
}

down() {
  local name=$1 run="$RUNS/$1"
  [ -d "$run" ] || return 0
  stop "$name"
  netns_down "$name"
  rm -rf "$run"
}

# Boot the same rootfs again in its own network namespace, joined to this machine by a veth
# pair with private addresses: its firewall is its own, and probes from here cross it.
private() {
  local name=$1 run="$RUNS/$1" v
  stop "$name"
  touch "$run/private-net"
  boot "$name"
  v=$(veth "$name")
  ip addr add "$VETH_HOST4/30" dev "$v"
  ip -6 addr add "$VETH_HOST6/64" dev "$v" nodad
  ip link set "$v" up
  in_vps "$name" ip addr add "$VETH_VPS4/30" dev host0
  in_vps "$name" ip -6 addr add "$VETH_VPS6/64" dev host0 nodad
  in_vps "$name" ip link set host0 up
  log "$name: private network, $VETH_VPS4 and $VETH_VPS6 from here"
}

# A veth pair from the container's namespace (eth1) to bridge BR in namespace NS: hosts that
# talk to each other on a private network the test made; this machine's own is untouched.
link() {
  local name=$1 ns=$2 br=$3 addr=$4 run="$RUNS/$1" peer
  [ -f "$run/netns" ] || { log "$name has no namespace of its own (KEEL_E2E_NET=ns)"; exit 1; }
  peer="v$(echo "$name" | md5sum | cut -c1-10)"
  ip -n "$ns" link add "$peer" type veth peer name eth1 netns "$(cat "$run/netns")"
  ip -n "$ns" link set "$peer" master "$br" up
  ip -n "$(cat "$run/netns")" addr add "$addr" dev eth1
  ip -n "$(cat "$run/netns")" link set eth1 up
  echo "$ns $peer" >"$run/link"
}

cmd=${1:-}; shift || true
case "$cmd" in
  rootfs) build_rootfs ;;
  up) up "$1" ;;
  powercut)
    # Like pulling the plug: every process dies at once, files written so far stay (the
    # rootfs is a directory on this host), /run is gone. Then the next boot.
    # SIGKILL to the container's init ends its whole PID namespace; nspawn then exits.
    pid=$(cat "$RUNS/$1/nspawn.pid")
    kill -KILL "$(leader "$1")"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { log "$1: nspawn did not exit after the power cut"; exit 1; }
    log "$1: power cut"
    KEEL_E2E_NOWAIT=1 boot "$1" ;;
  exec) n=$1; shift; in_vps "$n" "$@" ;;
  link) link "$@" ;;
  kill)
    pid=$(cat "$RUNS/$1/nspawn.pid")
    kill -KILL "$(leader "$1")"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    # Its private link goes dark too: a machine that is off answers nothing (no reset).
    if [ -f "$RUNS/$1/link" ]; then read -r lns lpeer <"$RUNS/$1/link"; ip -n "$lns" link set "$lpeer" down; fi
    log "$1: power cut, left off" ;;
  private) private "$1" ;;
  cp) cp "$2" "$RUNS/$1/root/$3" ;;
  root) echo "$RUNS/$1/root" ;;
  down) down "$1" ;;
  down-all) for d in "$RUNS"/*/; do if [ -d "$d" ]; then down "$(basename "$d")"; fi; done ;;
  *) sed -n '2,10p' "$0"; exit 2 ;;
esac
