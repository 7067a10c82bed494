//! Graph, state, retry and rollback behaviour of `keel install` on the fake host.
use crate::fakehost::{Host, REDIS_CONF, config, exists, reason};
use predicates::str::contains;

#[test]
fn full_install_then_noop() {
    let h = Host::new();
    h.install(&[]).success().stdout(contains("all good"));
    for s in [
        "preflight",
        "packages",
        "system-user",
        "secrets",
        "postgres",
        "redis",
        "nginx",
    ] {
        assert_eq!(h.status_of(s), "completed", "{s}");
    }
    let cmds = h.commands();
    assert!(
        cmds.contains("[packages] apt-get") && cmds.contains(" update"),
        "{cmds}"
    );
    assert!(
        cmds.contains("install --no-install-recommends -- postgresql redis-server nginx"),
        "{cmds}"
    );
    assert!(
        cmds.contains("[postgres] runuser -u postgres -- psql"),
        "{cmds}"
    );
    assert!(cmds.contains("[nginx] nginx -t"), "{cmds}");
    // The site is rendered and enabled, the default site disabled, redis includes keel's file.
    assert!(
        h.read("root/etc/nginx/sites-available/keel-demo.conf")
            .contains("server_name demo.localhost localhost 127.0.0.1 [::1];")
    );
    assert!(exists(
        &h.path("root/etc/nginx/sites-enabled/keel-demo.conf")
    ));
    assert!(!exists(&h.path("root/etc/nginx/sites-enabled/default")));
    assert!(
        h.read("root/etc/redis/redis.conf")
            .ends_with("include /etc/redis/keel.conf\n")
    );
    // Second run: nothing runs, not a single command.
    // The app: code copied, .env generated 0600 for the app user, units written.
    assert!(
        h.read("root/opt/demo/current/manage.py")
            .contains("DJANGO_SETTINGS_MODULE")
    );
    let env = h.read("root/opt/demo/shared/.env");
    assert!(env.contains("DEBUG=False"), "{env}");
    assert!(env.contains("DATABASE_URL=postgres://demo:"), "{env}");
    use std::os::unix::fs::MetadataExt;
    // The trust boundary: settings are root's and only readable by the app's group; code
    // and base dir root's; the app writes only staticfiles and media; the venv belongs to
    // the build user, whose pip never runs as root.
    let md = std::fs::metadata(h.path("root/opt/demo/shared/.env")).unwrap();
    assert_eq!((md.mode() & 0o777, md.uid(), md.gid()), (0o640, 0, 998));
    let owner = |p: &str| {
        let m = std::fs::symlink_metadata(h.path(p)).unwrap();
        (m.uid(), m.mode() & 0o777)
    };
    assert_eq!(owner("root/opt/demo"), (0, 0o755));
    assert_eq!(owner("root/opt/demo/releases"), (0, 0o755));
    // One release, `current` a relative link to it; its venv a link into venvs/.
    let cur = std::fs::read_link(h.path("root/opt/demo/current")).unwrap();
    assert!(cur.starts_with("releases/"), "{cur:?}");
    let venv = std::fs::read_link(h.path("root/opt/demo/current/venv")).unwrap();
    assert!(venv.starts_with("../../venvs/"), "{venv:?}");
    assert_eq!(owner("root/opt/demo/current/venv/"), (997, 0o755));
    assert!(exists(&h.path("root/opt/demo/current/venv/.keel-complete")));
    let st = h.state();
    assert_eq!(
        st["releases"]["current"],
        cur.strip_prefix("releases").unwrap().to_str().unwrap()
    );
    assert_eq!(st["releases"]["list"][0]["status"], "ok");
    assert_eq!(st["releases"]["list"][0]["by"], "install");
    assert_eq!(owner("root/opt/demo/current/manage.py"), (0, 0o644));
    assert_eq!(owner("root/opt/demo/current/core"), (0, 0o755));
    assert_eq!(owner("root/opt/demo/current/staticfiles"), (998, 0o755));
    assert_eq!(owner("root/opt/demo/shared/media"), (998, 0o755));
    assert_eq!(owner("root/opt/demo/venvs"), (997, 0o755));
    // uv installs as the build user, into the release's venv, bytecode compiled.
    assert!(
        cmds.contains("[python-env] nice -n 10 runuser -u demo-build -- /var/lib/keel/tools/bin/uv pip install -q --compile-bytecode --python /opt/demo/venvs/"),
        "{cmds}"
    );
    assert!(
        cmds.contains("[system-user] useradd") || !cmds.contains("useradd"),
        "{cmds}"
    );
    for u in ["demo-web", "demo-worker", "demo-beat"] {
        assert!(
            exists(&h.path(&format!("root/etc/systemd/system/{u}.service"))),
            "{u}"
        );
    }
    // The app's commands run in a transient unit with the app's sandbox: the app's uid, but
    // nogroup as the primary group (the running app cannot reach them through /proc), its
    // .env as the units get it, and nothing secret on the command line.
    let migrate = cmds
        .lines()
        .find(|l| l.starts_with("[django] ") && l.ends_with("manage.py migrate --noinput"))
        .unwrap_or_else(|| panic!("no migrate in {cmds}"));
    for part in [
        "[django] systemd-run --quiet --collect --wait --pipe --service-type=exec --unit=keel-run-demo-",
        " -p User=demo -p Group=nogroup -p SupplementaryGroups=demo ",
        "/opt/demo/shared/.env",
        " -p ProtectProc=invisible ",
        " -p NoNewPrivileges=yes ",
        " -- /opt/demo/current/venv/bin/python manage.py migrate --noinput",
    ] {
        assert!(migrate.contains(part), "{part} not in {migrate}");
    }
    assert!(!migrate.contains("runuser"), "{migrate}");
    // Root's Python runs isolated (-I: no directory of anyone's first on sys.path), and uv
    // is installed only with one of the pinned wheel hashes.
    assert!(
        cmds.contains("python3 -I -m venv --clear --without-pip /var/lib/keel/tools"),
        "{cmds}"
    );
    assert!(
        cmds.contains("/var/lib/keel/tools/bin/python -I /usr/share/python-wheels/")
            && cmds.contains("--no-deps --require-hashes -r /dev/stdin"),
        "{cmds}"
    );
    assert!(keel::app::venv::uv_requirement().starts_with(&format!(
        "uv=={} --hash=sha256:",
        keel::app::venv::UV_VERSION
    )));
    h.install(&[]).success().stdout(contains(format!(
        "0 step(s) run, {} already done",
        keel::steps::graph().ids().len()
    )));
    // A no-op runs one command: the drift check's `systemctl is-active` over every unit.
    let after = h.commands();
    let extra: Vec<&str> = after[cmds.len()..].lines().collect();
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert!(
        extra[0].starts_with(
            "[drift] systemctl is-active apt-daily-upgrade.timer postgresql redis-server nginx keel-backup-demo.timer demo-web.socket"
        ),
        "{extra:?}"
    );
}

