//! Real projects' shapes on the fake host: a requirements file named in keel.toml whose
//! `-r` includes are followed (a change in an included file alone makes a new venv), and
//! `[django] settings` reaching the app through its .env.
use crate::fakehost::{Host, config};

/// The demo app copied into the fake host's tree, with `requirements/{production,base}.txt`
/// in place of requirements.txt.
fn split_requirements_app(h: &Host) -> std::path::PathBuf {
    let reqs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/demo-app/requirements.txt"
    ))
    .unwrap();
    app_with(
        h,
        &[
            ("requirements/base.txt", &reqs),
            (
                "requirements/production.txt",
                "-r base.txt\n-c constraints.txt\n",
            ),
            ("requirements/constraints.txt", ""),
        ],
    )
}

fn venv_of_current(h: &Host) -> String {
    std::fs::read_link(h.path("root/opt/demo/current/venv"))
        .or_else(|_| {
            let cur = std::fs::read_link(h.path("root/opt/demo/current")).unwrap();
            std::fs::read_link(h.path("root/opt/demo").join(cur).join("venv"))
        })
        .unwrap()
        .display()
        .to_string()
}

#[test]
fn included_requirements_files_are_followed_and_fingerprinted() {
    let h = Host::new();
    let app = split_requirements_app(&h);
    let cfg = config("")
        .replace(
            &format!("source = \"{}/examples/demo-app\"", env!("CARGO_MANIFEST_DIR")),
            &format!("source = \"{}\"", app.display()),
        )
        .replace(
            "[django]\n",
            "[django]\nrequirements = \"requirements/production.txt\"\nsettings = \"demo.settings\"\n",
        );
    h.write("keel.toml", &cfg);
    h.install(&[]).success();
    let first = venv_of_current(&h);
    let cmds = h.commands();
    assert!(
        cmds.contains("-r /opt/demo/releases/") && cmds.contains("/requirements/production.txt\n"),
        "{cmds}"
    );
    assert!(
        h.read("root/opt/demo/shared/.env")
            .contains("DJANGO_SETTINGS_MODULE=demo.settings"),
        "the settings module is not in the .env"
    );
    // Only the included file changes: a new venv.
    let base = app.join("requirements/base.txt");
    let mut text = std::fs::read_to_string(&base).unwrap();
    text.push_str("six\n");
    std::fs::write(&base, text).unwrap();
    h.install(&[]).success();
    let second = venv_of_current(&h);
    assert_ne!(
        first, second,
        "a change in base.txt alone must build a new venv"
    );
    // Only the constraints file changes: a new venv again.
    std::fs::write(app.join("requirements/constraints.txt"), "six<2\n").unwrap();
    h.install(&[]).success();
    assert_ne!(second, venv_of_current(&h));
}

/// An include that leaves the app's tree is refused before anything is written.
#[test]
fn an_include_outside_the_app_is_refused() {
    let h = Host::new();
    let app = split_requirements_app(&h);
    std::fs::write(
        app.join("requirements/production.txt"),
        "-r ../../../etc/passwd\n",
    )
    .unwrap();
    let cfg = config("")
        .replace(
            &format!(
                "source = \"{}/examples/demo-app\"",
                env!("CARGO_MANIFEST_DIR")
            ),
            &format!("source = \"{}\"", app.display()),
        )
        .replace(
            "[django]\n",
            "[django]\nrequirements = \"requirements/production.txt\"\n",
        );
    h.write("keel.toml", &cfg);
    h.install(&[])
        .code(2)
        .stderr(predicates::str::contains("django.requirements"))
        .stderr(predicates::str::contains("outside the app's tree"));
    assert_eq!(h.commands(), "", "nothing may run");
}

/// The admin user: made by Django's own `createsuperuser --noinput` (custom user models, an
/// e-mail USERNAME_FIELD), the password only on stdin; `admin_user = ""` makes none, on
/// purpose (accepted, and said).
#[test]
fn the_admin_user_is_djangos_createsuperuser_or_none() {
    let h = Host::new();
    h.install(&[]).success();
    let log = h.read("root/var/log/keel/steps/django.log");
    assert!(log.contains("manage.py shell --no-startup"), "{log}");
    assert!(log.contains("(stdin supplied, not logged)"), "{log}");
    let pw = h.read("root/etc/keel/secrets/admin_password");
    assert!(
        !h.commands().contains(pw.trim()),
        "the password reached a command line"
    );
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("").replace("[django]\n", "[django]\nadmin_user = \"\"\n"),
    );
    h.install(&[]).success().stderr(predicates::str::contains(
        "no admin user (django.admin_user is empty)",
    ));
    assert!(
        !h.commands().contains("manage.py shell --no-startup"),
        "{}",
        h.commands()
    );
}

