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
        .stderr(contains("preflight, python-packages, packages"));
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
    assert_eq!(
        v["steps"].as_array().unwrap().len(),
        keel::steps::graph().ids().len()
    );
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
        .stdout(contains("secrets         completed"));
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
    // Not vacuous: the run printed its lines (started, done, ...) to stderr.
    assert!(err.lines().count() >= 3, "{err}");
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

#[test]
fn status_wait_waits_for_a_run_and_reports_it() {
    let h = Host::new();
    // Nothing has run yet: it waits (here until the timeout, exit 1).
    let t = std::time::Instant::now();
    h.keel()
        .args(["status", "--wait", "--timeout", "1"])
        .assert()
        .code(1)
        .stderr(contains("timed out"));
    assert!(t.elapsed() >= std::time::Duration::from_secs(1));
    h.install(&["secrets"]).success();
    h.keel()
        .args(["status", "--wait"])
        .assert()
        .success()
        .stdout(contains("status: done"));
    // A failed run: exit 1 with the step, its error and hint.
    // Redis answers a client without the password: the redis step fails its check.
    h.rule("net:redis 6379 anon PING\t0\t0\t\t+PONG");
    h.keel()
        .args(["install", "--yes", "redis"])
        .assert()
        .code(1);
    let out = h
        .keel()
        .args(["status", "--wait", "--output", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["failed_step"], "redis");
    h.keel()
        .args(["status", "--wait"])
        .assert()
        .code(1)
        .stdout(contains("failed step: redis: verification failed: a client without the password got \"+PONG\" instead of NOAUTH"));
}

#[test]
fn status_wait_blocks_while_a_run_holds_the_lock() {
    let h = Host::new();
    h.install(&["secrets"]).success();
    let lock = h.path("state.json.lock");
    let f = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
    f.try_lock().unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1200));
        drop(f);
    });
    let t = std::time::Instant::now();
    h.keel()
        .args(["status", "--wait", "--timeout", "20"])
        .assert()
        .success();
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(1100),
        "returned while the run held the lock"
    );
    release.join().unwrap();
}

#[test]
fn env_command_renders_and_keeps_values() {
    let h = Host::new();
    h.write(
        "app/.env.example",
        "SECRET_KEY=change-me\nDEBUG=True\nDATABASE_URL=\nAPI_TOKEN=\n",
    );
    let (ex, out) = (h.path("app/.env.example"), h.path("app/.env"));
    // Unattended and API_TOKEN has no value: exit 2 naming it, nothing written.
    h.keel()
        .arg("env")
        .arg("--example")
        .arg(&ex)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(contains("API_TOKEN"))
        .stderr(contains("[env]"));
    assert!(!out.exists());
    h.write(
        "keel.toml",
        &crate::fakehost::config("[env]\nAPI_TOKEN = \"tok-123456\"\n"),
    );
    h.keel()
        .arg("env")
        .arg("--example")
        .arg(&ex)
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stdout(contains("generated: SECRET_KEY"));
    let text = h.read("app/.env");
    assert!(
        text.contains("DEBUG=False")
            && text.contains("API_TOKEN=tok-123456")
            && text.contains("DATABASE_URL=postgres://demo:"),
        "{text}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o600);
    // A value edited by the user survives a re-render; the generated key is stable.
    let edited = text.replace("API_TOKEN=tok-123456", "API_TOKEN=mine-999999");
    h.write("keel.toml", &crate::fakehost::config(""));
    h.write("app/.env", &edited);
    h.keel()
        .arg("env")
        .arg("--example")
        .arg(&ex)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let again = h.read("app/.env");
    assert!(again.contains("API_TOKEN=mine-999999"), "{again}");
    let key = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("SECRET_KEY="))
            .unwrap()
            .to_string()
    };
    assert_eq!(key(&again), key(&text));
}

#[test]
fn init_refuses_without_a_terminal() {
    let h = Host::new();
    h.keel()
        .arg("init")
        .assert()
        .code(2)
        .stderr(contains("needs a terminal"));
}