#[test]
fn secrets_never_reach_argv_state_or_logs() {
    let h = Host::new();
    h.install(&[]).success();
    let pw = h
        .read("root/etc/keel/secrets/postgres_password")
        .trim()
        .to_string();
    let rpw = h
        .read("root/etc/keel/secrets/redis_password")
        .trim()
        .to_string();
    assert!(pw.len() >= 40 && rpw.len() >= 40);
    for (name, text) in [
        ("commands", h.commands()),
        ("state", h.read("state.json")),
        ("events", h.read("root/var/log/keel/events.jsonl")),
        (
            "postgres log",
            h.read("root/var/log/keel/steps/postgres.log"),
        ),
    ] {
        assert!(
            !text.contains(&pw) && !text.contains(&rpw),
            "secret in {name}"
        );
    }
    // The redis config holds only the password's SHA-256 (an ACL), readable by redis only.
    let conf = h.read("root/etc/redis/keel.conf");
    assert!(!conf.contains(&rpw), "{conf}");
    let sha: String = {
        use sha2::Digest;
        sha2::Sha256::digest(rpw.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    assert!(
        conf.contains(&format!(
            "user default on #{sha} ~* &* +@all -@admin -@dangerous"
        )),
        "{conf}"
    );
    // PostgreSQL gets a SCRAM verifier, not the password.
    let pglog = h.read("root/var/log/keel/steps/postgres.log");
    assert!(
        h.commands()
            .contains("[postgres] runuser -u postgres -- psql")
    );
    assert!(!pglog.contains(&pw));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(h.path("root/etc/redis/keel.conf"))
            .unwrap()
            .mode()
            & 0o777,
        0o640
    );
    // Re-runs reuse the secrets.
    h.install(&["--retry-step", "secrets"]).success();
    assert_eq!(h.read("root/etc/keel/secrets/postgres_password").trim(), pw);
}

#[test]
fn targets_pull_in_only_their_dependencies() {
    let h = Host::new();
    h.install(&["redis"]).success();
    assert_eq!(h.status_of("redis"), "completed");
    assert_eq!(h.status_of("secrets"), "completed");
    assert_eq!(h.status_of("nginx"), "pending");
    assert_eq!(h.status_of("postgres"), "pending");
    assert!(!h.commands().contains("[nginx]"));
}

#[test]
fn retry_step_reruns_it_and_everything_downstream() {
    let h = Host::new();
    h.install(&[]).success();
    let plan = h.dry_run(&["--retry-step", "secrets"]);
    for s in ["secrets", "postgres", "redis"] {
        assert!(reason(&plan, s).contains("forced"), "{s}: {plan:?}");
    }
    for s in ["preflight", "packages", "system-user", "nginx"] {
        assert!(
            reason(&plan, s).starts_with("skip: completed"),
            "{s}: {plan:?}"
        );
    }
    let before = h.commands().len();
    h.install(&["--retry-step", "secrets"]).success();
    let new = &h.commands()[before..];
    assert!(
        new.contains("[postgres]") && new.contains("[redis]"),
        "{new}"
    );
    assert!(
        !new.contains("[nginx]") && !new.contains("[packages]"),
        "{new}"
    );
}

#[test]
fn changed_config_makes_only_affected_steps_stale() {
    let h = Host::new();
    h.install(&[]).success();
    h.write(
        "keel.toml",
        &config("[redis]\nport = 6379\nmaxmemory_mb = 512\n"),
    );
    let plan = h.dry_run(&[]);
    assert!(reason(&plan, "redis").contains("stale"), "{plan:?}");
    assert_eq!(
        plan.iter().filter(|(_, r)| r.starts_with("run")).count(),
        1,
        "{plan:?}"
    );
    h.install(&[]).success();
    assert!(
        h.read("root/etc/redis/keel.conf")
            .contains("maxmemory 512mb")
    );
    assert!(
        h.commands()
            .contains("[redis] systemctl restart redis-server")
    );
}

#[test]
fn interrupted_step_runs_again() {
    let h = Host::new();
    h.install(&["packages"]).success();
    // As after kill -9 or a reboot in the middle of the step.
    let mut st = h.state();
    st["steps"]["packages"]["status"] = "running".into();
    h.write("state.json", &st.to_string());
    assert!(reason(&h.dry_run(&["packages"]), "packages").contains("interrupted"));
    h.install(&["packages"]).success();
    assert_eq!(h.status_of("packages"), "completed");
    let cmds = h.commands();
    let installs = cmds
        .lines()
        .filter(|l| {
            l.starts_with("[packages]")
                && l.ends_with(
                    "install --no-install-recommends -- postgresql redis-server nginx logrotate unattended-upgrades nftables netbase",
                )
        })
        .count();
    assert_eq!(installs, 2, "the interrupted step ran again");
    // python-packages ran apt-get update minutes ago: packages did not repeat it.
    assert_eq!(
        cmds.lines().filter(|l| l.ends_with(" update")).count(),
        1,
        "{cmds}"
    );
}

#[test]
fn transient_failures_are_retried_and_recorded() {
    let h = Host::new();
    h.rule("apt-get -y -q -o DPkg::Lock::Timeout=120 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold update\t100\t2\tE: Failed to fetch http://mirror/x  Temporary failure resolving 'mirror'");
    h.install(&["packages"]).success();
    let retries: Vec<_> = h
        .events()
        .into_iter()
        .filter(|e| e["event"] == "step-retried")
        .collect();
    assert_eq!(retries.len(), 2, "{retries:?}");
    assert!(
        retries[0]["error"]
            .as_str()
            .unwrap()
            .contains("exited with status 100")
    );
    // The first apt step to run update met the two failures.
    assert_eq!(h.state()["steps"]["python-packages"]["attempts"], 3);
    assert_eq!(h.state()["steps"]["packages"]["attempts"], 1);
}

#[test]
fn permanent_failures_fail_at_once_with_stderr_and_hint() {
    let h = Host::new();
    h.rule("install --no-install-recommends -- postgresql\t100\t0\tReading package lists...\\nE: Unable to locate package postgresql");
    h.install(&["packages"])
        .code(1)
        .stdout(contains("exited with status 100"))
        .stdout(contains("Unable to locate package postgresql"))
        .stdout(contains("[packages] install"));
    assert_eq!(
        h.commands()
            .matches("install --no-install-recommends -- postgresql")
            .count(),
        1
    );
    let st = h.state();
    assert_eq!(st["steps"]["packages"]["status"], "failed");
    assert!(
        st["steps"]["packages"]["last_error"]["hint"]
            .as_str()
            .unwrap()
            .contains("package names")
    );
    assert_eq!(st["last_run"]["outcome"], "failed");
}

#[test]
fn failure_rolls_back_the_run_in_reverse_order_and_keeps_data() {
    let h = Host::new();
    h.install(&["packages"]).success();
    // nginx -t fails after the nginx step wrote its site (a broken file elsewhere).
    h.rule("nginx -t\t1\t1\tnginx: [emerg] unknown directive in /etc/nginx/conf.d/broken.conf:1");
    let out = h.keel().args(["install", "--yes"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(h.status_of("nginx"), "failed");
    // nginx's own changes were undone by its transaction.
    assert!(!exists(
        &h.path("root/etc/nginx/sites-available/keel-demo.conf")
    ));
    assert!(exists(&h.path("root/etc/nginx/sites-enabled/default")));
    // Steps completed in this run were undone in reverse order of completion.
    let ev = h.events();
    let run = ev.last().unwrap()["run_id"].clone();
    let of = |kind: &str| -> Vec<String> {
        ev.iter()
            .filter(|e| e["run_id"] == run && e["event"] == kind)
            .map(|e| e["step"].as_str().unwrap().to_string())
            .collect()
    };
    let mut finished = of("step-finished");
    finished.reverse();
    assert!(!finished.is_empty());
    assert_eq!(of("step-rolled-back"), finished);
    for s in &finished {
        assert_eq!(h.status_of(s), "rolled-back", "{s}");
    }
    assert_eq!(
        h.status_of("packages"),
        "completed",
        "steps from earlier runs are kept"
    );
    // Config keel wrote is gone; data is kept.
    assert_eq!(h.read("root/etc/redis/redis.conf"), REDIS_CONF);
    assert!(!exists(&h.path("root/etc/redis/keel.conf")));
    assert!(!exists(
        &h.path("root/etc/postgresql/15/main/conf.d/keel.conf")
    ));
    assert!(exists(&h.path("root/etc/keel/secrets/postgres_password")));
    assert!(exists(&h.path("root/opt/demo")));
    // The next run redoes the rolled-back steps and succeeds.
    let plan = h.dry_run(&[]);
    assert!(reason(&plan, "secrets").contains("rolled back"), "{plan:?}");
    h.install(&[]).success();
}

#[test]
fn rollback_step_mode_keeps_other_steps() {
    let h = Host::new();
    // Migrations are left unapplied: the django step fails its check after running.
    h.rule("migrate --check\t1\t0\tYou have 1 unapplied migration(s).");
    h.keel()
        .args(["install", "--yes", "--rollback", "step"])
        .assert()
        .code(1);
    assert_eq!(h.status_of("django"), "failed");
    assert_eq!(h.status_of("redis"), "completed");
    assert_eq!(h.status_of("services"), "pending");
    assert!(exists(&h.path("root/etc/redis/keel.conf")));
    assert!(exists(&h.path("root/opt/demo/shared/.env")));
}

#[test]
fn rollback_command_needs_confirmation_and_keeps_data() {
    let h = Host::new();
    h.install(&[]).success();
    // No TTY and no --yes: refused, nothing changed.
    h.keel()
        .arg("rollback")
        .assert()
        .code(2)
        .stderr(contains("--yes"));
    assert_eq!(h.status_of("redis"), "completed");
    h.keel()
        .args(["rollback", "--yes"])
        .assert()
        .success()
        .stdout(contains("verify, schedules, services, backup, django, build, app-env, python-env, app-code, tls, nginx, redis, postgres, secrets, system-user, firewall, baseline, packages, python-packages, preflight"));
    for u in ["demo-web", "demo-worker", "demo-beat"] {
        assert!(
            !exists(&h.path(&format!("root/etc/systemd/system/{u}.service"))),
            "{u} unit left behind"
        );
    }
    assert!(
        h.commands()
            .contains("[services] systemctl disable --now demo-web")
    );
    assert_eq!(h.status_of("nginx"), "rolled-back");
    assert_eq!(h.read("root/etc/redis/redis.conf"), REDIS_CONF);
    assert!(exists(&h.path("root/etc/nginx/sites-enabled/default")));
    assert!(exists(&h.path("root/etc/keel/secrets/redis_password")));
    assert!(exists(&h.path("root/opt/demo")));
}

#[test]
fn waits_for_the_dpkg_lock_and_names_the_holder() {
    let h = Host::new();
    let lock = h.path("root/var/lib/dpkg/lock-frontend");
    let mut holder = std::process::Command::new("python3")
        .args(["-c", &format!("import fcntl,time;f=open('{}','w');fcntl.lockf(f,fcntl.LOCK_EX);print('held',flush=True);time.sleep(2)", lock.display())])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut b = [0u8; 4];
    std::io::Read::read_exact(holder.stdout.as_mut().unwrap(), &mut b).unwrap();
    let t = std::time::Instant::now();
    h.install(&["packages"])
        .success()
        .stderr(contains(format!("held by pid {}", holder.id())))
        .stderr(contains("python3"));
    assert!(t.elapsed() >= std::time::Duration::from_millis(1000));
    holder.wait().unwrap();
    assert!(h.events().iter().any(|e| e["event"] == "dpkg-lock-wait"));
}

#[test]
fn preflight_errors_refuse_with_exit_3_unless_ignored() {
    let h = Host::new();
    h.write(
        "root/etc/os-release",
        "ID=centos\nVERSION_ID=\"9\"\nPRETTY_NAME=\"CentOS Stream 9\"\n",
    );
    h.install(&["packages"])
        .code(3)
        .stderr(contains("preflight refused"))
        .stdout(contains("os"));
    assert!(!h.commands().contains("apt-get"));
    h.install(&["packages", "--ignore-preflight-errors", "os"])
        .success();
    let line = h.read("root/var/log/keel/preflight.jsonl");
    assert_eq!(line.lines().count(), 2, "one line per preflight run");
}

#[test]
fn editing_a_template_reruns_only_the_steps_that_use_it() {
    let h = Host::new();
    h.install(&[]).success();
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/nginx-site.conf.j2"
    ))
    .unwrap();
    h.write(
        "root/etc/keel/templates/nginx-site.conf.j2",
        &format!("# edited by the operator\n{src}"),
    );
    let plan = h.dry_run(&[]);
    let runs: Vec<&str> = plan
        .iter()
        .filter(|(_, r)| r.starts_with("run"))
        .map(|(i, _)| i.as_str())
        .collect();
    assert_eq!(runs, vec!["nginx", "tls", "verify"], "{plan:?}");
    h.install(&[]).success();
    let site = "root/etc/nginx/sites-available/keel-demo.conf";
    assert!(h.read(site).starts_with("# edited by the operator"));
    // A broken override: the step fails naming the file; the site keel wrote before stays.
    h.write(
        "root/etc/keel/templates/nginx-site.conf.j2",
        "server { {{ no_such_variable }} }\n",
    );
    h.install(&[])
        .code(1)
        .stdout(contains("etc/keel/templates/nginx-site.conf.j2"))
        .stdout(contains("undefined"));
    assert!(h.read(site).starts_with("# edited by the operator"));
}

/// A file deleted from a local source is removed from the deployed app on the next run;
/// files keel did not deploy (.env, uploads) stay.
#[test]
fn files_deleted_from_the_source_leave_the_deployed_app() {
    let h = Host::new();
    let src = h.path("src-app");
    let copy = std::process::Command::new("cp")
        .arg("-r")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-app"))
        .arg(&src)
        .status()
        .unwrap();
    assert!(copy.success());
    h.write("src-app/core/old_module.py", "X = 1\n");
    let cfg = config("").replace(
        &format!("{}/examples/demo-app", env!("CARGO_MANIFEST_DIR")),
        src.to_str().unwrap(),
    );
    h.write("keel.toml", &cfg);
    h.install(&[]).success();
    assert!(exists(&h.path("root/opt/demo/current/core/old_module.py")));
    h.write("root/opt/demo/shared/media/upload.png", "user data");
    let first = std::fs::read_link(h.path("root/opt/demo/current")).unwrap();

    std::fs::remove_file(src.join("core/old_module.py")).unwrap();
    // Only the source changed: a new release, whose venv python-env links (the same
    // requirements: nothing installed), and django waits for app-code.
    let plan = h.dry_run(&[]);
    assert!(reason(&plan, "app-code").contains("changed"), "{plan:?}");
    let before = h.events().len();
    h.install(&[]).success();
    let order: Vec<String> = h.events()[before..]
        .iter()
        .filter(|e| e["step"] == "app-code" || e["step"] == "django")
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["step"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        &order[..3],
        [
            "step-started app-code",
            "step-finished app-code",
            "step-started django"
        ],
        "{order:?}"
    );
    assert!(!exists(&h.path("root/opt/demo/current/core/old_module.py")));
    assert!(exists(&h.path("root/opt/demo/current/core/views.py")));
    assert_eq!(h.read("root/opt/demo/shared/media/upload.png"), "user data");
    assert!(exists(&h.path("root/opt/demo/shared/.env")));
    // The first release is kept beside the new one, untouched.
    let second = std::fs::read_link(h.path("root/opt/demo/current")).unwrap();
    assert_ne!(first, second);
    assert!(exists(
        &h.path("root/opt/demo")
            .join(&first)
            .join("core/old_module.py")
    ));
    assert_eq!(h.state()["releases"]["list"].as_array().unwrap().len(), 2);
    let cmds = h.commands();
    assert_eq!(
        cmds.matches("uv pip install").count(),
        1,
        "the second release reuses the venv: {cmds}"
    );
}

/// Every install arms keel-resume.service (enabled by its WantedBy link); `keel rollback`
/// removes it.
#[test]
fn install_arms_the_resume_unit_and_rollback_removes_it() {
    let h = Host::new();
    h.install(&["secrets"]).success();
    let unit = h.read("root/etc/systemd/system/keel-resume.service");
    assert!(unit.contains("install --yes --resume"), "{unit}");
    assert!(
        unit.contains(&format!("--state-file {}", h.path("state.json").display())),
        "{unit}"
    );
    let link = h.path("root/etc/systemd/system/multi-user.target.wants/keel-resume.service");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::path::Path::new("/etc/systemd/system/keel-resume.service")
    );
    h.keel().args(["rollback", "--yes"]).assert().success();
    assert!(!exists(&link));
    assert!(!exists(
        &h.path("root/etc/systemd/system/keel-resume.service")
    ));
}

