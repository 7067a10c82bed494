//! Several apps on one host (the fake one): a named app beside the host's gets its own
//! state, secrets, Redis instance and keel units; the host's default server is shared; its
//! rollback leaves the host's shared steps and the other app in place.
use crate::fakehost::{Host, config};

/// `keel --app NAME ARGS...`: the app's files from --app alone.
fn keel_app(h: &Host, app: &str, args: &[&str]) -> std::process::Output {
    h.keel_bare()
        .args(["--app", app])
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{text}");
    text
}

/// The host's app ("demo", /etc/keel/keel.toml) installed, and "shop" configured beside it.
fn two_apps() -> Host {
    let h = Host::new();
    h.write("root/etc/keel/keel.toml", &config(""));
    let o = h
        .keel_bare()
        .args(["--config"])
        .arg(h.path("root/etc/keel/keel.toml"))
        .args(["--state-file"])
        .arg(h.path("root/var/lib/keel/state.json"))
        .args(["install", "--yes"])
        .output()
        .unwrap();
    ok(&o);
    let shop = crate::fakehost::named_config("shop", 6380);
    h.write("root/etc/keel/apps/shop.toml", &shop);
    // What the fake host's useradd and Gunicorn would have made.
    let passwd = h.read("root/etc/passwd");
    h.write(
        "root/etc/passwd",
        &format!("{passwd}shop:x:996:996::/opt/shop:/usr/sbin/nologin\nshop-build:x:995:995::/opt/shop:/usr/sbin/nologin\n"),
    );
    let group = h.read("root/etc/group");
    h.write(
        "root/etc/group",
        &format!("{group}shop:x:996:\nshop-build:x:995:\n"),
    );
    h.write("root/run/shop/gunicorn.sock", "");
    // shop's Redis instance on 6380, answering as the host app's does on 6379.
    let tcp = h.read("root/proc/net/tcp");
    h.write(
        "root/proc/net/tcp",
        &format!("{tcp}   3: 0100007F:18EC 00000000:0000 0A 00000000:00000000 00:00000000 00000000   105        0 14 1\n"),
    );
    let rules = h.read("fake/rules");
    for r in rules.lines().filter(|r| r.starts_with("net:redis 6379 ")) {
        h.rule(&r.replace("net:redis 6379 ", "net:redis 6380 "));
    }
    h
}

#[test]
fn a_named_app_has_its_own_state_secrets_redis_and_units() {
    let h = two_apps();
    ok(&keel_app(&h, "shop", &["install", "--yes"]));
    assert!(h.path("root/var/lib/keel/apps/shop/state.json").is_file());
    assert!(h.path("root/var/log/keel/apps/shop/events.jsonl").is_file());
    let (mine, theirs) = (
        h.read("root/etc/keel/secrets/shop/redis_password"),
        h.read("root/etc/keel/secrets/redis_password"),
    );
    assert!(!mine.trim().is_empty() && mine != theirs);
    let redis = h.read("root/etc/redis/redis-shop.conf");
    for want in [
        "port 6380",
        "dbfilename dump-shop.rdb",
        "pidfile /run/redis-shop/",
    ] {
        assert!(redis.contains(want), "{want} not in {redis}");
    }
    // Debian's redis.conf is the host app's business alone.
    assert_eq!(
        h.read("root/etc/redis/redis.conf")
            .matches("include /etc/redis/keel.conf")
            .count(),
        1
    );
    assert!(
        h.commands().contains("restart redis-server@shop"),
        "{}",
        h.commands()
    );
    let web = h.read("root/etc/systemd/system/shop-web.service");
    assert!(web.contains("redis-server@shop.service"), "{web}");
    let resume = h.read("root/etc/systemd/system/keel-resume-shop.service");
    assert!(resume.contains("apps/shop/state.json"), "{resume}");
    // One default server for the host, in its own file; neither site has one.
    assert!(
        h.read("root/etc/nginx/sites-enabled/keel-catch-all-80.conf")
            .contains("return 444;")
    );
    for site in ["keel-demo.conf", "keel-shop.conf"] {
        let s = h.read(&format!("root/etc/nginx/sites-available/{site}"));
        assert!(!s.contains("default_server"), "{site}: {s}");
    }
    let apps = ok(&keel_app(&h, "shop", &["apps", "--output", "json"]));
    let v: serde_json::Value = serde_json::from_str(apps.lines().next().unwrap()).unwrap();
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo", "shop"]);
    assert_eq!(v["apps"][1]["status"], "succeeded");
}

#[test]
fn rolling_one_app_back_keeps_the_hosts_shared_steps_and_the_other_app() {
    let h = two_apps();
    ok(&keel_app(&h, "shop", &["install", "--yes"]));
    let out = ok(&keel_app(&h, "shop", &["rollback", "--yes"]));
    assert!(
        out.contains("kept: the host's, still used by the host's app"),
        "{out}"
    );
    assert!(!h.path("root/etc/redis/redis-shop.conf").exists());
    assert!(!h.path("root/etc/systemd/system/shop-web.service").exists());
    assert!(h.commands().contains("disable --now redis-server@shop"));
    // The host's: the default server, PostgreSQL's settings, the host app's Redis and site.
    assert!(
        h.path("root/etc/nginx/sites-enabled/keel-catch-all-80.conf")
            .exists()
    );
    assert!(h.path("root/etc/redis/keel.conf").exists());
    assert!(
        h.path("root/etc/nginx/sites-available/keel-demo.conf")
            .exists()
    );
    assert!(h.path("root/etc/systemd/system/demo-web.service").exists());
    assert!(!h.path("root/etc/nginx/sites-enabled/default").exists());
    // Data and secrets stay.
    assert!(
        h.path("root/etc/keel/secrets/shop/postgres_password")
            .exists()
    );
}

/// A config given from /etc/keel/apps/ (even as a relative path) is that app's: it never
/// runs with the host app's state file.
#[test]
fn a_config_from_the_apps_directory_names_its_app() {
    let h = two_apps();
    let host_state = h.read("root/var/lib/keel/state.json");
    let o = h
        .keel_bare()
        .current_dir(h.path("root/etc/keel/apps"))
        .args(["--config", "shop.toml", "install", "--yes"])
        .output()
        .unwrap();
    ok(&o);
    assert!(h.path("root/var/lib/keel/apps/shop/state.json").is_file());
    assert_eq!(h.read("root/var/lib/keel/state.json"), host_state);
}
