//! Notifications on the fake host: what arrives through each channel, once; the outbox when
//! a receiver is down (the outcome of what is reported never changes); the health changes
//! and the heartbeat of the verify timer.
use crate::fakehost::{Host, config};
use predicates::str::contains;
use std::os::unix::fs::PermissionsExt;

const NOTIFY: &str = r#"
[notify]
heartbeat_url = "http://127.0.0.1:9099/hb/ping-uuid-0001"
[[notify.webhook]]
url = "http://127.0.0.1:9099/hook/secret-path-1234"
[[notify.webhook]]
url = "http://127.0.0.1:9099/slack"
format = "slack"
[[notify.email]]
host = "127.0.0.1"
port = 2525
tls = "none"
username = "alerts"
from = "keel <keel@demo.localhost>"
to = ["ops@demo.localhost"]
[[notify.command]]
command = ["/usr/local/bin/page-ops", "--urgent"]
"#;

fn host() -> Host {
    let h = Host::new();
    h.write("keel.toml", &config(NOTIFY));
    h.write("root/usr/local/bin/page-ops", "#!/bin/sh\n");
    std::fs::set_permissions(
        h.path("root/usr/local/bin/page-ops"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    h.rule("pg_dump --format=custom\t0\t0\t\tPGDMP-fake-archive");
    h.rule("net:http POST http://127.0.0.1:9099/\t200\t0\t\t");
    h.rule("net:http GET http://127.0.0.1:9099/hb/\t200\t0\t\t");
    h.rule("net:smtp SMTP 127.0.0.1:2525\t0\t0\t\t");
    h.rule("/usr/local/bin/page-ops\t0\t0\t\t");
    h
}

/// How many deliveries of `event` went out: (JSON webhook, Slack webhook, mail).
fn sent(h: &Host, event: &str) -> (usize, usize, usize) {
    let log = h.read("fake/sent.log");
    let recs: Vec<&str> = log.split("=== ").filter(|r| r.contains(event)).collect();
    let n = |p: &str| recs.iter().filter(|r| r.starts_with(p)).count();
    (
        n("POST http://127.0.0.1:9099/hook"),
        n("POST http://127.0.0.1:9099/slack"),
        n("SMTP 127.0.0.1:2525"),
    )
}

/// How many times the command channel ran (any event).
fn ran(h: &Host) -> usize {
    h.commands()
        .lines()
        .filter(|l| l.contains("/usr/local/bin/page-ops --urgent"))
        .count()
}

/// `keel notify status --output json`.
fn status(h: &Host) -> serde_json::Value {
    let out = h
        .keel()
        .args(["notify", "status", "--output", "json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

fn outbox(h: &Host) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(h.path("root/var/lib/keel/notify-demo/outbox"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Time passes for the outbox: every entry is due now.
fn all_due(h: &Host) {
    for p in outbox(h) {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        v["next_at"] = 0.into();
        std::fs::write(&p, v.to_string()).unwrap();
    }
}

#[test]
fn a_failed_backup_arrives_once_through_every_channel_until_one_succeeds() {
    let h = host();
    printf_password(&h, "s3cret-pw");
    h.install(&[]).success();
    assert!(h.path("root/etc/systemd/system/keel-notify.timer").exists());
    // [health] timer is off in the test config: [notify] turns the verify timer on.
    assert!(h.path("root/etc/systemd/system/keel-verify.timer").exists());
    h.rule("pg_dump --format=custom\t1\t0\tpg_dump: error: connection to server failed");
    // Rules match a command's stdin too, and the notification quotes the failed pg_dump:
    // the command channel's own rule goes first again.
    h.rule("/usr/local/bin/page-ops\t0\t0\t\t");
    h.keel().arg("backup").assert().code(1);
    // A webhook in keel's JSON and one in Slack's, a mail (logged in as the user, with the
    // password from its keel secret), the command: once each.
    assert_eq!(sent(&h, "backup"), (1, 1, 1));
    assert_eq!(ran(&h), 1);
    let log = h.read("fake/sent.log");
    assert!(log.contains("\"event\":\"backup-failed\""), "{log}");
    assert!(log.contains("\"source\":\"keel\""), "{log}");
    assert!(log.contains("{\"text\":\"*[keel] demo on"), "{log}");
    assert!(log.contains("login=alerts"), "{log}");
    assert!(log.contains("connection to server failed"), "{log}");
    assert!(outbox(&h).is_empty(), "{:?}", outbox(&h));
    // The same open problem again within a day: not resent.
    h.keel().arg("backup").assert().code(1);
    assert_eq!(sent(&h, "backup"), (1, 1, 1));
    assert_eq!(ran(&h), 1);
    let st = status(&h);
    assert_eq!(st["open"][0]["key"], "backup-failed", "{st}");
    assert_eq!(st["open"][0]["repeats"], 1, "{st}");
    // A good backup closes it; the next failure is news again.
    h.rule("pg_dump --format=custom\t0\t1\t\tPGDMP-fake-archive");
    h.keel().arg("backup").assert().success();
    h.keel().arg("backup").assert().code(1);
    assert_eq!(sent(&h, "backup"), (2, 2, 2));
    assert_eq!(ran(&h), 2);
    // The webhook's secret path never reaches keel's logs.
    assert!(!h.commands().contains("secret-path-1234"));
    assert!(h.commands().contains("POST http://127.0.0.1:9099********"));
}

fn printf_password(h: &Host, pw: &str) {
    h.keel()
        .args(["notify", "password", "smtp"])
        .write_stdin(format!("{pw}\n"))
        .assert()
        .success()
        .stdout(contains("/etc/keel/secrets/notify-smtp"));
    let p = h.path("root/etc/keel/secrets/notify-smtp");
    assert_eq!(std::fs::read_to_string(&p).unwrap().trim_end(), pw);
    assert_eq!(
        std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_receiver_that_is_down_changes_no_outcome_and_gets_it_later() {
    let h = host();
    printf_password(&h, "pw");
    h.install(&[]).success();
    let src = crate::deploy::app_copy(&h, "v2", "demo-home-v2");
    let migrate_fails = "\"migrate\", interactive\t1\t1\tkeel-phase migrations: django.db.utils.ProgrammingError: column exists";
    h.rule(migrate_fails);
    h.keel()
        .args(["deploy", "--source", src.to_str().unwrap()])
        .assert()
        .code(1);
    assert_eq!(sent(&h, "deploy-failed"), (1, 1, 1));
    assert_eq!(ran(&h), 1);
    // Now the webhooks answer 503 twice (both of them, once each) and the relay is down.
    h.rule(migrate_fails);
    h.rule("net:http POST http://127.0.0.1:9099/\t503\t2\t\t");
    h.rule("net:smtp SMTP 127.0.0.1:2525\t1\t1\tconnection refused");
    h.keel()
        .args(["deploy", "--source", src.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(contains("migrations"));
    // Not lost: in the outbox, retried with backoff (not due yet, so a flush leaves them).
    assert_eq!(outbox(&h).len(), 3, "{:?}", outbox(&h));
    h.keel()
        .args(["notify", "flush"])
        .assert()
        .success()
        .stdout(contains("0 sent, 0 failed, 0 dropped, 3 waiting"));
    h.keel()
        .args(["notify", "status"])
        .assert()
        .success()
        .stdout(contains("outbox: 3 waiting"))
        .stdout(contains("the webhook answered 503"));
    // The receivers are back and a minute has passed: the timer's flush delivers them.
    all_due(&h);
    h.keel()
        .args(["notify", "flush"])
        .assert()
        .success()
        .stdout(contains("3 sent"));
    assert!(outbox(&h).is_empty());
    // The second failure arrived once through each channel too (the command at once).
    assert_eq!(sent(&h, "deploy-failed"), (2, 2, 2));
    assert_eq!(ran(&h), 2);
    let events = h.events();
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "notify-sent" && e["attempts"] == 2),
        "{events:?}"
    );
}

#[test]
fn the_verify_timer_tells_of_health_changes_and_pings_only_while_not_unhealthy() {
    let h = host();
    printf_password(&h, "pw");
    h.install(&[]).success();
    let verify = |h: &Host| {
        let _ = h.keel().args(["verify", "--notify"]).output().unwrap();
    };
    let beats = |h: &Host| {
        h.commands()
            .lines()
            .filter(|l| l.contains("GET http://127.0.0.1:9099********"))
            .count()
    };
    verify(&h);
    assert_eq!(beats(&h), 1);
    assert_eq!(sent(&h, "host-unhealthy"), (0, 0, 0));
    assert_eq!(ran(&h), 0);
    // Gunicorn down, and healing cannot help: unhealthy, told once, no heartbeat.
    let down = "systemctl is-active --quiet demo-web\t3\t0\t\t";
    h.rule(down);
    verify(&h);
    verify(&h);
    assert_eq!(beats(&h), 1);
    assert_eq!(sent(&h, "host-unhealthy"), (1, 1, 1));
    assert_eq!(ran(&h), 1);
    let log = h.read("fake/sent.log");
    assert!(log.contains("web: "), "{log}");
    // Back: recovered, once, and the heartbeat again.
    let rules = h.read("fake/rules").replace(&format!("{down}\n"), "");
    h.write("fake/rules", &rules);
    verify(&h);
    verify(&h);
    assert_eq!(beats(&h), 3);
    assert_eq!(sent(&h, "host-recovered"), (1, 1, 1));
    assert_eq!(ran(&h), 2);
    h.keel()
        .args(["notify", "status"])
        .assert()
        .stdout(contains("heartbeat: ok at"));
}

#[test]
fn notify_test_says_how_each_channel_went() {
    let h = host();
    h.install(&[]).success();
    // No password set for the mail's login: that channel fails, the others are sent.
    h.keel()
        .args(["notify", "test"])
        .assert()
        .code(1)
        .stdout(contains("webhook-1: sent"))
        .stdout(contains("webhook-2: sent"))
        .stdout(contains("command-1: sent"))
        .stdout(contains(
            "email-1: FAILED: no password: set it with keel notify password smtp",
        ))
        .stderr(contains("not delivered through email-1"));
    printf_password(&h, "pw");
    h.keel().args(["notify", "test"]).assert().success();
    // Sent directly, not queued.
    assert!(outbox(&h).is_empty());
    // A program others can change is not run.
    std::fs::set_permissions(
        h.path("root/usr/local/bin/page-ops"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    h.keel()
        .args(["notify", "test"])
        .assert()
        .code(2)
        .stderr(contains("notify.command[0].command[0]"));
}

#[test]
fn without_channels_nothing_is_written_or_sent() {
    let h = Host::new();
    h.rule("pg_dump --format=custom\t0\t0\t\tPGDMP-fake-archive");
    h.install(&[]).success();
    assert!(!h.path("root/etc/systemd/system/keel-notify.timer").exists());
    h.rule("pg_dump --format=custom\t1\t0\tpg_dump: error");
    h.keel().arg("backup").assert().code(1);
    assert!(!h.path("root/var/lib/keel/notify-demo").exists());
    assert_eq!(h.read("fake/sent.log"), "");
}

#[test]
fn a_failed_schedule_and_a_stale_backup_are_told_once_each() {
    let h = host();
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}\n[[schedule]]\nname = \"report\"\ncommand = [\"/usr/bin/true\"]\non_calendar = \"daily\"\n"),
    );
    printf_password(&h, "pw");
    h.rule("is-active --quiet demo-schedule-\t3\t0\t\t");
    h.install(&[]).success();
    // systemd's OnFailure= unit reports the failed run, twice: told once (the same problem).
    for _ in 0..2 {
        h.keel()
            .args(["schedule-failed", "demo-schedule-report.service"])
            .assert()
            .success();
    }
    assert_eq!(sent(&h, "schedule-failed"), (1, 1, 1));
    assert!(
        h.read("fake/sent.log")
            .contains("[[schedule]] report failed")
    );
    // No backup at all (the directory emptied): the verify timer's run tells it, once.
    for e in std::fs::read_dir(h.path("root/var/backups/keel/demo")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    for _ in 0..2 {
        let _ = h.keel().args(["verify", "--notify"]).output().unwrap();
    }
    assert_eq!(sent(&h, "backup-stale"), (1, 1, 1));
    assert!(
        h.read("fake/sent.log")
            .contains("no backup in /var/backups/keel/demo")
    );
    // A backup again: resolved, and not told again.
    h.keel().arg("backup").assert().success();
    let _ = h.keel().args(["verify", "--notify"]).output().unwrap();
    let st = status(&h);
    let open: Vec<&str> = st["open"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o["key"].as_str())
        .collect();
    assert_eq!(open, vec!["schedule-failed-report"], "{st}");
    // The schedule's next run succeeded: that problem is closed too.
    h.rule("show -p Result --value demo-schedule-report.service\t0\t0\t\tsuccess");
    let _ = h.keel().args(["verify", "--notify"]).output().unwrap();
    let st = h.read("root/var/lib/keel/notify-demo/open.json");
    assert!(!st.contains("schedule-failed-report"), "{st}");
}