#[test]
fn diagnose_writes_a_private_report_without_secrets() {
    let h = Host::new();
    h.install(&[]).success();
    h.keel()
        .arg("diagnose")
        .assert()
        .success()
        .stdout(contains("diagnostics-"));
    let dir = h.path("root/var/log/keel");
    let latest = std::fs::read_to_string(dir.join("diagnostics-latest.txt")).unwrap();
    assert!(
        latest.contains("SUMMARY") && latest.contains("keel steps"),
        "{latest}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dir.join("diagnostics-latest.json"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    for s in std::fs::read_dir(h.path("root/etc/keel/secrets"))
        .unwrap()
        .flatten()
    {
        let v = std::fs::read_to_string(s.path()).unwrap();
        for f in std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|f| f.path().is_file())
        {
            let text = std::fs::read_to_string(f.path()).unwrap_or_default();
            assert!(
                !text.contains(v.trim()),
                "secret {:?} in {:?}",
                s.file_name(),
                f.file_name()
            );
        }
    }
}

/// `keel init` in a pseudo-terminal, answered prompt by prompt: a missing source and one
/// without manage.py are refused at the question; the project is read (WSGI, Celery, the
/// check endpoints); the .env.example keys nothing fills are asked (the secret one hidden,
/// stored 0600, never echoed); the config written is one `keel plan` accepts.
#[test]
fn init_wizard_in_a_pty() {
    let h = Host::new();
    let app = h.path("shop-app");
    let status = std::process::Command::new("cp")
        .args([
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-app"),
        ])
        .arg(&app)
        .status()
        .unwrap();
    assert!(status.success());
    let mut example = std::fs::read_to_string(app.join(".env.example")).unwrap();
    example.push_str("\n# ---- Payments ----\nSTRIPE_API_KEY=\nSHOP_NAME=\n");
    std::fs::write(app.join(".env.example"), example).unwrap();
    let answers = serde_json::json!([
        ["App source", "no-such-dir\r"],
        ["refused: .*no-such-dir is not a directory", ""],
        ["App source", "shop-app/core\r"],
        ["refused: .*no manage.py", ""],
        ["App source", "shop-app\r"],
        [
            "wsgi +demo.wsgi:application(.|\n)*celery app +demo.celery \\(demo/celery.py\\)",
            ""
        ],
        // The directory's name is offered (never the settings package); the fake host
        // knows the user "demo".
        [
            "App name.*proposed from the project's directory.*shop-app",
            "demo\r"
        ],
        ["Domain", "shop.example.org\r"],
        ["HTTPS", "\r"],
        ["certificate authority", "ops@example.org\r"],
        ["admin's e-mail", "\r"],
        ["Build command", "python manage.py collectstatic --help\r"],
        ["Build command", "\r"],
        ["Release command", "\r"],
        ["STRIPE_API_KEY \\(hidden", "sk_live_hunter2\r"],
        ["SHOP_NAME", "Shop Inc\r"],
        [
            "what keel install would do(.|\n)*app-code(.|\n)*Write .*\\?",
            "\r"
        ],
    ]);
    let script = h.path("answers.json");
    std::fs::write(&script, answers.to_string()).unwrap();
    let out = h.path("keel.toml");
    std::fs::remove_file(&out).unwrap();
    let run = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pty_drive.py"))
        .arg(&script)
        .arg("--")
        .arg(assert_cmd::cargo::cargo_bin("keel"))
        .arg("--config")
        .arg(&out)
        .arg("--state-file")
        .arg(h.path("state.json"))
        .arg("init")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KEEL_ROOT", h.path("root"))
        .env("KEEL_FAKE_HOST", h.path("fake"))
        .output()
        .unwrap();
    let transcript = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{transcript}");
    assert!(
        !transcript.contains("hunter2"),
        "the secret was echoed: {transcript}"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    for want in [
        "name = \"demo\"",
        "domain = \"shop.example.org\"",
        "source = \"shop-app\"",
        "wsgi = \"demo.wsgi:application\"",
        "celery_app = \"demo.celery\"",
        "celery_ping_path = \"/celery-ping/\"",
        "mode = \"acme\"",
        "email = \"ops@example.org\"",
        "admin_email = \"ops@example.org\"",
        "SHOP_NAME = \"Shop Inc\"",
        "requirements = \"requirements.txt\"",
        "[build]\ncommands = [\"python manage.py collectstatic --help\"]",
    ] {
        assert!(text.contains(want), "{want} missing from {text}");
    }
    assert!(
        !text.contains("hunter2") && !text.contains("STRIPE"),
        "{text}"
    );
    let secret = h.path("root/etc/keel/secrets/env_stripe_api_key");
    assert_eq!(
        std::fs::read_to_string(&secret).unwrap().trim(),
        "sk_live_hunter2"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&secret).unwrap().mode() & 0o777, 0o600);
    // keel accepts what the wizard wrote: `plan` refuses an invalid config (exit 2), as the
    // test below shows, so its success here means something.
    h.keel()
        .arg("plan")
        .assert()
        .success()
        .stdout(contains("app-code"));
    // The install's .env gets the stored secret and the [env] value (HTTPS off: the fake
    // host has no CA).
    std::fs::write(&out, text.replace("mode = \"acme\"", "mode = \"off\"")).unwrap();
    h.install(&[]).success();
    let env = h.read("root/opt/demo/shared/.env");
    assert!(env.contains("STRIPE_API_KEY=sk_live_hunter2"), "{env}");
    assert!(env.contains("SHOP_NAME='Shop Inc'"), "{env}");
}

