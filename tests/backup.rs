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
    h.write("root/usr/bin/rclone", "#!/bin/sh\n");
    chmod(&h, "root/usr/bin/rclone", 0o755);
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
    // The uploads beside it: archived by the app itself, checksummed, private, uploaded.
    let media = newest.replace(".dump", ".media.tar.gz");
    assert!(
        cmds.contains(
            "runuser -u demo -- tar --create --gzip --file=- --one-file-system --directory"
        ),
        "{cmds}"
    );
    let m = h.path(&format!("{DIR}/{media}"));
    assert_eq!(std::fs::metadata(&m).unwrap().mode() & 0o777, 0o600);
    assert!(
        h.read(&format!("{DIR}/{media}.sha256"))
            .ends_with(&format!("  {media}\n"))
    );
    assert!(
        cmds.contains(&format!(
            "/usr/bin/rclone copy -- /var/backups/keel/demo/{media}"
        )),
        "{cmds}"
    );
}

fn chmod(h: &Host, p: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.path(p), std::fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(h: &Host, p: &str, uid: u32) {
    std::os::unix::fs::lchown(h.path(p), Some(uid), Some(uid)).unwrap();
}

/// Exit 2 naming `key` and `text`, and nothing run or written: no state file, no command.
fn refused_before_any_write(h: &Host, args: &[&str], key: &str, text: &str) {
    h.keel()
        .args(args)
        .assert()
        .code(2)
        .stderr(contains(key))
        .stderr(contains(text))
        .stderr(contains("hint:"));
    assert!(!h.path("root/var/lib/keel/state.json").exists());
    assert_eq!(h.commands(), "", "nothing may run");
}

/// Root runs the upload on every backup: a program (or a script it is given) that another
/// user could change is refused when the config is loaded, before anything is written.
#[test]
fn an_upload_command_others_could_change_is_refused() {
    let up = "[backup]\nupload_command = [\"/opt/tools/upload\", \"/opt/tools/upload.py\"]\n";
    let setup = |h: &Host| {
        h.write("keel.toml", &config(up));
        h.write("root/opt/tools/upload", "#!/bin/sh\n");
        chmod(h, "root/opt/tools/upload", 0o755);
        h.write("root/opt/tools/upload.py", "print()\n");
    };
    // The directory above it is world-writable: a name could be swapped.
    let h = Host::new();
    setup(&h);
    chmod(&h, "root/opt/tools", 0o777);
    refused_before_any_write(
        &h,
        &["install", "--yes"],
        "backup.upload_command[0]",
        "/opt/tools (a directory above it) is writable by group or others",
    );
    // The program is someone else's.
    let h = Host::new();
    setup(&h);
    chown(&h, "root/opt/tools/upload", 1000);
    refused_before_any_write(
        &h,
        &["install", "--yes"],
        "backup.upload_command[0]",
        "owned by uid 1000",
    );
    // The script it is given is group-writable.
    let h = Host::new();
    setup(&h);
    chmod(&h, "root/opt/tools/upload.py", 0o664);
    refused_before_any_write(
        &h,
        &["install", "--yes"],
        "backup.upload_command[1]",
        "writable by group or others",
    );
    // A link is not followed.
    let h = Host::new();
    setup(&h);
    std::fs::remove_file(h.path("root/opt/tools/upload")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/true", h.path("root/opt/tools/upload")).unwrap();
    refused_before_any_write(
        &h,
        &["install", "--yes"],
        "backup.upload_command[0]",
        "symbolic link",
    );
    // `keel backup` checks the same before it dumps anything.
    let h = Host::new();
    setup(&h);
    chown(&h, "root/opt/tools/upload", 1000);
    refused_before_any_write(
        &h,
        &["backup"],
        "backup.upload_command[0]",
        "owned by uid 1000",
    );
    // All root's: accepted.
    let h = Host::new();
    setup(&h);
    h.install(&[]).success();
    assert!(
        h.commands()
            .contains("/opt/tools/upload /opt/tools/upload.py /var/backups/keel/demo/demo-")
    );
}

/// An existing backup directory keel did not make is never taken over (chowned, chmodded).
#[test]
fn an_existing_backup_dir_of_someone_elses_is_refused_and_left_alone() {
    let h = Host::new();
    h.write("keel.toml", &config("[backup]\ndir = \"/srv/data\"\n"));
    std::fs::create_dir_all(h.path("root/srv/data")).unwrap();
    chown(&h, "root/srv/data", 1000);
    refused_before_any_write(
        &h,
        &["install", "--yes"],
        "backup.dir",
        "never takes over a directory it did not make",
    );
    let md = std::fs::metadata(h.path("root/srv/data")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o777), (1000, 0o755));
    // Root's but 0755: refused too, and its mode stays.
    chown(&h, "root/srv/data", 0);
    refused_before_any_write(&h, &["backup"], "backup.dir", "mode 0700");
    let md = std::fs::metadata(h.path("root/srv/data")).unwrap();
    assert_eq!(md.mode() & 0o777, 0o755);
}

/// A restore loads only a file of root's or postgres's that no one else can write, opened
/// once without following links; the load runs as the app's role over TCP, never in a
/// superuser session (`--role` would only SET ROLE, which the archive can RESET).
#[test]
fn a_restore_trusts_only_root_files_and_loads_as_the_app_role() {
    let h = Host::new();
    h.install(&[]).success();
    let first = dumps(&h)[0].clone();
    let path = format!("{DIR}/{first}");
    let shown = format!("/var/backups/keel/demo/{first}");
    let before = h.commands().len();
    for (setup, text) in [
        (
            Box::new(|h: &Host, p: &str| chown(h, p, 1000)) as Box<dyn Fn(&Host, &str)>,
            "belongs to uid 1000",
        ),
        (
            Box::new(|h: &Host, p: &str| {
                chown(h, p, 0);
                chmod(h, p, 0o666)
            }),
            "writable by group or others",
        ),
    ] {
        setup(&h, &path);
        h.keel()
            .args(["restore", "--yes", &shown])
            .assert()
            .code(2)
            .stderr(contains(text));
    }
    chmod(&h, &path, 0o600);
    std::os::unix::fs::symlink(&shown, h.path(&format!("{DIR}/link.dump"))).unwrap();
    h.keel()
        .args(["restore", "--yes", "/var/backups/keel/demo/link.dump"])
        .assert()
        .code(2)
        .stderr(contains("symbolic link"));
    assert_eq!(
        &h.commands()[before..],
        "",
        "nothing ran for a refused file"
    );
    h.keel()
        .args(["restore", "--yes", &shown])
        .assert()
        .success();
    let cmds = h.commands()[before..].to_string();
    let load = cmds
        .lines()
        .find(|l| l.contains("pg_restore --single-transaction"))
        .unwrap_or_else(|| panic!("no load in {cmds}"));
    assert!(
        load.contains("--no-password --host=127.0.0.1 --port=5432 --username=demo --dbname=demo"),
        "{load}"
    );
    assert!(
        !load.contains("runuser") && !load.contains("--role"),
        "{load}"
    );
    assert!(!cmds.contains("-u postgres -- pg_restore"), "{cmds}");
    // The uploads: unpacked by the app into a directory of root's, then switched in; the
    // ones they replace are kept aside.
    h.write("root/opt/demo/shared/media/before.txt", "old upload");
    h.keel()
        .args(["restore", "--yes", &shown])
        .assert()
        .success()
        .stdout(contains("and the uploads"));
    let cmds = h.commands();
    assert!(
        cmds.contains("runuser -u demo -- tar --extract --gzip --file=- --no-same-owner"),
        "{cmds}"
    );
    let aside: Vec<String> = std::fs::read_dir(h.path("root/opt/demo/shared"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("media.pre-restore-"))
        .collect();
    // One per restore (the first put the install's empty uploads aside).
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(
        aside
            .iter()
            .any(|a| h.read(&format!("root/opt/demo/shared/{a}/before.txt")) == "old upload"),
        "{aside:?}"
    );
    assert!(!exists_path(&h, "root/opt/demo/shared/media/before.txt"));
    assert!(
        std::fs::read_dir(h.path("root/opt/demo/shared"))
            .unwrap()
            .flatten()
            .all(|e| !e
                .file_name()
                .to_string_lossy()
                .starts_with(".media-restore"))
    );
}

fn exists_path(h: &Host, p: &str) -> bool {
    std::fs::symlink_metadata(h.path(p)).is_ok()
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
