//! The health checks behind `keel verify` and the verify step's service checks: each
//! bounded by a timeout, an overall verdict (readiness-probe style: critical checks decide
//! unhealthy), self-healing of keel's units, and Prometheus' textfile format.
use crate::checks::{CheckFn, CheckResult, Level, error, not_checked, ok, run_parallel, warn};
use crate::config::Config;
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use serde::Serialize;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Healthy,
    Degraded,
    Unhealthy,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub duration_ms: u64,
    pub checks: Vec<(CheckResult, bool)>,
    /// Figures some checks measure, for Prometheus: (metric name, help, value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gauges: Vec<Gauge>,
}

impl Report {
    /// The checks that are not fine, each "name: message": the verdict's reasons, as `keel
    /// verify` exits with them and the verify timer sends them.
    pub fn failing(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|(c, _)| !c.level.fine())
            .map(|(c, _)| format!("{}: {}", c.name, c.message))
            .collect()
    }
}

pub type Gauge = (String, String, f64);
type Gauges = Arc<std::sync::Mutex<Vec<Gauge>>>;

/// Units keel manages and may restart.
pub fn units(cfg: &Config) -> Vec<String> {
    use crate::config::Role;
    let mut u: Vec<String> = [
        (Role::Database, "postgresql".to_string()),
        (Role::Redis, cfg.redis_unit()),
        (Role::Web, "nginx".into()),
    ]
    .into_iter()
    .filter(|(r, _)| cfg.has(*r))
    .map(|(_, u)| u)
    .collect();
    u.extend(cfg.app_units());
    u
}

/// Whether this host's roles include what a check looks at (a web host has no PostgreSQL
/// to check; its database is checked by URL instead).
fn for_roles(cfg: &Config, name: &str) -> bool {
    use crate::config::Role::*;
    let need: &[crate::config::Role] = match name {
        "postgres" | "backup" => &[Database],
        "redis" | "queues" => &[Redis],
        "nginx" | "site" | "maintenance" | "web" | "certificate" => &[Web],
        "worker" | "processes" => &[Worker],
        "beat" => &[Beat],
        _ => return true,
    };
    need.iter().any(|r| cfg.has(*r))
}

fn from(r: StepResult, ok_msg: &str) -> (Level, String, String) {
    match r {
        Ok(()) => ok(ok_msg),
        Err(e) => error(e.msg, e.hint),
    }
}

/// (name, critical, check): every check `keel verify` runs; figures go to `gauges`.
fn checks(
    ctx: &Arc<Ctx>,
    gauges: &Gauges,
    app_code: bool,
) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v = service_checks(ctx);
    v.extend(tls_checks(ctx, gauges));
    v.extend(backup_checks(ctx, gauges));
    v.extend(app_checks(ctx));
    v.extend(crate::checks::audit::checks(ctx, app_code));
    v.extend(host_checks(ctx));
    v.extend(unit_checks(ctx));
    v.retain(|(name, _, _)| for_roles(&ctx.cfg, name));
    v.extend(crate::checks::fleet::checks(ctx));
    v
}

