# Issue: the host baseline. Swap on a small host (simulated through the config threshold;
# in a container the file is made but never activated), security updates only, bounded logs.

scenario_baseline() {
  fresh
  vx sh -c 'cat >>/etc/keel/keel.toml' <<<"$(printf '[host]\nswap_mb = 64\nswap_when_ram_below_mb = 16777216\n')"
  local out; out=$(keel install --yes 2>&1) || { echo "$out"; fail "install failed"; }
  grep -q 'in a container (systemd-nspawn): swap file made, activation skipped' <<<"$out" || { echo "$out"; fail "the container's skipped activation is not said"; }
  [ "$(vx stat -c '%a %U %s' /swapfile.keel)" = "600 root 67108864" ] || fail "swap file: $(vx stat -c '%a %U %s' /swapfile.keel)"
  [ "$(vx sh -c 'head -c 4096 /swapfile.keel | tail -c 10')" = SWAPSPACE2 ] || fail "the swap file was not mkswap'ed"
  vx grep -qx '/swapfile.keel none swap sw 0 0' /etc/fstab || fail "no fstab line"
  vx grep -qx 'vm.swappiness = 10' /etc/sysctl.d/60-keel-swap.conf || fail "no swappiness"
  if vx grep -q swapfile.keel /proc/swaps; then fail "swap activated inside a container"; fi
  local sum; sum=$(vx sha256sum /etc/fstab)
  out=$(keel install --yes 2>&1) || { echo "$out"; fail "re-run failed"; }
  grep -q "0 step(s) run, $(step_count) already done" <<<"$out" || { echo "$out"; fail "re-run was not a no-op"; }
  [ "$(vx sha256sum /etc/fstab)" = "$sum" ] || fail "a re-run changed fstab"
  # Security updates only, as unattended-upgrades itself reads its configuration.
  local origins; origins=$(vx unattended-upgrade --dry-run --debug 2>&1 | grep -i 'allowed origins are' | head -1)
  echo "$origins"
  grep -q 'codename=bookworm-security,label=Debian-Security' <<<"$origins" || fail "security origin missing: $origins"
  if grep -qE 'codename=bookworm,|label=Debian,|bookworm-updates' <<<"$origins"; then fail "more than security updates: $origins"; fi
  vx systemctl is-active apt-daily-upgrade.timer
  keel verify --output json | jq_py "[c['level'] for c in d['checks'] if c['name']=='updates'][0]" | grep -qx ok || fail "verify does not show updates on"
  vx grep -q 'SystemMaxUse=500M' /etc/systemd/journald.conf.d/60-keel.conf
  output_has '/var/log/keel/\*\.jsonl' vx logrotate --debug /etc/logrotate.d/keel || fail "logrotate does not read keel's config"
  # Rollback: keel's swap file and line go; the rest of fstab stays.
  keel rollback --yes >/dev/null
  vx test ! -e /swapfile.keel || fail "rollback left the swap file"
  if vx grep -q swapfile.keel /etc/fstab; then fail "rollback left the fstab line"; fi
  vx test ! -e /etc/apt/apt.conf.d/52keel-unattended-upgrades || fail "rollback left the origins file"
}
