//! the release's virtualenv: uv (pinned), the interpreter, the requirements, a seed from the live venv, the installed packages. A floor below the steps: the python-env step and deploys use it.
use crate::app::{as_app_in, as_build, build_user_ids};
use crate::config::Installer;
use crate::deps::Form;
use crate::exec::Cmd;
use crate::project::{Interp, Project};
use crate::step::io_err;
use crate::step::{Ctx, StepError, StepResult};
use crate::txn::Txn;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// uv, pinned: a release's venv must not change with whatever uv is newest that day.
pub const UV_VERSION: &str = "0.13.9";
/// The sha256 of each uv wheel keel accepts (x86_64 and aarch64 manylinux, as the package
/// index publishes them): root installs only these bytes, whatever the index or a proxy
/// serves.
pub const UV_WHEEL_SHA256: &[&str] = &[
    "d7f459fe4fd247d830351c75686d3996ace3c6f3f728eb0e85a30b7ada0cef19",
    "5435c5ce14a56431208ca0996416d310f1598e8c2c8ba707688985a16bb82dbe",
];
/// keel's own tools (uv), root's: the build user runs uv but can never change it.
pub const TOOLS: &str = "/var/lib/keel/tools";
/// Written into a venv once its packages are all in: a venv without it is rebuilt.
pub(crate) const COMPLETE: &str = ".keel-complete";

/// The app's project as read from a tree (`read` gives a file by relative path).
pub fn project_of(ctx: &Ctx, read: &dyn Fn(&str) -> Option<String>) -> StepResult<Project> {
    crate::project::read(&ctx.cfg, read)
        .map_err(|(key, msg, hint)| StepError::permanent(format!("{key}: {msg}"), hint))
}

/// The project of release directory `release` (a path as the services see it).
pub fn release_project(ctx: &Ctx, release: &Path) -> StepResult<Project> {
    let top = ctx.host(&release.display().to_string());
    project_of(ctx, &|rel| {
        crate::fsx::read_text_nofollow(&top.join(rel), crate::fsx::MAX_INPUT)
            .ok()
            .flatten()
    })
}

/// A venv's name: the hash of what goes in it. Releases with the same requirements (and
/// the same Python) share one venv, so a code-only deploy installs nothing.
pub fn venv_key(requirements: &str, python: &str) -> String {
    crate::step::hash(&["venv", requirements, "gunicorn", python])[..16].to_string()
}

/// The interpreter for the project on this host (refused, permanently, when the OS's does
/// not fit and managed Pythons are off).
pub(crate) fn interpreter(ctx: &Ctx, p: &Project) -> StepResult<Interp> {
    crate::project::choose(&ctx.cfg, &ctx.paths.root, &p.wants)
        .map_err(|(msg, hint)| StepError::permanent(msg, hint))
}

/// What the venv's key says of its interpreter: Debian's python3 as the link resolves
/// (python3.11 on Debian 12: an OS upgrade means new venvs), or the managed request.
pub(crate) fn interp_label(ctx: &Ctx, i: &Interp) -> String {
    match i {
        Interp::Os => std::fs::read_link(ctx.host("/usr/bin/python3"))
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "python3".into()),
        Interp::Managed(r) => format!("uv-managed cpython {r}"),
    }
}

/// The one line pip is given for uv: the version and every hash keel accepts.
pub fn uv_requirement() -> String {
    let hashes: Vec<String> = UV_WHEEL_SHA256
        .iter()
        .map(|h| format!("--hash=sha256:{h}"))
        .collect();
    format!("uv=={UV_VERSION} {}\n", hashes.join(" "))
}

