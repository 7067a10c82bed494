//! The apps on this host: the host's app (/etc/keel/keel.toml, the single-app layout) and
//! the named ones (/etc/keel/apps/NAME.toml, each with its own state file). Found from the
//! files alone, so every command sees the same list without a registry to keep in step.
use crate::config::Config;
use crate::error::Result;
use crate::paths::Paths;
use std::path::{Path, PathBuf};

pub const HOST_CONFIG: &str = "/etc/keel/keel.toml";
pub const HOST_STATE: &str = "/var/lib/keel/state.json";
pub const APPS_DIR: &str = "/etc/keel/apps";

/// The host lock: held by `keel install` of any app, so the steps every app shares
/// (packages, baseline, firewall, the PostgreSQL and nginx servers) never run twice at once.
pub const HOST_LOCK: &str = "/run/keel/host";

#[derive(Debug, Clone)]
pub struct Entry {
    /// None: the host's app.
    pub name: Option<String>,
    pub config: PathBuf,
    pub state_file: PathBuf,
}

/// A named app's state file.
pub fn state_file(paths: &Paths, name: &str) -> PathBuf {
    paths.host(&format!("/var/lib/keel/apps/{name}/state.json"))
}

/// Every app whose config is on this host, the host's app first, then by name. A file in
/// the apps directory that is not `NAME.toml` with a valid name is not an app.
pub fn list(paths: &Paths) -> Vec<Entry> {
    let mut v = vec![];
    let host = paths.host(HOST_CONFIG);
    if crate::fsx::lstat(&host).is_ok_and(|m| m.is_some()) {
        v.push(Entry {
            name: None,
            config: host,
            state_file: paths.host(HOST_STATE),
        });
    }
    let mut named: Vec<String> = std::fs::read_dir(paths.host(APPS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let f = e.file_name().into_string().ok()?;
            let n = f.strip_suffix(".toml")?;
            crate::validate::ident(n, 32).then(|| n.to_string())
        })
        .collect();
    named.sort();
    for n in named {
        v.push(Entry {
            config: paths.host(&format!("{APPS_DIR}/{n}.toml")),
            state_file: state_file(paths, &n),
            name: Some(n),
        });
    }
    v
}

impl Entry {
    /// The app's config, checked as its own commands would load it.
    pub fn load(&self) -> Result<Config> {
        Config::load_other(&self.config, self.name.is_some())
    }

    /// Installed (some step completed and not rolled back since): its shared steps' work is
    /// still in use.
    pub fn installed(&self) -> bool {
        crate::state::State::load(&self.state_file).is_ok_and(|st| {
            st.steps
                .values()
                .any(|r| r.status == crate::state::Status::Completed)
        })
    }

    pub fn is(&self, cfg: &Config) -> bool {
        same_file(&self.config, &cfg.source)
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// The other apps on this host, each with its config (or why it could not be read).
pub fn others(paths: &Paths, cfg: &Config) -> Vec<(Entry, Result<Config>)> {
    list(paths)
        .into_iter()
        .filter(|e| !e.is(cfg))
        .map(|e| {
            let c = e.load();
            (e, c)
        })
        .collect()
}

/// The other apps that are installed: what a rollback of this one must leave in place.
pub fn others_installed(paths: &Paths, cfg: &Config) -> Vec<String> {
    list(paths)
        .into_iter()
        .filter(|e| !e.is(cfg) && e.installed())
        .map(|e| e.name.clone().unwrap_or_else(|| "the host's app".into()))
        .collect()
}

/// This app against every other app on the host (`Config::check_siblings`), before the
/// first write. Another app's config that cannot be read stops it too: a check that was not
/// made is not passed.
pub fn check_others(paths: &Paths, cfg: &Config) -> Result<()> {
    let mut loaded = vec![];
    for (e, c) in others(paths, cfg) {
        match c {
            Ok(c) => loaded.push((e.config, c)),
            Err(err) => {
                return Err(crate::error::Error::usage(
                    format!("another app's config on this host cannot be read: {err}"),
                    "keel checks each app's names against every other app's before it changes anything: fix that config, or move it out of /etc/keel/apps",
                ));
            }
        }
    }
    let refs: Vec<(&Path, &Config)> = loaded.iter().map(|(p, c)| (p.as_path(), c)).collect();
    cfg.check_siblings(&refs)
}

/// Does another app on this host (installed or about to be) want `f`: a file of the host's
/// that one app must not take away from another (certbot's renewal hook).
pub fn another_wants(paths: &Paths, cfg: &Config, f: impl Fn(&Config) -> bool) -> bool {
    others(paths, cfg)
        .into_iter()
        .any(|(_, c)| c.as_ref().is_ok_and(&f))
}
