//! keel.toml's types, part 2: the host, firewall, backups, the build, deploys, HTTPS.
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What a host runs for the app. The default is every role: one host, as before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Database,
    Redis,
    Web,
    Worker,
    Beat,
}

pub const ALL_ROLES: [Role; 5] = [
    Role::Database,
    Role::Redis,
    Role::Web,
    Role::Worker,
    Role::Beat,
];

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Database => "database",
            Role::Redis => "redis",
            Role::Web => "web",
            Role::Worker => "worker",
            Role::Beat => "beat",
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
