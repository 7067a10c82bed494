//! Daily operations on the fake host: one-off commands as the app (`keel run`, `shell`,
//! `dbshell`).
use crate::fakehost::Host;
use predicates::str::contains;

/// The current release's directory, as the units see it (`/opt/demo/releases/ID`).
fn release_dir(h: &Host) -> String {
    let link = std::fs::read_link(h.path("root/opt/demo/current")).unwrap();
    format!("/opt/demo/{}", link.display())
}

#[test]
fn run_is_the_app_in_its_sandbox_and_passes_the_exit_status() {
    let h = Host::new();
    // Before the app is installed there is nothing to run in.
    h.keel()
        .args(["run", "--", "id"])
        .assert()
        .code(2)
        .stderr(contains("no current release"))
        .stderr(contains("keel install"));
    h.install(&[]).success();
    let rel = release_dir(&h);
    h.write(&format!("root{rel}/venv/bin/python"), "");
    h.rule("manage.py showmigrations\t3\t0\t\tcore\\n [X] 0001_initial");
    h.keel()
        .args([
            "run",
            "--",
            "python",
            "manage.py",
            "showmigrations",
            "--list",
        ])
        .assert()
        .code(3)
        .stdout(contains("0001_initial"));
    let cmds = h.commands();
    let line = cmds
        .lines()
        .rev()
        .find(|l| l.contains("showmigrations"))
        .unwrap_or_else(|| panic!("{cmds}"));
    // As the units: the app's user, the release, the .env, only uploads writable; `python`
    // is the venv's (systemd would look a bare name up in its own path).
    for want in [
        "systemd-run",
        "-p User=demo",
        &format!(
            "-p WorkingDirectory={}",
            h.path(&format!("root{rel}")).display()
        ),
        "/opt/demo/shared/.env",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        &format!("-- {rel}/venv/bin/python manage.py showmigrations --list"),
    ] {
        assert!(line.contains(want), "{want} not in {line}");
    }
    assert!(!line.contains("staticfiles"), "{line}");
    assert!(
        line.contains("ReadWritePaths=-") && line.contains("/opt/demo/shared/media"),
        "{line}"
    );
    // No command: a usage error.
    h.keel()
        .arg("run")
        .assert()
        .code(2)
        .stderr(contains("no command given"));
    // A name the venv lacks goes to systemd as it is; exit 0 is keel's 0.
    h.keel().args(["run", "--", "id", "-un"]).assert().success();
    assert!(h.commands().lines().last().unwrap().ends_with("-- id -un"));
}

