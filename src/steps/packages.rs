use crate::exec::Cmd;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::system;
use crate::txn::Txn;
use std::time::{Duration, Instant};

const ID: &str = "packages";

/// Wait (bounded) for whoever holds the dpkg lock: at first boot that is cloud-init or
/// unattended-upgrades, and it usually lets go within minutes.
pub fn wait_for_dpkg_lock(ctx: &Ctx, step: &str) -> StepResult {
    let bound = Duration::from_secs(ctx.cfg.timeouts.dpkg_lock_secs);
    let start = Instant::now();
    let mut last_note: Option<Instant> = None;
    while let Some((pid, cmd)) = system::dpkg_lock_holder(&ctx.paths.root) {
        if start.elapsed() >= bound {
            return Err(StepError::permanent(
                format!(
                    "the dpkg lock is still held by pid {pid} ({cmd}) after {}s",
                    bound.as_secs()
                ),
                "wait for that process to finish (cloud-init / unattended-upgrades at first boot) and re-run, or raise timeouts.dpkg_lock_secs",
            ));
        }
        if last_note.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            let msg = format!(
                "waiting for the dpkg lock held by pid {pid} ({cmd}), {}s so far",
                start.elapsed().as_secs()
            );
            ctx.ui.step_note(step, &msg);
            ctx.events.emit(
                "dpkg-lock-wait",
                Some(step),
                serde_json::json!({"holder_pid": pid, "holder": cmd}),
            );
            last_note = Some(Instant::now());
        }
        // The lock's holder is a real process, even under the fake host's tests.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(500));
    }
    if system::dpkg_interrupted(&ctx.paths.root) {
        ctx.ui.step_note(
            step,
            "dpkg was interrupted earlier: running dpkg --configure -a",
        );
        ctx.run(
            step,
            &Cmd::new("dpkg")
                .args(["--configure", "-a"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs)),
        )?;
    }
    Ok(())
}

pub fn apt_get(ctx: &Ctx, args: &[&str]) -> Cmd {
    Cmd::new("apt-get")
        .args([
            "-y",
            "-q",
            "-o",
            "DPkg::Lock::Timeout=120",
            "-o",
            "Dpkg::Options::=--force-confdef",
            "-o",
            "Dpkg::Options::=--force-confold",
        ])
        .args(args.iter().copied())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("NEEDRESTART_MODE", "a")
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs))
}

/// Install packages: lock waited for, interrupted dpkg repaired, failures classified.
pub fn install(ctx: &Ctx, step: &str, pkgs: &[String]) -> StepResult {
    wait_for_dpkg_lock(ctx, step)?;
    if lists_fresh(ctx) {
        ctx.ui.step_note(
            step,
            "package lists are fresh (< 10 min): no apt-get update",
        );
    } else {
        ctx.ui.step_note(step, "apt-get update");
        ctx.run(step, &apt_get(ctx, &["update"]))?;
        let stamp = update_stamp(ctx);
        if let Some(d) = stamp.parent() {
            let _ = std::fs::create_dir_all(d);
        }
        let _ = std::fs::write(&stamp, crate::paths::now());
    }
    ctx.ui
        .step_note(step, &format!("apt-get install {}", pkgs.join(" ")));
    // `--` before the names: a package name can never be read as an apt option.
    let mut args = vec!["install"];
    if !ctx.cfg.packages.recommends {
        args.push("--no-install-recommends");
    }
    args.push("--");
    args.extend(pkgs.iter().map(String::as_str));
    match ctx.exec.run(step, &apt_get(ctx, &args)) {
        Ok(_) => Ok(()),
        Err(e) if e.stderr_tail.contains("dpkg was interrupted") => {
            ctx.run(
                step,
                &Cmd::new("dpkg")
                    .args(["--configure", "-a"])
                    .env("DEBIAN_FRONTEND", "noninteractive"),
            )?;
            Err(StepError::transient(
                e.to_string(),
                "dpkg was repaired; retrying",
            ))
        }
        Err(e) => {
            let mut err = StepError::from(e);
            if err.msg.contains("Unable to locate package")
                || err.msg.contains("no installation candidate")
            {
                err.hint = "check the package names in [packages] install of keel.toml".into();
            } else if err.kind == crate::retry::Kind::Transient {
                err.hint =
                    "a network or lock problem; keel retried it. Check the mirror and re-run"
                        .into();
            }
            Err(err)
        }
    }
}

/// Stamp keel touches after a successful `apt-get update` (apt itself sets the lists' mtimes
/// to the mirror's dates, so they can't tell when the update ran).
fn update_stamp(ctx: &Ctx) -> std::path::PathBuf {
    ctx.host("/var/lib/keel/apt-update.stamp")
}

