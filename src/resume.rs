//! Resuming after a reboot. A run cut by a reboot leaves its state `running`; nothing re-runs
//! it by itself (cloud-init's runcmd runs once per instance). So every install arms a boot
//! unit, `keel-resume.service`, which runs `keel install --resume`: a no-op unless the last
//! run did not finish, else the same step selection again, from where it stopped.
use crate::exec::{Cmd, Exec};
use crate::paths::Paths;
use crate::state::{RunOutcome, RunRecord};
use std::path::{Path, PathBuf};

/// The boot unit: keel-resume.service for the host's app, keel-resume-NAME.service for a
/// named one (each app resumes its own run).
pub fn unit(paths: &Paths) -> String {
    format!(
        "{}.service",
        crate::paths::keel_unit("keel-resume", paths.app.as_deref())
    )
}

fn unit_path(paths: &Paths) -> PathBuf {
    paths.host(&format!("/etc/systemd/system/{}", unit(paths)))
}

fn wants_link(paths: &Paths) -> PathBuf {
    paths.host(&format!(
        "/etc/systemd/system/multi-user.target.wants/{}",
        unit(paths)
    ))
}

/// The kernel's id of this boot (under KEEL_ROOT in tests, so they can fake a reboot).
pub fn boot_id(paths: &Paths) -> Option<String> {
    std::fs::read_to_string(paths.host("/proc/sys/kernel/random/boot_id"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Write and enable the unit (only if it differs: a no-op run stays a few milliseconds).
/// Enabling is the `WantedBy` link itself; the running systemd needs no reload for a unit
/// that only matters at the next boot.
pub fn arm(paths: &Paths, config: &Path, state_file: &Path) -> std::io::Result<()> {
    let text = crate::render::render(
        "keel-resume.service",
        crate::paths::keel_unit_vars(config, state_file),
    )
    .map_err(std::io::Error::other)?;
    let file = unit_path(paths);
    if std::fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        crate::txn::write_atomic(&file, text.as_bytes(), 0o644, None)?;
    }
    let link = wants_link(paths);
    let target = PathBuf::from(format!("/etc/systemd/system/{}", unit(paths)));
    if std::fs::read_link(&link).ok() != Some(target.clone()) {
        if let Some(d) = link.parent() {
            std::fs::create_dir_all(d)?;
        }
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)?;
    }
    Ok(())
}

/// `keel rollback`: the unit goes with everything else keel set up.
pub fn disarm(paths: &Paths) {
    let _ = std::fs::remove_file(wants_link(paths));
    let _ = std::fs::remove_file(unit_path(paths));
}

/// The last run, if it did not finish (the caller holds the run lock, so nobody runs it).
pub fn interrupted(last: Option<&RunRecord>) -> Option<&RunRecord> {
    last.filter(|r| r.outcome == RunOutcome::Running)
}

/// For `status --wait` after a reboot: is keel-resume.service still to take over the run a
/// reboot cut? Only when the run started in another boot, the unit is enabled, and (asked
/// of systemd, through the one runner) it has not run yet this boot while the boot is
/// still going.
pub fn pending(paths: &Paths, exec: &Exec, run: &RunRecord) -> bool {
    let now = boot_id(paths);
    if now.is_none() || run.boot_id.is_none() || now == run.boot_id {
        return false;
    }
    if std::fs::symlink_metadata(wants_link(paths)).is_err() {
        return false;
    }
    let ask = |args: &[&str]| {
        exec.probe("status", &Cmd::new("systemctl").args(args.iter().copied()))
            .map(|o| o.stdout)
            .unwrap_or_default()
    };
    let text = ask(&[
        "show",
        "-p",
        "ActiveState",
        "-p",
        "ExecMainStartTimestampMonotonic",
        &unit(paths),
    ]);
    let val = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or("")
            .to_string()
    };
    if val("ActiveState") == "activating" {
        return true;
    }
    let started = val("ExecMainStartTimestampMonotonic");
    if !started.is_empty() && started != "0" {
        // It ran this boot and the run is still marked interrupted: it did not take over.
        return false;
    }
    // Not run yet: pending while the boot is still in progress.
    let state = ask(&["is-system-running"]).trim().to_string();
    matches!(state.as_str(), "initializing" | "starting")
}
