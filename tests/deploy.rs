//! `keel deploy`, `keel deploy --rollback` and `keel releases` on the fake host: the order
//! of build, migrate, switch and restarts; the switch back when the new release fails its
//! checks; what a refused or failed deploy leaves.
use crate::fakehost::Host;
use predicates::str::contains;

/// A copy of the demo app at `rel` under the host's temp dir, with `views.py` marked.
pub fn app_copy(h: &Host, rel: &str, mark: &str) -> std::path::PathBuf {
    let dst = h.path(rel);
    let ok = std::process::Command::new("cp")
        .arg("-r")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-app"))
        .arg(&dst)
        .status()
        .unwrap();
    assert!(ok.success());
    let views = dst.join("core/views.py");
    let text = std::fs::read_to_string(&views).unwrap();
    std::fs::write(&views, text.replace("demo-home", mark)).unwrap();
    dst
}

fn current(h: &Host) -> String {
    std::fs::read_link(h.path("root/opt/demo/current"))
        .unwrap()
        .display()
        .to_string()
}

fn deploy(h: &Host, args: &[&str]) -> assert_cmd::assert::Assert {
    h.keel().arg("deploy").args(args).assert()
}

#[test]
fn a_deploy_builds_beside_migrates_then_switches_and_install_stays_a_noop() {
    let h = Host::new();
    h.install(&[]).success();
    let first = current(&h);
    let src = app_copy(&h, "v2", "demo-home-v2");
    let before = h.commands().len();
    deploy(&h, &["--source", src.to_str().unwrap()])
        .success()
        .stdout(contains("is live"));
    let second = current(&h);
    assert_ne!(first, second);
    assert!(
        h.read("root/opt/demo/current/core/views.py")
            .contains("demo-home-v2")
    );
    assert!(
        h.read(&format!("root/opt/demo/{first}/core/views.py"))
            .contains("demo-home")
    );
    let cmds = h.commands()[before..].to_string();
    // Same requirements: the venv is reused, nothing installed.
    assert!(!cmds.contains("pip install"), "{cmds}");
    // The imports, check, migrate and collectstatic run in the new release, in one Python
    // (they are in its script, in that order), before the units restart, together.
    let pos = |s: &str| cmds.find(s).unwrap_or_else(|| panic!("no {s:?} in {cmds}"));
    // The worker's warm shutdown is asked for as the migrations start (it goes on beside
    // them); after the switch web and beat restart, and the worker starts again.
    assert!(pos("systemctl stop --no-block demo-worker") < pos("manage.py shell --no-startup"));
    assert!(
        pos("/venv/bin/python manage.py shell --no-startup")
            < pos("systemctl restart demo-web demo-beat")
    );
    assert!(pos("manage.py shell --no-startup") < pos("systemctl is-active --quiet demo-worker"));
    let st = h.state();
    let id = second.strip_prefix("releases/").unwrap();
    assert_eq!(st["releases"]["current"], id);
    let list = st["releases"]["list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["status"], "ok");
    assert_eq!(list[1]["by"], "deploy");
    // The install after a deploy keeps the deployed release: nothing runs.
    h.install(&[]).success().stdout(contains("0 step(s) run"));
    assert_eq!(current(&h), second);
    // keel releases lists both, the current one marked.
    h.keel()
        .arg("releases")
        .assert()
        .success()
        .stdout(contains(format!("* {id}")))
        .stdout(contains("deploy"));
}

#[test]
fn failed_checks_switch_back_by_themselves_and_keep_the_release() {
    let h = Host::new();
    h.install(&[]).success();
    let first = current(&h);
    let src = app_copy(&h, "bad", "demo-home-bad");
    // The new release's task round trip fails for every attempt of its check (3), then
    // answers again: the previous release, switched back to, is healthy.
    h.rule("net:http GET http://127.0.0.1:80/celery-ping/ \t500\t3\t\tcelery error");
    let before = h.commands().len();
    deploy(&h, &["--source", src.to_str().unwrap()])
        .code(1)
        .stderr(contains("failed its checks"))
        .stderr(contains("celery-ping"))
        .stderr(contains("switched back"));
    assert_eq!(current(&h), first);
    let st = h.state();
    let list = st["releases"]["list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["status"], "failed");
    assert!(list[1]["error"].as_str().unwrap().contains("celery-ping"));
    assert_eq!(
        st["releases"]["current"],
        first.strip_prefix("releases/").unwrap()
    );
    // The failed release is kept for inspection.
    let bad = list[1]["id"].as_str().unwrap();
    assert!(
        h.read(&format!("root/opt/demo/releases/{bad}/core/views.py"))
            .contains("demo-home-bad")
    );
    // Restarted twice: into the new release, and back.
    assert_eq!(
        h.commands()[before..]
            .matches("systemctl restart demo-web")
            .count(),
        2
    );
}

#[test]
fn a_failed_migration_stops_before_the_switch() {
    let h = Host::new();
    h.install(&[]).success();
    let first = current(&h);
    let src = app_copy(&h, "v2", "demo-home-v2");
    h.rule("\"migrate\", interactive\t1\t1\tTraceback (most recent call last):\\nkeel-phase migrations: django.db.utils.ProgrammingError: column exists");
    let before = h.commands().len();
    deploy(&h, &["--source", src.to_str().unwrap()])
        .code(1)
        .stderr(contains(
            "migrations: django.db.utils.ProgrammingError: column exists",
        ))
        .stderr(contains("not switched"));
    assert_eq!(current(&h), first);
    // Web and beat were left alone; the worker, stopped for the migrations, runs again.
    let cmds = h.commands()[before..].to_string();
    assert!(!cmds.contains("systemctl restart demo-web"), "{cmds}");
    let stop = cmds
        .find("systemctl stop --no-block demo-worker")
        .expect("stopped");
    assert!(
        cmds[stop..].contains("systemctl restart demo-worker"),
        "{cmds}"
    );
    assert_eq!(h.state()["releases"]["list"][1]["status"], "failed");
}

#[test]
fn rollback_by_hand_and_pruning_beyond_keep_releases() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::config("[deploy]\nkeep_releases = 2\n"),
    );
    h.install(&[]).success();
    let first = current(&h);
    let src = app_copy(&h, "v2", "demo-home-v2");
    deploy(&h, &["--source", src.to_str().unwrap()]).success();
    let second = current(&h);
    deploy(&h, &["--rollback"])
        .success()
        .stdout(contains("is current and healthy"));
    assert_eq!(current(&h), first);
    deploy(
        &h,
        &["--rollback", second.strip_prefix("releases/").unwrap()],
    )
    .success();
    assert_eq!(current(&h), second);
    // A third release: keep_releases = 2 removes the oldest (never current or previous).
    deploy(&h, &["--source", src.to_str().unwrap()]).success();
    let list = h.state()["releases"]["list"].as_array().unwrap().clone();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(!h.path(&format!("root/opt/demo/{first}")).exists());
    assert!(h.path(&format!("root/opt/demo/{second}")).exists());
    deploy(&h, &["--rollback", "19990101-000000"])
        .code(2)
        .stderr(contains("no such release"));
}