/// uv in keel's tools directory: a venv of root's, made once, with uv from the Python
/// package index (binary wheels only: nothing is built as root).
pub(crate) fn ensure_uv(ctx: &Ctx, log: &str) -> StepResult<String> {
    let uv = format!("{TOOLS}/bin/uv");
    let marker = ctx.host(&format!("{TOOLS}/.uv-{UV_VERSION}"));
    if crate::fsx::lstat(&marker)?.is_some() && ctx.host(&uv).exists() {
        return Ok(uv);
    }
    ctx.ui
        .step_note(log, &format!("installing uv {UV_VERSION} into {TOOLS}"));
    // No pip inside the tools venv (ensurepip would install pip and setuptools there: seconds
    // of CPU beside dpkg on a fresh host): Debian's own pip wheel (python3-pip-whl, which
    // python3-venv brings; root's, from the package) runs once to put uv in.
    // -I: root's Python reads no PYTHON* variable, no user site, and puts no directory of
    // anyone's first on sys.path.
    ctx.run(
        log,
        &Cmd::new("python3").args(["-I", "-m", "venv", "--clear", "--without-pip", TOOLS]),
    )
    .map_err(|e| {
        e.hint("python3-venv must be in packages.python (or set deploy.installer = \"pip\")")
    })?;
    let wheels = ctx.host("/usr/share/python-wheels");
    let mut pips: Vec<String> = std::fs::read_dir(&wheels)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with("pip-") && n.ends_with(".whl"))
        .collect();
    pips.sort();
    let pip = pips.pop().ok_or_else(|| {
        StepError::permanent(
            "no pip wheel in /usr/share/python-wheels",
            "python3-venv (which brings python3-pip-whl) must be in packages.python",
        )
    })?;
    ctx.run(
        log,
        &Cmd::new(&format!("{TOOLS}/bin/python"))
            .args([
                "-I",
                &format!("/usr/share/python-wheels/{pip}/pip"),
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
                "--only-binary",
                ":all:",
                "--no-deps",
                "--require-hashes",
                "-r",
                "/dev/stdin",
            ])
            .stdin(uv_requirement())
            .env("PIP_NO_CACHE_DIR", "1")
            .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs)),
    )?;
    crate::txn::write_atomic(&marker, b"", 0o644, Some((0, 0))).map_err(io_err(&marker))?;
    Ok(uv)
}

/// Make sure release `release` (a path on the host as the services see it) has its venv:
/// <base>/venvs/<key>, built by the build user unless a complete one exists, and the
/// release's `venv` link to it. Returns the key.
pub fn ensure_venv(ctx: &Ctx, tx: &mut Txn, release: &Path, log: &str) -> StepResult<String> {
    let project = release_project(ctx, release)?;
    let interp = interpreter(ctx, &project)?;
    let label = interp_label(ctx, &interp);
    let key = venv_key(&project.fingerprint(), &label);
    let build = build_user_ids(ctx)?;
    let venvs = crate::release::venvs_dir(&ctx.cfg.base_dir());
    let venvs_host = ctx.host(&venvs.display().to_string());
    tx.ensure_dir_owned(&venvs_host, 0o755, Some(build))
        .map_err(io_err(&venvs_host))?;
    let venv = venvs.join(&key);
    let venv_host = ctx.host(&venv.display().to_string());
    if crate::fsx::lstat(&venv_host.join(COMPLETE))?.is_some() {
        ctx.ui
            .step_note(log, &format!("dependencies unchanged: venv {key} reused"));
    } else {
        if crate::fsx::lstat(&venv_host)?.is_some() {
            // Half built (a killed run): derived data, rebuilt. Never follows a link.
            std::fs::remove_dir_all(&venv_host).map_err(io_err(&venv_host))?;
        }
        // Made by keel for the build user, so the venv's owner is known before it is filled.
        crate::fsx::mkdir(&venv_host, 0o755, Some(build)).map_err(io_err(&venv_host))?;
        let seed = seed(ctx, &key, &label);
        let job = Job {
            log,
            release,
            venv: &venv,
            project: &project,
            interp: &interp,
        };
        install(ctx, &job, seed.as_deref())?;
        // The mark names the interpreter: a venv is seeded only from one on the same Python.
        let m = venv_host.join(COMPLETE);
        crate::fsx::write_atomic(&m, label.as_bytes(), 0o644, Some(build)).map_err(io_err(&m))?;
    }
    let link = ctx.host(&release.join("venv").display().to_string());
    tx.symlink(&Path::new("../../venvs").join(&key), &link)?;
    Ok(key)
}