/// On a terminal: progress marks instead of timestamped lines, and the run's rollback shown
/// as its own phase (its undos are not counted as steps done).
#[test]
fn tty_output_shows_progress_and_the_rollback_phase() {
    let h = Host::new();
    h.rule("manage.py migrate\t1\t0\tboom");
    let cmd = format!(
        "{} --config {} --state-file {} install --yes",
        assert_cmd::cargo::cargo_bin("keel").display(),
        h.path("keel.toml").display(),
        h.path("state.json").display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env("KEEL_ROOT", h.path("root"))
        .env("KEEL_FAKE_HOST", h.path("fake"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("script (util-linux) is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains('\u{1b}'), "no terminal drawing: {text}");
    // NO_COLOR: cursor movement, but no colour (SGR) sequence.
    let sgr = text
        .split('\u{1b}')
        .skip(1)
        .filter(|s| {
            let body = s.strip_prefix('[').unwrap_or("");
            let params: String = body
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == ';')
                .collect();
            body[params.len()..].starts_with('m') && !params.is_empty() && params != "0"
        })
        .count();
    assert_eq!(sgr, 0, "colour escape codes under NO_COLOR: {text:?}");
    assert!(text.contains("✓ preflight"), "{text}");
    assert!(text.contains("✗ django"), "{text}");
    assert!(text.contains("rolled back"), "{text}");
    assert!(text.contains("keel rollback [0/15]"), "{text}");
    assert!(
        !text.contains("Z keel: ["),
        "plain log lines on a terminal: {text}"
    );
    assert!(text.contains("keel: step django failed"), "{text}");
}

#[test]
fn plan_refuses_an_invalid_config_but_prints_the_graph_without_one() {
    let h = Host::new();
    h.write(
        "keel.toml",
        "[app]\nname = \"demo\"\ndomain = \"x.example.com\"\nbase_dir = \"/etc\"\n",
    );
    h.keel()
        .arg("plan")
        .assert()
        .code(2)
        .stderr(contains("app.base_dir"));
    std::fs::remove_file(h.path("keel.toml")).unwrap();
    h.keel()
        .arg("plan")
        .assert()
        .success()
        .stdout(contains("app-code"));
}

/// CLI conventions: every subcommand's help shows an example; completions and the man page
/// come from the same definitions.
#[test]
fn every_subcommand_has_an_example_and_completions_and_man_page_exist() {
    use clap::CommandFactory;
    let h = Host::new();
    let cmd = keel::cli::Cli::command();
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|c| c.get_name().to_string())
        .collect();
    assert!(subs.len() >= 10, "{subs:?}");
    for sub in &subs {
        let out = h.keel().args([sub.as_str(), "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{sub} --help");
        assert!(
            text.contains("Example"),
            "{sub} --help has no example:\n{text}"
        );
        assert!(text.contains("keel "), "{sub}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = h.keel().args(["completions", shell]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("retry-step"),
            "{shell}: {text}"
        );
    }
    let out = h.keel().arg("manpage").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(".TH keel 1") && text.contains("install"),
        "{text}"
    );
}

/// `-q` says only what failed; `-v` shows every command as it starts (redacted); results go
/// to stdout and errors to stderr either way.
#[test]
fn quiet_and_verbose() {
    let h = Host::new();
    let out = h
        .keel()
        .args(["-q", "install", "--yes", "secrets"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "-q printed progress"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("step(s) run"));
    let out = h
        .keel()
        .args(["-v", "install", "--yes", "packages"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("[packages] $ apt-get"), "{err}");
    assert!(err.contains("[packages] started"), "{err}");
    // A failure still shows under -q, on stderr.
    h.rule("net:redis 6379 anon PING\t0\t0\t\t+PONG");
    let out = h
        .keel()
        .args(["-q", "install", "--yes", "redis"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[redis] failed") && err.contains("keel: error:"),
        "{err}"
    );
    assert!(!err.contains("started"), "{err}");
    h.keel()
        .args(["-q", "-v", "status"])
        .assert()
        .code(2)
        .stderr(contains("cannot be used with"));
}

/// The HTML page: one run bar per step that ran, the retries, the failed step and the
/// rolled-back ones; 0600; self-contained; no secret (the loop above covers every file).
#[test]
fn html_report_draws_the_last_runs_timeline() {
    let h = Host::new();
    h.rule("apt-get -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold update\t100\t1\tE: Failed to fetch http://mirror/x  Temporary failure resolving 'mirror'");
    h.rule("manage.py migrate\t1\t0\tdjango.db.utils.ProgrammingError: boom");
    h.install(&["--rollback", "run"]).failure();
    let dir = h.path("root/var/log/keel");
    let html = std::fs::read_to_string(dir.join("diagnostics-latest.html")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dir.join("diagnostics-latest.html"))
            .unwrap()
            .mode()
            & 0o777,
        0o600
    );
    let ran: Vec<String> = h
        .events()
        .into_iter()
        .filter(|e| e["event"] == "step-started")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert!(ran.len() > 5, "{ran:?}");
    assert_eq!(
        html.matches("<rect class=\"bar ").count(),
        ran.len(),
        "{html}"
    );
    for s in &ran {
        assert!(html.contains(&format!("data-step=\"{s}\"")), "{s}");
    }
    assert!(html.contains("<rect class=\"bar failed\" data-step=\"django\""));
    assert_eq!(html.matches("class=\"retry\"").count(), 1);
    assert!(html.contains("class=\"rollback\" data-step=\"postgres\""));
    assert!(html.contains("failed, rolled back"));
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));
    // A healthy install: the verify step's checks with their timings, verdict healthy.
    let h = Host::new();
    h.install(&[]).success();
    let html = h.read("root/var/log/keel/diagnostics-latest.html");
    assert!(html.contains("<h1>demo: healthy</h1>"), "{html}");
    assert!(html.contains("celery worker"));
    h.keel()
        .arg("diagnose")
        .assert()
        .success()
        .stdout(contains(".html"));
    let html = h.read("root/var/log/keel/diagnostics-latest.html");
    assert!(html.contains("keel verify&#39;s checks"), "{html}");
    assert!(html.contains("<td>redis</td>"), "{html}");
}

/// Redaction covers the admin's own secrets, for every command: an `[env]` value of a
/// secret-looking key and a hand-set `.env` secret, echoed into the app's journal by a
/// request, stay masked in the text, JSON and HTML reports (the journal line is there, so
/// the check is not vacuous).
#[test]
fn diagnose_masks_the_admins_own_secrets_in_every_format() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::config(
            "[env]\nSTRIPE_SECRET_KEY = \"sk_live_4eC39HqLyjWDarjtT1zdp7dc\"\n",
        ),
    );
    h.install(&[]).success();
    let env = h.path("root/opt/demo/shared/.env");
    let mut text = std::fs::read_to_string(&env).unwrap();
    text.push_str("MAILGUN_API_KEY=key-3ax6xnjp29jd6fds4gc373sgvjxteol0\nCACHE_URL=redis://:c4chePassw0rd@10.0.0.5:6379/1\n");
    std::fs::write(&env, text).unwrap();
    h.rule("journalctl -u demo-web -n\t0\t0\t\t2026-12-03T06:00:00 demo gunicorn: \"GET /?k=sk_live_4eC39HqLyjWDarjtT1zdp7dc&m=key-3ax6xnjp29jd6fds4gc373sgvjxteol0&c=c4chePassw0rd HTTP/1.1\" 200");
    h.keel().arg("diagnose").assert().success();
    let dir = h.path("root/var/log/keel");
    for f in [
        "diagnostics-latest.txt",
        "diagnostics-latest.json",
        "diagnostics-latest.html",
    ] {
        let r = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(
            r.contains("GET /?k="),
            "{f}: the journal line is missing: {r}"
        );
        for s in [
            "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "c4chePassw0rd",
        ] {
            assert!(!r.contains(s), "{s} in {f}");
        }
    }
}

