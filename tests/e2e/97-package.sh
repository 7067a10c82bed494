# Issue: ship it like a real tool. The .deb (scripts/package.sh: cargo deb around the
# binary, the man page and completions generated from the CLI definitions) installed with
# apt on a fresh container, then the demo provisioned from the examples it ships.

scenario_package() {
  local deb; deb=$(scripts/package.sh | tail -1)
  [ -f "$deb" ] || fail "no package built"
  dpkg-deb --info "$deb" | grep -E 'Package|Version|Depends|Section'
  dpkg-deb --contents "$deb" | awk '{print $6}' | grep -E 'demo-app/.env.example$|usr/bin/keel$|man1/keel.1.gz$|completions/keel$|_keel$|keel.fish$|examples/demo.toml$|examples/demo-app/manage.py$|changelog.Debian.gz$|copyright$' | sort
  # A fresh container without keel (not `fresh`: that puts keel in /usr/local/bin).
  "$VPS" up "$BOX"
  local root; root=$("$VPS" root "$BOX")
  cp "$deb" "$root/root/"
  vx sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /root/keel_*.deb man-db bash-completion >/dev/null'
  [ "$(vx sh -c 'command -v keel')" = /usr/bin/keel ] || fail "keel is not /usr/bin/keel"
  vx keel --version
  vx sh -c 'man -P cat keel 2>/dev/null' | grep -q 'keel - ' || fail "man keel does not show the page"
  vx sh -c 'man -P cat keel 2>/dev/null' | grep -q 'deploy' || fail "the man page lacks the deploy subcommand"
  # Bash completes `keel ins` to `keel install` with the packaged completion script.
  local words; words=$(vx bash -c '. /usr/share/bash-completion/bash_completion; . /usr/share/bash-completion/completions/keel; COMP_WORDS=(keel ins); COMP_CWORD=1; COMP_LINE="keel ins"; COMP_POINT=${#COMP_LINE}; _keel keel ins keel; printf "%s\n" "${COMPREPLY[@]}"')
  [ "$words" = install ] || fail "bash completion of 'keel ins' gave: $words"
  # The demo, from the examples the package ships.
  vx keel install --config /usr/share/doc/keel/examples/demo.toml --yes
  app_checks
  vx dpkg -s keel | grep -q '^Status: install ok installed'
}
