//! systemd helpers every step uses: start, restart, check a unit, and the stronger checks
//! (stable after start, listening on loopback only).
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use crate::txn::Txn;

pub fn systemctl(ctx: &Ctx, step: &str, args: &[&str]) -> StepResult<crate::exec::Output> {
    crate::exec::systemctl(&ctx.exec, step, args).map_err(StepError::from)
}

pub fn is_active(ctx: &Ctx, step: &str, unit: &str) -> bool {
    ctx.exec
        .probe(
            step,
            &Cmd::new("systemctl").args(["is-active", "--quiet", unit]),
        )
        .map(|o| o.code == 0)
        .unwrap_or(false)
}

/// Start and enable `unit` if it is not running; a unit this step started is stopped again
/// if the step rolls back.
pub fn ensure_running(ctx: &Ctx, step: &str, unit: &str, tx: &mut Txn) -> StepResult {
    if !is_active(ctx, step, unit) {
        systemctl(ctx, step, &["enable", "--now", unit])?;
        tx.on_rollback(Cmd::new("systemctl").args(["stop", unit]));
    }
    Ok(())
}

/// A keel timer's unit files (the timer and its service): written when `on` (true if any
/// changed), else the timer stopped and disabled and the files removed (true if any was
/// there). The backup timer and the health timer share it.
pub fn timer_files(
    ctx: &Ctx,
    step: &str,
    tx: &mut Txn,
    timer: &str,
    files: &[(std::path::PathBuf, String)],
    on: bool,
) -> StepResult<bool> {
    if !on {
        let there = files.iter().any(|(p, _)| p.exists());
        if there {
            let _ = systemctl(ctx, step, &["disable", "--now", timer]);
            for (p, _) in files {
                tx.remove(p).map_err(crate::step::io_err(p))?;
            }
        }
        return Ok(there);
    }
    let mut changed = false;
    for (p, text) in files {
        changed |= tx
            .write(p, text.as_bytes(), 0o644, None)
            .map_err(crate::step::io_err(p))?;
    }
    Ok(changed)
}

/// Enable and start a timer that is not running; a rollback disables it again.
pub fn enable_timer(ctx: &Ctx, step: &str, tx: &mut Txn, timer: &str) -> StepResult {
    if !is_active(ctx, step, timer) {
        tx.on_rollback(Cmd::new("systemctl").args(["disable", "--now", timer]));
        systemctl(ctx, step, &["enable", "--now", timer])?;
    }
    Ok(())
}

/// Restart (or reload) after a config change; rollback does it again with the old config.
pub fn apply(ctx: &Ctx, step: &str, action: &'static str, unit: &str, tx: &mut Txn) -> StepResult {
    tx.reapply(action, unit);
    systemctl(ctx, step, &[action, unit]).map(|_| ())
}

pub fn require_active(ctx: &Ctx, step: &str, unit: &str) -> StepResult {
    if is_active(ctx, step, unit) {
        return Ok(());
    }
    // The unit's own last words say more than "inactive".
    let tail = ctx.exec.journal_tail(step, unit, 3);
    Err(StepError::transient(
        format!(
            "unit {unit} is not active{}",
            if tail.is_empty() {
                String::new()
            } else {
                format!(": {tail}")
            }
        ),
        format!("see journalctl -u {unit} -n 50"),
    ))
}

/// How often systemd restarted `unit` since it was started (0 if unknown).
pub fn restarts(ctx: &Ctx, step: &str, unit: &str) -> u64 {
    ctx.exec
        .probe(
            step,
            &Cmd::new("systemctl").args(["show", "-p", "NRestarts", "--value", unit]),
        )
        .ok()
        .and_then(|o| o.stdout.trim().parse().ok())
        .unwrap_or(0)
}