#[test]
fn dbshell_logs_in_from_a_root_only_file_that_goes_afterwards() {
    let h = Host::new();
    h.install(&[]).success();
    h.keel().arg("dbshell").assert().success();
    let cmds = h.commands();
    let line = cmds.lines().last().unwrap();
    assert!(line.ends_with("-- psql"), "{line}");
    assert!(
        line.contains("EnvironmentFile=-") && line.contains("/run/keel/dbshell-"),
        "{line}"
    );
    assert!(!line.contains("/opt/demo/shared/.env"), "{line}");
    let password = h.read("root/etc/keel/secrets/postgres_password");
    assert!(!line.contains(password.trim()), "{line}");
    let left: Vec<_> = std::fs::read_dir(h.path("root/run/keel"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("dbshell-"))
        .collect();
    assert!(left.is_empty(), "the login file stayed: {left:?}");
    h.write(&format!("root{}/venv/bin/python", release_dir(&h)), "");
    h.keel().arg("shell").assert().success();
    let cmds = h.commands();
    let last = cmds.lines().last().unwrap();
    assert!(
        last.ends_with(&format!(
            "-- {}/venv/bin/python manage.py shell",
            release_dir(&h)
        )),
        "{last}"
    );
}

/// `keel logs`: the processes named, interleaved by time, each line with its process;
/// nginx from its files; bad names and times refused before anything is read.
#[test]
fn logs_interleave_processes_by_time_and_name_them() {
    let h = Host::new();
    h.install(&[]).success();
    let rec = |t: u64, unit: &str, msg: &str| {
        format!(
            "{{\"__REALTIME_TIMESTAMP\": \"{t}\", \"_SYSTEMD_UNIT\": \"{unit}\", \"MESSAGE\": \"{msg}\"}}"
        )
    };
    // 2026-12-03T10:00:00Z = 1796292000 s.
    let base = 1_796_292_000_000_000u64;
    h.rule(&format!(
        "-u demo-web.service\t0\t0\t\t{}\\n{}",
        rec(base, "demo-web.service", "GET / 200"),
        rec(base + 2_000_000, "demo-web.service", "GET /late 200")
    ));
    h.rule(&format!(
        "-u demo-worker.service\t0\t0\t\t{}",
        rec(
            base + 1_000_000,
            "demo-worker.service",
            "Task core.tasks.ping succeeded\\u001b[31m"
        )
    ));
    h.write(
        "root/var/log/nginx/demo.access.log",
        "127.0.0.1 - - [03/Dec/2026:10:00:01 +0000] \"GET /n HTTP/1.1\" 200 5\n",
    );
    let out = h
        .keel()
        .args(["logs", "-n", "20", "web", "worker", "nginx"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("2026-12-03T10:00:00.000Z web ") && lines[0].ends_with("GET / 200"),
        "{out}"
    );
    // Same second: the worker's line and nginx's, then web's later one.
    assert!(
        lines[1].contains(" worker ") || lines[1].contains(" nginx "),
        "{out}"
    );
    assert!(
        lines[3].contains(" web ") && lines[3].ends_with("GET /late 200"),
        "{out}"
    );
    // A child's escape codes never reach the admin's terminal.
    assert!(!out.contains('\u{1b}'), "{out:?}");
    // Only the last N overall.
    let out = h
        .keel()
        .args(["logs", "-n", "1", "web", "worker"])
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains("GET /late"), "{out}");
    // JSON: one object per line.
    let out = h
        .keel()
        .args(["logs", "--output", "json", "web"])
        .output()
        .unwrap();
    let first: serde_json::Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["process"], "web");
    assert_eq!(first["message"], "GET / 200");
    // The app's output is shown, not copied into keel's command log.
    assert!(
        !h.read("root/var/log/keel/steps/logs.log")
            .contains("GET / 200")
    );
    h.keel()
        .args(["logs", "webb"])
        .assert()
        .code(2)
        .stderr(contains("webb: no such process"))
        .stderr(contains("web, worker, beat, nginx, keel"));
    h.rule("systemd-analyze timestamp\t1\t0\tFailed to parse \"yesterdayy\": Invalid argument");
    h.keel()
        .args(["logs", "--since", "yesterdayy"])
        .assert()
        .code(2)
        .stderr(contains("--since yesterdayy"));
}

/// `keel logs --failed`: the failed step's output from its run, after a broken deploy.
#[test]
fn logs_failed_shows_the_failed_deploys_output() {
    let h = Host::new();
    h.install(&[]).success();
    h.keel()
        .args(["logs", "--failed"])
        .assert()
        .success()
        .stdout(contains("no failed install, deploy or backup"));
    let src = crate::deploy::app_copy(&h, "v2", "demo-home-v2");
    h.rule("\"migrate\", interactive\t1\t1\tTraceback (most recent call last):\\nkeel-phase migrations: django.db.utils.ProgrammingError: column exists");
    h.keel()
        .args(["deploy", "--source", src.to_str().unwrap()])
        .assert()
        .code(1);
    h.keel()
        .args(["logs", "--failed"])
        .assert()
        .success()
        .stdout(contains("deploy-failed (deploy, run"))
        .stdout(contains("ProgrammingError: column exists"))
        .stdout(contains("manage.py shell --no-startup"));
}