/// A run cut short (state left `running`, as after a reboot) is resumed by `install --resume`
/// with the same step selection; a finished one is not.
#[test]
fn resume_reruns_a_cut_run_with_its_selection_and_nothing_else() {
    let h = Host::new();
    h.install(&["redis"]).success();
    let mut st = h.state();
    assert_eq!(st["last_run"]["targets"], serde_json::json!(["redis"]));
    st["last_run"]["outcome"] = "running".into();
    st["steps"]["redis"]["status"] = "running".into();
    h.write("state.json", &st.to_string());
    h.keel().arg("status").assert().success().stdout(contains(
        "cut short (killed or rebooted): `keel install --resume`",
    ));
    h.install(&["--resume"])
        .success()
        .stderr(contains("resuming run"))
        .stderr(contains("cut short during: redis"))
        .stdout(contains("1 step(s) run"));
    assert_eq!(h.status_of("redis"), "completed");
    // The resumed run kept the selection: nothing outside redis' closure ran.
    assert_eq!(h.status_of("nginx"), "pending");
    assert_eq!(h.status_of("django"), "pending");
    h.install(&["--resume"])
        .success()
        .stdout(contains("nothing to resume"));
    // --resume picks its own selection: combining it with one is a usage error.
    h.install(&["--resume", "nginx"]).code(2);
}

