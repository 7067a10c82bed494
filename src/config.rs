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
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub drift: Drift,
    #[serde(default)]
    pub host: Host,
    #[serde(default)]
    pub deploy: Deploy,
    #[serde(default)]
    pub celery: Celery,
    #[serde(default)]
    pub backup: Backup,
    #[serde(default)]
    pub firewall: Firewall,
    #[serde(default)]
    pub python: Python,
    #[serde(default)]
    pub build: Build,
    #[serde(default)]
    pub release: ReleaseHooks,
    /// `[[process]]`: more long-running processes (units like the worker).
    #[serde(default, rename = "process")]
    pub processes: Vec<crate::process::Process>,
    /// `[[schedule]]`: commands on a calendar (timers).
    #[serde(default, rename = "schedule")]
    pub schedules: Vec<crate::schedule::Schedule>,
    /// `[notify]`: webhooks, e-mail and a command for what goes wrong, and a heartbeat.
    #[serde(default)]
    pub notify: crate::notify::Notify,
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
    /// PostgreSQL extensions the app's migrations need (`pg_trgm`, `bloom`, `postgis`):
    /// created by the superuser before `migrate`, so the app's role stays unprivileged.
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Packages {
    pub install: Vec<String>,
    /// Installed first (python-packages step) so pip can run while the rest installs.
    pub python: Vec<String>,
    /// What the app's packages need to build from source (compilers, headers such as
    /// libpq-dev): installed with `python`, in the first apt run, before the venv is built.
    pub build: Vec<String>,
    /// Debian's Recommends too. Off by default: keel names what the stack needs, and
    /// Recommends add packages nobody asked for (npm's alone are about 200: node-tap and
    /// its tree), each a longer install and more to patch.
    pub recommends: bool,
}
impl Default for Packages {
    fn default() -> Self {
        Packages {
            install: ["postgresql", "redis-server", "nginx"]
                .map(String::from)
                .to_vec(),
            python: ["python3", "python3-venv"].map(String::from).to_vec(),
            build: vec![],
            recommends: false,
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
    /// The file the venv is built from, relative to the app's top: a pip requirements file
    /// (its `-r`/`-c` includes followed), uv.lock, poetry.lock, Pipfile.lock or
    /// pyproject.toml. Empty: found in the app (deps::CANDIDATES).
    pub requirements: String,
    /// The app's MEDIA_URL: nginx serves the uploads (shared/media) there ("": not served).
    pub media_url: String,
    /// DJANGO_SETTINGS_MODULE for the units and every command keel runs for the app (None:
    /// the project's own default, as manage.py and wsgi.py set it).
    pub settings: Option<String>,
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
            requirements: String::new(),
            media_url: "/media/".into(),
            settings: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Health {
    /// The page the site check asks for (and a deploy's checks), through nginx.
    pub path: String,
    /// The statuses that mean "the app answers" there: 200, or a redirect to a login page.
    pub statuses: Vec<u16>,
    /// Install keel-verify.timer: `keel verify --heal` every `interval_minutes` (on anyway
    /// when `[notify]` has a channel or a heartbeat: it sends what the checks find).
    pub timer: bool,
    pub interval_minutes: u32,
    /// Bound for each health check (they run in parallel).
    pub check_timeout_secs: u64,
}
impl Default for Health {
    fn default() -> Self {
        Health {
            path: "/".into(),
            statuses: vec![200],
            timer: false,
            interval_minutes: 5,
            check_timeout_secs: 5,
        }
    }
}

/// The host baseline: swap on small machines, security updates, bounded logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Host {
    /// Size of keel's swap file; 0: never make one.
    pub swap_mb: u64,
    /// Made only when RAM is below this and the host has no swap at all.
    pub swap_when_ram_below_mb: u64,
    pub swappiness: u32,
    /// unattended-upgrades, security origin only.
    pub security_updates: bool,
    /// journald's SystemMaxUse.
    pub journal_max_mb: u64,
}
impl Default for Host {
    fn default() -> Self {
        Host {
            swap_mb: 1024,
            swap_when_ram_below_mb: 2048,
            swappiness: 10,
            security_updates: true,
            journal_max_mb: 500,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FirewallMode {
    /// On, except inside a container (its netfilter is the host's or shared).
    Auto,
    On,
    Off,
}

/// The host firewall: nftables, one table of keel's, input dropped but for what is listed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Firewall {
    pub mode: FirewallMode,
    /// The SSH port to allow; default: the port(s) sshd really listens on.
    pub ssh_port: Option<u16>,
    /// More TCP ports to allow (HTTP and HTTPS always are).
    pub allow_tcp: Vec<u16>,
    pub allow_udp: Vec<u16>,
}
impl Default for Firewall {
    fn default() -> Self {
        Firewall {
            mode: FirewallMode::Auto,
            ssh_port: None,
            allow_tcp: vec![],
            allow_udp: vec![],
        }
    }
}

/// Database backups: a timer, a private directory, retention, an optional upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Backup {
    /// Install the backup timer (`keel backup` works either way).
    pub timer: bool,
    /// systemd OnCalendar: "hourly", "daily", "weekly" or an expression ("*-*-* 03:00").
    pub schedule: String,
    /// Default /var/backups/keel/<app> (0700, root).
    pub dir: Option<PathBuf>,
    /// The newest backup of each of the last N days is kept ...
    pub keep_daily: u64,
    /// ... and of each of the last M weeks before those.
    pub keep_weekly: u64,
    /// Run after each backup with the file's path appended (argv, no shell): an offsite copy.
    pub upload_command: Vec<String>,
    /// `keel verify` is degraded when the newest backup is older than this; default twice
    /// the schedule's interval.
    pub max_age_hours: Option<u64>,
}
impl Default for Backup {
    fn default() -> Self {
        Backup {
            timer: true,
            schedule: "daily".into(),
            dir: None,
            keep_daily: 7,
            keep_weekly: 4,
            upload_command: vec![],
            max_age_hours: None,
        }
    }
}

/// How Python packages are installed into a release's virtualenv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Installer {
    /// uv (from the Python package index, into keel's own tools directory): several times
    /// faster than pip, with a shared cache, and no python3-venv needed.
    Uv,
    /// `python3 -m venv` and pip.
    Pip,
}

/// Releases and `keel deploy`.
/// The interpreter and the dependency selection.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Python {
    /// A version ("3.12": that series) or a PEP 440 specifier (">=3.12"), on top of what the
    /// project asks (requires-python, .python-version, runtime.txt).
    pub version: String,
    /// May keel install a uv-managed CPython when the OS's python3 does not satisfy them.
    pub managed: bool,
    /// Where uv downloads managed Pythons from (UV_PYTHON_INSTALL_MIRROR; "": uv's own).
    pub mirror: String,
    /// Dependency groups installed beside the main dependencies (never the dev group unless
    /// named here).
    pub groups: Vec<String>,
    /// Extras of the project installed too.
    pub extras: Vec<String>,
}

/// Build-time commands: run in a new release before collectstatic, as the build user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Build {
    /// Shell command lines, in order (e.g. "python manage.py compile_themes").
    pub commands: Vec<String>,
    /// "auto": with a package.json that has a build script, Debian's Node and
    /// `npm ci && npm run build` first; "off": never.
    pub node: String,
    /// "auto": `compilemessages` when the app has locale/*.po files; "off": never.
    pub compilemessages: String,
}
impl Default for Build {
    fn default() -> Self {
        Build {
            commands: vec![],
            node: "auto".into(),
            compilemessages: "auto".into(),
        }
    }
}

