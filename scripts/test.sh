#!/usr/bin/env bash
# The project's test command: fast tests (unit + fake-host integration), then the
# end-to-end scenarios in fresh Debian containers. Needs root, debootstrap and
# systemd-container (.ci/run installs them).
#   scripts/test.sh            everything
#   KEEL_E2E=0 scripts/test.sh fast tests only
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets
if [ "${KEEL_E2E:-1}" != 0 ]; then
  cargo build --release
  scripts/e2e.sh "$@"
fi
