//! apt as keel runs it: the dpkg lock, fresh lists, installs, what is missing, the build packages a project needs. A floor below the steps: the package steps and `keel plan` use it.
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use crate::system;
use std::time::{Duration, Instant};

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
pub(crate) fn update_stamp(ctx: &Ctx) -> std::path::PathBuf {
    ctx.host("/var/lib/keel/apt-update.stamp")
}

/// keel ran apt-get update less than 10 minutes ago (e.g. in the step before).
pub(crate) fn lists_fresh(ctx: &Ctx) -> bool {
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
pub(crate) const AFTER_VENV: &[&str] = &["nodejs", "npm", "gettext"];

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
