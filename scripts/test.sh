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
cargo test --all-targets
if [ "${KEEL_E2E:-1}" != 0 ]; then
  cargo build --release
  scripts/e2e.sh "$@"
  # Second row of the matrix: Debian 13 (PostgreSQL 17, Python 3.13, nginx 1.26: `http2 on;`),
  # the full app scenario, HTTPS and the package.
  if [ $# = 0 ] && [ "${KEEL_E2E_TRIXIE:-1}" != 0 ]; then
    KEEL_E2E_SUITE=trixie scripts/e2e.sh app https_files package
  fi
fi
