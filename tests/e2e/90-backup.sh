# Issue: never lose the data. A backup round trip (rows and uploads) through `keel restore`, the timer's
# service making a new file, retention by day, and a corrupt file refused before anything
# is stopped.

scenario_backup() {
  fresh
  vx sh -c 'printf "\n[backup]\nkeep_daily = 2\nkeep_weekly = 0\n" >>/etc/keel/keel.toml'
  keel install --yes
  local dir=/var/backups/keel/demo
  [ "$(vx stat -c '%a %U' $dir)" = "700 root" ] || fail "backup dir mode"
  vx systemctl is-enabled keel-backup-demo.timer
  vx systemctl is-active keel-backup-demo.timer
  [ "$(vx sh -c "ls $dir/*.dump | wc -l")" = 1 ] || fail "install did not make a first backup"
  # Rows through the app's role, a backup, the rows deleted, the backup restored.
  pg_login "create table notes (x int); insert into notes values (1), (2), (3)" >/dev/null
  # An upload, written as the app writes them (keel run: the app's user and sandbox).
  keel run -- sh -c 'mkdir -p /opt/demo/shared/media/avatars && echo upload-1 > /opt/demo/shared/media/avatars/a.txt'
  local out file; out=$(keel backup --output json); echo "$out"
  file=$(jq_py "d['file']" <<<"$out")
  [ "$(vx stat -c '%a %U' "$file")" = "600 root" ] || fail "backup file mode"
  vx sh -c "cd $dir && sha256sum -c $(basename "$file").sha256"
  local media=${file%.dump}.media.tar.gz
  [ "$(vx stat -c '%a %U' "$media")" = "600 root" ] || fail "no private uploads archive beside the dump"
  vx sh -c "cd $dir && sha256sum -c $(basename "$media").sha256"
  vx tar -tzf "$media" | grep -qx 'media/avatars/a.txt' || fail "the upload is not in the archive"
  keel run -- rm /opt/demo/shared/media/avatars/a.txt
  pg_login "delete from notes" >/dev/null
  [ "$(pg_login 'select count(*) from notes')" = 0 ] || fail "rows not deleted"
  expect_rc 2 keel restore "$file"   # no terminal, no --yes: refused
  keel restore --yes "$file"
  [ "$(pg_login 'select count(*) from notes')" = 3 ] || fail "the rows are not back"
  [ "$(vx cat /opt/demo/shared/media/avatars/a.txt)" = upload-1 ] || fail "the upload is not back"
  [ "$(vx stat -c '%U' /opt/demo/shared/media/avatars/a.txt)" = demo ] || fail "the restored upload is not the app's"
  output_has 'media.pre-restore-' vx ls /opt/demo/shared || fail "the replaced uploads were not kept aside"
  keel verify --output json | jq_py "[c['message'] for c in d['checks'] if c['name']=='uploads'][0]" | grep -q '^1 files' || fail "verify does not report the uploads"
  app_checks
  keel verify | grep -E '^backup' || fail "verify has no backup check"
  output_has 'pre-restore' vx ls $dir || fail "no safety backup before the restore"
  # The timer's service makes a new file.
  local before; before=$(vx sh -c "ls $dir/*.dump | sort | tail -1")
  sleep 1
  vx systemctl start keel-backup-demo.service
  local after; after=$(vx sh -c "ls $dir/*.dump | sort | tail -1")
  [ "$after" != "$before" ] || fail "the timer's service made no new backup"
  # Retention: backups from 1, 3 and 4 days ago; keep_daily = 2 keeps what is younger than
  # two days (1 day ago, 03:00, is at most 45 h old) and deletes the older ones.
  local n0; n0=$(vx sh -c "ls $dir/*.dump | wc -l")
  local d
  for d in 1 3 4; do
    local name; name="demo-$(date -u -d "$d days ago" +%Y%m%d)-030000.dump"
    vx sh -c "cp $after $dir/$name && cd $dir && sha256sum $name >$name.sha256"
  done
  sleep 1
  keel backup >/dev/null
  vx ls $dir
  vx test -e "$dir/demo-$(date -u -d '1 day ago' +%Y%m%d)-030000.dump" || fail "retention deleted yesterday's backup"
  for d in 3 4; do
    vx test ! -e "$dir/demo-$(date -u -d "$d days ago" +%Y%m%d)-030000.dump" || fail "retention kept the backup of $d days ago"
  done
  [ "$(vx sh -c "ls $dir/*.dump | wc -l")" = $((n0 + 2)) ] || fail "retention: want today's $((n0 + 1)) and yesterday's"
  # A corrupt file is refused before anything is stopped.
  local newest; newest=$(vx sh -c "ls $dir/*.dump | sort | tail -1")
  vx sh -c "cp $newest /root/corrupt.dump && cp $newest.sha256 /root/corrupt.dump.sha256 && sed -i 's/ .*/  corrupt.dump/' /root/corrupt.dump.sha256 && printf 'XX' | dd of=/root/corrupt.dump bs=1 seek=200 conv=notrunc 2>/dev/null"
  vx sh -c "head -c 300 $newest >/root/truncated.dump"
  local pid; pid=$(vx systemctl show -p MainPID --value demo-web.service)
  local msg rc=0
  msg=$(keel restore --yes /root/corrupt.dump 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "a corrupt backup must be refused with exit 2, got $rc: $msg"
  grep -q 'checksum mismatch' <<<"$msg" || fail "the refusal does not say why: $msg"
  rc=0; msg=$(keel restore --yes /root/truncated.dump 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "a truncated backup must be refused with exit 2, got $rc: $msg"
  grep -q 'not a readable pg_dump archive' <<<"$msg" || fail "the refusal does not say why: $msg"
  [ "$(vx systemctl show -p MainPID --value demo-web.service)" = "$pid" ] || fail "a refused restore stopped the app"
  [ "$(pg_login 'select count(*) from notes')" = 3 ] || fail "a refused restore changed the data"
}
