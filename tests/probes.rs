//! The network probes and the verify checks, in the fast tests: the fake host answers them
//! from its rules (a healthy stack by default), and a test breaks one part at a time.
use crate::fakehost::Host;
use predicates::str::contains;

/// `keel verify --output json`: (exit code, the report).
fn verify_json(h: &Host) -> (Option<i32>, serde_json::Value) {
    let out = h
        .keel()
        .args(["verify", "--output", "json"])
        .output()
        .unwrap();
    (
        out.status.code(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// The check named `name` in a verify report.
fn check_of(v: &serde_json::Value, name: &str) -> serde_json::Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {v}"))
        .clone()
}

#[test]
fn a_healthy_fake_stack_passes_every_check_and_keel_verify() {
    let h = Host::new();
    h.install(&[]).success();
    let cmds = h.commands();
    for probe in [
        "[nginx] net:http GET http://127.0.0.1:80/keel-health Host: demo.localhost",
        "[stack] net:http GET http://127.0.0.1:80/celery-ping/",
        "[redis] net:redis 6379 anon PING",
        "[redis] net:redis 6379 CONFIG GET maxmemory",
    ] {
        assert!(cmds.contains(probe), "{probe} not in {cmds}");
    }
    // The password sent with AUTH is masked in the fake host's log too.
    let pw = h.read("root/etc/keel/secrets/redis_password");
    assert!(!cmds.contains(pw.trim()));
    assert!(cmds.contains("net:redis 6379 anon AUTH ********"), "{cmds}");
    let out = h
        .keel()
        .args(["verify", "--output", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "healthy", "{v}");
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn redis_without_its_acl_fails_the_redis_step_naming_config() {
    let h = Host::new();
    h.rule("net:redis 6379 CONFIG\t0\t0\t\t*2\\n$9\\nmaxmemory");
    h.install(&["redis"])
        .code(1)
        .stdout(contains("CONFIG (must be refused)"))
        .stdout(contains("ACL"));
}

#[test]
fn a_site_not_served_by_keel_fails_nginx_after_retries() {
    let h = Host::new();
    h.rule("net:http GET http://127.0.0.1:80/keel-health \t404\t0\t\tnot found");
    h.install(&["nginx"])
        .code(1)
        .stdout(contains("answered 404: keel's site is not the one serving"));
    let st = h.state();
    assert!(st["steps"]["nginx"]["attempts"].as_u64().unwrap() >= 1);
    let retried = h
        .events()
        .iter()
        .filter(|e| e["event"] == "step-retried" && e["step"] == "nginx")
        .count();
    assert!(retried >= 1, "a transient failure is retried");
}

#[test]
fn a_silent_worker_fails_verify_and_keel_verify_is_unhealthy() {
    let h = Host::new();
    h.install(&[]).success();
    h.rule("net:http GET http://127.0.0.1:80/celery-ping/ \t200\t0\t\ttimeout");
    h.install(&["--retry-step", "verify"])
        .code(1)
        .stdout(contains("a task did not round-trip through Redis"));
    h.keel()
        .arg("verify")
        .assert()
        .code(1)
        .stderr(contains("unhealthy: worker"));
}

#[test]
fn a_listener_off_loopback_fails_the_postgres_step() {
    let h = Host::new();
    h.write(
        "root/proc/net/tcp",
        "  sl  local_address rem_address   st\n   0: 00000000:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 11 1\n",
    );
    h.install(&["postgres"])
        .code(1)
        .stdout(contains("listens on 0.0.0.0:5432, not only on loopback"));
}

/// The report's permissions section agrees with the trust boundary (.env 0640, secrets 0700)
/// and names the app's writable directories.
#[test]
fn the_report_sees_the_layout_keel_made() {
    let h = Host::new();
    h.install(&[]).success();
    h.keel().arg("diagnose").assert().success();
    let v: serde_json::Value =
        serde_json::from_str(&h.read("root/var/log/keel/diagnostics-latest.json")).unwrap();
    let perms = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["title"] == "permissions")
        .expect("a permissions section");
    assert_eq!(perms["verdict"], "ok", "{perms}");
    let body = perms["body"].as_str().unwrap();
    for line in [
        "640 root:998 /opt/demo/shared/.env",
        "755 demo:998 /opt/demo/shared/media",
        "700 root:0 /etc/keel/secrets",
    ] {
        assert!(body.contains(line), "{line} not in {body}");
    }
}

/// An app without keel's demo endpoints (no celery_ping_path, no heartbeat_path): `keel
/// verify` claims nothing it did not check (the audit's own case is a unit test). The worker is proven
/// by `celery inspect ping` (run, and said so); beat's ticks are "not-checked", never "ok";
/// the verdict stays healthy. A stopped beat is still an error.
#[test]
fn verify_never_calls_ok_what_it_did_not_check() {
    let h = Host::new();
    let cfg = crate::fakehost::config("").replace("celery_ping_path = \"/celery-ping/\"\n", "");
    h.write("keel.toml", &cfg);
    h.install(&[]).success();
    let before = h.commands().len();
    let (code, v) = verify_json(&h);
    let check = |name: &str| check_of(&v, name);
    assert_eq!(check("worker")["level"], "ok", "{v}");
    assert!(
        check("worker")["message"]
            .as_str()
            .unwrap()
            .contains("celery inspect ping"),
        "{v}"
    );
    assert!(
        h.commands()[before..].contains("inspect ping"),
        "the worker was not pinged"
    );
    assert_eq!(check("beat")["level"], "not-checked", "{v}");
    assert!(
        check("beat")["message"]
            .as_str()
            .unwrap()
            .contains("not checked"),
        "{v}"
    );
    assert_eq!(v["verdict"], "healthy", "{v}");
    assert_eq!(code, Some(0));
    // Beat stopped: an error whatever is configured.
    h.rule("systemctl is-active --quiet demo-beat\t3\t0\t\t");
    let (code, v) = verify_json(&h);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["verdict"], "unhealthy", "{v}");
}

/// Health that fits the app: `/` redirecting to a login page fails the site check with
/// where it went, unless [health] statuses accepts the redirect; a 500 carries the app's
/// last exception from its journal (redacted).
#[test]
fn the_site_check_accepts_what_health_says_and_explains_what_it_refuses() {
    let h = Host::new();
    h.install(&[]).success();
    h.rule("net:http GET http://127.0.0.1:80/ Host:\t302\t0\t\t/accounts/login/?next=/");
    let (_, v) = verify_json(&h);
    let site = check_of(&v, "site");
    assert_eq!(site["level"], "error", "{v}");
    assert!(
        site["message"]
            .as_str()
            .unwrap()
            .contains("answered 302 → /accounts/login/?next=/"),
        "{site}"
    );
    h.write(
        "keel.toml",
        &crate::fakehost::config("[health]\nstatuses = [200, 302]\n"),
    );
    let (code, v) = verify_json(&h);
    assert_eq!(code, Some(0), "{v}");
    // A 500: the traceback's last line, from the journal.
    let h = Host::new();
    h.install(&[]).success();
    h.rule("net:http GET http://127.0.0.1:80/ Host:\t500\t0\t\t<h1>Server Error (500)</h1>");
    h.rule("journalctl -u demo-web -n 60\t0\t0\t\tTraceback (most recent call last):\\n  File \"x.py\", line 1\\nValueError: Missing staticfiles manifest entry for 'app.css'");
    let (_, v) = verify_json(&h);
    let site = check_of(&v, "site");
    assert!(
        site["message"].as_str().unwrap().contains(
            "answered 500; the app logged: ValueError: Missing staticfiles manifest entry"
        ),
        "{site}"
    );
}

/// nginx serves the uploads at django.media_url from shared/media, links not followed,
/// active content as downloads; media_url = "" serves none.
#[test]
fn nginx_serves_media_safely_or_not_at_all() {
    let h = Host::new();
    h.install(&[]).success();
    let site = h.read("root/etc/nginx/sites-available/keel-demo.conf");
    for want in [
        "location /media/ {",
        "alias /opt/demo/shared/media/;",
        "disable_symlinks on from=/opt/demo/shared/media;",
        "add_header Content-Disposition $keel_demo_media_disposition always;",
        "map $uri $keel_demo_media_disposition {",
    ] {
        assert!(site.contains(want), "{want} not in {site}");
    }
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::config("").replace("[django]\n", "[django]\nmedia_url = \"\"\n"),
    );
    h.install(&[]).success();
    let site = h.read("root/etc/nginx/sites-available/keel-demo.conf");
    assert!(!site.contains("/opt/demo/shared/media"), "{site}");
}

/// A unit that will not start: the error carries its journal's last lines, not only
/// systemctl's "the control process exited with error code".
#[test]
fn a_failed_restart_says_what_the_unit_logged() {
    let h = Host::new();
    h.install(&[]).success();
    h.rule("systemctl restart redis-server\t1\t0\tJob for redis-server.service failed because the control process exited with error code.");
    h.rule("journalctl -u redis-server -n 4\t0\t0\t\tWarning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use");
    // A changed maxmemory: the redis step rewrites its file and restarts Redis.
    h.write(
        "keel.toml",
        &crate::fakehost::config("[redis]\nmaxmemory_mb = 300\n"),
    );
    h.install(&[]).code(1).stdout(contains(
        "its journal: Warning: Could not create server TCP listening socket 127.0.0.1:6379",
    ));
}

/// Tasks routed to a queue the worker does not consume: verify is unhealthy at once and
/// names the queue; with it among celery.queues, the same depth is fine. A consumed queue
/// whose oldest task stays past celery.queue_max_age_secs is unhealthy too. Beat without a
/// heartbeat page is proven by the due tasks in its journal.
#[test]
fn a_queue_no_worker_consumes_makes_verify_unhealthy() {
    let h = Host::new();
    h.install(&[]).success();
    h.rule("net:redis 6379 SCAN\t0\t0\t\t0\\n_kombu.binding.celery\\n_kombu.binding.emails");
    h.rule("net:redis 6379 SMEMBERS _kombu.binding.emails\t0\t0\t\temails\x06\x16\x06\x16emails");
    h.rule("net:redis 6379 LLEN emails\t0\t0\t\t:3");
    h.rule("net:redis 6379 LINDEX emails\t0\t0\t\t{\"headers\": {\"id\": \"t-1\"}}");
    let (code, v) = verify_json(&h);
    let q = check_of(&v, "queues");
    assert_eq!(q["level"], "error", "{v}");
    assert!(
        q["message"]
            .as_str()
            .unwrap()
            .contains("3 task(s) wait in queue \"emails\", which no worker consumes"),
        "{v}"
    );
    assert!(q["hint"].as_str().unwrap().contains("celery.queues"), "{v}");
    assert_eq!(code, Some(1), "{v}");
    // Consumed, but the same oldest task seen again past the threshold: stuck.
    let cfg = crate::fakehost::config(
        "[celery]\nqueues = [\"celery\", \"emails\"]\nqueue_max_age_secs = 10\n",
    );
    h.write("keel.toml", &cfg);
    h.write(
        "root/var/lib/keel/queue-watch.json",
        "{\"emails\": [\"t-1\", 1000]}",
    );
    let (code, v) = verify_json(&h);
    let q = check_of(&v, "queues");
    assert_eq!(q["level"], "error", "{v}");
    assert!(
        q["message"]
            .as_str()
            .unwrap()
            .contains("oldest task in queue \"emails\" has waited"),
        "{v}"
    );
    assert_eq!(code, Some(1));
    // A new oldest task (the worker moves): fine.
    h.rule("net:redis 6379 LINDEX emails\t0\t0\t\t{\"headers\": {\"id\": \"t-2\"}}");
    let (_, v) = verify_json(&h);
    assert_eq!(check_of(&v, "queues")["level"], "ok", "{v}");
    // Beat's journal shows due tasks sent: proven.
    h.rule("journalctl -u demo-beat\t0\t0\t\tScheduler: Sending due task heartbeat (core.tasks.heartbeat)");
    let cfg = crate::fakehost::config("").replace("celery_ping_path = \"/celery-ping/\"\n", "");
    h.write("keel.toml", &cfg);
    let (_, v) = verify_json(&h);
    let b = check_of(&v, "beat");
    assert_eq!(b["level"], "ok", "{v}");
    assert!(
        b["message"].as_str().unwrap().contains("sent 1 due task"),
        "{v}"
    );
}

/// The audit reads DEBUG and ALLOWED_HOSTS from Django itself (as the app, with its .env):
/// settings that fall back to '*' are named, whatever the .env says. `keel diagnose` runs
/// none of the app's code and keeps the .env's reading.
#[test]
fn the_audit_reads_djangos_effective_settings() {
    let h = Host::new();
    h.install(&[]).success();
    h.rule("call_command(\"check\", deploy=True\t0\t0\t\tSystem check identified no issues (0 silenced).\\nkeel-settings {\"DEBUG\": true, \"ALLOWED_HOSTS\": [\"*\"], \"code\": 0}");
    let (_, v) = verify_json(&h);
    let hosts = check_of(&v, "audit-allowed-hosts");
    assert_eq!(hosts["level"], "warn", "{v}");
    assert!(
        hosts["message"]
            .as_str()
            .unwrap()
            .contains("accepts any host: *"),
        "{v}"
    );
    let debug = check_of(&v, "audit-debug");
    assert_eq!(debug["level"], "warn", "{v}");
    assert!(
        debug["message"]
            .as_str()
            .unwrap()
            .contains("effective settings"),
        "{v}"
    );
    // Settings that do not load: the .env's reading, saying why Django's was not used.
    h.rule("call_command(\"check\", deploy=True\t1\t0\tImproperlyConfigured: Set the POSTGRES_DB environment variable");
    let (_, v) = verify_json(&h);
    let m = check_of(&v, "audit-allowed-hosts")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        m.contains("not read: the settings do not load: ImproperlyConfigured"),
        "{m}"
    );
}

/// A unit systemd restarted because it could not set the process up (exit 219/CGROUP, seen
/// in containers under load) is not the app crashing: the services step passes, with a
/// note; a restart after the app's own exit still fails it.
#[test]
fn a_restart_after_a_systemd_setup_failure_is_not_a_crash() {
    let h = Host::new();
    h.rule("show -p NRestarts --value demo-worker\t0\t0\t\t1");
    h.rule("journalctl -u demo-worker -n 200\t0\t0\t\tStarted demo-worker.service.\\ndemo-worker.service: Main process exited, code=exited, status=219/CGROUP\\ndemo-worker.service: Failed with result 'exit-code'.\\nStarted demo-worker.service.");
    h.install(&[])
        .success()
        .stderr(contains("after systemd could not set it up"));
    let h = Host::new();
    h.rule("show -p NRestarts --value demo-worker\t0\t0\t\t1");
    h.rule("journalctl -u demo-worker -n 200\t0\t0\t\tdemo-worker.service: Main process exited, code=exited, status=219/CGROUP\\ndemo-worker.service: Main process exited, code=exited, status=1/FAILURE");
    h.install(&[])
        .code(1)
        .stdout(contains("unit demo-worker restarted 1 time(s)"));
}