/// `keel maintenance`: the mode is recorded, the site re-rendered, tested and reloaded (the
/// app is not restarted), the page carries the message escaped; bad input changes nothing.
#[test]
fn maintenance_on_and_off_reload_nginx_only() {
    let h = Host::new();
    h.install(&[]).success();
    let before = h.commands().len();
    h.keel()
        .args(["maintenance", "on", "--allow", "10.0.0.0/33"])
        .assert()
        .code(2)
        .stderr(contains("--allow"));
    h.keel()
        .args(["maintenance", "on", "--message", "bad\u{7}bell"])
        .assert()
        .code(2)
        .stderr(contains("--message"));
    assert_eq!(&h.commands()[before..], "", "refused: nothing ran");
    assert!(!crate::fakehost::exists(
        &h.path("root/var/lib/keel/maintenance-demo.json")
    ));
    h.keel()
        .args([
            "maintenance",
            "on",
            "--message",
            "Back at <b>14:00</b>",
            "--allow",
            "203.0.113.7",
        ])
        .assert()
        .success()
        .stdout(contains("maintenance: on since"))
        .stdout(contains("loopback, 203.0.113.7"));
    let cmds = h.commands()[before..].to_string();
    assert!(cmds.contains("[nginx] nginx -t"), "{cmds}");
    assert!(cmds.contains("systemctl reload nginx"), "{cmds}");
    assert!(!cmds.contains("restart demo-web"), "{cmds}");
    let site = h.read("root/etc/nginx/sites-available/keel-demo.conf");
    assert!(site.contains("203.0.113.7 0;"), "{site}");
    let page = h.read("root/var/www/keel-demo/__keel_maintenance.html");
    assert!(
        page.contains("Back at &lt;b&gt;14:00&lt;&#x2f;b&gt;"),
        "{page}"
    );
    // A re-run keeps the mode.
    h.install(&["--retry-step", "nginx"]).success();
    assert!(
        h.read("root/etc/nginx/sites-available/keel-demo.conf")
            .contains("203.0.113.7 0;")
    );
    h.keel()
        .args(["verify", "--output", "json"])
        .assert()
        .stdout(contains("\"name\":\"maintenance\""))
        .stdout(contains("visitors get 503"));
    h.keel()
        .args(["maintenance", "off"])
        .assert()
        .success()
        .stdout(contains("maintenance: off"));
    assert!(
        !h.read("root/etc/nginx/sites-available/keel-demo.conf")
            .contains("maint")
    );
    assert!(!crate::fakehost::exists(
        &h.path("root/var/www/keel-demo/__keel_maintenance.html")
    ));
}

/// `keel env set|unset|list`: values kept in a root-only file, never keel.toml; the .env
/// rewritten and the units restarted; secrets masked in list and in reports; a re-run keeps
/// them; bad input changes nothing.
#[test]
fn env_set_restarts_with_the_value_and_masks_secrets() {
    let h = Host::new();
    h.keel()
        .args(["env", "set", "FOO=bar"])
        .assert()
        .code(2)
        .stderr(contains("not installed"));
    h.install(&[]).success();
    let toml_before = h.read("keel.toml");
    for (args, text) in [
        (&["env", "set", "1FOO=x"][..], "not a variable name"),
        (&["env", "set", "FOO"][..], "not KEY=VALUE"),
        (&["env", "unset", "NOPE"][..], "not set with keel env set"),
    ] {
        h.keel().args(args).assert().code(2).stderr(contains(text));
    }
    assert!(!crate::fakehost::exists(
        &h.path("root/etc/keel/env/demo.json")
    ));
    let before = h.commands().len();
    h.keel()
        .args(["env", "set", "FOO=bar", "SECRET_TOKEN=-"])
        .write_stdin("s3cr3t-t0ken-value\n")
        .assert()
        .success()
        .stdout(contains("FOO, SECRET_TOKEN changed"));
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(h.path("root/etc/keel/env/demo.json")).unwrap();
    assert_eq!((md.mode() & 0o777, md.uid()), (0o600, 0));
    assert_eq!(h.read("keel.toml"), toml_before);
    let env = h.read("root/opt/demo/shared/.env");
    assert!(
        env.contains("FOO=bar") && env.contains("SECRET_TOKEN=s3cr3t-t0ken-value"),
        "{env}"
    );
    let cmds = h.commands()[before..].to_string();
    assert!(cmds.contains("systemctl restart demo-web"), "{cmds}");
    assert!(!cmds.contains("s3cr3t-t0ken-value"), "{cmds}");
    assert!(!h.read("state.json").contains("s3cr3t-t0ken-value"));
    let list = h.keel().args(["env", "list"]).output().unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(list.contains("FOO=bar    # keel env set"), "{list}");
    assert!(
        list.contains("SECRET_TOKEN=****    # keel env set"),
        "{list}"
    );
    assert!(!list.contains("s3cr3t"), "{list}");
    h.keel().arg("diagnose").assert().success();
    assert!(
        !h.read("root/var/log/keel/diagnostics-latest.txt")
            .contains("s3cr3t-t0ken-value")
    );
    // A re-run keeps it.
    h.install(&["--retry-step", "app-env"]).success();
    assert!(h.read("root/opt/demo/shared/.env").contains("FOO=bar"));
    h.keel().args(["env", "unset", "FOO"]).assert().success();
    let env = h.read("root/opt/demo/shared/.env");
    assert!(
        !env.contains("FOO=bar") && env.contains("SECRET_TOKEN="),
        "{env}"
    );
}