/// The live release's venv, complete and different from `key`: what a new venv can start
/// from (uv then adds only what changed, and compiles only the new files).
pub(crate) fn seed(ctx: &Ctx, key: &str, label: &str) -> Option<PathBuf> {
    if ctx.cfg.deploy.installer != Installer::Uv {
        return None;
    }
    let live = crate::app::live_dir(ctx);
    let target = std::fs::read_link(ctx.host(&live.join("venv").display().to_string())).ok()?;
    let old = target.file_name()?.to_str()?;
    let venv = crate::release::venvs_dir(&ctx.cfg.base_dir()).join(old);
    let mark =
        crate::fsx::read_text_nofollow(&ctx.host(&venv.display().to_string()).join(COMPLETE), 4096);
    let same_python = matches!(mark, Ok(Some(m)) if m == label);
    (old != key && old.bytes().all(|b| b.is_ascii_hexdigit()) && same_python).then_some(venv)
}

/// As the build user: `venv` filled with hard links to `seed`'s files (not its completion
/// mark), then the seed's path rewritten in the scripts of bin/. sed -i and uv replace files
/// rather than write into them, so the seed (a live or previous release's venv) is never
/// changed through a shared link.
pub(crate) const SEED_SCRIPT: &str = r#"set -e
seed=$1 venv=$2
cd "$seed"
for e in * .[!.]*; do
  [ -e "$e" ] || [ -L "$e" ] || continue
  [ "$e" = .keel-complete ] && continue
  cp -al -- "$e" "$venv/"
done
grep -rlI -- "$seed" "$venv/bin" | while IFS= read -r f; do sed -i "s|$seed|$venv|g" "$f"; done
"#;

/// A hint that fits why installing the requirements failed: a package that must be built
/// from source lacks its tools or headers; the requirements cannot be resolved; the index
/// could not be reached (those were retried already).
pub fn install_failure_hint(msg: &str) -> String {
    let t = msg.to_ascii_lowercase();
    let log = "see /var/log/keel/steps/python-env.log";
    let build = [
        "pg_config",
        "python.h",
        "command 'gcc' failed",
        "gcc: not found",
        "x86_64-linux-gnu-gcc",
        "failed to build",
        "failed building wheel",
        "subprocess-exited-with-error",
        "build backend",
        "fatal error:",
    ];
    let resolve = [
        "no solution found",
        "resolutionimpossible",
        "because you require",
        "no matching distribution",
        "could not find a version",
        "are incompatible",
        "requires-python",
    ];
    if build.iter().any(|p| t.contains(p)) {
        format!(
            "a package is built from source and lacks its build tools or headers: list them under packages.build (installed before the venv), e.g. [\"build-essential\", \"python3-dev\", \"libpq-dev\"] for psycopg, [\"libjpeg-dev\", \"zlib1g-dev\"] for Pillow; {log}"
        )
    } else if resolve.iter().any(|p| t.contains(p)) {
        format!(
            "the requirements cannot be resolved for this host's Python (Debian's python3): fix the versions in django.requirements; {log}"
        )
    } else if crate::retry::classify(msg) == crate::retry::Kind::Transient {
        format!(
            "the package index could not be reached (retried already): check this host's network and proxy; {log}"
        )
    } else {
        log.to_string()
    }
}

/// What one venv build works from.
pub(crate) struct Job<'a> {
    /// The log its commands go to: the python-env step's, or the deploy's.
    log: &'a str,
    release: &'a Path,
    venv: &'a Path,
    project: &'a Project,
    interp: &'a Interp,
}

/// Where the pinned requirements come from: the app's own file, or a text on stdin (a lock
/// keel converted, or uv's export of uv.lock).
pub(crate) enum Reqs {
    File(String),
    Text(String),
}

impl Reqs {
    /// Lines with hashes put pip in hash-checking mode: Gunicorn then goes in apart.
    fn hashed(&self, p: &Project) -> bool {
        match self {
            Reqs::Text(t) => t.contains("--hash"),
            Reqs::File(_) => p.parts.iter().any(|(_, t)| t.contains("--hash")),
        }
    }
    fn names_gunicorn(&self, p: &Project) -> bool {
        let has = |t: &str| {
            t.lines()
                .any(|l| crate::deps::req_name(l.trim()) == "gunicorn")
        };
        match self {
            Reqs::Text(t) => has(t),
            Reqs::File(_) => p.parts.iter().any(|(_, t)| has(t)),
        }
    }
    /// The `-r` argument for pip or uv: the app's file, or the text written by the build
    /// user into the venv (uv opens `-r` by path, and /dev/stdin is root's pipe).
    fn file(&self, ctx: &Ctx, job: &Job) -> StepResult<String> {
        match self {
            Reqs::File(f) => Ok(f.clone()),
            Reqs::Text(t) => {
                let path = job.venv.join("keel-requirements.txt").display().to_string();
                ctx.run(
                    job.log,
                    &as_build(ctx, job.release, "sh")
                        .args([
                            "-c",
                            "umask 022 && rm -f \"$1\" && cat >\"$1\"",
                            "sh",
                            &path,
                        ])
                        .stdin(t.clone()),
                )?;
                Ok(path)
            }
        }
    }
}

