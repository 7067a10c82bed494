//! Where keel reads and writes, and the small facts every layer needs (time stamps, run ids).
use serde_json::json;
use std::path::{Path, PathBuf};

/// Where keel reads and writes on the host. `root` is `/` except in tests (KEEL_ROOT), where a
/// temp directory stands in for the host.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    /// A named app (one of several on the host): its logs go to a directory of its own.
    pub app: Option<String>,
}

impl Paths {
    // The door: the root every host path is under.
    #[allow(clippy::disallowed_methods)]
    pub fn from_env() -> Paths {
        Paths {
            root: std::env::var_os("KEEL_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into()),
            app: None,
        }
    }
    /// The same host, for a named app (None: the host's app).
    pub fn for_app(mut self, app: Option<&str>) -> Paths {
        self.app = app.map(String::from);
        self
    }
    /// A host path under the root.
    pub fn host(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    /// The inverse of `host`: a path under the root as the host sees it ("/etc/...").
    pub fn unhost(&self, p: &Path) -> PathBuf {
        Path::new("/").join(p.strip_prefix(&self.root).unwrap_or(p))
    }
    pub fn log_dir(&self) -> PathBuf {
        match &self.app {
            Some(a) => self.host(&format!("/var/log/keel/apps/{a}")),
            None => self.host("/var/log/keel"),
        }
    }
    pub fn events_file(&self) -> PathBuf {
        self.log_dir().join("events.jsonl")
    }
}

/// A unit of keel's own (keel-verify, keel-resume, ...) for an app: the base name for the
/// host's app, `BASE-NAME` for a named one (each app's timers and resume are its own).
pub fn keel_unit(base: &str, app: Option<&str>) -> String {
    match app {
        Some(a) => format!("{base}-{a}"),
        None => base.into(),
    }
}

/// Create a log directory readable by root only (logs are redacted, but they describe the
/// host in detail). Best effort: logging must never fail a run.
pub fn private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
}

/// The template variables of a unit that runs keel itself (keel-verify, keel-resume): this
/// binary and the config and state file of this run, as absolute paths (systemd runs the unit
/// from / , where a relative path means something else).
pub fn keel_unit_vars(
    config: &Path,
    state_file: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    let keel = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/keel".into());
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut m = serde_json::Map::new();
    m.insert("keel".into(), json!(keel));
    m.insert("config".into(), json!(abs(config)));
    m.insert("state_file".into(), json!(abs(state_file)));
    m
}

/// RFC 3339 UTC timestamp, second precision.
/// Seconds since the epoch (fractions kept): what systemd's `--timestamp=unix` and the
/// app's heartbeats are compared with.
pub fn unix_now() -> f64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9
}

pub fn now() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// The UTC time as `YYYYMMDD-HHMMSS`: release ids and backup names (they sort by time).
pub fn stamp() -> String {
    let f = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

/// A run's id: its start time and keel's pid.
pub fn run_id() -> String {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]");
    let t = time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default();
    format!("{t}-{}", std::process::id())
}