/// packages.build arrives in the first apt run, before the venv is built (psycopg from
/// source needs libpq-dev and a compiler at that moment, not after).
#[test]
fn build_packages_come_before_the_venv() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("[packages]\nbuild = [\"build-essential\", \"libpq-dev\", \"python3-dev\"]\n"),
    );
    h.installed(&["build-essential", "libpq-dev", "python3-dev"]);
    h.install(&[]).success();
    let cmds = h.commands();
    let apt = cmds
        .lines()
        .find(|l| l.starts_with("[python-packages]") && l.contains("install"))
        .unwrap_or_else(|| panic!("{cmds}"));
    for p in ["build-essential", "libpq-dev", "python3-dev"] {
        assert!(apt.contains(p), "{p} not in {apt}");
    }
    let pos = |s: &str| cmds.find(s).unwrap_or_else(|| panic!("no {s} in {cmds}"));
    assert!(pos(apt) < pos("uv pip install"));
    // Recommends are left out unless asked for; asking re-runs both apt steps with them.
    assert!(apt.contains("--no-install-recommends"), "{apt}");
    h.write(
        "keel.toml",
        &config("[packages]\nbuild = [\"build-essential\", \"libpq-dev\", \"python3-dev\"]\nrecommends = true\n"),
    );
    h.install(&[]).success();
    let cmds = h.commands();
    let runs: Vec<&str> = cmds
        .lines()
        .filter(|l| l.contains("apt-get") && l.contains(" install "))
        .collect();
    assert_eq!(runs.len(), 4, "{cmds}");
    assert!(
        runs[2..].iter().all(|l| !l.contains("recommends")),
        "{cmds}"
    );
}

/// Celery as the app routes it: the worker consumes the queues, pool and options listed in
/// [celery]; without them the unit is as before (Celery's default queue).
#[test]
fn the_worker_consumes_the_configured_queues() {
    let h = Host::new();
    h.install(&[]).success();
    let unit = h.read("root/etc/systemd/system/demo-worker.service");
    assert!(!unit.contains("--queues"), "{unit}");
    h.write(
        "keel.toml",
        &config("[celery]\nqueues = [\"celery\", \"suggested_users\", \"low.priority\"]\npool = \"threads\"\nextra_args = [\"--max-tasks-per-child=100\"]\n"),
    );
    h.install(&[]).success();
    let unit = h.read("root/etc/systemd/system/demo-worker.service");
    assert!(
        unit.contains(
            "--queues celery,suggested_users,low.priority --pool threads --max-tasks-per-child=100"
        ),
        "{unit}"
    );
    assert!(
        h.commands().contains("restart demo-worker")
            || h.commands().contains("demo-worker.service"),
        "the worker was not restarted"
    );
}

/// The demo app with its requirements.txt replaced by `files` (path, text).
fn app_with(h: &Host, files: &[(&str, &str)]) -> std::path::PathBuf {
    let app = h.path("app");
    let ok = std::process::Command::new("cp")
        .args([
            "-r",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-app"),
        ])
        .arg(&app)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    std::fs::remove_file(app.join("requirements.txt")).unwrap();
    for (p, t) in files {
        let f = app.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, t).unwrap();
    }
    h.write(
        "keel.toml",
        &config("").replace(
            &format!(
                "source = \"{}/examples/demo-app\"",
                env!("CARGO_MANIFEST_DIR")
            ),
            &format!("source = \"{}\"", app.display()),
        ),
    );
    app
}

const UV_PYPROJECT: &str = "[project]\nname = \"shop\"\nversion = \"0\"\nrequires-python = \">=3.11\"\n\
dependencies = [\"django>=5\", \"celery[redis]\"]\n[dependency-groups]\ndev = [\"pytest\"]\nprod = [\"sentry-sdk\"]\n";