/// After a reboot cut a run, `status --wait` waits for keel-resume.service rather than
/// reporting the interruption (cloud-init's `keel status --wait` then sees the real end).
#[test]
fn status_wait_waits_for_the_resume_after_a_reboot() {
    let h = Host::new();
    h.write("root/proc/sys/kernel/random/boot_id", "boot-1\n");
    h.install(&["secrets"]).success();
    let mut st = h.state();
    assert_eq!(st["last_run"]["boot_id"], "boot-1");
    st["last_run"]["outcome"] = "running".into();
    h.write("state.json", &st.to_string());
    // Same boot: killed, not rebooted; nothing will resume it by itself.
    h.keel()
        .args(["status", "--wait", "--timeout", "5"])
        .assert()
        .code(1)
        .stdout(contains("stopped without finishing"));
    h.write("root/proc/sys/kernel/random/boot_id", "boot-2\n");
    // systemd (the fake host's) says the boot is still going and the unit has not run.
    h.rule("is-system-running\t1\t0\t\tstarting");
    h.keel()
        .args(["status", "--wait", "--timeout", "1"])
        .assert()
        .code(1)
        .stderr(contains("waiting for keel-resume.service to resume run"))
        .stderr(contains("timed out"));
    // Once resumed, the wait reports the resumed run.
    h.install(&["--resume"]).success();
    h.keel()
        .args(["status", "--wait", "--timeout", "5"])
        .assert()
        .success();
}