#[test]
fn refused_deploys_change_nothing() {
    let h = Host::new();
    // Before any install: nothing to deploy beside.
    deploy(&h, &[])
        .code(2)
        .stderr(contains("keel install first"));
    assert!(!h.path("state.json.lock").exists());
    h.install(&[]).success();
    let before = (h.commands().len(), current(&h));
    deploy(&h, &["--source", h.path("nowhere").to_str().unwrap()])
        .code(2)
        .stderr(contains("--source"));
    deploy(&h, &["--ref", "main"])
        .code(2)
        .stderr(contains("django.git"));
    assert_eq!((h.commands().len(), current(&h)), before);
    assert_eq!(h.state()["releases"]["list"].as_array().unwrap().len(), 1);
}

#[test]
fn changed_requirements_start_from_the_live_venv() {
    let h = Host::new();
    h.install(&[]).success();
    let old_venv = std::fs::read_link(h.path("root/opt/demo/current/venv")).unwrap();
    let src = app_copy(&h, "v2", "demo-home-v2");
    let req = src.join("requirements.txt");
    let text = std::fs::read_to_string(&req).unwrap();
    std::fs::write(&req, format!("{text}six\n")).unwrap();
    let before = h.commands().len();
    deploy(&h, &["--source", src.to_str().unwrap()]).success();
    let new_venv = std::fs::read_link(h.path("root/opt/demo/current/venv")).unwrap();
    assert_ne!(old_venv, new_venv);
    let cmds = h.commands()[before..].to_string();
    let old = format!(
        "/opt/demo/venvs/{}",
        old_venv.file_name().unwrap().to_str().unwrap()
    );
    let new = format!(
        "/opt/demo/venvs/{}",
        new_venv.file_name().unwrap().to_str().unwrap()
    );
    // As the build user: the seed's files linked in, then uv adds what changed; no new
    // `uv venv`.
    let pos = |s: &str| cmds.find(s).unwrap_or_else(|| panic!("no {s:?} in {cmds}"));
    assert!(
        pos("runuser -u demo-build -- sh -c set -e") < pos("uv pip install -q --compile-bytecode")
    );
    assert!(cmds.contains(&format!("sh {old} {new}")), "{cmds}");
    assert!(!cmds.contains("uv venv"), "{cmds}");
    assert!(h.path(&format!("root{new}/.keel-complete")).exists());
}

/// A release made by an install that then failed is a failed release, not "ok", and says
/// where the install failed; the next install's release is ok and current.
#[test]
fn a_failed_install_marks_its_release_failed() {
    let h = crate::fakehost::Host::new();
    // Fails once (a permanent error: not retried), then migrations pass.
    h.rule("manage.py migrate\t1\t1\tdjango.db.utils.ProgrammingError: boom");
    h.install(&[]).code(1);
    let releases = |h: &crate::fakehost::Host| -> serde_json::Value {
        let out = h
            .keel()
            .args(["releases", "--output", "json"])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let v = releases(&h);
    let list = v["releases"].as_array().unwrap_or_else(|| panic!("{v}"));
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["status"], "failed", "{v}");
    assert!(
        list[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("step django"),
        "{v}"
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    h.install(&[]).success();
    let v = releases(&h);
    let list = v["releases"].as_array().unwrap();
    let failed = list.iter().filter(|r| r["status"] == "failed").count();
    let ok: Vec<_> = list.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!((failed, ok.len()), (1, 1), "{v}");
    assert_eq!(v["current"], ok[0]["id"], "{v}");
}
