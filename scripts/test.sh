#!/usr/bin/env bash
# The project's test command: fast tests (unit + fake-host integration), then the
# end-to-end scenarios in fresh Debian containers. Needs root, debootstrap and
# systemd-container (.ci/run installs them).
#   scripts/test.sh            everything
#   KEEL_E2E=0 scripts/test.sh fast tests only
set -euo pipefail
cd "$(dirname "$0")/.."
# Architecture: no import cycle, nothing imports upward, size limits, fakes and spawning in
# their one module (see the script's header).
python3 scripts/layers.py
# The Terraform example module: fmt, validate and its tests (offline, no provider).
scripts/terraform.sh
# The fake host is a cargo feature: the tests have it, the release binary must not.
cargo test --all-targets --features fake-host
if [ "${KEEL_E2E:-1}" != 0 ]; then
  cargo build --release
  # The re-layering checks (the release binary holds no fake host, the config is loaded
  # once, ...): each prints its count; one that regresses fails the run.
  scripts/relayering.sh
  # Every scenario on Debian 12, and the second row of the matrix on Debian 13 (the app,
  # HTTPS, the package), side by side in KEEL_E2E_JOBS lanes (see the script's header).
  scripts/e2e.sh "$@"
fi