/// keel ran apt-get update less than 10 minutes ago (e.g. in the step before).
fn lists_fresh(ctx: &Ctx) -> bool {
    std::fs::metadata(update_stamp(ctx))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age < Duration::from_secs(600))
}

/// Packages not installed (dpkg state other than "ii").
pub fn missing(ctx: &Ctx, step: &str, pkgs: &[String]) -> StepResult<Vec<String>> {
    let out = ctx.exec.probe(
        step,
        &Cmd::new("dpkg-query")
            .args(["-W", "-f", "${Package} ${db:Status-Abbrev}\\n", "--"])
            .args(pkgs.iter().cloned()),
    )?;
    Ok(pkgs
        .iter()
        .filter(|p| {
            !out.stdout.lines().any(|l| {
                let mut f = l.split_whitespace();
                f.next()
                    .map(|n| n.split(':').next() == Some(p.as_str()))
                    .unwrap_or(false)
                    && f.next() == Some("ii")
            })
        })
        .cloned()
        .collect())
}

/// Detected build packages the venv does not need: the build step's own tools.
const AFTER_VENV: &[&str] = &["nodejs", "npm", "gettext"];

/// The build packages a local source shows it needs, with why (read once per run). A git
/// source is read only once fetched, after this step: its build packages go in
/// packages.build.
pub fn detected_build(ctx: &Ctx) -> Vec<(String, String)> {
    ctx.build_packages
        .get_or_init(|| {
            let Some(src) = ctx.cfg.app_source() else {
                return vec![];
            };
            let read = crate::tree::reader(&src);
            let files = crate::project::walk(&src).unwrap_or_default();
            let project = crate::project::read(&ctx.cfg, &read).ok();
            crate::project::build_packages(&ctx.cfg, &read, &files, project.as_ref())
                .into_iter()
                .map(|(p, why)| (p.to_string(), why.to_string()))
                .collect()
        })
        .clone()
}

/// An apt step: the system packages, or the Python ones that go first so that the app's
/// pip install can overlap the big apt run.
pub struct Apt {
    id: &'static str,
    deps: Deps,
    about: &'static str,
    list: fn(&Ctx) -> Vec<String>,
}

impl Apt {
    pub const PYTHON: Apt = Apt {
        id: "python-packages",
        deps: &[&super::preflight::Preflight],
        about: "install Python and venv (apt), first",
        // git too when the app comes from git: app-code needs it before the big apt run; the
        // build packages too: the venv is built right after this run, beside the big one.
        list: |ctx| {
            let c = &ctx.cfg;
            let mut v = c.packages.python.clone();
            let detected = detected_build(ctx);
            for p in c.packages.build.iter().chain(
                detected
                    .iter()
                    .map(|(p, _)| p)
                    .filter(|p| !AFTER_VENV.contains(&p.as_str())),
            ) {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
            if c.django.git.is_some() && !v.iter().any(|p| p == "git") {
                v.push("git".into());
            }
            v
        },
    };
    pub const SYSTEM: Apt = Apt {
        id: ID,
        // After python-packages: apt runs one at a time, and the app's pip install overlaps this one.
        deps: &[&Apt::PYTHON],
        about: "install the system packages (apt)",
        // The build step's tools (Node, gettext) come in the big run: the venv does not
        // need them, and Debian's npm alone is hundreds of packages.
        list: |ctx| {
            let mut v = ctx.cfg.system_packages();
            for (p, _) in detected_build(ctx) {
                if AFTER_VENV.contains(&p.as_str()) && !v.contains(&p) {
                    v.push(p);
                }
            }
            v
        },
    };
}

impl Step for Apt {
    fn id(&self) -> &'static str {
        self.id
    }
    fn deps(&self) -> Deps {
        self.deps
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn host_wide(&self) -> bool {
        true
    }
    fn uses_apt(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        let mut p = (self.list)(ctx);
        p.sort();
        let i = Inputs::new().value("packages", p.join(" "));
        // Only when set: hosts installed before the key existed stay up to date.
        if ctx.cfg.packages.recommends {
            i.value("recommends", "yes")
        } else {
            i
        }
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        let pkgs = (self.list)(ctx);
        if pkgs.is_empty() {
            return Ok(());
        }
        install(ctx, self.id, &pkgs)
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        let m = missing(ctx, self.id, &(self.list)(ctx))?;
        if m.is_empty() {
            Ok(())
        } else {
            Err(StepError::permanent(
                format!("not installed after apt-get: {}", m.join(", ")),
                format!("see /var/log/keel/steps/{}.log", self.id),
            ))
        }
    }
    // Installed packages are kept on rollback: removing them could take other software with them.
}
