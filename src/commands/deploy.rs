//! `keel deploy [--source DIR | --ref REF | --rollback [ID]]`: validate, lock, hand over to
//! `crate::deploy`, say what happened.
use super::context::{CtxOptions, Invocation, build_ctx, reap_leftovers};
use crate::app::code::Source;
use crate::cli::{Command, Output};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::state::{RunLock, State, Status};
use std::path::Path;

/// The source to deploy, checked before anything is written.
fn source(
    cfg: &Config,
    dir: &Option<std::path::PathBuf>,
    git_ref: &Option<String>,
) -> Result<Source> {
    if let Some(d) = dir {
        let d = std::path::absolute(d).map_err(|e| Error::io(d, e))?;
        if !d.is_dir() {
            return Err(Error::usage(
                format!("--source {}: not a directory", d.display()),
                "give the Django project's directory (the one with manage.py)",
            ));
        }
        if !std::fs::symlink_metadata(d.join("manage.py")).is_ok_and(|m| m.is_file()) {
            return Err(Error::usage(
                format!(
                    "--source {}: no manage.py (not a link) at its top",
                    d.display()
                ),
                "give the Django project's directory, with manage.py",
            ));
        }
        let reader = crate::tree::reader(&d);
        crate::project::read(cfg, &reader).map_err(|(key, msg, hint)| {
            Error::usage(format!("--source {}: {msg} ({key})", d.display()), hint)
        })?;
        return Ok(Source::Dir(d));
    }
    if let Some(r) = git_ref {
        let Some(url) = &cfg.django.git else {
            return Err(Error::usage(
                "--ref needs a git source, and django.git is not set in the config",
                "use --source DIR, or set django.git",
            ));
        };
        crate::validate::git_ref(r)
            .map_err(|(msg, hint)| Error::usage(format!("--ref {r}: {msg}"), hint))?;
        return Ok(Source::Git {
            url: url.clone(),
            git_ref: r.clone(),
        });
    }
    cfg.check_source()?;
    crate::project::check_tree(cfg)?;
    Source::configured(cfg).ok_or_else(|| {
        Error::usage(
            "no app source configured",
            "set django.source or django.git",
        )
    })
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let Command::Deploy {
        source: dir,
        git_ref,
        rollback,
        drain,
    } = &cli.command
    else {
        unreachable!("deploy::run is called for `deploy`")
    };
    let cfg = inv.config()?;
    crate::apps::check_others(&Paths::from_env(), &cfg)?;
    cfg.check_users(&Paths::from_env().root)?;
    let src = match rollback {
        Some(_) => None,
        None => Some(source(&cfg, dir, git_ref)?),
    };
    let target = rollback.as_deref().filter(|s| !s.is_empty());
    let st = super::context::load_state(&cli.state_file)?;
    check_installed(&st, &cli.state_file, target)?;
    // `--rollback` alone needs an earlier healthy release: refused before the lock is taken.
    if rollback.is_some()
        && target.is_none()
        && crate::release::previous_good(&st.releases.list, st.releases.current.as_deref())
            .is_none()
    {
        return Err(Error::usage(
            "--rollback: no earlier healthy release to return to",
            "see keel releases; name one with keel deploy --rollback ID",
        ));
    }
    let id = crate::paths::run_id();
    let mut o = CtxOptions::new(inv, &id);
    o.quiet = cli.output == Output::Json;
    let ctx = build_ctx(cfg, o);
    let graph = crate::steps::graph();
    let _lock = RunLock::acquire(&cli.state_file)?;
    let mut st = super::context::load_state(&cli.state_file)?;
    reap_leftovers(&ctx);
    let drained = match drain {
        Some(secs) => Some(Drain::start(&ctx, *secs)?),
        None => None,
    };
    let out = match &src {
        Some(s) => crate::deploy::deploy(&ctx, &graph, &mut st, &cli.state_file, s),
        None => crate::deploy::rollback(&ctx, &graph, &mut st, &cli.state_file, target),
    };
    // Health comes back whatever happened: the release that serves now (new, or switched
    // back to) is the one the balancer should see.
    if let Some(d) = drained {
        d.end(&ctx);
    }
    ctx.ui.finish();
    let out = out?;
    if cli.output == Output::Json {
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        let secs = out.duration_ms as f64 / 1000.0;
        match out.result {
            "deployed" => println!("keel: release {} is live ({secs:.1} s)", out.release),
            "switched" if out.error.is_none() => {
                println!(
                    "keel: release {} is current and healthy ({secs:.1} s)",
                    out.release
                )
            }
            _ => {}
        }
    }
    match (&out.error, out.result) {
        (None, _) => Ok(()),
        (Some(e), "failed") => Err(Error::StepFailed {
            step: "deploy".into(),
            msg: format!("release {}: {e}", out.release),
            hint: "the release is kept for inspection (keel releases); see /var/log/keel/steps/deploy.log".into(),
        }),
        (Some(e), "rolled-back") => Err(Error::StepFailed {
            step: "deploy".into(),
            msg: format!("release {} failed its checks: {e}", out.release),
            hint: format!("the failed release is kept under releases/{} for inspection", out.release),
        }),
        (Some(e), _) => Err(Error::Unhealthy(format!(
            "release {} is current but unhealthy: {e}",
            out.release
        ))),
    }
}