/// Release-time commands: after migrate, as the app with its .env, once per release.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct ReleaseHooks {
    pub commands: Vec<String>,
}

/// The Celery worker as the app routes its tasks.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Celery {
    /// The queues the worker consumes (`--queues`); empty: Celery's default queue only.
    pub queues: Vec<String>,
    /// `prefork` (Celery's default), `threads`, `solo`, `gevent` or `eventlet`.
    pub pool: Option<String>,
    /// More `--option[=value]` arguments for the worker (not the ones keel sets).
    pub extra_args: Vec<String>,
    /// A task waiting longer than this in a queue the worker consumes makes verify
    /// unhealthy (a queue nobody consumes does at once).
    pub queue_max_age_secs: u64,
}
impl Default for Celery {
    fn default() -> Self {
        Celery {
            queues: vec![],
            pool: None,
            extra_args: vec![],
            queue_max_age_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Deploy {
    /// Releases kept under <base_dir>/releases (the current one always among them).
    pub keep_releases: u64,
    pub installer: Installer,
    /// How long a Celery worker may take to finish its running tasks when it is restarted
    /// (warm shutdown) before systemd kills it.
    pub worker_stop_timeout_secs: u64,
}
impl Default for Deploy {
    fn default() -> Self {
        Deploy {
            keep_releases: 5,
            installer: Installer::Uv,
            worker_stop_timeout_secs: 600,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Drift {
    /// Managed files whose hand edits are kept on purpose: never reported as drift, never
    /// overwritten while they exist.
    pub keep: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Acme,
    Files,
    SelfSigned,
    Off,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Acme => "acme",
            TlsMode::Files => "files",
            TlsMode::SelfSigned => "self-signed",
            TlsMode::Off => "off",
        }
    }
}

/// Let's Encrypt's production directory: the default CA, as with certbot, Caddy and Kamal.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Its staging directory: untrusted certificates, much higher rate limits (for trials).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Tls {
    /// Unset: "acme" when `email` is set, else "off" (see `Config::tls_mode`).
    pub mode: Option<TlsMode>,
    /// The ACME account's contact (expiry warnings from the CA go there).
    pub email: Option<String>,
    pub acme_directory: String,
    /// Names served and certified besides app.domain (e.g. "www.example.com").
    pub domains: Vec<String>,
    /// mode = "files": the certificate (with its chain) and key the admin provides.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub port: u16,
    /// Strict-Transport-Security max-age in seconds; 0 sends no header.
    pub hsts_max_age: u64,
    pub hsts_include_subdomains: bool,
    /// Opt-in only: preload lists are hard to leave.
    pub hsts_preload: bool,
}
impl Default for Tls {
    fn default() -> Self {
        Tls {
            mode: None,
            email: None,
            acme_directory: LETS_ENCRYPT.into(),
            domains: vec![],
            cert_file: None,
            key_file: None,
            port: 443,
            // Six months: long enough to matter, short enough to back out of a mistake.
            hsts_max_age: 15_768_000,
            hsts_include_subdomains: false,
            hsts_preload: false,
        }
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let cannot = |msg: String| Error::Config {
            file: path.into(),
            key: "-".into(),
            msg,
            hint: "pass --config FILE pointing at a keel.toml (see examples/demo.toml)".into(),
        };
        let bytes = crate::fsx::read_regular(path, crate::fsx::MAX_INPUT)
            .map_err(|e| cannot(format!("cannot read the file: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| cannot("cannot read the file: it is not UTF-8 text".into()))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let syntax = |e: toml::de::Error| Error::Config {
            file: path.into(),
            key: key_of_toml_error(&e, text),
            msg: e.message().to_string(),
            hint: toml_hint(&e, text),
        };
        let de = toml::Deserializer::parse(text).map_err(syntax)?;
        // serde_path_to_error names the key a type error or unknown field is about.
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let mut key = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().to_string();
            if let Some(field) = msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
            {
                if key == "." {
                    key = field.into();
                } else if !key.ends_with(&format!(".{field}")) && key != field {
                    key = format!("{key}.{field}");
                }
            }
            if let Some(span) = inner.span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                key = format!("{key} (line {line})");
            }
            Error::Config {
                file: path.into(),
                key,
                msg,
                hint: toml_hint(&inner, text),
            }
        })?;
        cfg.source = path.to_path_buf();
        // Control characters are refused in every key and value: a newline in a value that
        // reaches a unit file or nginx would add directives of the writer's choosing.
        if let Ok(table) = toml::from_str::<toml::Table>(text)
            && let Some(key) = control_char_key(&toml::Value::Table(table), "")
        {
            return Err(cfg.err(
                &key,
                "contains a control character (newline, tab, escape, ...)",
                "remove it: no keel setting may contain control characters",
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub(crate) fn err(&self, key: &str, msg: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Config {
            file: self.source.clone(),
            key: key.into(),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn check(&self, key: &str, r: crate::validate::Check) -> Result<()> {
        r.map_err(|(msg, hint)| self.err(key, msg, hint))
    }

    /// The config's own [python], [build] and [release] values, checked at load.
    fn validate_project(&self) -> Result<()> {
        let cfg = self;
        let p = &cfg.python;
        crate::pyversion::wanted(&p.version, &|_| None).map_err(|e| {
            cfg.err(
                "python.version",
                e,
                "a version (\"3.12\") or a PEP 440 specifier (\">=3.12,<3.14\")",
            )
        })?;
        if !p.mirror.is_empty() {
            let ok = ["https://", "http://", "file:///"]
                .iter()
                .any(|s| p.mirror.starts_with(s))
                && p.mirror.len() <= 500
                && !p
                    .mirror
                    .contains(|c: char| c.is_whitespace() || c == '\'' || c == '"');
            if !ok {
                return Err(cfg.err(
                    "python.mirror",
                    format!("{:?} is not a URL", p.mirror),
                    "an https:// (or file:///) URL laid out as python-build-standalone's releases",
                ));
            }
        }
        for (k, list) in [("python.groups", &p.groups), ("python.extras", &p.extras)] {
            for (i, g) in list.iter().enumerate() {
                let ok = !g.is_empty()
                    && g.len() <= 64
                    && g.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && g.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(cfg.err(
                        &format!("{k}[{i}]"),
                        format!("{g:?} is not a group or extra name"),
                        "letters, digits, '.', '_' and '-', as the project declares it",
                    ));
                }
            }
        }
        for (k, list) in [
            ("build.commands", &cfg.build.commands),
            ("release.commands", &cfg.release.commands),
        ] {
            for (i, c) in list.iter().enumerate() {
                if c.trim().is_empty() || c.len() > 2000 {
                    return Err(cfg.err(
                        &format!("{k}[{i}]"),
                        "an empty or over-long command line",
                        "one shell command line of at most 2000 characters, e.g. \"python manage.py compile_themes\"",
                    ));
                }
            }
        }
        for (k, v) in [
            ("build.node", &cfg.build.node),
            ("build.compilemessages", &cfg.build.compilemessages),
        ] {
            if v != "auto" && v != "off" {
                return Err(cfg.err(k, format!("{v:?} is not auto or off"), "auto or off"));
            }
        }
        Ok(())
    }

    fn validate_celery(&self) -> Result<()> {
        let c = &self.celery;
        let plain = |s: &str, extra: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || extra.contains(ch))
        };
        self.check_ranges(&[(
            "celery.queue_max_age_secs",
            c.queue_max_age_secs,
            10,
            86_400,
            "10 to 86400",
        )])?;
        if c.queues.len() > 32 {
            return Err(self.err("celery.queues", "more than 32 queues", "list at most 32"));
        }
        for (i, q) in c.queues.iter().enumerate() {
            if !plain(q, "_.:-") || q.starts_with('-') {
                return Err(self.err(
                    &format!("celery.queues[{i}]"),
                    format!("{q:?} is not a queue name"),
                    "letters, digits, '_', '.', ':' and '-', as the app's task routes name them",
                ));
            }
        }
        if let Some(p) = &c.pool
            && !["prefork", "threads", "solo", "gevent", "eventlet"].contains(&p.as_str())
        {
            return Err(self.err(
                "celery.pool",
                format!("{p:?} is not a Celery pool"),
                "prefork (the default), threads, solo, gevent or eventlet",
            ));
        }
        const KEELS: &[&str] = &[
            "--app",
            "--hostname",
            "--queues",
            "--concurrency",
            "--pool",
            "--loglevel",
        ];
        for (i, a) in c.extra_args.iter().enumerate() {
            let name = a.split('=').next().unwrap_or("");
            if KEELS.contains(&name) {
                return Err(self.err(
                    &format!("celery.extra_args[{i}]"),
                    format!("{name} is set by keel"),
                    "use celery.queues, celery.pool or django.worker_concurrency",
                ));
            }
            if !a.starts_with("--") || !plain(a, "_.:,=/-") || a.len() > 200 {
                return Err(self.err(
                    &format!("celery.extra_args[{i}]"),
                    format!("{a:?} is not a plain --option or --option=value"),
                    "one argument per string, e.g. \"--max-tasks-per-child=100\" (no spaces, '%' or '$')",
                ));
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.validate_names()?;
        self.validate_celery()?;
        self.validate_project()?;
        self.validate_services()?;
        self.validate_django()?;
        self.validate_tls()?;
        self.validate_backup()?;
        for (key, list) in [
            ("firewall.allow_tcp", &self.firewall.allow_tcp),
            ("firewall.allow_udp", &self.firewall.allow_udp),
        ] {
            if let Some(i) = list.iter().position(|p| *p == 0) {
                return Err(self.err(&format!("{key}[{i}]"), "port 0", "a port from 1 to 65535"));
            }
        }
        if self.firewall.ssh_port == Some(0) {
            return Err(self.err(
                "firewall.ssh_port",
                "port 0",
                "a port from 1 to 65535, or leave it out to use the port sshd listens on",
            ));
        }
        for (i, p) in self.drift.keep.iter().enumerate() {
            self.check(&format!("drift.keep[{i}]"), crate::validate::abs_path(p))?;
        }
        crate::schedule::check(&self.schedules).map_err(|(k, m, h)| self.err(&k, m, h))?;
        crate::process::check(&self.processes).map_err(|(k, m, h)| self.err(&k, m, h))?;
        crate::notify::check(&self.notify).map_err(|(k, m, h)| self.err(&k, m, h))?;
        self.validate_env()
    }

    fn validate_backup(&self) -> Result<()> {
        use crate::validate as v;
        let b = &self.backup;
        self.check("backup.schedule", v::calendar(&b.schedule))?;
        if let Some(d) = &b.dir {
            self.check("backup.dir", v::backup_dir(d, &self.base_dir()))?;
        }
        if let Some((i, _)) = b
            .upload_command
            .iter()
            .enumerate()
            .find(|(_, a)| v::has_control(a))
        {
            return Err(self.err(
                &format!("backup.upload_command[{i}]"),
                "has a control character",
                "one argument per string, plain text",
            ));
        }
        if let Some(p) = b.upload_command.first() {
            self.check(
                "backup.upload_command[0]",
                v::root_program(Path::new(p), &self.base_dir()),
            )?;
        }
        if b.keep_daily + b.keep_weekly == 0 {
            return Err(self.err(
                "backup.keep_daily",
                "keep_daily and keep_weekly are both 0: every backup would be deleted",
                "keep at least one (keep_daily = 7 is the default)",
            ));
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<()> {
        use crate::validate as v;
        let ident = |key: &str, val: &str, max: usize| -> Result<()> {
            let ok = !val.is_empty()
                && val.len() <= max
                && val.starts_with(|c: char| c.is_ascii_lowercase())
                && val
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if ok {
                Ok(())
            } else {
                Err(self.err(
                    key,
                    format!("{val:?} is not a valid name"),
                    format!(
                        "use 1-{max} characters: a lowercase letter, then lowercase letters, digits, '_' or '-' (e.g. \"demo\")"
                    ),
                ))
            }
        };
        ident("app.name", &self.app.name, 32)?;
        // The build user is "<user>-build"; useradd takes at most 32 characters.
        ident("app.user", &self.app_user(), 26)?;
        let user_key = if self.app.user.is_some() {
            "app.user"
        } else {
            "app.name"
        };
        if v::reserved_user(&self.app_user()) || v::reserved_user(&self.build_user()) {
            return Err(self.err(
                user_key,
                format!(
                    "{:?} is a name that belongs to the system or to a service",
                    self.app_user()
                ),
                "give the app its own user, e.g. the app's name (\"demo\"); keel creates it",
            ));
        }
        ident("database.name", &self.db_name(), 63)?;
        ident("database.user", &self.db_user(), 63)?;
        if self.db_name().contains('-') || self.db_user().contains('-') {
            return Err(self.err(
                "database.name",
                "'-' is not allowed in PostgreSQL names keel creates",
                "use '_' instead of '-'",
            ));
        }
        for (key, name) in [
            ("database.user", self.db_user()),
            ("database.name", self.db_name()),
        ] {
            if v::reserved_pg(&name) {
                return Err(self.err(
                    key,
                    format!("{name:?} belongs to the PostgreSQL cluster itself"),
                    "use the app's own name (e.g. \"demo\"): keel strips superuser from the role it manages",
                ));
            }
        }
        if !v::dns_name(&self.app.domain) {
            return Err(self.err(
                "app.domain",
                format!("{:?} is not a valid host name", self.app.domain),
                "use a DNS name such as \"example.com\" (labels of letters, digits and '-')",
            ));
        }
        self.check("app.base_dir", v::base_dir(&self.base_dir()))?;
        Ok(())
    }

    /// Packages, numbers, ports.
    fn validate_services(&self) -> Result<()> {
        use crate::validate as v;
        for (i, e) in self.database.extensions.iter().enumerate() {
            let ok = !e.is_empty()
                && e.len() <= 63
                && e.starts_with(|c: char| c.is_ascii_lowercase())
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !ok {
                return Err(self.err(
                    &format!("database.extensions[{i}]"),
                    format!("{e:?} is not an extension name"),
                    "an extension as pg_available_extensions names it, e.g. \"pg_trgm\"",
                ));
            }
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
        let lists = lists.chain(
            self.packages
                .build
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("packages.build[{i}]"), p)),
        );
        for (key, p) in lists {
            self.check(&key, v::package(p))?;
        }
        // The list replaces keel's default: the stack's own packages must stay in it.
        let base = |p: &String| -> String { p.split([':', '=']).next().unwrap_or("").to_string() };
        let all: Vec<String> = self
            .packages
            .install
            .iter()
            .chain(&self.packages.python)
            .map(base)
            .collect();
        let provided: Vec<&str> = all
            .iter()
            .filter_map(|p| crate::validate::stack_need(p))
            .collect();
        if let Some(name) = crate::validate::STACK_NEEDS
            .iter()
            .find(|n| !provided.contains(n))
        {
            let key = if name.starts_with("python3") {
                "packages.python"
            } else {
                "packages.install"
            };
            return Err(self.err(
                key,
                format!("lacks {name}, which the stack needs (the list replaces keel's default)"),
                format!(
                    "keep {name} in the list and add your packages beside it (the default is {:?})",
                    match key {
                        "packages.python" => Packages::default().python,
                        _ => Packages::default().install,
                    }
                ),
            ));
        }
        if self.packages.install.len() + self.packages.python.len() + self.packages.build.len()
            > 200
        {
            return Err(self.err(
                "packages.install",
                "more than 200 packages",
                "list at most 200",
            ));
        }
        self.validate_numbers()?;
        let ports = [
            ("postgres.port", self.postgres.port),
            ("redis.port", self.redis.port),
            ("nginx.port", self.nginx.port),
            ("tls.port", self.tls.port),
        ];
        for (i, (key, p)) in ports.iter().enumerate() {
            if *p == 0 {
                return Err(self.err(key, "0 is not a usable port", "use a port from 1 to 65535"));
            }
            if *p == 22 {
                return Err(self.err(
                    key,
                    "22 is the SSH port",
                    "use the service's usual port (5432, 6379, 80)",
                ));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == p) {
                return Err(self.err(
                    key,
                    format!("port {p} is already used by {other}"),
                    "give each service its own port",
                ));
            }
        }
        Ok(())
    }

    /// The app: source, git, Python paths, admin, URL paths.
    fn validate_django(&self) -> Result<()> {
        use crate::validate as v;
        let d = &self.django;
        if let Some(g) = &d.git {
            self.check("django.git", v::git_url(g))?;
        }
        if d.source.is_some() && d.git.is_some() {
            return Err(self.err(
                "django.source",
                "both django.source and django.git are set",
                "keep one: a local directory or a git URL",
            ));
        }
        self.check("django.git_ref", v::git_ref(&d.git_ref))?;
        if let Some(src) = &d.source {
            let s = src.to_string_lossy();
            if s.is_empty() || s.starts_with('-') {
                return Err(self.err(
                    "django.source",
                    format!("{s:?} is not a directory path"),
                    "use the app's directory, relative to this file or absolute",
                ));
            }
        }
        self.check("django.wsgi", v::wsgi(&self.wsgi()))?;
        self.check("django.celery_app", v::celery_app(&self.celery_app()))?;
        if !d.requirements.is_empty() {
            self.check("django.requirements", v::relative_file(&d.requirements))?;
        }
        self.check("health.path", v::url_path(&self.health.path))?;
        let m = &d.media_url;
        if !m.is_empty() {
            self.check("django.media_url", v::url_path(m))?;
            if !m.ends_with('/')
                || m == "/"
                || m.starts_with("/static/")
                || m.starts_with("/.well-known/")
                || m == "/keel-health/"
            {
                return Err(self.err(
                    "django.media_url",
                    format!("{m:?} cannot be the uploads' URL"),
                    "a path of its own ending in '/', as the app's MEDIA_URL, e.g. \"/media/\" (or \"\" not to serve uploads)",
                ));
            }
        }
        let st = &self.health.statuses;
        if st.is_empty() || st.len() > 10 || st.iter().any(|s| !(200..400).contains(s)) {
            return Err(self.err(
                "health.statuses",
                format!("{st:?}: at least one and at most ten statuses from 200 to 399"),
                "for example [200], or [200, 302] for a page that redirects to a login",
            ));
        }
        if let Some(s) = &d.settings {
            self.check("django.settings", v::module(s))?;
        }
        // Empty: no admin user is made.
        if !d.admin_user.is_empty() {
            self.check("django.admin_user", v::django_username(&d.admin_user))?;
        }
        self.check("django.admin_email", v::email(&self.admin_email()))?;
        for (key, p) in [
            ("django.celery_ping_path", &d.celery_ping_path),
            ("django.heartbeat_path", &d.heartbeat_path),
        ] {
            if !p.is_empty() {
                self.check(key, v::url_path(p))?;
            }
        }
        Ok(())
    }

    /// [tls]: the mode's own keys, names a CA can certify, HSTS within reason.
    fn validate_tls(&self) -> Result<()> {
        use crate::validate as v;
        let t = &self.tls;
        let mode = self.tls_mode();
        if let Some(e) = &t.email {
            self.check("tls.email", v::email(e))?;
        }
        self.check("tls.acme_directory", v::https_url(&t.acme_directory))?;
        if t.domains.len() > 99 {
            return Err(self.err(
                "tls.domains",
                "more than 99 extra names",
                "a certificate holds at most 100 names; split the site",
            ));
        }
        let names = self.tls_names();
        for (i, d) in t.domains.iter().enumerate() {
            let key = format!("tls.domains[{i}]");
            if !v::dns_name(d) {
                return Err(self.err(
                    &key,
                    format!("{d:?} is not a host name"),
                    "use a DNS name such as \"www.example.com\" (no wildcard: http-01 cannot prove one)",
                ));
            }
            if names[..i + 1].contains(d) {
                return Err(self.err(
                    &key,
                    format!("{d:?} is listed twice (app.domain counts)"),
                    "list each extra name once",
                ));
            }
        }
        let files_key = |k: &str, p: &Option<PathBuf>| -> Result<()> {
            match (mode, p) {
                (TlsMode::Files, None) => Err(self.err(
                    k,
                    "mode = \"files\" needs the certificate and its key",
                    format!("set {k} to an absolute path (e.g. \"/etc/ssl/private/site.pem\")"),
                )),
                (TlsMode::Files, Some(p)) => self.check(k, v::abs_path(p)),
                (_, Some(_)) => Err(self.err(
                    k,
                    format!("{k} is only used with mode = \"files\""),
                    "remove it, or set tls.mode = \"files\"",
                )),
                (_, None) => Ok(()),
            }
        };
        files_key("tls.cert_file", &t.cert_file)?;
        files_key("tls.key_file", &t.key_file)?;
        if mode == TlsMode::Acme {
            for (i, name) in names.iter().enumerate() {
                let key = if i == 0 {
                    "app.domain".to_string()
                } else {
                    format!("tls.domains[{}]", i - 1)
                };
                if !v::certifiable(name) {
                    return Err(self.err(
                        &key,
                        format!("an ACME CA cannot certify {name:?}: it is not a name in public DNS"),
                        "use the site's public DNS name, or tls.mode = \"self-signed\" for a host on a private network",
                    ));
                }
            }
            if self.nginx.port != 80 {
                return Err(self.err(
                    "nginx.port",
                    format!(
                        "mode = \"acme\" proves the name over port 80, but nginx.port is {}",
                        self.nginx.port
                    ),
                    "keep nginx.port = 80 (HTTP redirects to HTTPS), or use tls.mode = \"files\"",
                ));
            }
        }
        self.check_ranges(&[(
            "tls.hsts_max_age",
            t.hsts_max_age,
            0,
            63_072_000,
            "0 (no header) to 63072000 seconds (two years)",
        )])?;
        if t.hsts_preload && !(t.hsts_include_subdomains && t.hsts_max_age >= 31_536_000) {
            return Err(self.err(
                "tls.hsts_preload",
                "preload needs hsts_include_subdomains = true and hsts_max_age >= 31536000",
                "set both, or leave hsts_preload = false (preload lists are hard to leave)",
            ));
        }
        Ok(())
    }

    /// The [env] table: names and sizes.
    fn validate_env(&self) -> Result<()> {
        for (k, val) in &self.env {
            if !(k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && k.len() <= 128)
            {
                return Err(self.err(
                    &format!("env.{k}"),
                    "not a valid environment variable name",
                    "use letters, digits and '_', starting with a letter",
                ));
            }
            if val.len() > 8192 {
                return Err(self.err(&format!("env.{k}"), "longer than 8192 bytes", "shorten it"));
            }
            crate::dotenv::references(val).map_err(|e| {
                self.err(
                    &format!("env.{k}"),
                    e,
                    "refer to a value keel derives as ${NAME} (e.g. ${REDIS_PASSWORD}); $${ is a literal ${",
                )
            })?;
        }
        if self.env.len() > 500 {
            return Err(self.err("env", "more than 500 variables", "keep at most 500"));
        }
        Ok(())
    }

    fn check_ranges(&self, checks: &[(&str, u64, u64, u64, &str)]) -> Result<()> {
        for &(key, val, min, max, range) in checks {
            if val < min || val > max {
                return Err(self.err(
                    key,
                    format!("{val} is out of range"),
                    format!("use {range}"),
                ));
            }
        }
        Ok(())
    }

    /// Every number within bounds that keep the arithmetic on it (delays, sizes, units)
    /// from overflowing and the host usable.
    fn validate_numbers(&self) -> Result<()> {
        let r = &self.retry;
        let t = &self.timeouts;
        let checks: &[(&str, u64, u64, u64, &str)] = &[
            (
                "retry.attempts",
                r.attempts as u64,
                1,
                50,
                "1 (no retry) to 50",
            ),
            (
                "retry.initial_delay_ms",
                r.initial_delay_ms,
                0,
                600_000,
                "0 to 600000",
            ),
            (
                "retry.max_delay_ms",
                r.max_delay_ms,
                0,
                600_000,
                "0 to 600000",
            ),
            (
                "retry.max_total_delay_ms",
                r.max_total_delay_ms,
                0,
                3_600_000,
                "0 to 3600000",
            ),
            (
                "timeouts.command_secs",
                t.command_secs,
                1,
                86_400,
                "1 to 86400 seconds",
            ),
            (
                "timeouts.apt_secs",
                t.apt_secs,
                1,
                86_400,
                "1 to 86400 seconds",
            ),
            (
                "timeouts.dpkg_lock_secs",
                t.dpkg_lock_secs,
                0,
                86_400,
                "0 to 86400 seconds",
            ),
            (
                "preflight.min_cpus",
                self.preflight.min_cpus as u64,
                0,
                1024,
                "0 to 1024",
            ),
            (
                "preflight.min_memory_mb",
                self.preflight.min_memory_mb,
                0,
                1 << 24,
                "0 to 16777216",
            ),
            (
                "preflight.min_disk_mb",
                self.preflight.min_disk_mb,
                0,
                1 << 30,
                "0 to 1073741824",
            ),
        ];
        self.check_ranges(checks)?;
        self.validate_service_numbers()
    }

    fn validate_service_numbers(&self) -> Result<()> {
        let (r, d) = (&self.retry, &self.django);
        let checks: &[(&str, u64, u64, u64, &str)] = &[
            (
                "redis.maxmemory_mb",
                self.redis.maxmemory_mb,
                1,
                1 << 20,
                "1 to 1048576",
            ),
            (
                "nginx.client_max_body_mb",
                self.nginx.client_max_body_mb as u64,
                1,
                10_240,
                "1 to 10240",
            ),
            ("django.web_workers", d.web_workers as u64, 1, 64, "1 to 64"),
            (
                "django.worker_concurrency",
                d.worker_concurrency as u64,
                1,
                64,
                "1 to 64",
            ),
            (
                "django.heartbeat_interval_secs",
                d.heartbeat_interval_secs,
                1,
                3600,
                "1 to 3600",
            ),
            (
                "health.interval_minutes",
                self.health.interval_minutes as u64,
                1,
                1440,
                "1 to 1440",
            ),
            (
                "host.swap_mb",
                self.host.swap_mb,
                0,
                65_536,
                "0 (none) to 65536",
            ),
            (
                "host.swap_when_ram_below_mb",
                self.host.swap_when_ram_below_mb,
                0,
                1 << 24,
                "0 to 16777216",
            ),
            (
                "host.swappiness",
                self.host.swappiness as u64,
                0,
                100,
                "0 to 100",
            ),
            (
                "host.journal_max_mb",
                self.host.journal_max_mb,
                50,
                1 << 20,
                "50 to 1048576",
            ),
            (
                "backup.keep_daily",
                self.backup.keep_daily,
                0,
                3650,
                "0 to 3650",
            ),
            (
                "backup.keep_weekly",
                self.backup.keep_weekly,
                0,
                520,
                "0 to 520",
            ),
            (
                "backup.max_age_hours",
                self.backup.max_age_hours.unwrap_or(1),
                1,
                24 * 366,
                "1 to 8784",
            ),
            (
                "deploy.keep_releases",
                self.deploy.keep_releases,
                2,
                100,
                "2 to 100 (the previous release is what a failed deploy returns to)",
            ),
            (
                "deploy.worker_stop_timeout_secs",
                self.deploy.worker_stop_timeout_secs,
                10,
                86_400,
                "10 to 86400 (longer than your longest task)",
            ),
            (
                "health.check_timeout_secs",
                self.health.check_timeout_secs,
                1,
                300,
                "1 to 300",
            ),
        ];
        self.check_ranges(checks)?;
        if r.initial_delay_ms > r.max_delay_ms {
            return Err(self.err(
                "retry.initial_delay_ms",
                "is larger than retry.max_delay_ms",
                "make initial_delay_ms <= max_delay_ms",
            ));
        }
        Ok(())
    }

    /// The app's users must be ones keel made (a system user with the base directory as home
    /// and no login shell) or not exist yet: an existing account is never taken over.
    pub fn check_users(&self, root: &Path) -> Result<()> {
        let user_key = if self.app.user.is_some() {
            "app.user"
        } else {
            "app.name"
        };
        for name in [self.app_user(), self.build_user()] {
            let Some(e) = crate::system::passwd_find(root, |e| e.name == name) else {
                continue;
            };
            let ours = e.home == self.base_dir().to_string_lossy() && e.shell.ends_with("nologin");
            if !ours {
                return Err(self.err(
                    user_key,
                    format!(
                        "user {name} already exists and was not created by keel for this app (home {}, shell {})",
                        e.home, e.shell
                    ),
                    "choose another app.user; keel creates its own system user and never takes over an existing account",
                ));
            }
        }
        Ok(())
    }

    /// The parts of the config that live outside it, checked before anything is written:
    /// a local app source must exist and look like a Django project (manage.py and
    /// requirements.txt at its top), and its .env.example, if any, must parse.
    pub fn check_source(&self) -> Result<()> {
        let Some(src) = self.app_source() else {
            if self.django.git.is_none() {
                return Err(self.err(
                    "django.source",
                    "no app source is configured",
                    "set django.source (the app's directory) or django.git (a git URL)",
                ));
            }
            return Ok(());
        };
        let md = std::fs::metadata(&src).map_err(|e| {
            self.err(
                "django.source",
                format!("{}: {e}", src.display()),
                "point it at the Django project's directory (relative paths are relative to the config file)",
            )
        })?;
        if !md.is_dir() {
            return Err(self.err(
                "django.source",
                format!("{} is not a directory", src.display()),
                "point it at the Django project's directory",
            ));
        }
        if !std::fs::symlink_metadata(src.join("manage.py")).is_ok_and(|m| m.is_file()) {
            return Err(self.err(
                "django.source",
                format!(
                    "{} has no manage.py: it does not look like a Django project",
                    src.display()
                ),
                "the app source must have manage.py at its top",
            ));
        }
        // An example file that is there must be readable: unreadable is not "absent".
        for e in crate::envsource::EXAMPLES {
            let example = src.join(e);
            if std::fs::symlink_metadata(&example).is_ok() {
                crate::fsx::read_text_nofollow(&example, crate::fsx::MAX_INPUT).map_err(|err| {
                    Error::Config {
                        file: example.clone(),
                        key: "-".into(),
                        msg: format!("cannot read the file: {err}"),
                        hint: "the app's env example must be a regular UTF-8 file of at most 1 MiB"
                            .into(),
                    }
                })?;
                break;
            }
        }
        // The environment the app declares (.env.example, .envs/.production/*, or its
        // settings code) must parse.
        let read = crate::tree::reader(&src);
        let files = crate::tree::walk(&src).unwrap_or_default();
        if let Some(found) = crate::envsource::find(&read, &files) {
            let file = src.join(&found.from);
            crate::dotenv::parse_example(&found.text).map_err(|e| Error::Config {
                file,
                key: e.split(':').next().unwrap_or("-").to_string(),
                msg: e.clone(),
                hint: "fix the app's env file: KEY=value lines, comments starting with '#'".into(),
            })?;
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
    /// The TLS mode in force: `mode` if set; otherwise "acme" once an ACME e-mail is
    /// configured, else "off" (see the README: a CA must be able to reach the host first).
    pub fn tls_mode(&self) -> TlsMode {
        self.tls.mode.unwrap_or(if self.tls.email.is_some() {
            TlsMode::Acme
        } else {
            TlsMode::Off
        })
    }

    pub fn tls_on(&self) -> bool {
        self.tls_mode() != TlsMode::Off
    }

    /// The system packages: the configured ones, plus what the TLS mode runs (certbot for
    /// ACME, openssl to make and probe certificates).
    pub fn system_packages(&self) -> Vec<String> {
        let mut v = self.packages.install.clone();
        // Rotation of keel's own logs; security updates unless turned off.
        let mut extra: Vec<&str> = vec!["logrotate"];
        if self.host.security_updates {
            extra.push("unattended-upgrades");
        }
        if self.firewall.mode != FirewallMode::Off {
            // netbase (/etc/services, /etc/protocols) came as nftables' Recommends.
            extra.extend(["nftables", "netbase"]);
        }
        let tls: &[&str] = match self.tls_mode() {
            TlsMode::Off => &[],
            TlsMode::Acme => &["certbot", "openssl"],
            TlsMode::Files | TlsMode::SelfSigned => &["openssl"],
        };
        extra.extend(tls);
        for p in extra {
            if !v.iter().any(|x| x == p) {
                v.push(p.to_string());
            }
        }
        v
    }

    /// What root runs and reads for backups, on this host: `upload_command[0]` and every
    /// argument that names an existing file must be root's all the way up (`fsx::untrusted`);
    /// an existing backup directory must be root's with mode 0700 (keel never takes one over).
    pub fn check_backup_host(&self, root: &Path) -> Result<()> {
        let b = &self.backup;
        let host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        for (i, a) in b.upload_command.iter().enumerate() {
            let p = Path::new(a);
            if i > 0 && !(p.is_absolute() && crate::fsx::lstat(&host(p)).ok().flatten().is_some()) {
                continue;
            }
            if let Some(why) = crate::fsx::untrusted(root, p, i == 0) {
                return Err(self.err(
                    &format!("backup.upload_command[{i}]"),
                    format!("root runs the upload on every backup, and {why}"),
                    "install the program (and any script it reads) as root: chown root:root, chmod go-w, in directories only root can write",
                ));
            }
        }
        let d = self.backup_dir();
        if let Ok(Some(st)) = crate::fsx::lstat(&host(&d))
            && !crate::fsx::root_private_dir(&st)
        {
            return Err(self.err(
                "backup.dir",
                format!(
                    "{} exists and is not a directory of root's with mode 0700 (uid {}, mode {:o}); keel never takes over a directory it did not make",
                    d.display(),
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
                format!("pick a new directory, or if this one is meant for backups only: chown root:root {0} && chmod 700 {0}", d.display()),
            ));
        }
        Ok(())
    }

    /// What root runs or reads for notifications, on this host (see `notify::check_host`).
    pub fn check_notify_host(&self, root: &Path) -> Result<()> {
        crate::notify::check_host(&self.notify, root).map_err(|(k, m, h)| self.err(&k, m, h))
    }

    /// mode = "files": the certificate and key must be root's regular files that no other
    /// user can change (keel copies them as root), the key readable by root alone.
    pub fn check_tls_files(&self, root: &Path) -> Result<()> {
        let t = &self.tls;
        if self.tls_mode() != TlsMode::Files {
            return Ok(());
        }
        for (key, p, private) in [
            ("tls.cert_file", &t.cert_file, false),
            ("tls.key_file", &t.key_file, true),
        ] {
            let Some(p) = p else { continue };
            let host = root.join(p.strip_prefix("/").unwrap_or(p));
            let st = crate::fsx::lstat(&host)
                .map_err(|e| self.err(key, format!("{}: {e}", p.display()), "check the path"))?
                .ok_or_else(|| {
                    self.err(
                        key,
                        format!("{} does not exist", p.display()),
                        "give the path of the file",
                    )
                })?;
            if crate::fsx::kind(&st) != rustix::fs::FileType::RegularFile {
                return Err(self.err(
                    key,
                    format!("{} is not a regular file (a link or other)", p.display()),
                    "point at the file itself: keel does not follow links as root",
                ));
            }
            if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
                return Err(self.err(
                    key,
                    format!("{} can be changed by a user other than root", p.display()),
                    format!("chown root:root {0} && chmod go-w {0}", p.display()),
                ));
            }
            if private && st.st_mode & 0o077 != 0 {
                return Err(self.err(
                    key,
                    format!("the private key {} is readable by other users", p.display()),
                    format!("chmod 600 {}", p.display()),
                ));
            }
            // The directories above too: one another user can write lets them swap the
            // file between this check and the tls step's copy.
            if let Some(why) = crate::fsx::untrusted(root, p, false) {
                return Err(self.err(
                    key,
                    why,
                    "keep the certificate and key where only root can write (such as /etc/ssl/private)",
                ));
            }
        }
        // Its content, before any step writes: a PEM certificate, for every name, current.
        // (Whether the key is the certificate's is asked of openssl by the tls step.)
        if let Some(cf) = &t.cert_file {
            let host = root.join(cf.strip_prefix("/").unwrap_or(cf));
            let bytes = crate::fsx::read_regular(&host, crate::fsx::MAX_INPUT).map_err(|e| {
                self.err(
                    "tls.cert_file",
                    format!("{}: {e}", cf.display()),
                    "check the path",
                )
            })?;
            let info = crate::certs::parse_pem(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                self.err(
                    "tls.cert_file",
                    format!("{}: {e}", cf.display()),
                    "tls.cert_file must be a PEM certificate (with its chain)",
                )
            })?;
            let shown = cf.display().to_string();
            if let Some((msg, hint)) = info.unfit(&shown, &self.tls_names(), crate::certs::now()) {
                return Err(self.err("tls.cert_file", msg, hint));
            }
        }
        Ok(())
    }

    /// Every name the site serves and its certificate covers: app.domain first.
    pub fn tls_names(&self) -> Vec<String> {
        let mut v = vec![self.app.domain.clone()];
        v.extend(self.tls.domains.iter().cloned());
        v
    }

    /// Gunicorn's socket (systemd holds it open; nginx proxies to it).
    pub fn web_socket_path(&self) -> String {
        format!("/run/{}/gunicorn.sock", self.app.name)
    }

    /// The release being served: `current`, a link keel swaps atomically on each deploy.
    pub fn app_dir(&self) -> PathBuf {
        self.base_dir().join("current")
    }
    pub fn venv_dir(&self) -> PathBuf {
        self.app_dir().join("venv")
    }
    pub fn backup_dir(&self) -> PathBuf {
        self.backup
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/backups/keel").join(&self.app.name))
    }
    /// How old the newest backup may be before `keel verify` is degraded.
    pub fn backup_max_age_hours(&self) -> u64 {
        self.backup
            .max_age_hours
            .unwrap_or(match self.backup.schedule.as_str() {
                "hourly" => 2,
                "weekly" => 2 * 168,
                _ => 48,
            })
    }
    /// What every release shares: the .env and the uploads.
    pub fn shared_dir(&self) -> PathBuf {
        self.base_dir().join("shared")
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

    /// The identity that builds the app's virtualenv: it owns the venv, the app's runtime
    /// user only reads it.
    pub fn build_user(&self) -> String {
        format!("{}-build", self.app_user())
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

/// The dotted key of the first string (key or value) holding a control character.
fn control_char_key(v: &toml::Value, at: &str) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        toml::Value::String(s) => crate::validate::has_control(s).then(|| at.to_string()),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| control_char_key(x, &format!("{at}[{i}]"))),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| {
            if crate::validate::has_control(k) {
                Some(join(&k.escape_debug().to_string()))
            } else {
                control_char_key(x, &join(k))
            }
        }),
        _ => None,
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
