//! `keel backup` and `keel restore FILE`.
use super::context::{CtxOptions, Invocation, build_ctx, confirm};
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::state::RunLock;
use crate::step::{Ctx, StepError};
use std::path::Path;

/// Backups take their own lock (beside the state file's): the timer's backup never waits
/// for, or blocks, an install.
fn backup_lock(inv: &Invocation, ctx: &Ctx) -> Result<RunLock> {
    let cli = &inv.cli;
    let p = cli
        .state_file
        .with_file_name(format!("backup-{}", ctx.cfg.app.name));
    RunLock::acquire(&p)
}

fn failed(step: &str, e: StepError) -> Error {
    Error::StepFailed {
        step: step.into(),
        msg: e.msg,
        hint: e.hint,
    }
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    cfg.check_backup_host(&crate::paths::Paths::from_env().root)?;
    let mut o = CtxOptions::new(inv, "backup");
    o.quiet = cli.output == Output::Json;
    let ctx = build_ctx(cfg, o);
    let _lock = backup_lock(inv, &ctx)?;
    let r = crate::backup::make(&ctx, "");
    crate::backup::record(&ctx, &r);
    let e = r.map_err(|e| failed("backup", e))?;
    let path = ctx.paths.unhost(&crate::backup::dir(&ctx).join(&e.name));
    if cli.output == Output::Json {
        println!("{}", serde_json::json!({"file": path, "size": e.size}));
    } else {
        println!("keel: backup {} ({} bytes)", path.display(), e.size);
    }
    Ok(())
}

fn units(ctx: &Ctx) -> Vec<String> {
    let app = &ctx.cfg.app.name;
    let mut v = vec![format!("{app}-web.socket")];
    v.extend(
        ctx.cfg
            .app_units()
            .into_iter()
            .map(|u| format!("{u}.service")),
    );
    v
}

/// `systemctl ACTION` over the app's socket and units, in one call.
fn app_units(ctx: &Ctx, action: &str) -> std::result::Result<(), StepError> {
    let u = units(ctx);
    let mut args = vec![action];
    args.extend(u.iter().map(String::as_str));
    crate::systemd::systemctl(ctx, "restore", &args).map(|_| ())
}

/// Stop, load, start, check: the app's checks decide.
/// With the uploads' archive too (`media`): they are switched while the app is stopped,
/// and the copy set aside is left in `safety`.
fn load_and_check(
    ctx: &Ctx,
    archive: &crate::backup::Archive,
    media: Option<&crate::backup::Archive>,
    safety: &mut Option<std::path::PathBuf>,
) -> std::result::Result<(), StepError> {
    app_units(ctx, "stop")?;
    let loaded = crate::backup::load(ctx, archive).and_then(|()| {
        if let Some(m) = media {
            ctx.ui
                .line("[restore] switching the uploads to the backup's");
            *safety = crate::backup::restore_media(ctx, m)?;
        }
        Ok(())
    });
    app_units(ctx, "start")?;
    loaded?;
    crate::stack::check_stack_retried(ctx)
}

pub fn restore(inv: &Invocation, file: &Path) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    cfg.check_backup_host(&crate::paths::Paths::from_env().root)?;
    let file = std::path::absolute(file).map_err(|e| Error::io(file, e))?;
    super::context::load_state(&cli.state_file)?;
    let mut o = CtxOptions::new(inv, "restore");
    o.quiet = cli.output == Output::Json;
    let ctx = build_ctx(cfg, o);
    let host_file = ctx.host(&file.display().to_string());
    super::context::can_confirm(inv, "keel restore")?;
    // Opened once and checked before anything is asked, locked or stopped.
    let usage = |e: StepError| Error::Usage {
        msg: format!("keel restore {}: {}", file.display(), e.msg),
        hint: e.hint,
    };
    let archive = crate::backup::open_archive(&ctx, &host_file).map_err(usage)?;
    crate::backup::check_file(&ctx, &archive).map_err(usage)?;
    let media = crate::backup::open_media(&ctx, &host_file).map_err(usage)?;
    if !confirm(
        inv,
        &format!(
            "Replace the contents of database {} with {}? (the app is stopped meanwhile; a safety backup is taken first)",
            ctx.cfg.db_name(),
            file.display()
        ),
    )? {
        return Err(Error::usage("restore cancelled", "nothing was changed"));
    }
    let _lock = RunLock::acquire(&cli.state_file)?;
    let _backup = backup_lock(inv, &ctx)?;
    ctx.ui
        .line("[restore] safety backup of the database as it is");
    let safety = crate::backup::make(&ctx, "pre-restore").map_err(|e| failed("restore", e))?;
    let safety_path = crate::backup::dir(&ctx).join(&safety.name);
    ctx.ui
        .line(&format!("[restore] loading {}", file.display()));
    let mut media_safety = None;
    let outcome = load_and_check(&ctx, &archive, media.as_ref(), &mut media_safety);
    ctx.ui.finish();
    let Err(e) = outcome else {
        println!(
            "keel: restored {} into {}{}; the app is healthy",
            file.display(),
            ctx.cfg.db_name(),
            match &media_safety {
                Some(s) => format!(
                    ", and the uploads (those replaced are kept in {})",
                    ctx.paths.unhost(s).display()
                ),
                None if media.is_some() => ", and the uploads".into(),
                None => String::new(),
            }
        );
        return Ok(());
    };
    if let Some(s) = &media_safety
        && let Err(b) = crate::backup::put_back_media(&ctx, s)
    {
        ctx.ui.line(&format!(
            "[restore] the uploads could not be put back: {}",
            b.msg
        ));
    }
    ctx.ui.line(&format!(
        "[restore] failed: {}; putting the safety backup {} back",
        e.msg, safety.name
    ));
    let back = crate::backup::open_archive(&ctx, &safety_path)
        .and_then(|a| load_and_check(&ctx, &a, None, &mut None));
    Err(Error::StepFailed {
        step: "restore".into(),
        msg: format!(
            "{}; the safety backup {} was put back{}",
            e.msg,
            ctx.paths.unhost(&safety_path).display(),
            match back {
                Ok(()) => " and the app is healthy".to_string(),
                Err(b) => format!(", but the app is still unhealthy: {}", b.msg),
            }
        ),
        hint: e.hint,
    })
}