/// Refusals that used to leave something behind or take bad input: each exits 2 with a hint
/// and the host (the fake root, the state file and what lies beside it) exactly as before.
#[test]
fn refusals_change_nothing() {
    fn snap(h: &Host) -> Vec<(String, u32, u64, String)> {
        let mut v = vec![];
        let mut stack = vec![h.dir.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let md = std::fs::symlink_metadata(e.path()).unwrap();
                if md.is_dir() {
                    stack.push(e.path());
                }
                use std::os::unix::fs::MetadataExt;
                let body = if md.is_file() {
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                } else {
                    String::new()
                };
                v.push((e.path().display().to_string(), md.mode(), md.len(), body));
            }
        }
        v.sort();
        v
    }
    let refused = |h: &Host, args: &[&str], text: &str| {
        let before = snap(h);
        h.keel()
            .args(args)
            .assert()
            .code(2)
            .stderr(contains(text))
            .stderr(contains("hint:"));
        let after = snap(h);
        let changed: Vec<_> = after
            .iter()
            .filter(|x| !before.contains(x))
            .map(|x| &x.0)
            .collect();
        let gone: Vec<_> = before
            .iter()
            .filter(|x| !after.contains(x))
            .map(|x| &x.0)
            .collect();
        assert!(
            changed.is_empty() && gone.is_empty(),
            "{args:?}: changed {changed:?}, gone {gone:?}"
        );
    };
    let h = Host::new();
    h.install(&[]).success();
    for f in ["state.json.lock", "state.json.backup.lock"] {
        let _ = std::fs::remove_file(h.path(f));
    }
    // No terminal to confirm on: refused before any lock file is made.
    refused(&h, &["rollback"], "no terminal to ask on");
    // Nothing earlier to switch back to: refused before the lock is taken.
    refused(
        &h,
        &["deploy", "--rollback"],
        "--rollback: no earlier healthy release to return to",
    );
    let first = std::fs::read_dir(h.path("root/var/backups/keel/demo"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.ends_with(".dump"))
        .unwrap();
    refused(
        &h,
        &["restore", &format!("/var/backups/keel/demo/{first}")],
        "no terminal to ask on",
    );
    // A state file another user could write is not trusted.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(h.path("state.json"), std::fs::Permissions::from_mode(0o666)).unwrap();
    refused(
        &h,
        &["install", "--yes"],
        "is writable by a user other than keel's",
    );
    refused(&h, &["status"], "is writable by a user other than keel's");
    std::fs::set_permissions(h.path("state.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // --resume of a cut run whose selection names a step this keel lacks: refused before
    // keel-resume.service is written.
    let mut st: serde_json::Value = serde_json::from_str(&h.read("state.json")).unwrap();
    st["last_run"]
        .as_object_mut()
        .unwrap()
        .remove("finished_at");
    st["last_run"]["outcome"] = serde_json::json!("running");
    st["last_run"]["targets"] = serde_json::json!(["nginx-extra"]);
    let _ = std::fs::remove_file(h.path("root/etc/systemd/system/keel-resume.service"));
    h.write("state.json", &st.to_string());
    std::fs::set_permissions(h.path("state.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
    refused(
        &h,
        &["install", "--yes", "--resume"],
        "the interrupted run to resume",
    );
    assert!(
        !h.path("root/etc/systemd/system/keel-resume.service")
            .exists()
    );
    // `keel env`: a keel.toml that exists but is malformed is an error, not skipped; a
    // required value missing is found before any secret is stored.
    let h = Host::new();
    h.write("app/.env.example", "SECRET_KEY=\nSTRIPE_API_KEY=\n");
    let ex = h.path("app/.env.example").display().to_string();
    let out = h.path("out.env").display().to_string();
    h.write("keel.toml", "[app\n");
    refused(&h, &["env", "--example", &ex, "--out", &out], "keel.toml");
    h.write("keel.toml", &crate::fakehost::config(""));
    refused(
        &h,
        &["env", "--example", &ex, "--out", &out],
        "required values missing for .env: STRIPE_API_KEY",
    );
    assert!(!h.path("root/etc/keel/secrets").exists());
    // diagnose on a state file it cannot read: refused before any check (a check could
    // create a missing secret).
    h.write("state.json", "{not json");
    refused(&h, &["diagnose"], "not valid JSON");
    assert!(!h.path("root/etc/keel/secrets").exists());
    std::fs::remove_file(h.path("state.json")).unwrap();
    // A lock path that is a directory: exit 2 naming it, with a hint.
    std::fs::create_dir_all(h.path("state.json.lock")).unwrap();
    refused(&h, &["install", "--yes"], "state.json.lock");
}

/// A reader that stops early (`keel completions bash | head -1`) closes the pipe: keel
/// leaves with SIGPIPE's status and no panic text (71 KB of completions overflow the pipe).
#[test]
fn a_reader_that_stops_early_is_not_a_crash() {
    let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("keel"))
        .args(["completions", "bash"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(c.stdout.take());
    let out = c.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
