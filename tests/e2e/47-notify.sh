# Issue 22's notifications, through real receivers in the container: a webhook receiver
# (Python's http.server) and a real SMTP server (postfix, STARTTLS with a certificate from a
# CA made here). A failed deploy and a failed backup arrive once through each; with the
# receiver down the deploy's exit status is unchanged and the outbox delivers later; the
# heartbeat is pinged while healthy and not while unhealthy.

notify_receiver_script() {
  cat <<'PYEOF'
import http.server
LOG = "/root/hooks.log"
class H(http.server.BaseHTTPRequestHandler):
    def _log(self, line):
        with open(LOG, "a") as f:
            f.write(line + "\n")
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        self._log(f"POST {self.path} {body}")
        self.send_response(200)
        self.end_headers()
    def do_GET(self):
        self._log(f"GET {self.path}")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 9099), H).serve_forever()
PYEOF
}

scenario_notify() {
  fresh
  local root; root=$("$VPS" root "$BOX")
  cat >>"$root/etc/keel/keel.toml" <<'EOF'

[notify]
heartbeat_url = "http://127.0.0.1:9099/hb/e2e-ping-uuid"
[[notify.webhook]]
url = "http://127.0.0.1:9099/hook/e2e-secret-path"
[[notify.webhook]]
url = "http://127.0.0.1:9099/slack"
format = "slack"
[[notify.email]]
host = "localhost"
port = 25
from = "keel <keel@localhost>"
to = ["root@localhost"]
ca_file = "/etc/keel/smtp-ca.pem"
EOF
  # The relay's CA, made here (root's, as keel requires of a file it trusts).
  vx sh -c 'cd /root && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out /etc/keel/smtp-ca.pem -days 2 -subj /CN=keel-e2e-ca 2>/dev/null'
  vx chmod 0644 /etc/keel/smtp-ca.pem
  keel install --yes >/dev/null
  vx systemctl is-active keel-notify.timer
  # [notify] turned the verify timer on; it is run by hand below, where each run is counted.
  vx systemctl is-active keel-verify.timer
  vx systemctl stop keel-verify.timer
  # Postfix for local mail, STARTTLS with a certificate for localhost from that CA.
  vx sh -c 'printf "postfix postfix/main_mailer_type select Local only\npostfix postfix/mailname string localhost\n" | debconf-set-selections'
  vx env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postfix >/dev/null
  vx sh -c 'cd /root && openssl req -newkey rsa:2048 -nodes -keyout /etc/postfix/smtp.key -out smtp.csr -subj /CN=localhost 2>/dev/null && printf "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n" > ext && openssl x509 -req -in smtp.csr -CA /etc/keel/smtp-ca.pem -CAkey ca.key -CAcreateserial -out /etc/postfix/smtp.crt -days 2 -extfile ext 2>/dev/null'
  vx postconf -e smtpd_tls_cert_file=/etc/postfix/smtp.crt smtpd_tls_key_file=/etc/postfix/smtp.key \
    smtpd_tls_security_level=may inet_interfaces=loopback-only 'mydestination=localhost' smtpd_tls_loglevel=1
  vx systemctl restart postfix
  notify_receiver_script >"$root/usr/local/bin/hook-receiver"
  receiver_up() { vx systemd-run -q --unit hook-receiver python3 /usr/local/bin/hook-receiver; wait_for 20 vx bash -c 'exec 3<>/dev/tcp/127.0.0.1/9099'; }
  receiver_up
  hooks() { vx sh -c "grep -c -- '$1' /root/hooks.log || true"; }
  mails() { vx sh -c "grep -c -- '^Subject: .*$1' /var/mail/root 2>/dev/null || true"; }
  # at_least N FN ARG: FN ARG counts N or more (for wait_for).
  at_least() { [ "$("$2" "$3")" -ge "$1" ]; }
  # once_each EVENT SUBJECT: EVENT reached the JSON webhook, the Slack one and the mailbox
  # exactly once each (the mail is delivered by postfix a moment later; then a little more
  # time for a duplicate to show).
  once_each() {
    wait_for 30 at_least 1 mails "$2"
    sleep 3
    echo "$1: JSON $(hooks "\"event\":\"$1\""), Slack $(hooks "POST /slack.*$1"), mail $(mails "$2")"
    [ "$(hooks "\"event\":\"$1\"")" = 1 ] || fail "the JSON webhook got $1 $(hooks "\"event\":\"$1\"") times"
    [ "$(hooks "POST /slack.*$1")" = 1 ] || fail "the Slack webhook did not get $1 once"
    [ "$(mails "$2")" = 1 ] || fail "$1 was mailed $(mails "$2") times"
  }
  # notify test: through every channel, now; the mail over STARTTLS with the CA.
  keel notify test
  wait_for 30 vx grep -q 'test notification' /var/mail/root
  [ "$(hooks 'POST /hook/e2e-secret-path .*"event":"test"')" = 1 ] || fail "the JSON webhook did not get the test"
  [ "$(hooks 'POST /slack {"text":')" = 1 ] || fail "the Slack webhook did not get the test"
  output_has 'TLS connection established from localhost' vx journalctl -u 'postfix*' --no-pager || fail "the mail did not come over STARTTLS"
  # A failed deploy: once through each channel.
  cp -r examples/demo-app "$root/srv-broken"
  echo 'raise RuntimeError("notify-broken on purpose")' >>"$root/srv-broken/demo/settings.py"
  local rc_up=0; keel deploy --source /srv-broken >/dev/null 2>&1 || rc_up=$?
  [ "$rc_up" = 1 ] || fail "the broken deploy exited $rc_up"
  once_each deploy-failed 'a deploy failed'
  vx grep -q 'notify-broken on purpose' /var/mail/root || fail "the mail lacks the deploy's error"
  # A failed backup (PostgreSQL stopped), twice: sent once (the same open problem).
  vx systemctl stop postgresql
  expect_rc 1 keel backup
  expect_rc 1 keel backup
  vx systemctl start postgresql
  once_each backup-failed 'a backup run failed'
  output_has 'backup-failed \(1 repeat' keel notify status || fail "status does not show the repeat held back"
  # The receiver down: the deploy's exit status is unchanged, the webhooks wait in the
  # outbox, and keel-notify.timer delivers them once the receiver is back.
  vx systemctl stop hook-receiver
  local rc_down=0 t0; t0=$(date +%s)
  keel deploy --source /srv-broken >/dev/null 2>&1 || rc_down=$?
  echo "broken deploy with the receiver down: exit $rc_down in $(( $(date +%s) - t0 ))s (up: exit $rc_up)"
  [ "$rc_down" = "$rc_up" ] || fail "with the receiver down the deploy exited $rc_down, not $rc_up"
  keel notify status
  output_has 'outbox: 2 waiting' keel notify status || fail "the two webhooks are not in the outbox"
  receiver_up
  t0=$(date +%s)
  wait_for 240 at_least 2 hooks '"event":"deploy-failed"'
  echo "the outbox delivered $(( $(date +%s) - t0 ))s after the receiver came back"
  wait_for 30 at_least 2 hooks 'POST /slack.*deploy-failed'
  output_has 'outbox: 0 waiting' keel notify status || fail "the outbox is not empty"
  [ "$(mails 'a deploy failed')" = 2 ] || fail "the second failed deploy was not mailed once"
  # The heartbeat: pinged by the verify timer's run while healthy, not while unhealthy
  # (Gunicorn made to fail: healing cannot start it); the change is told both ways.
  local beats; beats() { hooks 'GET /hb/e2e-ping-uuid'; }
  local b0; b0=$(beats)
  vx systemctl start keel-verify.service || true
  [ "$(beats)" = $((b0 + 1)) ] || { keel verify || true; fail "a healthy verify run did not ping the heartbeat"; }
  # A drop-in in /run (on top of keel's unit in /etc) makes Gunicorn fail to start.
  vx sh -c 'mkdir -p /run/systemd/system/demo-web.service.d && printf "[Service]\nExecStartPre=/bin/false\n" > /run/systemd/system/demo-web.service.d/e2e-break.conf && systemctl daemon-reload'
  vx systemctl stop demo-web.socket demo-web.service
  vx systemctl start keel-verify.service && fail "verify with Gunicorn failing was not unhealthy"
  vx systemctl start keel-verify.service || true
  [ "$(beats)" = $((b0 + 1)) ] || fail "the heartbeat was pinged while unhealthy"
  wait_for 30 at_least 1 hooks '"event":"host-unhealthy"'
  vx sh -c 'rm -r /run/systemd/system/demo-web.service.d && systemctl daemon-reload'
  vx systemctl start demo-web.socket demo-web.service
  vx systemctl start keel-verify.service || true
  [ "$(beats)" = $((b0 + 2)) ] || fail "the heartbeat did not resume after recovery"
  wait_for 30 at_least 1 hooks '"event":"host-recovered"'
  wait_for 30 at_least 1 mails 'no longer unhealthy'
  [ "$(hooks '"event":"host-unhealthy"')" = 1 ] || fail "host-unhealthy was sent more than once"
  # The webhook's secret path is in none of keel's logs; the notify check is fine.
  ! vx grep -rqF e2e-secret-path /var/log/keel/ || fail "the webhook's secret path is in keel's logs"
  keel verify --output json | jq_py "[c['level'] for c in d['checks'] if c['name']=='notify'][0]" | grep -qx ok || fail "verify's notify check is not ok"
  # Bad input: exit 2, nothing sent.
  expect_rc 2 keel notify password 'Not/A/Name'
}
