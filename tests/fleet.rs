//! A host of several on the fake host: what its roles plan, and what preflight refuses
//! before the first write (a wrong CA, missing pre-shared secrets).
use crate::fakehost::{Host, config, reason};
use std::os::unix::fs::PermissionsExt;

const CA: &str = include_str!("data/demo-cert.pem");

/// A web-only host: the database and Redis by URL, the fleet's CA, the secrets pre-shared.
fn web_host(with_secrets: bool) -> Host {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config(
            "[database]\nurl = \"postgres://demo@10.0.1.10:5432/demo?sslmode=verify-full\"\n\
             ca_file = \"/etc/keel/fleet-ca.pem\"\nwait_secs = 1\n\
             [redis]\nurl = \"redis://10.0.1.10:6379/0\"\n",
        )
        .replace("[app]\n", "[app]\nroles = [\"web\"]\n"),
    );
    h.write("root/etc/keel/fleet-ca.pem", CA);
    if with_secrets {
        for n in [
            "postgres_password",
            "redis_password",
            "admin_password",
            "env_secret_key",
        ] {
            let p = format!("root/etc/keel/secrets/{n}");
            h.write(&p, "a-shared-secret-value\n");
            std::fs::set_permissions(h.path(&p), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        std::fs::set_permissions(
            h.path("root/etc/keel/secrets"),
            std::fs::Permissions::from_mode(0o700),
        )
        .unwrap();
    }
    h
}

/// Every file under the fake root with its length and mtime: compared before and after a
/// refused install, nothing may differ.
fn snapshot(h: &Host) -> Vec<String> {
    fn walk(d: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                walk(&p, out);
            } else {
                out.push(format!(
                    "{} {} {:?}",
                    p.display(),
                    md.len(),
                    md.modified().ok()
                ));
            }
        }
    }
    let mut out = vec![];
    walk(&h.path("root"), &mut out);
    // keel's own logs of the refused run are not a change to the host.
    out.retain(|l| !l.contains("/var/log/keel/"));
    out.sort();
    out
}

#[test]
fn a_web_host_plans_no_database_or_redis_and_says_why() {
    let h = web_host(true);
    let plan = h.dry_run(&[]);
    for id in ["postgres", "redis", "backup"] {
        let r = reason(&plan, id);
        assert!(r.contains("not this host's role"), "{id}: {r}");
    }
    for id in ["nginx", "app-code", "services"] {
        let r = reason(&plan, id);
        assert!(
            !r.contains("not this host's role") && r != "absent",
            "{id}: {r}"
        );
    }
    // Preflight reached the database by URL with TLS (the fake host records the attempt).
    assert!(
        h.commands().contains("demo@10.0.1.10:5432/demo"),
        "{}",
        h.commands()
    );
}

#[test]
fn a_wrong_ca_is_exit_2_naming_the_url_and_the_ca_before_any_write() {
    let h = web_host(true);
    h.rule("net:pg demo@10.0.1.10:5432/demo\t1\t0\tinvalid peer certificate: UnknownIssuer\ttls");
    let before = snapshot(&h);
    let out = h.install(&[]).code(2);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(err.contains("database.url"), "{err}");
    assert!(err.contains("/etc/keel/fleet-ca.pem"), "{err}");
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(!err.contains("a-shared-secret-value"), "{err}");
    assert_eq!(snapshot(&h), before);
}

#[test]
fn a_wrong_password_is_exit_2_and_an_unreachable_database_exit_3() {
    let h = web_host(true);
    h.rule("net:pg demo@10.0.1.10:5432/demo\t1\t0\tpassword authentication failed for user \"demo\"\tauth");
    let err = String::from_utf8_lossy(&h.install(&[]).code(2).get_output().stderr).to_string();
    assert!(
        err.contains("database.url") && err.contains("postgres_password"),
        "{err}"
    );
    let h = web_host(true);
    h.rule("net:pg demo@10.0.1.10:5432/demo\t1\t0\tconnection refused\tunreachable");
    let before = snapshot(&h);
    let err = String::from_utf8_lossy(&h.install(&[]).code(3).get_output().stderr).to_string();
    assert!(err.contains("10.0.1.10:5432"), "{err}");
    assert_eq!(snapshot(&h), before);
}

#[test]
fn missing_pre_shared_secrets_are_exit_2_and_none_is_generated() {
    let h = web_host(false);
    let before = snapshot(&h);
    let err = String::from_utf8_lossy(&h.install(&[]).code(2).get_output().stderr).to_string();
    assert!(
        err.contains("app.roles") && err.contains("postgres_password"),
        "{err}"
    );
    assert!(!h.path("root/etc/keel/secrets/postgres_password").exists());
    assert_eq!(snapshot(&h), before);
}

#[test]
fn a_web_only_host_deploys_and_restarts_its_web_alone() {
    let h = web_host(true);
    h.install(&[]).success();
    let src = crate::deploy::app_copy(&h, "v2", "demo-home-v2");
    let before = h.commands().len();
    h.keel()
        .args(["deploy", "--yes", "--source", src.to_str().unwrap()])
        .assert()
        .success();
    let cmds = h.commands()[before..].to_string();
    assert!(cmds.contains("systemctl restart demo-web"), "{cmds}");
    // No worker or beat unit on this host: none is stopped, started or restarted.
    for u in ["demo-worker", "demo-beat"] {
        assert!(!cmds.contains(u), "{u} touched on a web-only host:\n{cmds}");
    }
}
