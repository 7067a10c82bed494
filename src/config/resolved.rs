//! Values derived from the config (users, paths, names, packages): one place for each.
use super::{Config, FirewallMode, TlsMode};
use std::path::{Path, PathBuf};

impl Config {
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
        // A role's server comes only with the role: an app host installs no PostgreSQL.
        let role_of = |p: &str| match p {
            "postgresql" => Some(super::Role::Database),
            "redis-server" => Some(super::Role::Redis),
            "nginx" => Some(super::Role::Web),
            _ => None,
        };
        let mut v: Vec<String> = self
            .packages
            .install
            .iter()
            .filter(|p| role_of(p).is_none_or(|r| self.has(r)))
            .cloned()
            .collect();
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

    /// Every name the site serves and its certificate covers: app.domain first.
    pub fn tls_names(&self) -> Vec<String> {
        let mut v = vec![self.app.domain.clone()];
        v.extend(self.tls.domains.iter().cloned());
        v
    }

    /// Present while the host drains for a deploy (`keel deploy --drain`): nginx's health
    /// for load balancers answers 503. In a root-owned directory nginx may search.
    pub fn drain_file(&self) -> String {
        format!("/run/keel-drain/{}", self.app.name)
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

    /// The app's database: `database.name`, else the one in `database.url`, else the app's name.
    pub fn db_name(&self) -> String {
        self.database
            .name
            .clone()
            .or_else(|| {
                self.database_url()
                    .map(|u| u.path)
                    .filter(|p| !p.is_empty())
            })
            .unwrap_or_else(|| self.app.name.replace('-', "_"))
    }

    pub fn db_user(&self) -> String {
        self.database
            .user
            .clone()
            .or_else(|| self.database_url().and_then(|u| u.user))
            .unwrap_or_else(|| self.app.name.replace('-', "_"))
    }

    /// Where the app reaches PostgreSQL and Redis: (host, port) each, loopback unless a URL
    /// names another host.
    pub fn db_endpoint(&self) -> (String, u16) {
        match self.database_url() {
            Some(u) => (u.host, u.port),
            None => ("127.0.0.1".into(), self.postgres.port),
        }
    }
    /// libpq's TLS settings for a database reached by URL (verify-full against the CA the
    /// config names): the app's `.env` and `keel dbshell` both take them from here.
    pub fn db_tls(&self) -> Option<(&'static str, String)> {
        let ca = self.database.ca_file.as_ref()?;
        self.database_url()
            .map(|_| ("verify-full", ca.display().to_string()))
    }
    pub fn redis_endpoint(&self) -> (String, u16) {
        match self.redis_url() {
            Some(u) => (u.host, u.port),
            None => ("127.0.0.1".into(), self.redis.port),
        }
    }
    /// The app's `.env` (root's, readable by the app's group), shared by every release.
    pub fn env_file(&self) -> PathBuf {
        self.shared_dir().join(".env")
    }

    /// The app's units (without suffix): web, worker, beat, then each [[process]].
    pub fn app_units(&self) -> Vec<String> {
        self.app_kinds()
            .iter()
            .map(|k| format!("{}-{k}", self.app.name))
            .chain(self.process_units())
            .collect()
    }

    /// The app's processes this host runs, by its roles: some of web, worker, beat.
    pub fn app_kinds(&self) -> Vec<&'static str> {
        use super::Role;
        [
            (Role::Web, "web"),
            (Role::Worker, "worker"),
            (Role::Beat, "beat"),
        ]
        .into_iter()
        .filter(|(r, _)| self.has(*r))
        .map(|(_, k)| k)
        .collect()
    }

    /// The [[process]] units (without suffix).
    pub fn process_units(&self) -> Vec<String> {
        // [[process]] units go with the worker role (they are the app's other workers).
        if !self.has(super::Role::Worker) {
            return vec![];
        }
        self.processes
            .iter()
            .map(|p| crate::process::unit(&self.app.name, &p.name))
            .collect()
    }

    /// The app's secrets (root's alone): the host's app keeps /etc/keel/secrets itself, a
    /// named app has a directory of its own inside it.
    pub fn secrets_dir(&self) -> String {
        if self.named {
            format!("/etc/keel/secrets/{}", self.app.name)
        } else {
            "/etc/keel/secrets".into()
        }
    }

    /// The app's Redis server: Debian's default instance for the host's app, an instance
    /// of its own (`redis-server@NAME`, /etc/redis/redis-NAME.conf) for a named app.
    pub fn redis_unit(&self) -> String {
        if self.named {
            format!("redis-server@{}", self.app.name)
        } else {
            "redis-server".into()
        }
    }

    /// A unit of keel's own (keel-verify, keel-notify, keel-resume, ...) for this app.
    pub fn keel_unit(&self, base: &str) -> String {
        crate::paths::keel_unit(base, self.named.then_some(self.app.name.as_str()))
    }

    /// keel's files about this app under /var/lib/keel (queue watch, ...).
    pub fn keel_var(&self, file: &str) -> String {
        if self.named {
            format!("/var/lib/keel/apps/{}/{file}", self.app.name)
        } else {
            format!("/var/lib/keel/{file}")
        }
    }

    /// keel's Redis config for the app: included by Debian's redis.conf for the host's app;
    /// read whole by a named app's instance (redis-server@NAME reads redis-NAME.conf).
    pub fn redis_conf(&self) -> String {
        if self.named {
            format!("/etc/redis/redis-{}.conf", self.app.name)
        } else {
            "/etc/redis/keel.conf".into()
        }
    }
}
