//! `keel verify` on a host of several: the database and Redis it reaches by URL, and which
//! host runs beat (the one holding the beat lock).
use crate::checks::{CheckFn, error, ok};
use crate::config::Role;
use crate::step::Ctx;
use std::sync::Arc;
use std::time::Duration;

pub fn checks(ctx: &Arc<Ctx>) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v: Vec<(String, bool, CheckFn<'static>)> = vec![];
    if let Some(url) = ctx.cfg.database_url() {
        let c = ctx.clone();
        v.push((
            "database".into(),
            true,
            Box::new(move || {
                let label = format!("keel-verify@{}", crate::remote::host_name());
                match crate::remote::app_session(&c, "health", &label)
                    .and_then(|mut s| s.scalar("SELECT 1").map_err(|e| e.to_string()))
                {
                    Ok(_) => ok(format!(
                        "{}: TLS verify-full against {}; the app role logs in",
                        url.authority(),
                        c.cfg
                            .database
                            .ca_file
                            .as_ref()
                            .map(|p| p.display().to_string())
                            .unwrap_or_default()
                    )),
                    Err(e) => error(
                        format!("{}: {e}", url.authority()),
                        "is the database host up, and this host in its allow_from? keel install checks the CA and password",
                    ),
                }
            }),
        ));
    }
    if let Some(url) = ctx.cfg.redis_url() {
        let c = ctx.clone();
        v.push((
            "redis".into(),
            true,
            Box::new(move || {
                let ca = match (&c.cfg.redis.ca_file, url.tls()) {
                    (Some(p), true) => crate::fsx::read_regular(
                        &c.host(&p.display().to_string()),
                        crate::fsx::MAX_INPUT,
                    )
                    .ok(),
                    _ => None,
                };
                let Some(pw) = c.secrets.get("redis_password") else {
                    return error("no redis_password secret", "write the pre-shared secret");
                };
                match c.exec.redis_remote(
                    "health",
                    &url.host,
                    url.port,
                    ca.as_deref(),
                    &pw,
                    Duration::from_secs(5),
                ) {
                    Ok(()) => ok(format!(
                        "{}{}: AUTH and PING answered",
                        url.authority(),
                        if url.tls() { " over TLS" } else { "" }
                    )),
                    Err(e) => error(
                        format!("{}: {e}", url.authority()),
                        "is the Redis host up, and this host in its redis.allow_from?",
                    ),
                }
            }),
        ));
    }
    if ctx.cfg.in_fleet() && ctx.cfg.runs_app() {
        let c = ctx.clone();
        v.push((
            "beat-host".into(),
            ctx.cfg.has(Role::Beat),
            Box::new(move || beat_host(&c)),
        ));
    }
    v
}

/// Which host holds the beat lock; on a beat host, an error when none does (periodic tasks
/// run nowhere).
fn beat_host(c: &Ctx) -> (crate::checks::Level, String, String) {
    let label = format!("keel-verify@{}", crate::remote::host_name());
    let mut s = match crate::remote::app_session(c, "health", &label) {
        Ok(s) => s,
        Err(e) => {
            return crate::checks::not_checked(
                format!("the database does not answer ({e}): which host runs beat was not checked"),
                "see the database check",
            );
        }
    };
    let me = format!("keel-beat@{}", crate::remote::host_name());
    match crate::remote::holder(&mut s, crate::remote::LOCK_BEAT) {
        Some(h) if h == me => ok(format!(
            "this host runs beat (it holds the beat lock as {h})"
        )),
        Some(h) => ok(format!(
            "beat runs on {}{}",
            h.strip_prefix("keel-beat@").unwrap_or(&h),
            if c.cfg.has(Role::Beat) {
                "; this host's beat waits for the lock"
            } else {
                ""
            }
        )),
        None if c.cfg.has(Role::Beat) => error(
            "no host holds the beat lock: periodic tasks run nowhere",
            format!(
                "systemctl status {}-beat; journalctl -u {}-beat -n 30",
                c.cfg.app.name, c.cfg.app.name
            ),
        ),
        None => error(
            "no host holds the beat lock: periodic tasks run nowhere",
            "start beat on the host with the beat role (keel install there)",
        ),
    }
}
