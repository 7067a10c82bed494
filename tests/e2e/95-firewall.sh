# Issue: a host safe to leave on the internet. The firewall, in a container with its OWN
# network namespace (never this machine's: a container sharing it would firewall this
# machine). Packages are installed with the host network first, then the same disk boots
# privately, joined to this machine by a veth pair, and probes cross it from here.

# probe ADDR PORT: a TCP connection from this side within 2 s
probe() {
  python3 - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

scenario_firewall() {
  # Inside a container sharing this machine's network the firewall is left alone, and the
  # harness cannot reach this machine's netfilter anyway.
  fresh
  if vx nft list tables >/dev/null 2>&1; then fail "the harness's guard let nft through in a shared-network container"; fi
  local root; root=$("$VPS" root "$BOX")
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"; chmod 0755 "$root/usr/sbin/policy-rc.d"
  vx sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null'
  rm -f "$root/usr/sbin/policy-rc.d"
  local out; out=$(keel install --yes 2>&1)
  grep -q '\[firewall\] skipped: inside a container' <<<"$out" || { echo "$out" | tail; fail "the firewall was not skipped in a shared-network container"; }
  # PostgreSQL and Redis made to listen on every address (after keel's own config).
  vx sh -c "echo \"listen_addresses = '*'\" >/etc/postgresql/15/main/conf.d/zz-e2e.conf && echo 'bind * -::*' >>/etc/redis/redis.conf"
  # The same disk, in its own network namespace.
  "$VPS" private "$BOX"
  vx systemctl restart postgresql redis-server
  output_has '0\.0\.0\.0:5432' vx ss -Htln || fail "postgres does not listen on all addresses"
  vx sh -c 'systemd-run --unit=e2e-https python3 -m http.server --bind :: 443 >/dev/null'
  local a p
  for a in 10.231.0.2 fd00:231::2; do
    for p in 22 80 443 5432 6379; do
      wait_for 10 probe "$a" "$p"
    done
  done
  echo "before the firewall: 22 80 443 5432 6379 reachable on both addresses"
  # A config that would not allow sshd's real port is refused, and nothing is applied.
  vx sh -c 'printf "\n[firewall]\nmode = \"on\"\nssh_port = 2222\n" >>/etc/keel/keel.toml'
  local rc=0; out=$(keel install --yes 2>&1) || rc=$?
  [ "$rc" = 1 ] || fail "a lock-out config must fail (exit 1), got $rc"
  grep -q 'sshd listens on port 22' <<<"$out" || { echo "$out" | tail; fail "the refusal does not name sshd's port"; }
  if vx nft list table inet keel >/dev/null 2>&1; then fail "a refused config applied a ruleset"; fi
  probe 10.231.0.2 5432 || fail "a refused config changed the firewall"
  # An admin's own table, there before keel: kept through everything.
  vx nft add table inet admin
  vx sed -i '/^ssh_port = 2222$/d' /etc/keel/keel.toml
  keel install --yes
  vx nft list table inet keel
  for a in 10.231.0.2 fd00:231::2; do
    for p in 22 80 443; do probe "$a" "$p" || fail "$a:$p is not reachable through the firewall"; done
    for p in 5432 6379; do
      if probe "$a" "$p"; then fail "$a:$p is reachable through the firewall"; fi
    done
  done
  echo "with the firewall: 22 80 443 reachable, 5432 6379 dropped, on IPv4 and IPv6"
  output_has '^200$' vx curl -s -o /dev/null -w '%{http_code}\n' http://127.0.0.1/ || fail "the app is not served from inside"
  vx nft list table inet admin >/dev/null || fail "the admin's table is gone"
  # Rollback restores the ruleset as it was before keel: keel's table gone, the admin's kept.
  keel rollback --yes
  if vx nft list table inet keel >/dev/null 2>&1; then fail "keel's table survived the rollback"; fi
  vx nft list table inet admin >/dev/null || fail "the rollback removed the admin's table"
  probe 10.231.0.2 5432 || fail "after the rollback 5432 is still dropped"
  "$VPS" down "$BOX"
}
