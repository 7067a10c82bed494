//! Drift on the fake host: a hand edit, a stopped unit and a deleted link are found on the
//! next install, shown with a diff beforehand, and repaired by re-running only their steps;
//! a file the operator keeps is left alone.
use crate::fakehost::{Host, config};
use serde_json::Value;

const REDIS: &str = "root/etc/redis/keel.conf";

fn dry_run_json(h: &Host) -> Value {
    h.dry_run_json(&[])
}

fn running(v: &Value) -> Vec<String> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["runs"].as_bool().unwrap())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn step<'a>(v: &'a Value, id: &str) -> &'a Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap()
}

#[test]
fn a_hand_edit_is_shown_backed_up_and_repaired() {
    let h = Host::new();
    h.install(&[]).success();
    let keel_conf = h.read(REDIS);
    h.write(REDIS, &format!("{keel_conf}maxmemory 1mb\n"));
    let plan = dry_run_json(&h);
    assert_eq!(running(&plan), ["redis"], "{plan}");
    let r = step(&plan, "redis");
    assert!(r["reason"].as_str().unwrap().contains("drifted"), "{r}");
    assert!(
        r["drift"][0]
            .as_str()
            .unwrap()
            .ends_with("/etc/redis/keel.conf was changed by hand"),
        "{r}"
    );
    let diff = r["diff"][0].as_str().unwrap();
    assert!(
        diff.contains("--- /etc/redis/keel.conf (on the host)"),
        "{diff}"
    );
    assert!(diff.contains("\n-maxmemory 1mb\n"), "{diff}");
    // The dry run changed nothing.
    assert!(h.read(REDIS).ends_with("maxmemory 1mb\n"));
    let out = h.install(&[]).success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("1 step(s) run")
            || String::from_utf8_lossy(&out.get_output().stdout).contains("1 step(s) run"),
        "{err}"
    );
    assert_eq!(h.read(REDIS), keel_conf, "not repaired");
    let line = err
        .lines()
        .find(|l| l.contains("backup: "))
        .expect("the backup is named");
    let backup = line.rsplit("backup: ").next().unwrap().trim();
    let text = std::fs::read_to_string(backup).unwrap();
    assert!(text.ends_with("maxmemory 1mb\n"), "{backup}: {text}");
    // Converged again: nothing drifts.
    assert!(running(&dry_run_json(&h)).is_empty());
}

#[test]
fn a_stopped_unit_and_a_deleted_link_rerun_only_their_steps() {
    let h = Host::new();
    h.install(&[]).success();
    // Units in the order the steps list them: apt-daily-upgrade.timer, postgresql,
    // redis-server, nginx, keel-backup-demo.timer, the socket, web, worker, beat.
    h.rule("systemctl is-active apt-daily-upgrade.timer\t3\t2\t\tactive\\nactive\\nactive\\nactive\\nactive\\nactive\\nactive\\ninactive\\nactive");
    std::fs::remove_file(h.path("root/etc/nginx/sites-enabled/keel-demo.conf")).unwrap();
    let plan = dry_run_json(&h);
    assert_eq!(running(&plan), ["nginx", "services"], "{plan}");
    assert!(
        step(&plan, "services")["drift"][0]
            .as_str()
            .unwrap()
            .contains("demo-worker.service is inactive"),
        "{plan}"
    );
    assert!(
        step(&plan, "nginx")["drift"][0]
            .as_str()
            .unwrap()
            .ends_with("sites-enabled/keel-demo.conf is missing"),
        "{plan}"
    );
    h.install(&[]).success();
    assert!(std::fs::read_link(h.path("root/etc/nginx/sites-enabled/keel-demo.conf")).is_ok());
}

#[test]
fn a_kept_file_is_neither_drift_nor_overwritten() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("[drift]\nkeep = [\"/etc/redis/keel.conf\"]\n"),
    );
    h.install(&[]).success();
    let edited = format!("{}maxmemory 1mb\n", h.read(REDIS));
    h.write(REDIS, &edited);
    assert!(running(&dry_run_json(&h)).is_empty());
    h.install(&["--retry-step", "redis"]).success();
    assert_eq!(h.read(REDIS), edited);
}