/// The services: PostgreSQL, Redis, nginx, the site and Gunicorn.
fn service_checks(ctx: &Arc<Ctx>) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v: Vec<(String, bool, CheckFn<'static>)> = vec![];
    let c = ctx.clone();
    v.push((
        "postgres".into(),
        true,
        Box::new(move || {
            from(
                crate::systemd::require_active(&c, "health", "postgresql").and_then(|_| {
                    crate::pg::app_sql(&c, "health", "SELECT 1;").and_then(|o| {
                        if o.trim() == "1" {
                            Ok(())
                        } else {
                            Err(StepError::permanent(format!("SELECT 1 returned {o:?}"), ""))
                        }
                    })
                }),
                "unit active; the app role logs in over TCP",
            )
        }),
    ));
    let c = ctx.clone();
    v.push((
        "redis".into(),
        true,
        Box::new(move || {
            from(
                crate::probe::redis(&c, "health"),
                "its address only; refuses no password; PING/SET/GET with it",
            )
        }),
    ));
    let c = ctx.clone();
    v.push((
        "nginx".into(),
        true,
        Box::new(move || {
            from(
                crate::probe::nginx(&c, "health"),
                "unit active; nginx -t ok; keel's site answers",
            )
        }),
    ));
    let c = ctx.clone();
    v.push((
        "site".into(),
        true,
        Box::new(move || {
            // The verify step's own check: one implementation of "the app answers".
            let r = crate::stack::check_home(&c);
            let h = &c.cfg.health;
            from(
                r,
                &format!(
                    "GET {} through nginx: the app answers ({})",
                    h.path,
                    h.statuses
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(" or ")
                ),
            )
        }),
    ));
    let c = ctx.clone();
    v.push((
        "maintenance".into(),
        false,
        Box::new(
            move || match crate::maintenance::read(&c.paths, &c.cfg.app.name) {
                None => ok("off: the site serves everyone"),
                Some(m) => warn(
                    format!(
                        "on since {}: visitors get 503 (Retry-After {} s){}",
                        m.since,
                        m.retry_after_secs,
                        if m.allow.is_empty() {
                            String::new()
                        } else {
                            format!("; {} get the app", m.allow.join(", "))
                        }
                    ),
                    "keel maintenance off when the work is done",
                ),
            },
        ),
    ));
    let c = ctx.clone();
    v.push((
        "web".into(),
        true,
        Box::new(move || {
            from(
                crate::systemd::require_active(&c, "health", &format!("{}-web", c.cfg.app.name)),
                "Gunicorn unit active",
            )
        }),
    ));
    v
}

/// The served certificate: right names and not expired (critical), at least 14 days left
/// and the renewal timer running (else degraded). Its days left are a gauge.
/// The newest backup's age and size: degraded when it is older than the allowed age, when
/// there is none, or when the last run failed.
fn backup_checks(ctx: &Arc<Ctx>, gauges: &Gauges) -> Vec<(String, bool, CheckFn<'static>)> {
    let c = ctx.clone();
    let g = gauges.clone();
    vec![(
        "backup".into(),
        false,
        Box::new(move || {
            let dir = crate::backup::dir(&c);
            let list = crate::backup::list(&c.cfg.app.name, &dir);
            let Some(newest) = list.first() else {
                return warn(
                    format!("no backup in {}", c.paths.unhost(&dir).display()),
                    "keel backup (keel install makes the first one)",
                );
            };
            let age = (crate::paths::unix_now() as i64 - newest.time).max(0);
            let mut gs = g.lock().expect("gauges");
            gs.push((
                "keel_backup_age_seconds".into(),
                "Seconds since the newest database backup.".into(),
                age as f64,
            ));
            gs.push((
                "keel_backup_size_bytes".into(),
                "Size of the newest database backup.".into(),
                newest.size as f64,
            ));
            drop(gs);
            let hours = age as f64 / 3600.0;
            let msg = format!(
                "{}: {:.1} h old, {} bytes ({} kept)",
                newest.name,
                hours,
                newest.size,
                list.len()
            );
            let max = c.cfg.backup_max_age_hours();
            match crate::backup::last_run(&c) {
                Some((false, err)) => warn(
                    format!("the last backup run failed: {err}; newest {msg}"),
                    "journalctl -u keel-backup-*.service; keel backup",
                ),
                _ if hours > max as f64 => warn(
                    format!("{msg}: older than {max} h"),
                    "is the backup timer running? systemctl list-timers 'keel-backup-*'",
                ),
                _ => ok(msg),
            }
        }),
    )]
}

fn tls_checks(ctx: &Arc<Ctx>, gauges: &Gauges) -> Vec<(String, bool, CheckFn<'static>)> {
    if !ctx.cfg.tls_on() {
        return vec![];
    }
    let c = ctx.clone();
    let g = gauges.clone();
    vec![(
        "certificate".into(),
        true,
        Box::new(move || {
            let (info, chain) = match crate::stack::served(&c, "health") {
                Ok(x) => x,
                Err(e) => return error(e.msg, e.hint),
            };
            let days = info.days_left(crate::certs::now());
            g.lock().expect("gauges").push((
                "keel_tls_certificate_days_left".into(),
                "Days until the served certificate expires.".into(),
                days as f64,
            ));
            let msg = format!(
                "{}: {days} days left; issuer {}; chain: {chain}",
                info.names.join(", "),
                info.issuer
            );
            let acme = c.cfg.tls_mode() == crate::config::TlsMode::Acme;
            if days < crate::certs::SHORT_DAYS {
                warn(
                    msg,
                    if acme {
                        "renewal should have happened at 30 days: systemctl status certbot.service; keel install --retry-step tls"
                    } else {
                        "replace the certificate, then keel install --retry-step tls"
                    },
                )
            } else if acme && !crate::systemd::is_active(&c, "health", crate::certs::RENEWAL_TIMER)
            {
                warn(
                    format!("{msg}; but {} is not active", crate::certs::RENEWAL_TIMER),
                    "systemctl enable --now certbot.timer: without it renewals stop",
                )
            } else {
                ok(msg)
            }
        }),
    )]
}

