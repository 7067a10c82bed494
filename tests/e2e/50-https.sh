# Issue: HTTPS. A real ACME exchange against Pebble (Let's Encrypt's test CA) inside the
# container, its API certificate trusted only there; the name resolves to the container
# through pebble-challtestsrv, Pebble's DNS. Then files and self-signed modes.

DOMAIN=demo.keel.test
PEBBLE_DIR=https://127.0.0.1:14000/dir

# write_config [EXTRA TOML]: the demo config for $DOMAIN, plus EXTRA.
write_config() {
  local root; root=$("$VPS" root "$BOX")
  # The demo's own [tls] section (defaults, TLS off) gives way to the scenario's.
  sed "s/^domain = .*/domain = \"$DOMAIN\"/" examples/demo.toml \
    | awk '/^\[tls\]/ {skip=1; next} /^\[/ {skip=0} !skip' >"$root/etc/keel/keel.toml"
  printf '%s\n' "${1:-}" >>"$root/etc/keel/keel.toml"
}

pebble_up() {
  vx sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pebble testssl.sh >/dev/null'
  vx mkdir -p /etc/pebble-test
  vx openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout /etc/pebble-test/key.pem -out /etc/pebble-test/cert.pem 2>/dev/null
  # Trusted through the system store, as an admin adds a private ACME CA.
  vx cp /etc/pebble-test/cert.pem /usr/local/share/ca-certificates/pebble-api.crt
  vx update-ca-certificates >/dev/null
  local root; root=$("$VPS" root "$BOX")
  cat >"$root/etc/pebble-test/config.json" <<'EOF'
{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
  "certificate": "/etc/pebble-test/cert.pem", "privateKey": "/etc/pebble-test/key.pem",
  "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "domainBlocklist": ["blocked.keel.test"]}}
EOF
  vx systemd-run --unit pebble-dns pebble-challtestsrv -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
    -dns01 127.0.0.1:8053 -management 127.0.0.1:8055 -http01 "" -https01 "" -tlsalpn01 "" >/dev/null
  vx systemd-run --unit pebble -E PEBBLE_VA_NOSLEEP=1 -E PEBBLE_WFE_NONCEREJECT=0 \
    pebble -config /etc/pebble-test/config.json -dnsserver 127.0.0.1:8053 >/dev/null
  wait_for 30 vx curl -sf https://127.0.0.1:14000/dir
}

pebble_orders() { vx journalctl -u pebble -o cat | grep -c 'POST /order-plz -> calling handler' || true; }

# The roots that Pebble's certificates chain to, for curl.
pebble_roots() {
  vx sh -c 'curl -sfk https://127.0.0.1:15000/roots/0 >/tmp/pebble-roots.pem && curl -sfk https://127.0.0.1:15000/intermediates/0 >>/tmp/pebble-roots.pem'
}

# https PATH [CURL ARGS...]: status code of an HTTPS request to the app, Pebble's roots trusted.
https_code() {
  local p=$1; shift
  vx curl -s -o /tmp/body -w '%{http_code}' --cacert /tmp/pebble-roots.pem --resolve "$DOMAIN:443:127.0.0.1" "$@" "https://$DOMAIN$p"
}

served_serial() {
  vx sh -c "openssl s_client -connect 127.0.0.1:443 -servername $DOMAIN </dev/null 2>/dev/null | openssl x509 -noout -serial"
}

check_level() { # check_level NAME LEVEL: `keel verify` reports that level for that check
  local got; got=$(keel verify --output json | jq_py "[c['level'] for c in d['checks'] if c['name']=='$1'][0]")
  [ "$got" = "$2" ] || { keel verify || true; fail "check $1 is $got, want $2"; }
}

scenario_https_acme() {
  fresh
  pebble_up
  # 1. Plain HTTP first: the host as it is before TLS is turned on.
  write_config ""
  keel install --yes
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' -H "Host: $DOMAIN" http://127.0.0.1/)" = 200 ] || fail "HTTP does not serve the app"

  # 2. A CA that refuses the name: the step fails naming it; HTTP serves as before.
  write_config "[tls]
email = \"admin@$DOMAIN\"
acme_directory = \"$PEBBLE_DIR\"
domains = [\"blocked.keel.test\"]"
  local out rc=0
  out=$(keel install --yes 2>&1) || rc=$?
  [ "$rc" = 1 ] || { echo "$out"; fail "a refused issuance exited $rc, want 1"; }
  grep -q 'refuses to certify' <<<"$out" || { echo "$out"; fail "the refusal is not named"; }
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' -H "Host: $DOMAIN" http://127.0.0.1/)" = 200 ] || fail "HTTP stopped serving the app after a refused issuance"
  if vx curl -sk -o /dev/null "https://127.0.0.1/"; then fail "443 answers after a refused issuance (half-configured)"; fi
  vx nginx -t

  # 3. A CA that cannot be reached: transient, retried, then the cause; HTTP still serves.
  write_config "[tls]
email = \"admin@$DOMAIN\"
acme_directory = \"https://127.0.0.1:14999/dir\""
  vx sed -i 's/^attempts = 4/attempts = 2/; s/^initial_delay_ms = 1000/initial_delay_ms = 200/; s/^max_delay_ms = 20000/max_delay_ms = 500/' /etc/keel/keel.toml
  rc=0; out=$(keel install --yes 2>&1) || rc=$?
  [ "$rc" = 1 ] || { echo "$out"; fail "an unreachable CA exited $rc, want 1"; }
  grep -q 'cannot reach the ACME directory https://127.0.0.1:14999/dir' <<<"$out" || { echo "$out"; fail "the unreachable CA is not named"; }
  [ "$(vx curl -s -o /dev/null -w '%{http_code}' -H "Host: $DOMAIN" http://127.0.0.1/)" = 200 ] || fail "HTTP stopped serving after an unreachable CA"

  # 4. The real exchange.
  write_config "[tls]
email = \"admin@$DOMAIN\"
acme_directory = \"$PEBBLE_DIR\""
  keel install --yes
  pebble_roots
  [ "$(https_code /)" = 200 ] || fail "HTTPS / did not answer 200"
  vx grep -q 'secure=True' /tmp/body || fail "request.is_secure() is not true behind nginx: $(vx cat /tmp/body)"
  local loc; loc=$(vx curl -s -o /dev/null -w '%{http_code} %{redirect_url}' -H "Host: $DOMAIN" http://127.0.0.1/admin/)
  [ "$loc" = "301 https://$DOMAIN/admin/" ] || fail "HTTP is not redirected to HTTPS: $loc"
  [ "$(https_code /celery-ping/)" = 200 ] && vx grep -qx pong /tmp/body || fail "/celery-ping/ over HTTPS"
  output_has '^(S|s)trict-(T|t)ransport-(S|s)ecurity: max-age=15768000' vx curl -sI --cacert /tmp/pebble-roots.pem --resolve "$DOMAIN:443:127.0.0.1" "https://$DOMAIN/" || fail "no HSTS header"
  # A Django form POST passes CSRF over HTTPS (and one without the token does not).
  [ "$(https_code /echo/ -c /tmp/jar)" = 200 ] || fail "GET /echo/"
  local token; token=$(vx sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p' /tmp/body)
  [ -n "$token" ] || fail "no CSRF token in the form"
  [ "$(https_code /echo/ -b /tmp/jar -H "Origin: https://$DOMAIN" -e "https://$DOMAIN/echo/" --data-urlencode "csrfmiddlewaretoken=$token" --data-urlencode message=hi)" = 200 ] \
    || fail "a form POST with its token failed CSRF over HTTPS: $(vx head -c 300 /tmp/body)"
  vx grep -qx 'posted: hi' /tmp/body || fail "POST answer: $(vx cat /tmp/body)"
  [ "$(https_code /echo/ -b /tmp/jar -H "Origin: https://$DOMAIN" --data message=hi)" = 403 ] || fail "a POST without the token was not refused"
  vx grep -q "CSRF_TRUSTED_ORIGINS=https://$DOMAIN" /opt/demo/shared/.env || fail "CSRF_TRUSTED_ORIGINS not derived"
  [ "$(vx stat -c '%a %U' "$(vx readlink -f /etc/letsencrypt/live/keel-demo/privkey.pem)")" = "600 root" ] || fail "the key is not 0600 root"

  # 5. Re-runs make no ACME request.
  local orders; orders=$(pebble_orders)
  echo "Pebble orders so far: $orders"
  out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run, $(step_count) already done" <<<"$out" || { echo "$out"; fail "second run was not a no-op"; }
  keel install --yes --retry-step tls
  [ "$(pebble_orders)" = "$orders" ] || fail "a re-run asked the CA again ($(pebble_orders) orders, was $orders)"

  # 6. verify: certificate, audit, Prometheus gauge.
  check_level certificate ok
  for c in audit-debug audit-secret-key audit-allowed-hosts audit-env-file audit-env-keys audit-celery-eager audit-deploy-check; do
    check_level "$c" ok
  done
  # Healthy but for the load: the machine's, shared by the containers side by side (a
  # container sees the host's load average), not a property of what is tested here.
  keel verify --output json | jq_py "[c['name'] for c in d['checks'] if c['level'] not in ('ok', 'not-checked') and c['name'] != 'load']" | grep -qx '\[\]' \
    || { keel verify || true; fail "not healthy with TLS on"; }
  keel verify --output prometheus | grep -E '^keel_tls_certificate_days_left [0-9]+' || fail "no days-left gauge"
  vx sed -i 's/^DEBUG=.*/DEBUG=True/' /opt/demo/shared/.env
  check_level audit-debug warn
  keel verify --output json | jq_py "d['verdict']" | grep -qx degraded || fail "DEBUG=True is not degraded"
  output_has 'DEBUG is True' keel verify || fail "the audit does not name DEBUG"
  vx sed -i 's/^DEBUG=.*/DEBUG=False/' /opt/demo/shared/.env
  keel diagnose >/dev/null || true
  vx grep -q 'renewal timer (certbot.timer)' /var/log/keel/diagnostics-latest.txt || fail "diagnose has no renewal timer"
  if vx grep -q 'PRIVATE KEY' /var/log/keel/diagnostics-latest.txt /var/log/keel/steps/tls.log; then fail "key material in the report or log"; fi

  # 7. A forced renewal through the timer's service, under load: no failed request.
  local before; before=$(served_serial)
  vx sed -i 's/^renew_before_expiry.*//' /etc/letsencrypt/renewal/keel-demo.conf
  vx sed -i '1i renew_before_expiry = 100000 days' /etc/letsencrypt/renewal/keel-demo.conf
  vx sh -c "i=0; while [ ! -e /tmp/stop ] && [ \$i -lt 3000 ]; do i=\$((i+1)); curl -s -o /dev/null -w '%{http_code}\n' --cacert /tmp/pebble-roots.pem --resolve $DOMAIN:443:127.0.0.1 https://$DOMAIN/keel-health; done >/tmp/loop.txt 2>&1 &"
  sleep 1
  vx systemctl start certbot.service
  sleep 2
  vx touch /tmp/stop
  sleep 1
  local after; after=$(served_serial)
  [ "$before" != "$after" ] || fail "the renewal did not put a new certificate in service ($before)"
  local total bad
  total=$(vx sh -c 'wc -l </tmp/loop.txt'); bad=$(vx sh -c 'grep -vc "^200$" /tmp/loop.txt || true')
  echo "renewal: $before -> $after; requests during it: $total, failed: $bad"
  [ "$total" -ge 20 ] || fail "the load loop made only $total requests"
  # What failed, for the log (curl's code: 000 = no HTTP answer).
  [ "$bad" = 0 ] || { vx sh -c 'grep -vn "^200$" /tmp/loop.txt | head -5'; fail "$bad of $total requests failed during the renewal"; }
  vx sed -i '/^renew_before_expiry = 100000 days/d' /etc/letsencrypt/renewal/keel-demo.conf

  # 8. An independent scanner: no vulnerability, nothing older than TLS 1.2. testssl 3.0.8
  # tests secure renegotiation without SNI, which keel's catch-all refuses by design: that
  # one test reports WARN ("handshake didn't succeed") and is checked here with SNI instead.
  vx sh -c "testssl --quiet --color 0 --warnings off --protocols --vulnerable --jsonfile /tmp/testssl.json --ip 127.0.0.1 https://$DOMAIN >/tmp/testssl.txt 2>&1" || true
  vx cat /tmp/testssl.json | python3 -c '
import json, sys
rows = json.load(sys.stdin)
bad = [r for r in rows if r["id"] in ("SSLv2", "SSLv3", "TLS1", "TLS1_1") and "not offered" not in r["finding"]]
bad += [r for r in rows if r["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL")]
bad += [r for r in rows if r["severity"] == "WARN" and r["id"] != "secure_renego"]
offered = [r["id"] for r in rows if r["id"].startswith("TLS1") and r["finding"].startswith("offered")]
vulns = [r for r in rows if r["id"] in ("heartbleed", "CCS", "ROBOT", "CRIME_TLS", "BREACH", "POODLE_SSL", "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4")]
print("testssl: %d findings, %d vulnerability tests all OK: %s; offered: %s" % (len(rows), len(vulns), all(r["severity"] == "OK" for r in vulns), ", ".join(offered)))
for r in bad: print("  BAD:", r["id"], r["severity"], r["finding"])
sys.exit(1 if bad or len(vulns) < 10 else 0)' || fail "testssl found problems"
  output_has 'Secure Renegotiation IS supported' vx sh -c "openssl s_client -connect 127.0.0.1:443 -servername $DOMAIN -tls1_2 </dev/null 2>/dev/null" || fail "no secure renegotiation"

  # 9. Rollback keeps the certificate and returns the site to HTTP.
  keel rollback --yes >/dev/null
  vx test -s /etc/letsencrypt/live/keel-demo/fullchain.pem || fail "rollback removed the certificate"
  vx test ! -e /etc/letsencrypt/renewal-hooks/deploy/keel-reload-nginx || fail "rollback left the renewal hook"
}

scenario_https_files() {
  fresh
  # self-signed: a host on a private network.
  write_config "[tls]
mode = \"self-signed\""
  keel install --yes
  [ "$(vx curl -sk -o /dev/null -w '%{http_code}' --resolve "$DOMAIN:443:127.0.0.1" "https://$DOMAIN/")" = 200 ] || fail "self-signed HTTPS"
  output_has "DNS:$DOMAIN" vx sh -c "openssl s_client -connect 127.0.0.1:443 -servername $DOMAIN </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName" || fail "self-signed certificate lacks the name"
  [ "$(vx stat -c '%a %U' /etc/keel/tls/demo/privkey.pem)" = "600 root" ] || fail "self-signed key mode"
  # The site keel wrote is clean for this nginx (HTTP/2 is spelt differently since 1.25.1).
  local t; t=$(vx nginx -t 2>&1)
  if grep -q '\[warn\]' <<<"$t"; then fail "nginx -t warns: $t"; fi
  output_has '^2$' vx sh -c "curl -sk --http2 -o /dev/null -w '%{http_version}' --resolve $DOMAIN:443:127.0.0.1 https://$DOMAIN/" || fail "no HTTP/2"
  check_level certificate ok
  out=$(keel install --yes 2>&1)
  grep -q "0 step(s) run" <<<"$out" || { echo "$out"; fail "second self-signed run was not a no-op"; }

  # files: the admin's certificate, 10 days left -> verify degraded.
  vx mkdir -p /root/certs
  vx openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10 -subj "/CN=$DOMAIN" \
    -addext "subjectAltName=DNS:$DOMAIN" -keyout /root/certs/site.key -out /root/certs/site.pem 2>/dev/null
  vx chmod 644 /root/certs/site.key
  write_config "[tls]
mode = \"files\"
cert_file = \"/root/certs/site.pem\"
key_file = \"/root/certs/site.key\""
  local rc=0; out=$(keel install --yes 2>&1) || rc=$?
  [ "$rc" = 2 ] || { echo "$out"; fail "a world-readable key was accepted (exit $rc)"; }
  grep -q 'tls.key_file' <<<"$out" && grep -q 'chmod 600' <<<"$out" || { echo "$out"; fail "the key's mode is not named"; }
  vx chmod 600 /root/certs/site.key
  keel install --yes
  [ "$(vx sh -c "openssl s_client -connect 127.0.0.1:443 -servername $DOMAIN </dev/null 2>/dev/null | openssl x509 -noout -fingerprint")" = \
    "$(vx openssl x509 -in /root/certs/site.pem -noout -fingerprint)" ] || fail "nginx does not serve the admin's certificate"
  check_level certificate warn
  output_has 'certificate.*(9|10) days left' keel verify || { keel verify || true; fail "days left not reported"; }
  keel verify --output json | jq_py "d['verdict']" | grep -qx degraded || fail "a 10-day certificate is not degraded"
}
