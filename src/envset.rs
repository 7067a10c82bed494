//! `keel env set|unset`: the app's environment values the admin sets from the command line,
//! kept in a root-only file (never keel.toml, never the state file) and merged into the
//! app's `.env` by the app-env step, over keel.toml's `[env]`.
use crate::paths::Paths;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub fn path(paths: &Paths, app: &str) -> PathBuf {
    paths.host(&format!("/etc/keel/env/{app}.json"))
}

/// The values set so far (none when the file is absent or not a regular file of keel's).
pub fn read(paths: &Paths, app: &str) -> BTreeMap<String, String> {
    crate::fsx::read_text_nofollow(&path(paths, app), crate::fsx::MAX_INPUT)
        .ok()
        .flatten()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn write(paths: &Paths, app: &str, values: &BTreeMap<String, String>) -> std::io::Result<()> {
    let p = path(paths, app);
    if let Some(d) = p.parent() {
        crate::paths::private_dir(d);
    }
    let text = serde_json::to_string_pretty(values).map_err(std::io::Error::other)?;
    crate::fsx::write_atomic(&p, text.as_bytes(), 0o600, Some((0, 0)))
}

/// A variable name as a shell and systemd's EnvironmentFile take it.
pub fn check_key(k: &str) -> Result<(), String> {
    let mut c = k.chars();
    let first_ok = c
        .next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_');
    if first_ok && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && k.len() <= 128 {
        Ok(())
    } else {
        Err(format!(
            "{k:?} is not a variable name (letters, digits and _, not starting with a digit)"
        ))
    }
}

/// A value for one `.env` line: no line breaks or NUL, at most 64 KiB.
pub fn check_value(k: &str, v: &str) -> Result<(), String> {
    if v.contains(['\n', '\r', '\0']) {
        return Err(format!("{k}: a value cannot hold a line break or NUL"));
    }
    if v.len() > 65_536 {
        return Err(format!("{k}: a value of at most 64 KiB"));
    }
    Ok(())
}