/// The pinned requirements of a job: uv.lock is exported by uv itself (as the build user,
/// in the lock's directory, from the lock only: --frozen).
pub(crate) fn requirements(ctx: &Ctx, job: &Job) -> StepResult<Reqs> {
    let p = job.project;
    if let Some(t) = &p.converted {
        return Ok(Reqs::Text(t.clone()));
    }
    if p.form != Form::UvLock {
        return Ok(Reqs::File(job.release.join(&p.file).display().to_string()));
    }
    let uv = ensure_uv(ctx, job.log)?;
    let dir = job
        .release
        .join(p.file.rsplit_once('/').map(|(d, _)| d).unwrap_or(""));
    ctx.ui
        .step_note(job.log, &format!("uv export of {}", p.file));
    let out = ctx
        .run(
            job.log,
            &as_build(ctx, &dir, &uv).args(crate::deps::uv_export_args(&p.selection)),
        )
        .map_err(|e| {
            e.hint(format!(
                "uv could not export {} (is it in step with pyproject.toml? run `uv lock` in the project); see /var/log/keel/steps/python-env.log",
                p.file
            ))
        })?;
    Ok(Reqs::Text(out.stdout))
}

/// The venv itself, on the chosen interpreter: Debian's python3, or a uv-managed CPython
/// that uv downloads (from python.mirror when set) into the venvs' directory.
pub(crate) fn make_venv(ctx: &Ctx, job: &Job, uv: Option<&str>) -> StepResult {
    let v = job.venv.display().to_string();
    let pip_seed = ctx.cfg.deploy.installer == Installer::Pip;
    match (job.interp, uv) {
        (Interp::Os, Some(uv)) if !pip_seed => ctx.run(
            job.log,
            &as_build(ctx, job.release, uv).args([
                "venv",
                "-q",
                "--allow-existing",
                "--python",
                "/usr/bin/python3",
                &v,
            ]),
        ),
        (Interp::Os, _) => ctx
            .run(
                job.log,
                &as_build(ctx, job.release, "python3").args(["-m", "venv", &v]),
            )
            .map_err(|e| e.hint("python3-venv must be in packages.python")),
        (Interp::Managed(request), _) => {
            let uv = ensure_uv(ctx, job.log)?;
            ctx.ui
                .step_note(job.log, &format!("uv-managed CPython {request}"));
            ctx.run(job.log, &managed_venv(ctx, job.release, &uv, request, &v, pip_seed))
                .map_err(|e| {
                    e.hint(format!(
                        "uv could not get a CPython for {request}{}: check python.mirror and this host's network, or set python.managed = false and use an OS release whose python3 fits",
                        if ctx.cfg.python.mirror.is_empty() {
                            String::new()
                        } else {
                            format!(" from {}", ctx.cfg.python.mirror)
                        }
                    ))
                })
        }
    }
    .map(|_| ())
}

/// `uv venv` on a uv-managed CPython for `request`, downloaded when missing.
pub fn managed_venv(ctx: &Ctx, dir: &Path, uv: &str, request: &str, venv: &str, pip: bool) -> Cmd {
    let pythons = crate::release::venvs_dir(&ctx.cfg.base_dir()).join(".pythons");
    let mut c = as_build(ctx, dir, uv)
        .args(["venv", "-q", "--allow-existing", "--managed-python"])
        .args(pip.then_some("--seed"))
        .args(["--python", request, venv])
        .env("UV_PYTHON_DOWNLOADS", "automatic")
        .env("UV_PYTHON_INSTALL_DIR", &pythons.display().to_string())
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs));
    if !ctx.cfg.python.mirror.is_empty() {
        c = c.env("UV_PYTHON_INSTALL_MIRROR", &ctx.cfg.python.mirror);
    }
    c
}

