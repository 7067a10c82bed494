//! The services a host of several reaches on other hosts, and what several hosts agree on
//! through the database: the checks of `[database] url` and `[redis] url` before the first
//! write, and the advisory locks that make migrations run once and beat run on one host.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::exec::{Exec, PgSession};
use crate::system::pgwire::{PgError, Target};
use std::time::{Duration, Instant};

/// Advisory lock keys (per database): "keel" in the high half, then what it guards.
pub const LOCK_MIGRATE: i64 = 0x6b65_656c_0000_0001;
pub const LOCK_BEAT: i64 = 0x6b65_656c_0000_0002;

/// pg_locks shows a bigint key as classid (high half) and objid (low half).
fn lock_parts(key: i64) -> (u32, u32) {
    ((key >> 32) as u32, key as u32)
}

/// The CA file's content (checked as root's at load: `Config::check_fleet_files`).
fn read_ca(root: &std::path::Path, p: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let host = root.join(p.strip_prefix("/").unwrap_or(p));
    crate::fsx::read_regular(&host, crate::fsx::MAX_INPUT)
}

/// The app's database as keel reaches it: loopback without TLS on a host with the
/// database role, else `database.url` over TLS against `database.ca_file`.
pub struct DbTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub ca: Option<Vec<u8>>,
}

impl DbTarget {
    pub fn of(cfg: &Config, root: &std::path::Path) -> std::io::Result<DbTarget> {
        let (host, port) = cfg.db_endpoint();
        let ca = match (&cfg.database_url(), &cfg.database.ca_file) {
            (Some(_), Some(p)) => Some(read_ca(root, p)?),
            _ => None,
        };
        Ok(DbTarget {
            host,
            port,
            user: cfg.db_user(),
            database: cfg.db_name(),
            ca,
        })
    }
    pub fn target<'a>(&'a self, password: &'a str, app_name: &'a str) -> Target<'a> {
        Target {
            host: &self.host,
            port: self.port,
            user: &self.user,
            password,
            database: &self.database,
            ca_pem: self.ca.as_deref(),
            application_name: app_name,
        }
    }
}

/// This host's name, as other hosts see it in a lock holder's application_name.
pub fn host_name() -> String {
    Some(crate::system::hostname())
        .filter(|s| crate::system::valid_hostname(s))
        .unwrap_or_else(|| "unknown".into())
}

/// Before the first write: the database and Redis a host reaches by URL answer, over TLS
/// checked against the CA given, and take the pre-shared password. An unreachable server is
/// waited for (`database.wait_secs`: app hosts may boot before the database host); a wrong
/// CA, name or password is not, and is exit 2 naming the key and the URL.
pub fn check_services(
    cfg: &Config,
    exec: &Exec,
    root: &std::path::Path,
    secrets: &crate::secrets::Secrets,
    ui: &crate::ui::Ui,
) -> Result<()> {
    check_pre_shared(cfg, secrets)?;
    check_database(cfg, exec, root, secrets, ui)?;
    check_redis(cfg, exec, root, secrets)
}

