//! The trust boundary, attacked on the fake host: what the app user (or a bad input) can
//! plant must never make keel, running as root, follow a link, chown by path, execute the
//! app user's files, or hang.
use crate::fakehost::Host;
use predicates::str::contains;
use std::os::unix::fs::MetadataExt;

/// `base/releases` replaced by a link to a directory the app user must not own: keel
/// refuses to follow it, and the target keeps its owner and contents.
#[test]
fn a_symlinked_releases_dir_is_never_followed() {
    let h = Host::new();
    h.install(&[]).success();
    let target = h.path("root/etc/victim");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep"), "root's").unwrap();
    std::fs::rename(
        h.path("root/opt/demo/releases"),
        h.path("root/opt/demo/releases.real"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&target, h.path("root/opt/demo/releases")).unwrap();
    h.install(&["--retry-step", "app-code"])
        .code(1)
        .stdout(contains("app-code"))
        .stdout(contains("symlink"));
    let names: Vec<_> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["keep"], "keel wrote into the link's target");
    assert_eq!(std::fs::metadata(&target).unwrap().uid(), 0);
    assert_eq!(h.status_of("app-code"), "failed");
}

/// `.env` replaced by a link to a root-only file: its values are never copied into the
/// app's settings.
#[test]
fn a_symlinked_env_file_is_never_read() {
    let h = Host::new();
    h.install(&[]).success();
    h.write(
        "root/etc/root-only",
        "SECRET_KEY=stolen-from-root\nDB_PASSWORD=root-only-value\n",
    );
    let env = h.path("root/opt/demo/shared/.env");
    std::fs::remove_file(&env).unwrap();
    std::os::unix::fs::symlink(h.path("root/etc/root-only"), &env).unwrap();
    h.install(&["--retry-step", "app-env"])
        .code(1)
        .stdout(contains("refusing to read the existing .env"));
    assert!(
        std::fs::symlink_metadata(&env)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        h.read("root/etc/root-only"),
        "SECRET_KEY=stolen-from-root\nDB_PASSWORD=root-only-value\n"
    );
    let mut stack = vec![h.path("root/opt/demo")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                assert!(!t.contains("stolen-from-root"), "{}", e.path().display());
            }
        }
    }
}

/// `keel diagnose` executes nothing of the venv's (the build user's files): it lists the
/// packages from their metadata directories.
#[test]
fn diagnose_executes_nothing_from_the_venv() {
    let h = Host::new();
    h.install(&[]).success();
    h.write("root/opt/demo/current/venv/bin/pip", "#!/bin/sh\n");
    std::fs::create_dir_all(
        h.path("root/opt/demo/current/venv/lib/python3.11/site-packages/Django-5.1.2.dist-info"),
    )
    .unwrap();
    let before = h.commands().len();
    h.keel().arg("diagnose").assert().success();
    let cmds = h.commands();
    assert!(
        !cmds[before..].contains("/opt/demo/"),
        "diagnose ran something of the app's: {}",
        &cmds[before..]
    );
    let report = h.read("root/var/log/keel/diagnostics-latest.txt");
    assert!(report.contains("Django==5.1.2"), "{report}");
}

/// Package names and git refs reach argv after `--` (and option-like ones never load).
#[test]
fn package_names_and_git_refs_come_after_double_dash() {
    let h = Host::new();
    h.install(&[]).success();
    let cmds = h.commands();
    assert!(
        cmds.contains("apt-get") && cmds.contains(" install --no-install-recommends -- "),
        "{cmds}"
    );
    assert!(
        !cmds.lines().any(|l| l.contains("apt-get")
            && l.contains(" install ")
            && !l.contains(" install --no-install-recommends -- ")),
        "{cmds}"
    );
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::git_config("https://git.example.com/acme/shop.git", "release/v1"),
    );
    h.rule("dpkg-query\t0\t0\t\tpython3 ii \\npython3-venv ii \\ngit ii ");
    // app-code fails on the fake host (no checkout appears), after running git.
    h.install(&["app-code"]).code(1);
    let cmds = h.commands();
    assert!(
        cmds.contains("fetch -q --depth 1 -- origin release/v1"),
        "{cmds}"
    );
    assert!(
        cmds.contains("remote add -- origin https://git.example.com/acme/shop.git"),
        "{cmds}"
    );
    assert!(
        !cmds.contains("runuser -u demo -- git"),
        "git must not run as the app: {cmds}"
    );
}

