#!/usr/bin/env bash
# Build keel's Debian package: the release binary, the man page and shell completions
# generated from the clap definitions, then `cargo deb` (cargo-deb) around them.
# Prints the .deb's path; with DEST, copies it there first (under the build lock: a scenario
# beside this one may be building it again meanwhile) and prints DEST.
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
# Built aside and renamed into place: a scenario beside this one may be copying the .deb
# of an earlier build (a rewrite in place once handed it a truncated file).
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=target/debian/keel_${version}-1_amd64.deb
mkdir -p target/debian
rm -f "$out.new"
cargo deb --no-build --quiet --output "$out.new" >/dev/null 2>&1 || cargo deb --no-build --output "$out.new" >&2
mv -f "$out.new" "$out"
if [ -n "${1:-}" ]; then cp "$out" "$1"; out=$1; fi
echo "$out"
