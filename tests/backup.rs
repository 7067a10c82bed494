//! `keel backup` and `keel restore` on the fake host: what runs, in which order, and what a
//! refused or failed restore leaves.
use crate::fakehost::{Host, config};
use predicates::str::contains;
use std::os::unix::fs::MetadataExt;

const DIR: &str = "root/var/backups/keel/demo";

fn dumps(h: &Host) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(h.path(DIR))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dump"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_backup_is_private_checksummed_and_uploaded() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("[backup]\nupload_command = [\"/usr/bin/rclone\", \"copy\", \"--\"]\n"),
    );
    h.rule("pg_dump --format=custom\t0\t0\t\tPGDMP-fake-archive");
    h.install(&[]).success();
    // The install made the first one.
    assert_eq!(dumps(&h).len(), 1);
    let md = std::fs::metadata(h.path(DIR)).unwrap();
    assert_eq!((md.mode() & 0o777, md.uid()), (0o700, 0));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    h.keel()
        .args(["backup", "--output", "json"])
        .assert()
        .success()
        .stdout(contains("/var/backups/keel/demo/demo-"));
    let names = dumps(&h);
    assert_eq!(names.len(), 2, "{names:?}");
    let newest = &names[1];
    let f = h.path(&format!("{DIR}/{newest}"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "PGDMP-fake-archive");
    assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
    let sum = h.read(&format!("{DIR}/{newest}.sha256"));
    use sha2::Digest;
    let want: String = sha2::Sha256::digest(b"PGDMP-fake-archive")
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(sum, format!("{want}  {newest}\n"));
    let cmds = h.commands();
    assert!(
        cmds.contains(&format!(
            "/usr/bin/rclone copy -- /var/backups/keel/demo/{newest}"
        )),
        "{cmds}"
    );
    assert!(
        cmds.contains("runuser -u postgres -- pg_dump --format=custom"),
        "{cmds}"
    );
}

#[test]
fn a_corrupt_backup_is_refused_before_anything_stops() {
    let h = Host::new();
    h.install(&[]).success();
    h.write(&format!("{DIR}/demo-20260101-000000.dump"), "PGDMP...");
    h.write(
        &format!("{DIR}/demo-20260101-000000.dump.sha256"),
        &format!("{}  demo-20260101-000000.dump\n", "0".repeat(64)),
    );
    let before = h.commands().len();
    h.keel()
        .args([
            "restore",
            "--yes",
            "/var/backups/keel/demo/demo-20260101-000000.dump",
        ])
        .assert()
        .code(2)
        .stderr(contains("checksum mismatch"));
    let after = h.commands()[before..].to_string();
    assert!(!after.contains("systemctl stop"), "{after}");
    assert!(
        !after.contains("pg_restore --single-transaction"),
        "{after}"
    );
}

#[test]
fn an_unhealthy_restore_puts_the_safety_backup_back() {
    let h = Host::new();
    h.install(&[]).success();
    let first = dumps(&h)[0].clone();
    // The app fails its task round trip for the whole first check (3 attempts), then is
    // healthy again once the safety backup is back.
    h.rule("net:http GET http://127.0.0.1:80/celery-ping/ \t500\t3\t\tbroken");
    let before = h.commands().len();
    h.keel()
        .args([
            "restore",
            "--yes",
            &format!("/var/backups/keel/demo/{first}"),
        ])
        .assert()
        .code(1)
        .stderr(contains("was put back and the app is healthy"));
    let cmds = h.commands()[before..].to_string();
    let pos = |s: &str| cmds.find(s).unwrap_or_else(|| panic!("no {s:?} in {cmds}"));
    assert!(
        pos("pg_restore --list") < pos("pg_dump"),
        "checked before the safety backup"
    );
    assert!(pos("pg_dump") < pos("systemctl stop demo-web.socket"));
    assert!(pos("systemctl stop demo-web.socket") < pos("pg_restore --single-transaction"));
    assert_eq!(
        cmds.matches("pg_restore --single-transaction").count(),
        2,
        "{cmds}"
    );
    assert!(dumps(&h).iter().any(|n| n.ends_with("-pre-restore.dump")));
}

/// The backup and health timers: written when on; stopped, disabled and removed when turned
/// off (one helper, `systemd::timer_files`, serves both).
#[test]
fn timers_on_then_off() {
    let h = Host::new();
    h.write("keel.toml", &config("[health]\ntimer = true\n"));
    h.install(&[]).success();
    let units = [
        "keel-verify.timer",
        "keel-verify.service",
        "keel-backup-demo.timer",
        "keel-backup-demo.service",
    ];
    for u in units {
        assert!(
            crate::fakehost::exists(&h.path(&format!("root/etc/systemd/system/{u}"))),
            "{u}"
        );
    }
    let before = h.commands().len();
    h.write(
        "keel.toml",
        &config("[health]\ntimer = false\n[backup]\ntimer = false\n"),
    );
    h.install(&[]).success();
    for u in units {
        assert!(
            !crate::fakehost::exists(&h.path(&format!("root/etc/systemd/system/{u}"))),
            "{u} left behind"
        );
    }
    let cmds = h.commands();
    let cmds = &cmds[before..];
    for t in ["keel-verify.timer", "keel-backup-demo.timer"] {
        assert!(
            cmds.contains(&format!("systemctl disable --now {t}")),
            "{cmds}"
        );
    }
    assert!(cmds.contains("systemctl daemon-reload"), "{cmds}");
}