/// pyproject.toml + uv.lock, found without a django.requirements key: uv exports the lock
/// (frozen, no dev group, the selected group), the pinned and hashed list goes in on
/// stdin, Gunicorn apart; a change in uv.lock alone builds a new venv.
#[test]
fn a_uv_lock_is_exported_and_installed_with_its_hashes() {
    let h = Host::new();
    let app = app_with(
        &h,
        &[
            ("pyproject.toml", UV_PYPROJECT),
            ("uv.lock", "version = 1\n# one\n"),
        ],
    );
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}[python]\ngroups = [\"prod\"]\n"),
    );
    h.rule("uv export\t0\t0\t\tdjango==5.1.2 \\\\\\n    --hash=sha256:aa\\ncelery==5.4.0 \\\\\\n    --hash=sha256:bb");
    h.install(&[]).success();
    let cmds = h.commands();
    assert!(
        cmds.contains("uv export --frozen --no-dev --no-emit-project --no-header --format requirements-txt --group prod"),
        "{cmds}"
    );
    assert!(
        cmds.contains("--compile-bytecode --python /opt/demo/venvs/"),
        "{cmds}"
    );
    assert!(cmds.contains("/keel-requirements.txt\n"), "{cmds}");
    assert!(
        cmds.contains("/bin/python gunicorn\n"),
        "Gunicorn goes in apart: {cmds}"
    );
    let first = venv_of_current(&h);
    std::fs::write(app.join("uv.lock"), "version = 1\n# two\n").unwrap();
    h.install(&[]).success();
    assert_ne!(
        first,
        venv_of_current(&h),
        "a change in uv.lock alone must build a new venv"
    );
    // An unknown group is refused at load, naming the key and what the project has.
    h.write(
        "keel.toml",
        &format!("{cfg}[python]\ngroups = [\"nope\"]\n"),
    );
    h.install(&[])
        .code(2)
        .stderr(predicates::str::contains("python.groups"))
        .stderr(predicates::str::contains("dev, prod"));
}

/// PEP 621 dependencies and a PEP 735 group without a lock: keel writes the list itself.
#[test]
fn dependency_groups_without_a_lock_are_installed() {
    let h = Host::new();
    let py = "[project]\nname = \"x\"\nversion = \"0\"\ndependencies = []\n\
              [dependency-groups]\nbase = [\"django>=5\"]\nprod = [{include-group = \"base\"}, \"celery>=5\"]\n";
    app_with(&h, &[("pyproject.toml", py)]);
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}[python]\ngroups = [\"prod\"]\n"),
    );
    h.install(&[]).success();
    let cmds = h.commands();
    assert!(cmds.contains("/keel-requirements.txt gunicorn\n"), "{cmds}");
}

/// A project with no dependency file keel reads: refused at load, naming what keel reads.
#[test]
fn a_project_without_dependencies_names_what_keel_reads() {
    let h = Host::new();
    app_with(
        &h,
        &[("pyproject.toml", "[tool.black]\nline-length = 99\n")],
    );
    h.install(&[])
        .code(2)
        .stderr(predicates::str::contains("django.requirements"))
        .stderr(predicates::str::contains(
            "uv.lock, poetry.lock, Pipfile.lock",
        ));
    assert_eq!(h.commands(), "", "nothing may run");
}

/// requires-python >= 3.12 on Debian 12 (3.11) with managed Pythons off: exit 2 before any
/// command, naming the requirement, the OS's Python and the ways out. With managed on, uv
/// is asked for that request, from the configured mirror.
#[test]
fn a_python_the_os_lacks_is_refused_or_managed() {
    let h = Host::new();
    let py = UV_PYPROJECT.replace(">=3.11", ">=3.12");
    app_with(&h, &[("pyproject.toml", &py), ("uv.lock", "version = 1\n")]);
    h.install(&[])
        .code(2)
        .stderr(predicates::str::contains(
            "Python >=3.12 (pyproject.toml requires-python)",
        ))
        .stderr(predicates::str::contains("3.11.2"))
        .stderr(predicates::str::contains("python.managed = true"));
    assert_eq!(h.commands(), "", "nothing may run");
    assert!(!h.path("root/opt/demo").exists(), "nothing may be written");
    // Debian 13's python3 fits: no refusal, the OS's interpreter.
    h.write(
        "root/etc/os-release",
        "ID=debian\nVERSION_ID=\"13\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n",
    );
    h.install(&[]).success();
    assert!(
        h.commands()
            .contains("uv venv -q --allow-existing --python /usr/bin/python3 ")
    );
    // Back on Debian 12, managed: uv gets the request and the mirror, and downloads.
    h.write(
        "root/etc/os-release",
        "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
    );
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}[python]\nmanaged = true\nmirror = \"https://mirror.invalid/pbs\"\n"),
    );
    h.install(&[]).success();
    let cmds = h.commands();
    assert!(
        cmds.contains(
            "uv venv -q --allow-existing --managed-python --python >=3.12 /opt/demo/venvs/"
        ),
        "{cmds}"
    );
    let env = h.read("fake/env.log");
    let line = env
        .lines()
        .find(|l| l.contains("--managed-python"))
        .expect("the managed venv command");
    for kv in [
        "UV_PYTHON_DOWNLOADS=automatic",
        "UV_PYTHON_INSTALL_MIRROR=https://mirror.invalid/pbs",
        "UV_PYTHON_INSTALL_DIR=/opt/demo/venvs/.pythons",
    ] {
        assert!(line.contains(kv), "{kv} missing: {line}");
    }
}

