//! Maintenance mode (`keel maintenance on|off|status`): what nginx answers everyone but
//! loopback and the allowed addresses while it is on. Kept in a root-only file, read by the
//! nginx step (so re-runs and drift repair keep the mode) and by `keel verify`.
use crate::paths::Paths;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Maintenance {
    /// Shown on the 503 page (HTML-escaped when rendered).
    pub message: String,
    /// Addresses and networks that still get the app (canonical, as `validate::cidr` gives).
    pub allow: Vec<String>,
    /// Retry-After, in seconds.
    pub retry_after_secs: u64,
    /// When it was turned on (UTC).
    pub since: String,
}

/// The page's message when none is given.
pub const DEFAULT_MESSAGE: &str = "This site is down for maintenance and will be back shortly.";

pub fn path(paths: &Paths, app: &str) -> PathBuf {
    paths.host(&format!("/var/lib/keel/maintenance-{app}.json"))
}

/// The mode as recorded; None when off (or when the file is not keel's to trust: not a
/// regular file, or unreadable JSON, which is then reported by `status`).
pub fn read(paths: &Paths, app: &str) -> Option<Maintenance> {
    let text = crate::fsx::read_text_nofollow(&path(paths, app), crate::fsx::MAX_INPUT).ok()??;
    serde_json::from_str(&text).ok()
}

pub fn write(paths: &Paths, app: &str, m: &Maintenance) -> std::io::Result<()> {
    let p = path(paths, app);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d)?;
    }
    let text = serde_json::to_string_pretty(m).map_err(std::io::Error::other)?;
    crate::fsx::write_atomic(&p, text.as_bytes(), 0o600, Some((0, 0)))
}

pub fn remove(paths: &Paths, app: &str) -> std::io::Result<()> {
    match std::fs::remove_file(path(paths, app)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A message for the page: one line or a few, no control characters, at most 500 characters.
pub fn check_message(m: &str) -> Result<String, String> {
    let m = m.trim();
    if m.chars().count() > 500 {
        return Err("at most 500 characters".into());
    }
    if m.chars().any(|c| c.is_control() && c != '\n') {
        return Err("control characters are not allowed".into());
    }
    Ok(if m.is_empty() {
        DEFAULT_MESSAGE.into()
    } else {
        m.into()
    })
}