/// The uploads: how many files and how much, in every backup.
fn uploads_check(ctx: &Arc<Ctx>) -> (String, bool, CheckFn<'static>) {
    let media = ctx.host(&ctx.cfg.shared_dir().join("media").display().to_string());
    (
        "uploads".into(),
        false,
        Box::new(move || match uploads_size(&media) {
            None => not_checked(
                "the uploads directory cannot be read",
                "see ls -ld on shared/media",
            ),
            Some((files, bytes, whole)) => ok(format!(
                "{}{files} files, {:.1} MB in shared/media (in every backup)",
                if whole { "" } else { "at least " },
                bytes as f64 / 1_048_576.0
            )),
        }),
    )
}

/// Notifications: degraded while one has waited in the outbox through 3 attempts or more
/// (a receiver that is down for minutes, a wrong password), or the last heartbeat failed.
fn notify_check(ctx: &Arc<Ctx>) -> (String, bool, CheckFn<'static>) {
    let c = ctx.clone();
    (
        "notify".into(),
        false,
        Box::new(move || {
            let s = crate::outbox::status(&c);
            let n = c.cfg.notify.channels().len();
            let stuck: Vec<String> = s
                .pending
                .iter()
                .filter(|p| p["attempts"].as_u64().unwrap_or(0) >= 3)
                .map(|p| {
                    format!(
                        "{} via {}: {}",
                        p["event"].as_str().unwrap_or(""),
                        p["channel"].as_str().unwrap_or(""),
                        p["last_error"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let beat = s.heartbeat.as_ref().filter(|h| h["ok"] == false);
            if let Some(first) = stuck.first() {
                warn(
                    format!(
                        "{} notification(s) not delivered after 3 tries; {first}",
                        stuck.len()
                    ),
                    "keel notify status; keel notify test (they are retried with backoff)",
                )
            } else if let Some(h) = beat {
                warn(
                    format!(
                        "the last heartbeat failed: {}",
                        h["error"].as_str().unwrap_or("")
                    ),
                    "check notify.heartbeat_url and that the host reaches it",
                )
            } else {
                ok(format!(
                    "{n} channel(s); {} waiting in the outbox; heartbeat {}",
                    s.pending.len(),
                    match &s.heartbeat {
                        Some(h) => format!("ok at {}", h["at"].as_str().unwrap_or("")),
                        None if c.cfg.notify.heartbeat_url.is_empty() => "not set".into(),
                        None => "not pinged yet".into(),
                    }
                ))
            }
        }),
    )
}

/// The uploads' file count and size, from metadata only (no link followed, nothing read),
/// and whether all of it was counted (the walk stops at 200,000 entries).
fn uploads_size(dir: &std::path::Path) -> Option<(u64, u64, bool)> {
    let mut stack = vec![dir.to_path_buf()];
    let (mut files, mut bytes, mut seen) = (0u64, 0u64, 0u32);
    std::fs::symlink_metadata(dir).ok().filter(|m| m.is_dir())?;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            seen += 1;
            if seen > 200_000 {
                return Some((files, bytes, false));
            }
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                files += 1;
                bytes += md.len();
            }
        }
    }
    Some((files, bytes, true))
}

/// Celery: a task round trip through the worker, a fresh beat heartbeat.
fn app_checks(ctx: &Arc<Ctx>) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v: Vec<(String, bool, CheckFn<'static>)> = vec![];
    let c = ctx.clone();
    v.push((
        "worker".into(),
        true,
        Box::new(move || {
            let unit = format!("{}-worker", c.cfg.app.name);
            if let Err(e) = crate::systemd::require_active(&c, "health", &unit) {
                return error(e.msg, e.hint);
            }
            // Say what was proven: a task through the app's ping page, or else the worker
            // answering `celery inspect ping` through Redis (no code of the app's needed).
            if c.cfg.django.celery_ping_path.is_empty() {
                from(
                    crate::stack::inspect_ping(&c, "health"),
                    "worker active; it answers celery inspect ping through Redis (a task round trip needs django.celery_ping_path)",
                )
            } else {
                from(
                    crate::stack::check_ping(&c),
                    "worker active; a task round-trips through Redis",
                )
            }
        }),
    ));
    if !ctx.cfg.processes.is_empty() {
        let c = ctx.clone();
        v.push((
            "processes".into(),
            true,
            Box::new(move || {
                let units = c.cfg.process_units();
                for u in &units {
                    if let Err(e) = crate::systemd::require_active(&c, "health", u) {
                        return error(e.msg, e.hint);
                    }
                }
                ok(format!("[[process]] units active: {}", units.join(", ")))
            }),
        ));
    }
    let c = ctx.clone();
    v.push((
        "queues".into(),
        true,
        Box::new(move || crate::checks::celery::check_queues(&c)),
    ));
    let c = ctx.clone();
    v.push((
        "beat".into(),
        true,
        Box::new(move || {
            let unit = format!("{}-beat", c.cfg.app.name);
            if let Err(e) = crate::systemd::require_active(&c, "health", &unit) {
                return error(e.msg, e.hint);
            }
            if c.cfg.django.heartbeat_path.is_empty() {
                return crate::checks::celery::beat_by_journal(&c, &unit);
            }
            let r = (|| {
                let path = &c.cfg.django.heartbeat_path;
                let (code, body) = crate::stack::get(&c, path)?;
                let hb = serde_json::from_str::<serde_json::Value>(body.trim())
                    .ok()
                    .and_then(|v| v["heartbeat"].as_f64());
                let max_age = (c.cfg.django.heartbeat_interval_secs * 3 + 5) as f64;
                match hb {
                    Some(t) if code == 200 && crate::paths::unix_now() - t <= max_age => Ok(()),
                    Some(t) => Err(StepError::permanent(
                        format!(
                            "beat's last heartbeat is {:.0}s old",
                            crate::paths::unix_now() - t
                        ),
                        format!("see journalctl -u {unit} -n 50"),
                    )),
                    None => Err(StepError::permanent(
                        format!("GET {path} answered {code} with no heartbeat"),
                        format!("see journalctl -u {unit} -n 50"),
                    )),
                }
            })();
            from(r, "beat active; heartbeat fresh")
        }),
    ));
    v
}

/// The host: security updates, disk, memory, load.
fn host_checks(ctx: &Arc<Ctx>) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v: Vec<(String, bool, CheckFn<'static>)> = vec![];
    let c = ctx.clone();
    v.push((
        "updates".into(),
        false,
        Box::new(move || {
            if !c.cfg.host.security_updates {
                return ok("security updates are off (host.security_updates = false)");
            }
            let timer = "apt-daily-upgrade.timer";
            if !crate::systemd::is_active(&c, "health", timer) {
                return warn(
                    format!("{timer} is not active: security updates are not installed"),
                    "keel install --retry-step baseline",
                );
            }
            let last = c
                .exec
                .probe(
                    "health",
                    &Cmd::new("systemctl").args([
                        "show",
                        "-p",
                        "LastTriggerUSec",
                        "--value",
                        timer,
                    ]),
                )
                .map(|o| o.stdout.trim().to_string())
                .unwrap_or_default();
            let last = if last.is_empty() || last == "n/a" {
                "not run yet".to_string()
            } else {
                format!("last run {last}")
            };
            ok(format!(
                "security updates on (unattended-upgrades; {timer} active, {last})"
            ))
        }),
    ));
    v.push(uploads_check(ctx));
    if ctx.cfg.notify.on() {
        v.push(notify_check(ctx));
    }
    let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
    v.push((
        "disk".into(),
        false,
        Box::new(move || {
            let Some((mb, pct)) = crate::system::disk_free(&base) else {
                return warn("cannot read free space", "check df -h");
            };
            let msg = format!("{mb} MB free ({pct:.0}%)");
            if pct < 3.0 {
                error(
                    msg,
                    "free space now: journalctl --vacuum-size, apt-get clean, old releases",
                )
            } else if pct < 10.0 {
                warn(msg, "free space soon")
            } else {
                ok(msg)
            }
        }),
    ));
    v.push((
        "memory".into(),
        false,
        Box::new(|| {
            let (avail, total) = (
                crate::system::mem_available_mb(),
                crate::system::mem_total_mb().max(1),
            );
            let pct = avail as f64 * 100.0 / total as f64;
            let msg = format!("{avail} MB of {total} MB available ({pct:.0}%)");
            if pct < 5.0 {
                error(
                    msg,
                    "add memory or swap; lower django.web_workers / worker_concurrency",
                )
            } else if pct < 15.0 {
                warn(msg, "memory is getting short")
            } else {
                ok(msg)
            }
        }),
    ));
    let c = ctx.clone();
    v.push((
        "load".into(),
        false,
        Box::new(move || {
            // The host's (the fake host's under test: never this machine's own load).
            let Some(l1) = std::fs::read_to_string(c.host("/proc/loadavg"))
                .ok()
                .and_then(|s| {
                    s.split_whitespace()
                        .next()
                        .and_then(|x| x.parse::<f64>().ok())
                })
            else {
                return crate::checks::not_checked(
                    "load not checked: /proc/loadavg cannot be read",
                    "",
                );
            };
            let per = l1 / crate::system::cpus() as f64;
            let msg = format!("load {l1:.2} ({per:.2} per CPU)");
            if per > 4.0 {
                error(msg, "the host is overloaded; see top")
            } else if per > 2.0 {
                warn(msg, "the host is busy")
            } else {
                ok(msg)
            }
        }),
    ));
    v
}

/// keel's units: restarts and errors in the journal.
fn unit_checks(ctx: &Arc<Ctx>) -> Vec<(String, bool, CheckFn<'static>)> {
    let mut v: Vec<(String, bool, CheckFn<'static>)> = vec![];
    let c = ctx.clone();
    v.push((
        "restarts".into(),
        false,
        Box::new(move || {
            let mut restarted = vec![];
            for u in units(&c.cfg) {
                let n = crate::systemd::restarts(&c, "health", &u);
                if n > 0 {
                    restarted.push(format!("{u} ×{n}"));
                }
            }
            if restarted.is_empty() {
                ok("no unit restarted")
            } else {
                warn(
                    format!("restarted: {}", restarted.join(", ")),
                    "a crash loop shows in journalctl -u UNIT",
                )
            }
        }),
    ));
    let c = ctx.clone();
    v.push((
        "journal".into(),
        false,
        Box::new(move || {
            let mut args: Vec<String> = [
                "--no-pager",
                "-o",
                "cat",
                "-p",
                "err",
                "--since",
                "-15min",
                "-n",
                "50",
            ]
            .map(String::from)
            .to_vec();
            for u in units(&c.cfg) {
                args.push("-u".into());
                args.push(u);
            }
            match c.exec.probe("health", &Cmd::new("journalctl").args(args)) {
                Ok(o) => {
                    let lines: Vec<&str> = o
                        .stdout
                        .lines()
                        .filter(|l| !l.trim().is_empty() && !l.starts_with("-- "))
                        .collect();
                    if lines.is_empty() {
                        ok("no errors logged by keel's units in 15 min")
                    } else {
                        warn(
                            format!(
                                "{} error line(s) in 15 min, last: {}",
                                lines.len(),
                                c.exec.redactor.redact(lines[lines.len() - 1])
                            ),
                            "journalctl -p err --since -15min",
                        )
                    }
                }
                Err(e) => warn(format!("cannot read the journal: {e}"), ""),
            }
        }),
    ));
    v
}

pub fn evaluate(ctx: &Arc<Ctx>, sequential: bool) -> Report {
    evaluate_without(ctx, sequential, &[])
}

/// The checks whose names `skip` holds are left out (`keel diagnose` runs none of the app's
/// code: no `manage.py check --deploy`).
pub fn evaluate_without(ctx: &Arc<Ctx>, sequential: bool, skip: &[&str]) -> Report {
    let t = Instant::now();
    let gauges: Gauges = Default::default();
    // The audit reads Django's effective settings only where the app's code may run.
    let app_code = !skip.contains(&"audit-deploy-check");
    let mut list = checks(ctx, &gauges, app_code);
    list.retain(|(n, _, _)| !skip.contains(&n.as_str()));
    let critical: Vec<bool> = list.iter().map(|(_, c, _)| *c).collect();
    let timeout = Duration::from_secs(ctx.cfg.health.check_timeout_secs);
    let results = if sequential {
        list.into_iter()
            .flat_map(|(n, _, f)| run_parallel(vec![(n, f)], timeout))
            .collect()
    } else {
        run_parallel(list.into_iter().map(|(n, _, f)| (n, f)).collect(), timeout)
    };
    let checks: Vec<(CheckResult, bool)> = results.into_iter().zip(critical).collect();
    let verdict = if checks.iter().any(|(r, c)| *c && r.level == Level::Error) {
        Verdict::Unhealthy
    } else if checks.iter().any(|(r, _)| !r.level.fine()) {
        Verdict::Degraded
    } else {
        Verdict::Healthy
    };
    let gauges = std::mem::take(&mut *gauges.lock().expect("gauges"));
    Report {
        verdict,
        duration_ms: t.elapsed().as_millis() as u64,
        checks,
        gauges,
    }
}

/// Restart keel's units that are not active, with bounded attempts and backoff.
pub fn heal(ctx: &Ctx) -> Vec<String> {
    let mut actions = vec![];
    for u in units(&ctx.cfg) {
        if crate::systemd::is_active(ctx, "heal", &u) {
            continue;
        }
        let r = crate::retry::retry(
            &crate::config::Retry {
                attempts: 3,
                initial_delay_ms: 1000,
                max_delay_ms: 5000,
                max_total_delay_ms: 20_000,
            },
            || {
                crate::systemd::systemctl(ctx, "heal", &["restart", &u])?;
                ctx.exec.pause(Duration::from_millis(700));
                crate::systemd::require_active(ctx, "heal", &u)
            },
            |_| true,
            |e, d| {
                ctx.ui.line(&format!(
                    "heal: {u} still down ({}), retrying in {:.1}s",
                    e.msg,
                    d.as_secs_f64()
                ))
            },
        );
        let msg = match r {
            Ok(()) => format!("restarted {u}"),
            Err(e) => format!("could not bring {u} back: {}", e.msg),
        };
        ctx.events
            .emit("heal", None, json!({"unit": u, "result": msg}));
        ctx.ui.line(&format!("heal: {msg}"));
        actions.push(msg);
    }
    actions
}

pub fn prometheus(r: &Report) -> String {
    let mut s = String::new();
    s.push_str("# HELP keel_check_status Result of a keel health check: 0 ok, 1 warn, 2 error, -1 not checked.\n# TYPE keel_check_status gauge\n");
    for (c, crit) in &r.checks {
        let v = match c.level {
            Level::NotChecked => -1,
            Level::Ok => 0,
            Level::Warn => 1,
            Level::Error => 2,
        };
        s.push_str(&format!(
            "keel_check_status{{check=\"{}\",critical=\"{crit}\"}} {v}\n",
            c.name
        ));
    }
    s.push_str("# HELP keel_check_duration_seconds How long a keel health check took.\n# TYPE keel_check_duration_seconds gauge\n");
    for (c, _) in &r.checks {
        s.push_str(&format!(
            "keel_check_duration_seconds{{check=\"{}\"}} {:.3}\n",
            c.name,
            c.duration_ms as f64 / 1000.0
        ));
    }
    for (name, help, value) in &r.gauges {
        s.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
        ));
    }
    let v = match r.verdict {
        Verdict::Healthy => 0,
        Verdict::Degraded => 1,
        Verdict::Unhealthy => 2,
    };
    s.push_str(&format!("# HELP keel_health Overall verdict: 0 healthy, 1 degraded, 2 unhealthy.\n# TYPE keel_health gauge\nkeel_health {v}\n"));
    s.push_str(&format!("# HELP keel_verify_duration_seconds Wall time of keel verify.\n# TYPE keel_verify_duration_seconds gauge\nkeel_verify_duration_seconds {:.3}\n", r.duration_ms as f64 / 1000.0));
    s
}
