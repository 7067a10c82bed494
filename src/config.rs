//! keel.toml: parsed with serde (unknown keys refused), then validated; every error names
//! the file, the key and the fix.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub app: App,
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub packages: Packages,
    #[serde(default)]
    pub retry: Retry,
    #[serde(default)]
    pub timeouts: Timeouts,
    #[serde(default)]
    pub preflight: Preflight,
    #[serde(default)]
    pub postgres: Postgres,
    #[serde(default)]
    pub redis: Redis,
    #[serde(default)]
    pub nginx: Nginx,
    #[serde(default)]
    pub django: Django,
    #[serde(default)]
    pub health: Health,
    /// Extra or overriding values for the app's .env (highest priority).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Where the config was read from; relative paths in it are resolved against its directory.
    #[serde(skip)]
    pub source: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct App {
    pub name: String,
    pub domain: String,
    /// System user and group that own and run the app; defaults to the app name.
    #[serde(default)]
    pub user: Option<String>,
    /// Defaults to /opt/<name>.
    #[serde(default)]
    pub base_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Database {
    pub name: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Packages {
    pub install: Vec<String>,
    /// Installed first (python-packages step) so pip can run while the rest installs.
    pub python: Vec<String>,
}
impl Default for Packages {
    fn default() -> Self {
        Packages {
            install: ["postgresql", "redis-server", "nginx"]
                .map(String::from)
                .to_vec(),
            python: ["python3", "python3-venv"].map(String::from).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Retry {
    pub attempts: u32,
    pub initial_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Upper bound on the sum of all back-off sleeps of one step.
    pub max_total_delay_ms: u64,
}
impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            initial_delay_ms: 1000,
            max_delay_ms: 20_000,
            max_total_delay_ms: 120_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Timeouts {
    /// Default bound for one command.
    pub command_secs: u64,
    /// Bound for one apt-get run.
    pub apt_secs: u64,
    /// How long to wait for another process to release the dpkg lock.
    pub dpkg_lock_secs: u64,
}
impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command_secs: 300,
            apt_secs: 1800,
            dpkg_lock_secs: 900,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Preflight {
    pub min_cpus: u32,
    pub min_memory_mb: u64,
    pub min_disk_mb: u64,
}
impl Default for Preflight {
    fn default() -> Self {
        Preflight {
            min_cpus: 1,
            min_memory_mb: 900,
            min_disk_mb: 3000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Postgres {
    pub port: u16,
}
impl Default for Postgres {
    fn default() -> Self {
        Postgres { port: 5432 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Redis {
    pub port: u16,
    pub maxmemory_mb: u64,
}
impl Default for Redis {
    fn default() -> Self {
        Redis {
            port: 6379,
            maxmemory_mb: 256,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Nginx {
    pub port: u16,
    /// Disable the distribution's default site so keel's site answers on the port.
    pub disable_default_site: bool,
    pub client_max_body_mb: u32,
}
impl Default for Nginx {
    fn default() -> Self {
        Nginx {
            port: 80,
            disable_default_site: true,
            client_max_body_mb: 20,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Django {
    /// App source: a local directory (relative to this config file) ...
    pub source: Option<PathBuf>,
    /// ... or a git URL (keel installs git) with a ref.
    pub git: Option<String>,
    pub git_ref: String,
    /// WSGI callable for Gunicorn; default "<app.name>.wsgi:application".
    pub wsgi: Option<String>,
    /// Celery app for `celery -A`; default app.name.
    pub celery_app: Option<String>,
    pub admin_user: String,
    /// Default "admin@<app.domain>".
    pub admin_email: Option<String>,
    pub web_workers: u32,
    pub worker_concurrency: u32,
    /// Path that sends a Celery task and answers "pong" (empty: not checked).
    pub celery_ping_path: String,
    /// Path answering JSON {"heartbeat": <number>} that celery beat advances (empty: not checked).
    pub heartbeat_path: String,
    pub heartbeat_interval_secs: u64,
}
impl Default for Django {
    fn default() -> Self {
        Django {
            source: None,
            git: None,
            git_ref: "main".into(),
            wsgi: None,
            celery_app: None,
            admin_user: "admin".into(),
            admin_email: None,
            web_workers: 2,
            worker_concurrency: 2,
            celery_ping_path: String::new(),
            heartbeat_path: String::new(),
            heartbeat_interval_secs: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Health {
    /// Install keel-verify.timer: `keel verify --heal` every `interval_minutes`.
    pub timer: bool,
    pub interval_minutes: u32,
    /// Bound for each health check (they run in parallel).
    pub check_timeout_secs: u64,
}
impl Default for Health {
    fn default() -> Self {
        Health {
            timer: false,
            interval_minutes: 5,
            check_timeout_secs: 5,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            file: path.into(),
            key: "-".into(),
            msg: format!("cannot read the file: {e}"),
            hint: "pass --config FILE pointing at a keel.toml (see examples/demo.toml)".into(),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let key = key_of_toml_error(&e, text);
            Error::Config {
                file: path.into(),
                key,
                msg: e.message().to_string(),
                hint: toml_hint(&e, text),
            }
        })?;
        cfg.source = path.to_path_buf();
        cfg.validate()?;
        Ok(cfg)
    }

    fn err(&self, key: &str, msg: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Config {
            file: self.source.clone(),
            key: key.into(),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    fn validate(&self) -> Result<()> {
        let ident = |key: &str, v: &str, max: usize| -> Result<()> {
            let ok = !v.is_empty()
                && v.len() <= max
                && v.starts_with(|c: char| c.is_ascii_lowercase())
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if ok {
                Ok(())
            } else {
                Err(self.err(
                    key,
                    format!("{v:?} is not a valid name"),
                    format!(
                        "use 1-{max} characters: a lowercase letter, then lowercase letters, digits, '_' or '-' (e.g. \"demo\")"
                    ),
                ))
            }
        };
        ident("app.name", &self.app.name, 32)?;
        ident("app.user", &self.app_user(), 32)?;
        ident("database.name", &self.db_name(), 63)?;
        ident("database.user", &self.db_user(), 63)?;
        if self.db_name().contains('-') || self.db_user().contains('-') {
            return Err(self.err(
                "database.name",
                "'-' is not allowed in PostgreSQL names keel creates",
                "use '_' instead of '-'",
            ));
        }
        if !crate::system::valid_hostname(&self.app.domain) {
            return Err(self.err(
                "app.domain",
                format!("{:?} is not a valid host name", self.app.domain),
                "use a DNS name such as \"example.com\" (labels of letters, digits and '-')",
            ));
        }
        let base = self.base_dir();
        if !base.is_absolute() || base.components().count() < 2 || base == Path::new("/") {
            return Err(self.err(
                "app.base_dir",
                format!("{} must be an absolute directory below /", base.display()),
                "use a dedicated directory such as \"/opt/demo\"",
            ));
        }
        let lists = self
            .packages
            .install
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("packages.install[{i}]"), p));
        let lists = lists.chain(
            self.packages
                .python
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("packages.python[{i}]"), p)),
        );
        for (key, p) in lists {
            let ok = !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.:=~".contains(c));
            if !ok {
                return Err(self.err(
                    &key,
                    format!("{p:?} is not a Debian package name"),
                    "use names as apt-get install takes them, e.g. \"nginx\" or \"redis-server\"",
                ));
            }
        }
        let r = &self.retry;
        if r.attempts == 0 || r.attempts > 50 {
            return Err(self.err(
                "retry.attempts",
                format!("{} is out of range", r.attempts),
                "use 1 (no retry) to 50",
            ));
        }
        if r.initial_delay_ms > r.max_delay_ms {
            return Err(self.err(
                "retry.initial_delay_ms",
                "is larger than retry.max_delay_ms",
                "make initial_delay_ms <= max_delay_ms",
            ));
        }
        for (key, v) in [
            ("timeouts.command_secs", self.timeouts.command_secs),
            ("timeouts.apt_secs", self.timeouts.apt_secs),
        ] {
            if v == 0 {
                return Err(self.err(
                    key,
                    "must be at least 1",
                    "use a number of seconds, e.g. 300",
                ));
            }
        }
        let ports = [
            ("postgres.port", self.postgres.port),
            ("redis.port", self.redis.port),
            ("nginx.port", self.nginx.port),
        ];
        for (key, p) in ports {
            if p == 0 {
                return Err(self.err(key, "0 is not a usable port", "use a port from 1 to 65535"));
            }
        }
        let d = &self.django;
        if d.source.is_some() && d.git.is_some() {
            return Err(self.err(
                "django.source",
                "both django.source and django.git are set",
                "keep one: a local directory or a git URL",
            ));
        }
        if let Some(g) = &d.git
            && !(g.starts_with("https://")
                || g.starts_with("ssh://")
                || g.starts_with("git@")
                || g.starts_with("file://"))
        {
            return Err(self.err(
                "django.git",
                format!("{g:?} is not a git URL"),
                "use https://..., ssh://..., git@host:repo or file://...",
            ));
        }
        for (key, v) in [
            ("django.web_workers", d.web_workers),
            ("django.worker_concurrency", d.worker_concurrency),
        ] {
            if v == 0 || v > 64 {
                return Err(self.err(key, format!("{v} is out of range"), "use 1 to 64"));
            }
        }
        for (key, p) in [
            ("django.celery_ping_path", &d.celery_ping_path),
            ("django.heartbeat_path", &d.heartbeat_path),
        ] {
            if !p.is_empty() && !p.starts_with('/') {
                return Err(self.err(
                    key,
                    format!("{p:?} is not a URL path"),
                    "start it with '/', e.g. \"/celery-ping/\", or leave it empty",
                ));
            }
        }
        if self.health.interval_minutes == 0 || self.health.check_timeout_secs == 0 {
            return Err(self.err(
                "health.interval_minutes",
                "interval_minutes and check_timeout_secs must be at least 1",
                "e.g. interval_minutes = 5, check_timeout_secs = 5",
            ));
        }
        for k in self.env.keys() {
            if !(k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(self.err(
                    &format!("env.{k}"),
                    "not a valid environment variable name",
                    "use letters, digits and '_'",
                ));
            }
        }
        Ok(())
    }

    /// The app source directory, resolved against the config file's directory.
    pub fn app_source(&self) -> Option<PathBuf> {
        let s = self.django.source.as_ref()?;
        Some(if s.is_absolute() {
            s.clone()
        } else {
            self.source.parent().unwrap_or(Path::new(".")).join(s)
        })
    }
    pub fn app_dir(&self) -> PathBuf {
        self.base_dir().join("app")
    }
    pub fn venv_dir(&self) -> PathBuf {
        self.base_dir().join("venv")
    }
    pub fn wsgi(&self) -> String {
        self.django
            .wsgi
            .clone()
            .unwrap_or_else(|| format!("{}.wsgi:application", self.app.name.replace('-', "_")))
    }
    pub fn celery_app(&self) -> String {
        self.django
            .celery_app
            .clone()
            .unwrap_or_else(|| self.app.name.replace('-', "_"))
    }
    pub fn admin_email(&self) -> String {
        self.django
            .admin_email
            .clone()
            .unwrap_or_else(|| format!("admin@{}", self.app.domain))
    }

    pub fn app_user(&self) -> String {
        self.app
            .user
            .clone()
            .unwrap_or_else(|| self.app.name.clone())
    }
    pub fn base_dir(&self) -> PathBuf {
        self.app
            .base_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/opt").join(&self.app.name))
    }
    pub fn db_name(&self) -> String {
        self.database
            .name
            .clone()
            .unwrap_or_else(|| self.app.name.replace('-', "_"))
    }
    pub fn db_user(&self) -> String {
        self.database
            .user
            .clone()
            .unwrap_or_else(|| self.app.name.replace('-', "_"))
    }
}

/// Best effort: the dotted key an error is about, from the message or the span.
fn key_of_toml_error(e: &toml::de::Error, text: &str) -> String {
    if let Some(span) = e.span() {
        // Walk back to the table header and the key on the offending line.
        let start = span.start.min(text.len());
        let before = &text[..start];
        // Include the line the span starts on: it may be the table header itself.
        let upto = text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(text.len());
        let table = text[..upto]
            .lines()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && l.ends_with(']'))
                    .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
            })
            .unwrap_or_default();
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = text[line_start..].lines().next().unwrap_or("");
        let key = line.split('=').next().unwrap_or("").trim();
        let key = if key.starts_with('[') { "" } else { key };
        let line_no = before.matches('\n').count() + 1;
        let dotted = match (table.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        };
        return format!("{dotted} (line {line_no})");
    }
    "-".into()
}

fn toml_hint(e: &toml::de::Error, text: &str) -> String {
    let m = e.message();
    if m.contains("unknown field") {
        "remove or rename the key; the valid keys are listed above and in examples/demo.toml".into()
    } else if m.contains("missing field") {
        let _ = text;
        "add the missing key (see examples/demo.toml)".into()
    } else {
        "fix the value's type or syntax (see examples/demo.toml)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::parse(s, Path::new("/x/keel.toml"))
    }

    const MIN: &str = "[app]\nname = \"demo\"\ndomain = \"demo.example.com\"\n";

    #[test]
    fn defaults_fill_in() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.app_user(), "demo");
        assert_eq!(c.base_dir(), PathBuf::from("/opt/demo"));
        assert_eq!(c.db_name(), "demo");
        assert_eq!(c.retry.attempts, 4);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse(&format!("{MIN}colour = \"red\"\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("/x/keel.toml"), "{s}");
        assert!(s.contains("app.colour"), "{s}");
        assert!(s.contains("unknown field"), "{s}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, key) in [
            (
                "[retry]\nattempts = 0\ninitial_delay_ms=1\nmax_delay_ms=2\nmax_total_delay_ms=3\n",
                "retry.attempts",
            ),
            ("[database]\nname = \"Bad Name\"\n", "database.name"),
            (
                "[packages]\ninstall = [\"ok\", \"rm -rf\"]\n",
                "packages.install[1]",
            ),
        ] {
            let e = parse(&format!("{MIN}{extra}")).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
            assert!(e.hint().is_some());
        }
        let e = parse("[app]\nname = \"Demo\"\ndomain = \"x.com\"\n").unwrap_err();
        assert!(e.to_string().contains("app.name"), "{e}");
        let e = parse("[app]\nname = \"demo\"\ndomain = \"not a host\"\n").unwrap_err();
        assert!(e.to_string().contains("app.domain"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = parse(&format!("{MIN}[redis]\nport = \"six\"\nmaxmemory_mb = 1\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("redis.port"), "{s}");
        assert!(s.contains("line 5"), "{s}");
    }

    #[test]
    fn demo_example_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.toml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.app.name, "demo");
        assert_eq!(c.base_dir(), PathBuf::from("/opt/demo"));
        assert_eq!(c.db_name(), "demo");
        assert_eq!(c.db_user(), "demo");
    }
}