fn check_database(
    cfg: &Config,
    exec: &Exec,
    root: &std::path::Path,
    secrets: &crate::secrets::Secrets,
    ui: &crate::ui::Ui,
) -> Result<()> {
    let err = |key: &str, msg: String, hint: String| cfg.err(key, msg, hint);
    if let (Some(url), Some(raw)) = (cfg.database_url(), &cfg.database.url) {
        let shown = crate::config::fleet::masked(raw);
        let password = secrets.get("postgres_password").ok_or_else(|| {
            err(
                "database.url",
                format!("{shown}: no password: {}", crate::secrets::missing(&secrets.path("postgres_password"))),
                "write the database role's password there (0600 root), the same as on the database host".into(),
            )
        })?;
        let t = DbTarget::of(cfg, root).map_err(|e| {
            err(
                "database.ca_file",
                format!("cannot read it: {e}"),
                "check the path".into(),
            )
        })?;
        let ca = cfg
            .database
            .ca_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let label = format!("keel-check@{}", host_name());
        let wait = Duration::from_secs(cfg.database.wait_secs);
        let start = Instant::now();
        let mut said = false;
        loop {
            match exec.pg(
                "preflight",
                &t.target(&password, &label),
                Duration::from_secs(5),
            ) {
                Ok(mut s) => {
                    s.scalar("SELECT 1").map_err(|e| {
                        err(
                            "database.url",
                            format!("{shown}: {e}"),
                            "see the preflight log".into(),
                        )
                    })?;
                    ui.line(&format!(
                        "[preflight] database {} answers (TLS verify-full, {} s)",
                        url.authority(),
                        start.elapsed().as_secs()
                    ));
                    break;
                }
                Err(PgError::Unreachable(m)) if start.elapsed() < wait => {
                    if !said {
                        ui.line(&format!("[preflight] database {} does not answer yet ({m}): waiting up to {} s (database.wait_secs)", url.authority(), wait.as_secs()));
                        said = true;
                    }
                    exec.pause(Duration::from_secs(3));
                }
                Err(PgError::Unreachable(m)) => {
                    return Err(Error::Preflight {
                        failed: format!(
                            "database.url {shown}: unreachable after {} s ({m}); start the database host first, or check the address and its firewall (allow_from)",
                            wait.as_secs()
                        ),
                    });
                }
                Err(PgError::Tls(m)) => {
                    return Err(err(
                        "database.url",
                        format!("{shown}: the server's certificate is not trusted: {m}"),
                        format!(
                            "database.ca_file ({ca}) must be the CA that signed the server's certificate, and the certificate must name {}",
                            url.host
                        ),
                    ));
                }
                Err(PgError::Auth(m)) => {
                    return Err(err(
                        "database.url",
                        format!("{shown}: {m}"),
                        format!(
                            "{} must hold the role's password (the database host's), and the role and database must exist there",
                            secrets.path("postgres_password").display()
                        ),
                    ));
                }
                Err(e) => {
                    return Err(err(
                        "database.url",
                        format!("{shown}: {e}"),
                        "see the preflight log".into(),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_redis(
    cfg: &Config,
    exec: &Exec,
    root: &std::path::Path,
    secrets: &crate::secrets::Secrets,
) -> Result<()> {
    let err = |key: &str, msg: String, hint: String| cfg.err(key, msg, hint);
    if let (Some(url), Some(raw)) = (cfg.redis_url(), &cfg.redis.url) {
        let shown = crate::config::fleet::masked(raw);
        let password = secrets.get("redis_password").ok_or_else(|| {
            err(
                "redis.url",
                format!(
                    "{shown}: no password: {}",
                    crate::secrets::missing(&secrets.path("redis_password"))
                ),
                "write Redis's password there (0600 root), the same as on the Redis host".into(),
            )
        })?;
        let ca = match &cfg.redis.ca_file {
            Some(p) if url.tls() => Some(read_ca(root, p).map_err(|e| {
                err(
                    "redis.ca_file",
                    format!("cannot read it: {e}"),
                    "check the path".into(),
                )
            })?),
            _ => None,
        };
        let wait = Duration::from_secs(cfg.database.wait_secs);
        let start = Instant::now();
        loop {
            match exec.redis_remote(
                "preflight",
                &url.host,
                url.port,
                ca.as_deref(),
                &password,
                Duration::from_secs(5),
            ) {
                Ok(()) => break,
                Err(m) if m.starts_with("unreachable") && start.elapsed() < wait => {
                    exec.pause(Duration::from_secs(3))
                }
                Err(m) if m.starts_with("unreachable") => {
                    return Err(Error::Preflight {
                        failed: format!("redis.url {shown}: {m} after {} s", wait.as_secs()),
                    });
                }
                Err(m) => {
                    return Err(err(
                        "redis.url",
                        format!("{shown}: {m}"),
                        format!(
                            "redis.ca_file must be the CA of the server's certificate, and {} the password of the Redis host",
                            secrets.path("redis_password").display()
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// On a host of several, the secrets its roles need are there before the first write
/// (keel makes none there: `Secrets::pre_shared`).
fn check_pre_shared(cfg: &Config, secrets: &crate::secrets::Secrets) -> Result<()> {
    use crate::config::Role;
    if !cfg.in_fleet() {
        return Ok(());
    }
    let mut need = vec![];
    if cfg.has(Role::Database) || cfg.database_url().is_some() {
        need.push("postgres_password");
    }
    if cfg.has(Role::Redis) || cfg.redis_url().is_some() {
        need.push("redis_password");
    }
    if cfg.runs_app() && !cfg.django.admin_user.is_empty() {
        need.push("admin_password");
    }
    let missing: Vec<String> = need
        .iter()
        .filter(|n| secrets.get(n).is_none())
        .map(|n| secrets.path(n).display().to_string())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(cfg.err(
        "app.roles",
        format!("a host of several, and its pre-shared secrets are missing: {}", missing.join(", ")),
        "keel generates no secret on a host of several (every host must hold the same value): write each (0600 root) from where you keep the fleet's secrets, e.g. Terraform's random_password or an Ansible vault",
    ))
}

/// A session to the app's database as its role, for a lock.
pub fn app_session(
    ctx: &crate::step::Ctx,
    log: &str,
    label: &str,
) -> std::result::Result<PgSession, String> {
    let password = ctx
        .secrets
        .get("postgres_password")
        .ok_or("no postgres_password secret")?;
    let t = DbTarget::of(&ctx.cfg, &ctx.paths.root).map_err(|e| e.to_string())?;
    ctx.exec
        .pg(log, &t.target(&password, label), Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

/// Migrations once across hosts: on a host of several, a session holding the migration
/// lock while this host migrates (the others wait, then find nothing to do). None on a
/// single host: nothing else migrates its database.
pub fn hold_migrations(
    ctx: &crate::step::Ctx,
    log: &str,
) -> crate::step::StepResult<Option<PgSession>> {
    use crate::step::StepError;
    if !ctx.cfg.in_fleet() {
        return Ok(None);
    }
    let label = format!("keel-migrate@{}", host_name());
    let mut s = app_session(ctx, log, &label).map_err(|e| {
        StepError::transient(
            format!("the migration lock: {e}"),
            "the database must answer (keel verify)",
        )
    })?;
    let got = s
        .scalar(&format!("SELECT pg_try_advisory_lock({LOCK_MIGRATE})"))
        .map_err(|e| StepError::transient(e.to_string(), ""))?;
    if got.as_deref() != Some("t") {
        let who = holder(&mut s, LOCK_MIGRATE).unwrap_or_else(|| "another session".into());
        ctx.ui.line(&format!(
            "[{log}] {who} is migrating: waiting for it (then nothing is left to do here)"
        ));
        s.scalar(&format!(
            "SET lock_timeout = '{}s'; SELECT pg_advisory_lock({LOCK_MIGRATE})",
            ctx.cfg.timeouts.command_secs
        ))
        .map_err(|e| {
            StepError::transient(
                format!("waiting for the migration lock: {e}"),
                "another host's migration takes longer than timeouts.command_secs",
            )
        })?;
    }
    ctx.ui
        .line(&format!("[{log}] migration lock held ({label})"));
    Ok(Some(s))
}

/// Who holds an advisory lock: its session's application_name (keel's say which host).
pub fn holder(s: &mut PgSession, key: i64) -> Option<String> {
    let (hi, lo) = lock_parts(key);
    s.scalar(&format!(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = {hi} AND l.objid = {lo} AND l.granted LIMIT 1"
    ))
    .ok()
    .flatten()
}

#[cfg(test)]
mod tests {
    #[test]
    fn lock_keys_split_as_pg_locks_shows_them() {
        assert_eq!(super::lock_parts(super::LOCK_BEAT), (0x6b65_656c, 2));
        assert_eq!(super::lock_parts(super::LOCK_MIGRATE), (1_801_807_212, 1));
    }
}
