#!/usr/bin/env bash
# keel's main job, shown safely on a dev box: boot a fresh Debian 12 container (systemd as
# PID 1), copy keel and examples/ in, and provision it with examples/demo.toml.
#   scripts/demo.sh            provision, show status, power off
#   KEEP=1 scripts/demo.sh     leave the container running (scripts/vps.sh down demo to stop)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v debootstrap >/dev/null && command -v systemd-nspawn >/dev/null || {
  apt-get update -qq && apt-get install -y -qq debootstrap systemd-container >/dev/null; }
cargo build --release --quiet
V=scripts/vps.sh
[ "${KEEP:-0}" = 1 ] || trap '$V down demo' EXIT
$V up demo
root=$($V root demo)
install -m 0755 target/release/keel "$root/usr/local/bin/keel"
mkdir -p "$root/root/examples" && cp -r examples/. "$root/root/examples/"
$V exec demo keel install --config /root/examples/demo.toml --yes "$@"
$V exec demo keel status --config /root/examples/demo.toml
echo "--- GET http://127.0.0.1/ inside the container:"
$V exec demo curl -sS -o /dev/null -w '%{http_code}\n' http://127.0.0.1/