/// A package.json build, catalogues and `[build] commands` run as the build user in a
/// sandbox that lets V8 compile (no MemoryDenyWriteExecute), with node_modules from
/// `npm ci` cached by the lock's hash; Node and gettext come in the big apt run. The
/// release commands run as the app after migrate, once per release.
#[test]
fn build_and_release_commands_run_where_they_belong() {
    let h = Host::new();
    app_with(
        &h,
        &[
            ("requirements.txt", "django\ncelery\n"),
            (
                "package.json",
                "{\"scripts\": {\"build\": \"node build.js\"}}",
            ),
            ("package-lock.json", "{\"lockfileVersion\": 3}"),
            ("shop/locale/de/LC_MESSAGES/django.po", "msgid \"\"\n"),
        ],
    );
    h.installed(&["nodejs", "npm", "gettext"]);
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}[build]\ncommands = [\"python manage.py compile_themes\"]\n[release]\ncommands = [\"python manage.py initdb\"]\n"),
    );
    h.install(&[]).success();
    let cmds = h.commands();
    let apt: Vec<&str> = cmds
        .lines()
        .filter(|l| l.contains("apt-get") && l.contains(" install "))
        .collect();
    for p in ["nodejs", "npm", "gettext"] {
        assert!(
            !apt[0].contains(p) && apt[1].contains(p),
            "{p} not in the big apt run (the build step's tools): {apt:?}"
        );
    }
    let pos = |s: &str| {
        cmds.find(s)
            .unwrap_or_else(|| panic!("{s} not run: {cmds}"))
    };
    let (ci, build, msgs, themes) = (
        pos("npm ci --no-audit"),
        pos("sh -c npm run build"),
        pos("sh -c python manage.py compilemessages"),
        pos("sh -c python manage.py compile_themes"),
    );
    assert!(ci < build && build < msgs && msgs < themes, "{cmds}");
    let collect = pos("collectstatic");
    let migrate = pos("migrate --noinput");
    let initdb = pos("sh -c python manage.py initdb");
    assert!(themes < collect && migrate < initdb, "{cmds}");
    let line = cmds.lines().find(|l| l.contains("npm run build")).unwrap();
    assert!(
        line.contains("User=demo-build") && !line.contains("MemoryDenyWriteExecute"),
        "{line}"
    );
    let line = cmds
        .lines()
        .find(|l| l.contains("manage.py initdb"))
        .unwrap();
    assert!(
        line.contains("User=demo ") && line.contains("MemoryDenyWriteExecute=yes"),
        "{line}"
    );
    // Once per release: the django step again does not repeat them.
    let n = cmds.matches("manage.py initdb").count();
    h.install(&["--retry-step", "django"]).success();
    assert_eq!(h.commands().matches("manage.py initdb").count(), n);
    // The lock unchanged: node_modules reused on the next build.
    h.install(&["--retry-step", "build"]).success();
    assert_eq!(h.commands().matches("npm ci").count(), 1);
}

/// `[database] extensions`: checked against the installed PostgreSQL's extensions at
/// preflight (a missing one names its package key), and made by the superuser before migrate
/// (the SQL goes on stdin; its shape is a unit test of steps::postgres).
#[test]
fn extensions_are_checked_at_preflight_and_made_by_the_superuser() {
    let h = Host::new();
    h.write("root/usr/share/postgresql/15/extension/pg_trgm.control", "");
    let cfg = h.read("keel.toml");
    h.write(
        "keel.toml",
        &format!("{cfg}[database]\nextensions = [\"pg_trgm\", \"postgis\"]\n"),
    );
    let out = h.install(&[]).code(3).get_output().clone();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("PostgreSQL 15 lacks the extension(s) postgis"),
        "{text}"
    );
    h.write(
        "keel.toml",
        &format!("{cfg}[database]\nextensions = [\"pg_trgm\"]\n"),
    );
    h.install(&[]).success();
    let cmds = h.commands();
    let psql = cmds
        .lines()
        .filter(|l| l.starts_with("[postgres] runuser -u postgres -- psql"))
        .count();
    assert!(psql >= 2, "the extensions' SQL did not run: {cmds}");
}
