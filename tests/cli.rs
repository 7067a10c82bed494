//! CLI paths: bad input (exit 2, nothing changed), the lock (exit 4), plan, status.
use crate::fakehost::Host;
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn config_errors_name_file_and_key_and_change_nothing() {
    let h = Host::new();
    h.write(
        "keel.toml",
        "[app]\nname = \"demo\"\ndomain = \"x.test\"\n[redis]\nport = 70000\n",
    );
    h.install(&[])
        .code(2)
        .stderr(contains("keel.toml"))
        .stderr(contains("redis.port"))
        .stderr(contains("hint:"));
    h.write("keel.toml", "[app]\nname = \"demo\"\ndomian = \"x.test\"\n");
    h.install(&[])
        .code(2)
        .stderr(contains("app.domian"))
        .stderr(contains("unknown field"));
    std::fs::remove_file(h.path("keel.toml")).unwrap();
    h.install(&[])
        .code(2)
        .stderr(contains("keel.toml"))
        .stderr(contains("cannot read"));
    assert!(!h.path("state.json").exists());
    assert!(h.commands().is_empty());
}

#[test]
fn corrupt_or_newer_state_is_exit_2_and_left_untouched() {
    let h = Host::new();
    for text in [
        "{\"schema_version\": 1, \"steps\": ",
        "{\"schema_version\": 7, \"keel_version\": \"9.0.0\"}",
    ] {
        h.write("state.json", text);
        h.install(&[]).code(2).stderr(contains("state.json"));
        h.keel().arg("status").assert().code(2);
        assert_eq!(h.read("state.json"), text);
    }
    assert!(h.commands().is_empty());
}

#[test]
fn a_second_run_is_refused_with_exit_4_naming_the_holder() {
    let h = Host::new();
    let lock = h.path("state.json.lock");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&lock)
        .unwrap();
    f.try_lock().unwrap();
    std::io::Write::write_all(&mut f, format!("{}\n", std::process::id()).as_bytes()).unwrap();
    h.install(&[])
        .code(4)
        .stderr(contains(format!("pid {}", std::process::id())));
    assert!(!h.path("state.json").exists());
    drop(f);
    h.install(&["preflight"]).success();
}

#[test]
fn unknown_steps_and_flags_are_usage_errors() {
    let h = Host::new();
    h.install(&["nginxx"])
        .code(2)
        .stderr(contains("unknown step \"nginxx\""))
        .stderr(contains("preflight, packages"));
    h.install(&["--retry-step", "bogus"])
        .code(2)
        .stderr(contains("--retry-step"));
    h.keel()
        .args(["install", "--rollback", "sometimes"])
        .assert()
        .code(2);
}

#[test]
fn plan_lists_steps_with_dependencies_and_dot() {
    let h = Host::new();
    h.keel()
        .arg("plan")
        .assert()
        .success()
        .stdout(contains("postgres").and(contains("after: packages, secrets")));
    h.keel()
        .args(["plan", "--output", "dot"])
        .assert()
        .success()
        .stdout(contains("\"packages\" -> \"postgres\"").and(contains("digraph keel")));
    let out = h
        .keel()
        .args(["plan", "--output", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["steps"].as_array().unwrap().len(), 13);
}

#[test]
fn dry_run_changes_nothing() {
    let h = Host::new();
    h.keel()
        .args(["install", "--dry-run"])
        .assert()
        .success()
        .stdout(contains("run: pending"));
    assert!(!h.path("state.json").exists());
    assert!(h.commands().is_empty());
}

#[test]
fn status_human_and_json() {
    let h = Host::new();
    h.keel()
        .arg("status")
        .assert()
        .success()
        .stdout(contains("has not run yet"));
    h.install(&["secrets"]).success();
    h.keel()
        .arg("status")
        .assert()
        .success()
        .stdout(contains("secrets      completed"));
    let out = h
        .keel()
        .args(["status", "--output", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(
        steps.iter().find(|s| s["id"] == "secrets").unwrap()["status"],
        "completed"
    );
    assert_eq!(
        steps.iter().find(|s| s["id"] == "nginx").unwrap()["status"],
        "pending"
    );
    assert_eq!(v["last_run"]["outcome"], "succeeded");
}

#[test]
fn no_tty_output_has_timestamps_and_no_escape_codes() {
    let h = Host::new();
    let out = h
        .keel()
        .args(["install", "--yes", "secrets"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\u{1b}'), "escape codes in {err}");
    assert!(
        err.lines()
            .all(|l| l.len() > 20 && l.as_bytes()[4] == b'-' && l.contains("Z keel: ")),
        "{err}"
    );
}

#[test]
fn json_errors_are_machine_readable() {
    let h = Host::new();
    h.write("keel.toml", "nope = 1\n");
    let out = h
        .keel()
        .args(["install", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("keel.toml"));
}