/// `[[schedule]]`: a timer and a sandboxed oneshot service per schedule, in the current
/// release as the app; a failure is an event; a schedule taken out of the config goes.
#[test]
fn schedules_are_timers_run_as_the_app_and_failures_are_events() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::config(
            "[[schedule]]\nname = \"clearsessions\"\ncommand = [\"python\", \"manage.py\", \"clearsessions\"]\non_calendar = \"*:0/15\"\n\n[[schedule]]\nname = \"report\"\ncommand = [\"/usr/bin/true\"]\non_calendar = \"daily\"\ntimeout_secs = 60\n",
        ),
    );
    // New timers are not active yet.
    h.rule("is-active --quiet demo-schedule-\t3\t0\t\t");
    h.install(&[]).success();
    let svc = h.read("root/etc/systemd/system/demo-schedule-clearsessions.service");
    for want in [
        "User=demo",
        "WorkingDirectory=/opt/demo/current",
        "EnvironmentFile=/opt/demo/shared/.env",
        "ExecStart=/opt/demo/current/venv/bin/python manage.py clearsessions",
        "Type=oneshot",
        "OnFailure=keel-schedule-failed-demo@%n.service",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(svc.contains(want), "{want} not in {svc}");
    }
    let timer = h.read("root/etc/systemd/system/demo-schedule-clearsessions.timer");
    assert!(timer.contains("OnCalendar=*:0/15"), "{timer}");
    assert!(
        h.read("root/etc/systemd/system/demo-schedule-report.service")
            .contains("TimeoutStartSec=60")
    );
    assert!(
        h.read("root/etc/systemd/system/keel-schedule-failed-demo@.service")
            .contains("schedule-failed %i")
    );
    let cmds = h.commands();
    assert!(cmds.contains("systemd-analyze calendar *:0/15"), "{cmds}");
    assert!(
        cmds.contains("systemctl enable --now demo-schedule-clearsessions.timer"),
        "{cmds}"
    );
    // What `keel schedules` shows, from systemd's own record of the last run.
    h.rule("show --timestamp=unix -p Result,ExecMainStatus,ExecMainExitTimestamp,ActiveState demo-schedule-clearsessions.service\t0\t0\t\tResult=exit-code\\nExecMainStatus=3\\nExecMainExitTimestamp=@1796292000\\nActiveState=failed");
    h.rule("list-timers --all --output=json demo-schedule-clearsessions.timer\t0\t0\t\t[{\"next\":1796292900000000,\"last\":0,\"unit\":\"demo-schedule-clearsessions.timer\"}]");
    let out = h.keel().arg("schedules").output().unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    let line = out
        .lines()
        .find(|l| l.starts_with("clearsessions"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("2026-12-03T10:00:00Z")
            && line.contains("failed (exit-code, exit 3)")
            && line.contains("2026-12-03T10:15:00Z"),
        "{line}"
    );
    // The failure, as systemd's OnFailure= unit reports it: an event, and logs --failed.
    h.keel()
        .args(["schedule-failed", "demo-schedule-clearsessions.service"])
        .assert()
        .success();
    let ev = h.read("root/var/log/keel/events.jsonl");
    assert!(
        ev.contains("\"event\":\"schedule-failed\"")
            && ev.contains("\"schedule\":\"clearsessions\""),
        "{ev}"
    );
    h.keel()
        .args(["logs", "--failed"])
        .assert()
        .success()
        .stdout(contains(
            "schedule-failed (demo-schedule-clearsessions.service)",
        ));
    h.keel()
        .args(["schedule-failed", "sshd.service"])
        .assert()
        .code(2);
    // Taken out of the config: its timer is stopped and its units removed.
    h.write(
        "keel.toml",
        &crate::fakehost::config(
            "[[schedule]]\nname = \"report\"\ncommand = [\"/usr/bin/true\"]\non_calendar = \"daily\"\n",
        ),
    );
    h.install(&[]).success();
    assert!(!crate::fakehost::exists(&h.path(
        "root/etc/systemd/system/demo-schedule-clearsessions.timer"
    )));
    assert!(!crate::fakehost::exists(&h.path(
        "root/etc/systemd/system/demo-schedule-clearsessions.service"
    )));
    assert!(
        h.commands()
            .contains("disable --now demo-schedule-clearsessions.timer")
    );
    // A calendar systemd cannot read: exit 2 before anything is written.
    h.write(
        "keel.toml",
        &crate::fakehost::config(
            "[[schedule]]\nname = \"report\"\ncommand = [\"/usr/bin/true\"]\non_calendar = \"every minute\"\n",
        ),
    );
    h.rule("systemd-analyze calendar every minute\t1\t0\tFailed to parse calendar specification 'every minute': Invalid argument");
    let before = h.read("root/etc/systemd/system/demo-schedule-report.timer");
    h.install(&[])
        .code(2)
        .stderr(contains("schedule[0].on_calendar"))
        .stderr(contains("systemd cannot read"));
    assert_eq!(
        h.read("root/etc/systemd/system/demo-schedule-report.timer"),
        before
    );
}