/// A deploy needs a host keel installed: the services running from a release.
fn check_installed(st: &State, file: &Path, target: Option<&str>) -> Result<()> {
    if st.step(crate::steps::SERVICES).status != Status::Completed || st.releases.current.is_none()
    {
        return Err(Error::usage(
            format!("{}: no installed release to deploy beside", file.display()),
            "run keel install first (it makes the first release)",
        ));
    }
    if let Some(t) = target {
        let known = st.releases.get(t).is_some();
        if !known || Some(t) == st.releases.current.as_deref() {
            return Err(Error::usage(
                format!(
                    "--rollback {t}: {}",
                    if known {
                        "that release is already current"
                    } else {
                        "no such release"
                    }
                ),
                "see keel releases for the ids",
            ));
        }
    }
    Ok(())
}

/// `keel deploy --drain SECS`: the drain file makes nginx's /keel-health/lb answer 503.
struct Drain {
    file: std::path::PathBuf,
    secs: u64,
}

impl Drain {
    fn start(ctx: &crate::step::Ctx, secs: u64) -> Result<Drain> {
        if !ctx.cfg.has(crate::config::Role::Web) {
            return Err(Error::usage(
                "--drain: this host has no web role, so no load balancer sends it requests",
                "leave --drain out on worker and beat hosts",
            ));
        }
        let file = ctx.paths.host(&ctx.cfg.drain_file());
        if let Some(dir) = file.parent() {
            use std::os::unix::fs::DirBuilderExt;
            // nginx (www-data) must be able to see the file: a directory it may search.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        crate::fsx::write_atomic(&file, b"draining\n", 0o644, None)
            .map_err(|e| Error::io(&file, e))?;
        ctx.ui.line(&format!(
            "[deploy] draining: /keel-health/lb answers 503; waiting {secs} s for the load balancer"
        ));
        ctx.exec.pause(std::time::Duration::from_secs(secs));
        Ok(Drain { file, secs })
    }

    fn end(self, ctx: &crate::step::Ctx) {
        if let Err(e) = crate::fsx::unlink(&self.file) {
            ctx.ui.line(&format!(
                "[deploy] the drain file stays: {e}; remove {}",
                self.file.display()
            ));
            return;
        }
        ctx.ui.line(&format!(
            "[deploy] health answers again; waiting {} s for the load balancer to send requests here",
            self.secs
        ));
        ctx.exec.pause(std::time::Duration::from_secs(self.secs));
    }
}
