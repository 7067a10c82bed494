//! keel.toml's types, part 1: the top table and the app's services (serde, unknown keys
//! refused; defaults beside the types).
use super::schema_ops::*;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// One of several apps (`--app`, a config in /etc/keel/apps/): its secrets, Redis and
    /// keel units are its own by name. The host's app (/etc/keel/keel.toml) keeps the
    /// single-app layout, so a host set up before several apps existed reads the same.
    #[serde(skip)]
    pub named: bool,
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
    /// What this host runs: some of database, redis, web, worker, beat (default: all).
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Database {
    pub name: Option<String>,
    pub user: Option<String>,
    /// PostgreSQL extensions the app's migrations need (`pg_trgm`, `bloom`, `postgis`):
    /// created by the superuser before `migrate`, so the app's role stays unprivileged.
    pub extensions: Vec<String>,
    /// A database on another host or a managed service: `postgres://USER@HOST:PORT/DB?sslmode=verify-full`
    /// (the password is the pre-shared secret `postgres_password`).
    pub url: Option<String>,
    /// The CA that signed that server's certificate (PEM).
    pub ca_file: Option<PathBuf>,
    /// How long install waits for that server to answer (app hosts may boot first).
    pub wait_secs: u64,
}
impl Default for Database {
    fn default() -> Self {
        Database {
            name: None,
            user: None,
            extensions: vec![],
            url: None,
            ca_file: None,
            wait_secs: 180,
        }
    }
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
    /// A database host: also listen on this private address (loopback always).
    pub listen: Option<String>,
    /// The networks that may connect there (hostssl, scram; the firewall too).
    pub allow_from: Vec<String>,
    /// The server's certificate and key for those connections.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}
impl Default for Postgres {
    fn default() -> Self {
        Postgres {
            port: 5432,
            listen: None,
            allow_from: vec![],
            tls_cert: None,
            tls_key: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(default)]
pub struct Redis {
    pub port: u16,
    pub maxmemory_mb: u64,
    /// Redis on another host: `rediss://HOST:PORT/N` (or `redis://` to a private address);
    /// the password is the pre-shared secret `redis_password`.
    pub url: Option<String>,
    pub ca_file: Option<PathBuf>,
    /// A Redis host: also bind this private address.
    pub listen: Option<String>,
    pub allow_from: Vec<String>,
}
impl Default for Redis {
    fn default() -> Self {
        Redis {
            port: 6379,
            maxmemory_mb: 256,
            url: None,
            ca_file: None,
            listen: None,
            allow_from: vec![],
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