/// A step that panics is a failed step: recorded, its own changes undone, exit 1, no hang.
#[test]
fn a_panicking_step_becomes_a_failed_step() {
    let h = Host::new();
    h.rule("nginx -t\tpanic\t1\tboom in nginx -t");
    let t = std::time::Instant::now();
    h.keel()
        .args(["install", "--yes", "nginx"])
        .timeout(std::time::Duration::from_secs(30))
        .assert()
        .code(1)
        .stdout(contains("the step panicked"));
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(h.status_of("nginx"), "failed");
    let st = h.state();
    let err = st["steps"]["nginx"]["last_error"]["message"]
        .as_str()
        .unwrap();
    assert!(err.contains("boom in nginx -t"), "{err}");
    // The site written before the panic was taken back by the dropped transaction.
    assert!(!crate::fakehost::exists(
        &h.path("root/etc/nginx/sites-available/keel-demo.conf")
    ));
    assert!(crate::fakehost::exists(
        &h.path("root/etc/nginx/sites-enabled/default")
    ));
    // The run is recorded as finished (failed), so status --wait does not wait for it.
    assert_eq!(st["last_run"]["outcome"], "failed");
}

/// A FIFO as the config file: refused at once (exit 2), never a hang.
#[test]
fn a_fifo_config_is_refused_without_hanging() {
    let h = Host::new();
    std::fs::remove_file(h.path("keel.toml")).unwrap();
    let st = std::process::Command::new("mkfifo")
        .arg(h.path("keel.toml"))
        .status()
        .unwrap();
    assert!(st.success());
    let t = std::time::Instant::now();
    h.keel()
        .args(["install", "--yes"])
        .timeout(std::time::Duration::from_secs(10))
        .assert()
        .code(2)
        .stderr(contains("not a regular file"))
        .stderr(contains("keel.toml"));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    assert!(!h.path("state.json").exists() && !h.path("state.json.lock").exists());
}

/// A typo'd step name leaves nothing behind: no resume unit, lock, state or command.
#[test]
fn a_typod_step_leaves_no_unit_behind() {
    let h = Host::new();
    for args in [&["nginxx"][..], &["--retry-step", "bogus"]] {
        h.install(args).code(2).stderr(contains("unknown step"));
    }
    assert!(!crate::fakehost::exists(
        &h.path("root/etc/systemd/system/keel-resume.service")
    ));
    assert!(!h.path("state.json.lock").exists());
    assert!(!h.path("state.json").exists());
    assert!(h.commands().is_empty());
    assert!(!h.path("root/etc/keel").exists(), "no secret either");
}

/// A host from keel's older layout (code in base/app): its .env and uploads move to shared/
/// once, a link planted among the uploads is moved as a link, never followed.
#[test]
fn the_older_layouts_env_and_uploads_move_to_shared() {
    let h = Host::new();
    h.write("root/etc/victim", "root's");
    h.write("root/opt/demo/app/.env", "EXTRA_SETTING=kept\n");
    h.write("root/opt/demo/app/media/upload.bin", "data");
    let media = h.path("root/opt/demo/app/media");
    std::os::unix::fs::symlink(h.path("root/etc/victim"), media.join("evil")).unwrap();
    for p in ["", "upload.bin"] {
        std::os::unix::fs::chown(media.join(p), Some(998), Some(998)).unwrap();
    }
    h.install(&[]).success();
    assert_eq!(h.read("root/opt/demo/shared/media/upload.bin"), "data");
    assert!(
        std::fs::symlink_metadata(h.path("root/opt/demo/shared/media/evil"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    // Moved (app-env then renders it, keeping the values its example names).
    assert!(!h.path("root/opt/demo/app/.env").exists());
    assert!(h.read("root/opt/demo/shared/.env").contains("SECRET_KEY="));
    let victim = std::fs::metadata(h.path("root/etc/victim")).unwrap();
    assert_eq!(
        (victim.uid(), h.read("root/etc/victim").as_str()),
        (0, "root's")
    );
}
