//! `keel maintenance on|off|status`: the mode is recorded, then the nginx step renders the
//! site from it (checked with `nginx -t`, then a reload; the app is not restarted).
use super::context::Invocation;
use crate::cli::{MaintenanceAction, Output};
use crate::error::{Error, Result};
use crate::maintenance::{self, Maintenance};
use crate::paths::Paths;
use serde_json::json;

pub fn run(inv: &Invocation, action: &MaintenanceAction) -> Result<()> {
    let _cli = &inv.cli;
    let cfg = inv.config()?;
    let paths = Paths::from_env();
    let app = cfg.app.name.clone();
    let now = maintenance::read(&paths, &app);
    match action {
        MaintenanceAction::Status => {
            status(inv, now.as_ref());
            Ok(())
        }
        MaintenanceAction::On {
            message,
            allow,
            retry_after,
        } => {
            // Everything is checked before the mode is written.
            let message =
                maintenance::check_message(message.as_deref().unwrap_or("")).map_err(|e| {
                    Error::usage(format!("--message: {e}"), "give a short plain-text message")
                })?;
            let allow = allow
                .iter()
                .map(|a| crate::validate::cidr(a))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| {
                    Error::usage(
                        format!("--allow: {e}"),
                        "give an IPv4 or IPv6 address or network, e.g. --allow 203.0.113.0/24",
                    )
                })?;
            if !(1..=86_400).contains(retry_after) {
                return Err(Error::usage(
                    format!("--retry-after {retry_after}: out of range"),
                    "give 1 to 86400 seconds",
                ));
            }
            installed(inv)?;
            let m = Maintenance {
                message,
                allow,
                retry_after_secs: *retry_after,
                since: now
                    .as_ref()
                    .map(|m| m.since.clone())
                    .unwrap_or_else(crate::paths::now),
            };
            maintenance::write(&paths, &app, &m)
                .map_err(|e| Error::io(maintenance::path(&paths, &app), e))?;
            if let Err(e) = apply(inv) {
                // The site was left as it was: so is the mode.
                match &now {
                    Some(old) => {
                        let _ = maintenance::write(&paths, &app, old);
                    }
                    None => {
                        let _ = maintenance::remove(&paths, &app);
                    }
                }
                return Err(e);
            }
            status(inv, Some(&m));
            Ok(())
        }
        MaintenanceAction::Off => {
            let Some(old) = now else {
                status(inv, None);
                return Ok(());
            };
            maintenance::remove(&paths, &app)
                .map_err(|e| Error::io(maintenance::path(&paths, &app), e))?;
            if let Err(e) = apply(inv) {
                let _ = maintenance::write(&paths, &app, &old);
                return Err(e);
            }
            status(inv, None);
            Ok(())
        }
    }
}

/// The site is keel's already: `maintenance on` changes it, it never sets up nginx.
fn installed(inv: &Invocation) -> Result<()> {
    let _cli = &inv.cli;
    super::install::require_completed(
        inv,
        crate::steps::NGINX,
        "keel maintenance on: keel's site is not installed on this host",
        "install first (keel install); maintenance mode changes the site keel set up",
    )
}

/// The nginx step (and what it needs), as `keel install nginx` runs it.
fn apply(inv: &Invocation) -> Result<()> {
    let _cli = &inv.cli;
    super::install::run_targets(inv, &[crate::steps::NGINX], crate::cli::RollbackMode::Step)
}

fn status(inv: &Invocation, m: Option<&Maintenance>) {
    let cli = &inv.cli;
    if cli.output == Output::Json {
        println!("{}", json!({"maintenance": m}));
        return;
    }
    match m {
        None => println!("maintenance: off (the app serves everyone)"),
        Some(m) => {
            println!(
                "maintenance: on since {} (503, Retry-After {} s)",
                m.since, m.retry_after_secs
            );
            println!("  message: {}", m.message);
            let allow = if m.allow.is_empty() {
                "loopback only".to_string()
            } else {
                format!("loopback, {}", m.allow.join(", "))
            };
            println!("  gets the app: {allow}");
        }
    }
}