/// `[[process]]`: a unit as hardened as the worker, started with the others, stopped warmly
/// beside a deploy's migrations and started again, its queues counted as consumed, checked
/// by verify; taken out of the config, it goes.
#[test]
fn processes_are_units_like_the_worker() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::config(
            "[[process]]\nname = \"slow-worker\"\ncommand = [\"celery\", \"-A\", \"demo\", \"worker\", \"-Q\", \"slow\", \"--concurrency\", \"1\", \"--hostname\", \"slow@%h\"]\n",
        ),
    );
    h.write("root/opt/demo/venvs/x/bin/celery", "");
    h.install(&[]).success();
    let unit = h.read("root/etc/systemd/system/demo-slow-worker.service");
    for want in [
        "User=demo",
        "WorkingDirectory=/opt/demo/current",
        "KillMode=mixed",
        "ProtectSystem=strict",
        "-Q slow --concurrency 1 --hostname slow@%%h",
    ] {
        assert!(unit.contains(want), "{want} not in {unit}");
    }
    assert!(h.commands().contains("demo-slow-worker"), "never started");
    let out = h
        .keel()
        .args(["verify", "--output", "json"])
        .output()
        .unwrap();
    let out = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.contains("[[process]] units active: demo-slow-worker"),
        "{out}"
    );
    // A deploy stops it warmly with the worker, and starts it again after the switch.
    let src = crate::deploy::app_copy(&h, "v2", "demo-home-v2");
    let before = h.commands().len();
    h.keel()
        .args(["deploy", "--source", src.to_str().unwrap()])
        .assert()
        .success();
    let cmds = h.commands()[before..].to_string();
    assert!(
        cmds.contains("systemctl stop --no-block demo-worker demo-slow-worker"),
        "{cmds}"
    );
    assert!(
        cmds.contains("systemctl restart demo-worker demo-slow-worker"),
        "{cmds}"
    );
    // Out of the config: stopped and removed.
    h.write("keel.toml", &crate::fakehost::config(""));
    h.install(&[]).success();
    assert!(!crate::fakehost::exists(
        &h.path("root/etc/systemd/system/demo-slow-worker.service")
    ));
    assert!(h.commands().contains("disable --now demo-slow-worker"));
}