/// Build the venv with the release's dependencies and Gunicorn, bytecode compiled (the
/// first requests after a deploy import it); from `seed` when there is one.
pub(crate) fn install(ctx: &Ctx, job: &Job, seed: Option<&Path>) -> StepResult {
    let v = job.venv.display().to_string();
    let timeout = Duration::from_secs(ctx.cfg.timeouts.apt_secs);
    let hint = |e: StepError| {
        if e.hint.is_empty() {
            let h = install_failure_hint(&e.msg);
            e.hint(h)
        } else {
            e
        }
    };
    let reqs = requirements(ctx, job)?;
    let apart = reqs.hashed(job.project) && !reqs.names_gunicorn(job.project);
    let with_gunicorn = !apart && !reqs.names_gunicorn(job.project);
    ctx.ui
        .step_note(job.log, &format!("installing {}", job.project.file));
    let uv = match ctx.cfg.deploy.installer {
        Installer::Uv => Some(ensure_uv(ctx, job.log)?),
        Installer::Pip => None,
    };
    match (&uv, seed) {
        (Some(_), Some(s)) => {
            ctx.ui.step_note(
                job.log,
                &format!("venv from {} plus what changed (uv)", s.display()),
            );
            let s = s.display().to_string();
            ctx.run(
                job.log,
                &as_build(ctx, job.release, "sh").args(["-c", SEED_SCRIPT, "sh", &s, &v]),
            )?;
        }
        _ => make_venv(ctx, job, uv.as_deref())?,
    }
    let py = format!("{v}/bin/python");
    let r = reqs.file(ctx, job)?;
    let pip_install = |extra: &[&str], reqfile: Option<&str>| -> Cmd {
        let mut c = match &uv {
            Some(uv) => as_build(ctx, job.release, uv).args([
                "pip",
                "install",
                "-q",
                "--compile-bytecode",
                "--python",
                &py,
            ]),
            None => as_build(ctx, job.release, &format!("{v}/bin/pip")).args([
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "-q",
            ]),
        };
        if let Some(f) = reqfile {
            c = c.args(["-r", f]);
        }
        c.args(extra.iter().copied()).timeout(timeout)
    };
    let g: &[&str] = if with_gunicorn { &["gunicorn"] } else { &[] };
    ctx.run(job.log, &pip_install(g, Some(&r))).map_err(hint)?;
    if apart {
        ctx.run(job.log, &pip_install(&["gunicorn"], None))
            .map_err(hint)?;
    }
    Ok(())
}

/// The packages in a venv, "name version", from its *.dist-info directory names: nothing of
/// the build user's is executed for a report.
pub fn packages(venv_host: &Path) -> std::io::Result<Vec<String>> {
    let mut out = vec![];
    for lib in std::fs::read_dir(venv_host.join("lib"))?.flatten() {
        let sp = lib.path().join("site-packages");
        let Ok(rd) = std::fs::read_dir(&sp) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if let Some(stem) = n.strip_suffix(".dist-info")
                && let Some((name, ver)) = stem.rsplit_once('-')
            {
                out.push(format!("{name}=={ver}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Check that a release's venv has what the services run.
pub fn check_imports(ctx: &Ctx, release: &Path, log: &str) -> StepResult {
    let py = release.join("venv/bin/python").display().to_string();
    ctx.run(
        log,
        &as_app_in(ctx, release, &py).args(["-c", "import django, celery, gunicorn"]),
    )
    .map_err(|e| {
        StepError::permanent(
            format!("the virtualenv lacks Django/Celery/Gunicorn: {}", e.msg),
            format!(
                "add them to {} (django.requirements)",
                ctx.cfg.django.requirements
            ),
        )
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::install_failure_hint as h;

    #[test]
    fn install_failures_get_the_hint_that_fits() {
        assert!(h("Error: pg_config executable not found.").contains("packages.build"));
        assert!(h("x86_64-linux-gnu-gcc: error: No such file").contains("packages.build"));
        assert!(
            h("No solution found when resolving dependencies: Because you require django>=9")
                .contains("cannot be resolved")
        );
        assert!(h("Failed to fetch: connection reset by peer").contains("could not be reached"));
        assert!(!h("something else").contains("retried"));
    }
}
