# Issue: ship it like a real tool. The .deb (scripts/package.sh: cargo deb around the
# binary, the man page and completions generated from the CLI definitions) installed with
# apt on a fresh container, then the demo provisioned from the examples it ships.

scenario_package() {
  local deb; deb=$(scripts/package.sh "$here/target/e2e/$BOX-keel.deb" | tail -1)
  [ -f "$deb" ] || fail "no package built"
  dpkg-deb --info "$deb" | grep -E 'Package|Version|Depends|Section'
  local listing f; listing=$(dpkg-deb --contents "$deb" | awk '{print $6}')
  for f in usr/bin/keel usr/share/man/man1/keel.1.gz usr/share/bash-completion/completions/keel \
      usr/share/zsh/vendor-completions/_keel usr/share/fish/vendor_completions.d/keel.fish \
      usr/share/doc/keel/examples/demo.toml usr/share/doc/keel/examples/demo-app/manage.py \
      usr/share/doc/keel/examples/demo-app/.env.example usr/share/doc/keel/examples/cloud-init/user-data.yaml \
      usr/share/doc/keel/templates/nginx-site.conf.j2 usr/share/doc/keel/changelog.Debian.gz usr/share/doc/keel/copyright; do
    grep -qx "./$f" <<<"$listing" || fail "the package lacks /$f"
  done
  # A fresh container without keel (not `fresh`: that puts keel in /usr/local/bin).
  "$VPS" up "$BOX"
  local root; root=$("$VPS" root "$BOX")
  cp "$deb" "$root/root/keel_local_amd64.deb"
  vx sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /root/keel_*.deb man-db bash-completion >/dev/null'
  [ "$(vx sh -c 'command -v keel')" = /usr/bin/keel ] || fail "keel is not /usr/bin/keel"
  vx keel --version
  # output_has reads the whole page before matching (`| grep -q` under pipefail fails at
  # random when grep exits early: seen on Debian 13).
  output_has '^NAME' vx man -P cat keel || fail "man keel does not show the page"
  output_has '^ *keel +- ' vx man -P cat keel || fail "man keel does not show the page's name line"
  output_has 'deploy' vx man -P cat keel || fail "the man page lacks the deploy subcommand"
  # Bash completes `keel ins` to `keel install` with the packaged completion script.
  local words; words=$(vx bash -c '. /usr/share/bash-completion/bash_completion; . /usr/share/bash-completion/completions/keel; COMP_WORDS=(keel ins); COMP_CWORD=1; COMP_LINE="keel ins"; COMP_POINT=${#COMP_LINE}; _keel keel ins keel; printf "%s\n" "${COMPREPLY[@]}"')
  [ "$words" = install ] || fail "bash completion of 'keel ins' gave: $words"
  # The demo, from the examples the package ships.
  vx keel install --config /usr/share/doc/keel/examples/demo.toml --yes
  app_checks
  output_has '^Status: install ok installed' vx dpkg -s keel || fail "keel is not installed"
}
