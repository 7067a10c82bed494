#!/usr/bin/env bash
# Build keel's Debian package: the release binary, the man page and shell completions
# generated from the clap definitions, then `cargo deb` (cargo-deb) around them.
# Prints the .deb's path.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build at a time: e2e scenarios side by side may each ask for the package.
mkdir -p target
exec 9>target/.package.lock
flock 9
command -v cargo-deb >/dev/null || { echo "cargo-deb is missing: cargo install --locked cargo-deb" >&2; exit 2; }
cargo build --release --quiet
mkdir -p target/assets
bin=target/release/keel
"$bin" manpage | gzip -9n >target/assets/keel.1.gz
"$bin" completions bash >target/assets/keel.bash
"$bin" completions zsh >target/assets/_keel
"$bin" completions fish >target/assets/keel.fish
cargo deb --no-build --quiet 2>/dev/null || cargo deb --no-build
ls -t target/debian/keel_*_amd64.deb | head -1