/// Every exit of `unit`'s main process in its recent journal is one of systemd's own
/// codes for a process that never ran (200-243: `status=219/CGROUP`), and there is one.
fn setup_failures_only(ctx: &Ctx, step: &str, unit: &str) -> bool {
    let Some(text) = ctx.exec.journal(step, unit, 200) else {
        return false;
    };
    let codes: Vec<u32> = text
        .lines()
        .filter(|l| l.contains("Main process exited"))
        .filter_map(|l| {
            let s = l.split("status=").nth(1)?;
            s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .collect();
    // A crash (a signal, or the app's own exit code) has no status of systemd's range.
    let crashes = text
        .lines()
        .filter(|l| l.contains("Main process exited"))
        .count();
    !codes.is_empty() && codes.len() == crashes && codes.iter().all(|c| (200..=243).contains(c))
}

/// Active now, and still active a moment later without having restarted: a unit that
/// crashes at start-up (Restart=on-failure) looks active for an instant.
pub fn require_stable(ctx: &Ctx, step: &str, units: &[String]) -> StepResult {
    for u in units {
        require_active(ctx, step, u)?;
    }
    ctx.exec.pause(std::time::Duration::from_millis(1000));
    for u in units {
        require_active(ctx, step, u)?;
        let n = restarts(ctx, step, u);
        if n > 0 && setup_failures_only(ctx, step, u) {
            // systemd could not set the process up (exit 200-243: a cgroup it could not
            // make under load, seen in containers); the app never ran, and runs now.
            ctx.ui.step_note(
                step,
                &format!("{u} was restarted {n} time(s) after systemd could not set it up (not the app's failure)"),
            );
            continue;
        }
        if n > 0 {
            return Err(StepError::permanent(
                format!("unit {u} restarted {n} time(s) since it started"),
                format!("see journalctl -u {u} -n 50"),
            ));
        }
    }
    Ok(())
}

/// Every listener on `port` is on loopback (and there is at least one).
pub fn require_loopback_listener(ctx: &Ctx, port: u16, what: &str) -> StepResult {
    require_listener(ctx, port, what, None)
}

/// As `require_loopback_listener`, with one more address allowed: a database host's
/// private one (`[postgres] listen`, `[redis] listen`).
pub fn require_listener(ctx: &Ctx, port: u16, what: &str, also: Option<&str>) -> StepResult {
    let also: Option<std::net::IpAddr> = also.and_then(|a| a.parse().ok());
    let l: Vec<_> = crate::system::listeners(&ctx.paths.root)
        .into_iter()
        .filter(|l| l.port == port)
        .collect();
    if l.is_empty() {
        return Err(StepError::transient(
            format!("{what}: nothing listens on port {port}"),
            format!("see journalctl -u {what}"),
        ));
    }
    let allowed = |a: &str| {
        crate::system::is_loopback(a)
            || also.is_some_and(|x| a.parse::<std::net::IpAddr>().ok() == Some(x))
    };
    if let Some(x) = l.iter().find(|l| !allowed(&l.addr)) {
        return Err(StepError::permanent(
            format!(
                "{what} listens on {}:{port}, not only on loopback{}",
                x.addr,
                also.map(|a| format!(" and {a}")).unwrap_or_default()
            ),
            "keel binds it to 127.0.0.1/::1; check for other config overriding the bind address",
        ));
    }
    Ok(())
}

/// The generic undo of a step (see `Step::manages`): stop and disable its units, remove its
/// files, let the step undo what else it did, then reload what reads those files.
pub fn undo_managed(ctx: &Ctx, step: &dyn crate::step::Step) -> StepResult {
    let id = step.id();
    let m = step.manages(ctx);
    for unit in &m.units {
        if ctx.host(&format!("/etc/systemd/system/{unit}")).exists() {
            // Best effort: a unit that is already gone or never started is fine.
            let _ = systemctl(ctx, id, &["disable", "--now", unit]);
        }
    }
    let mut unit_files = false;
    for f in &m.files {
        if crate::fsx::unlink(f).map_err(crate::step::io_err(f))? {
            unit_files |= f.starts_with(ctx.host("/etc/systemd/system"));
        }
    }
    step.undo(ctx)?;
    if unit_files {
        systemctl(ctx, id, &["daemon-reload"])?;
    }
    for (action, unit) in &m.after {
        if is_active(ctx, id, unit) {
            systemctl(ctx, id, &[action, unit])?;
        }
    }
    Ok(())
}
