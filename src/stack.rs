//! End-to-end checks of the running stack, through the way visitors come: the site through
//! nginx, a Celery task's round trip, beat's heartbeat, the units' state. The verify step,
//! `keel verify` and a deploy's checks all run these.
use crate::app::{as_app, venv_bin};
use crate::certs::CertInfo;
use crate::step::{Ctx, StepError, StepResult};
use std::time::{Duration, Instant};

/// The log these checks write to (the verify step's).
/// The log of the end-to-end checks (the verify step, deploys and restores run them).
const LOG: &str = "stack";

/// GET `path` from nginx on loopback, as the app's domain: over HTTPS when TLS is on (the
/// way visitors come), plain HTTP otherwise.
pub fn get(ctx: &Ctx, path: &str) -> StepResult<(u16, String)> {
    let (host, t) = (&ctx.cfg.app.domain, Duration::from_secs(15));
    let answer = if ctx.cfg.tls_on() {
        ctx.exec.https_get(LOG, ctx.cfg.tls.port, host, path, t)
    } else {
        ctx.exec.http_get(LOG, ctx.cfg.nginx.port, host, path, t)
    };
    answer.map_err(|e| {
        StepError::transient(
            format!("GET {path} through nginx: {e}"),
            "see journalctl -u nginx",
        )
    })
}

fn heartbeat(ctx: &Ctx) -> StepResult<Option<f64>> {
    let path = &ctx.cfg.django.heartbeat_path;
    let (code, body) = get(ctx, path)?;
    if code != 200 {
        return Err(StepError::transient(
            format!("GET {path} answered {code}"),
            format!("see journalctl -u {}-web", ctx.cfg.app.name),
        ));
    }
    let v: serde_json::Value = serde_json::from_str(body.trim()).map_err(|e| {
        StepError::permanent(
            format!("GET {path}: not JSON ({e})"),
            "it must answer {\"heartbeat\": <number or null>}",
        )
    })?;
    Ok(v["heartbeat"].as_f64())
}

/// When `unit` last became active, as Unix seconds.
pub fn active_since(ctx: &Ctx, unit: &str) -> Option<f64> {
    let o = ctx
        .exec
        .probe(
            LOG,
            &crate::exec::Cmd::new("systemctl").args([
                "show",
                "--timestamp=unix",
                "-p",
                "ActiveEnterTimestamp",
                "--value",
                unit,
            ]),
        )
        .ok()?;
    o.stdout.trim().trim_start_matches('@').parse().ok()
}

/// GET health.path through nginx is the app (not keel's placeholder) with an accepted
/// status: shared with `keel verify` and a deploy's checks. A failure says why: where a
/// redirect went, or the app's last error from its journal.
pub fn check_home(ctx: &Ctx) -> StepResult {
    let app = &ctx.cfg.app.name;
    let (path, ok) = (&ctx.cfg.health.path, &ctx.cfg.health.statuses);
    let (code, body) = get(ctx, path)?;
    if ok.contains(&code) && !body.contains("keel-placeholder") {
        return Ok(());
    }
    let why = if body.contains("keel-placeholder") {
        " with keel's placeholder: Gunicorn is not answering".to_string()
    } else if (300..400).contains(&code) {
        format!(" → {body} (health.statuses accepts {ok:?})")
    } else if code >= 500 {
        match last_app_error(ctx) {
            Some(l) => format!("; the app logged: {l}"),
            None => String::new(),
        }
    } else {
        format!(" (health.statuses accepts {ok:?})")
    };
    Err(StepError::transient(
        format!("GET {path} through nginx answered {code}{why}"),
        format!(
            "see journalctl -u {app}-web -n 50 and /var/log/nginx/{app}.error.log; a page that redirects (to a login) can be accepted with [health] statuses"
        ),
    ))
}

/// The last line of the web unit's journal that names an exception (a traceback's last
/// line), redacted.
fn last_app_error(ctx: &Ctx) -> Option<String> {
    let unit = format!("{}-web", ctx.cfg.app.name);
    ctx.exec
        .journal(LOG, &unit, 60)?
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| {
            let head = l.split(':').next().unwrap_or("");
            !head.is_empty()
                && !head.contains(' ')
                && (head.ends_with("Error")
                    || head.ends_with("Exception")
                    || head.ends_with("DoesNotExist"))
        })
        .map(|l| ctx.exec.redactor.redact(l))
}

/// A real task through Redis and the worker, via the running app's ping page (fast: no
/// Python start-up): shared with `keel verify`.
pub fn check_ping(ctx: &Ctx) -> StepResult {
    let app = &ctx.cfg.app.name;
    let ping = &ctx.cfg.django.celery_ping_path;
    if ping.is_empty() {
        return Ok(());
    }
    let (code, body) = get(ctx, ping)?;
    if code != 200 || body.trim() != "pong" {
        return Err(StepError::transient(
            format!(
                "GET {ping} answered {code} {:?}: a task did not round-trip through Redis",
                body.trim()
            ),
            format!("see journalctl -u {app}-worker -n 50"),
        ));
    }
    Ok(())
}

fn check_worker(ctx: &Ctx) -> StepResult {
    let app = &ctx.cfg.app.name;
    crate::systemd::require_active(ctx, LOG, &format!("{app}-worker"))?;
    for u in ctx.cfg.process_units() {
        crate::systemd::require_active(ctx, LOG, &u)?;
    }
    // A task round trip proves more than `inspect ping` (the worker consumes, not only
    // answers its control queue), and costs no Python start-up: the ping only without it.
    // The ping path is served by this host's Gunicorn: a worker-only host pings by Celery.
    if !ctx.cfg.django.celery_ping_path.is_empty() && ctx.cfg.has(crate::config::Role::Web) {
        return check_ping(ctx);
    }
    // A worker that (re)started moments ago and logged Celery's "ready." since has
    // connected to the broker and consumes: a second Python start for `inspect ping`
    // would prove nothing more.
    if wait_ready(ctx, LOG, &format!("{app}-worker")) == Ready::Logged {
        return Ok(());
    }
    ping_node(ctx, LOG)
}

#[derive(PartialEq)]
enum Ready {
    /// It logged "ready." since it last became active.
    Logged,
    /// Up for minutes (its journal not read), not seen within the wait, or no way to tell.
    Unknown,
}

/// `celery inspect ping` to our worker, as the app, through Redis: the worker is connected
/// to the broker and answers. Needs nothing of the app's but its Celery app.
pub fn inspect_ping(ctx: &Ctx, log: &str) -> StepResult {
    wait_ready(ctx, log, &format!("{}-worker", ctx.cfg.app.name));
    ping_node(ctx, log)
}

fn ping_node(ctx: &Ctx, log: &str) -> StepResult {
    let app = &ctx.cfg.app.name;
    // Our worker's node name (the unit sets --hostname APP@%h): with a destination, inspect
    // returns as soon as it answers instead of waiting out the timeout for unknown others.
    let node = format!("{app}@{}", crate::system::hostname());
    let out = ctx.exec.probe(
        log,
        &as_app(ctx, &venv_bin(ctx, "celery"))
            .args([
                "-A",
                &ctx.cfg.celery_app(),
                "inspect",
                "ping",
                "--timeout",
                "5",
                "--destination",
                &node,
            ])
            .timeout(Duration::from_secs(30)),
    )?;
    if !out.stdout.contains("pong") {
        return Err(StepError::transient(
            format!(
                "celery inspect ping: no worker answered (exit {})",
                out.code
            ),
            format!("see journalctl -u {app}-worker -n 50"),
        ));
    }
    Ok(())
}

/// Until the worker logs Celery's "ready." since it (re)started (at most 30 s; a ping to a
/// worker still starting waits out its whole timeout). Its logging may be the app's own, so
/// the ping follows whether or not the line was seen.
fn wait_ready(ctx: &Ctx, log: &str, unit: &str) -> Ready {
    let Some(since) = active_since(ctx, unit) else {
        return Ready::Unknown;
    };
    // A worker up for minutes is ready (or not starting): its journal is not read.
    if crate::paths::unix_now() - since > 120.0 {
        return Ready::Unknown;
    }
    let since = since.floor() as u64;
    let end = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < end {
        let seen = ctx
            .exec
            .journal_since(log, unit, since, 5000)
            .is_some_and(|t| t.lines().any(|l| l.trim_end().ends_with(" ready.")));
        if seen {
            return Ready::Logged;
        }
        if !ctx.exec.is_real() {
            return Ready::Unknown;
        }
        ctx.exec.pause(Duration::from_millis(250));
    }
    Ready::Unknown
}

/// Beat is active and its heartbeat advanced since beat (re)started.
fn check_beat(ctx: &Ctx) -> StepResult {
    let unit = format!("{}-beat", ctx.cfg.app.name);
    crate::systemd::require_active(ctx, LOG, &unit)?;
    // The heartbeat is read through this host's nginx: without web, the unit's state is all.
    if ctx.cfg.django.heartbeat_path.is_empty() || !ctx.cfg.has(crate::config::Role::Web) {
        return Ok(());
    }
    let since = active_since(ctx, &unit);
    let first = heartbeat(ctx)?;
    let bound = Duration::from_secs(ctx.cfg.django.heartbeat_interval_secs * 2 + 5);
    let start = Instant::now();
    loop {
        let now = heartbeat(ctx)?;
        let advanced = match (now, since, first) {
            (Some(t), Some(s), _) if t >= s => true,
            (Some(t), _, Some(f)) => t > f,
            (Some(_), None, None) => true,
            _ => false,
        };
        if advanced {
            return Ok(());
        }
        if start.elapsed() > bound {
            return Err(StepError::transient(
                format!(
                    "celery beat's heartbeat did not advance in {}s",
                    bound.as_secs()
                ),
                format!("see journalctl -u {unit} -n 50"),
            ));
        }
        ctx.exec.pause(Duration::from_millis(300));
    }
}

/// The whole stack, end to end, as a user would see it; the three parts side by side.
pub fn check_stack(ctx: &Ctx) -> StepResult {
    measure(ctx).1
}

/// `check_stack`, with each part's result and time (for the run's report).
pub fn measure(ctx: &Ctx) -> (Vec<crate::checks::CheckResult>, StepResult) {
    use crate::config::Role;
    // A part this host's roles do not run is not checked here (the host that runs it checks
    // it); it says so rather than passing.
    let timed = |name: &str, role: Role, f: &dyn Fn() -> StepResult| {
        if !ctx.cfg.has(role) {
            return (name.to_string(), None, 0);
        }
        let t = std::time::Instant::now();
        let r = f();
        (name.to_string(), Some(r), t.elapsed().as_millis() as u64)
    };
    let parts = std::thread::scope(|s| {
        let w = s.spawn(|| timed("celery worker", Role::Worker, &|| check_worker(ctx)));
        let b = s.spawn(|| timed("celery beat tick", Role::Beat, &|| check_beat(ctx)));
        let h = timed("app through nginx", Role::Web, &|| check_home(ctx));
        let lost = |n: &str| {
            (
                n.to_string(),
                Some(Err(StepError::permanent(format!("{n} check panicked"), ""))),
                0,
            )
        };
        [
            h,
            w.join().unwrap_or_else(|_| lost("worker")),
            b.join().unwrap_or_else(|_| lost("beat")),
        ]
    });
    let results = parts
        .iter()
        .map(|(name, r, ms)| crate::checks::CheckResult {
            name: name.clone(),
            level: match r {
                None => crate::checks::Level::NotChecked,
                Some(Ok(())) => crate::checks::Level::Ok,
                Some(Err(_)) => crate::checks::Level::Error,
            },
            message: match r {
                None => "not checked: not this host's role (app.roles)".into(),
                Some(Ok(())) => "ok".into(),
                Some(Err(e)) => e.msg.clone(),
            },
            hint: match r {
                Some(Err(e)) => e.hint.clone(),
                _ => String::new(),
            },
            duration_ms: *ms,
            ignored: false,
        })
        .collect();
    let [(_, home, _), (_, worker, _), (_, beat, _)] = parts;
    let r = |x: Option<StepResult>| x.unwrap_or(Ok(()));
    (results, r(home).and(r(worker)).and(r(beat)))
}

/// `check_stack` with the verify step's retries: units that just (re)started need a moment.
/// `keel deploy` and `keel restore` decide with it.
pub fn check_stack_retried(ctx: &Ctx) -> StepResult {
    crate::retry::retry(
        &ctx.cfg.retry,
        || check_stack(ctx),
        |e: &StepError| e.kind == crate::retry::Kind::Transient,
        |e, d| {
            ctx.ui.line(&format!(
                "[verify] not yet: {} (again in {:.1} s)",
                e.msg,
                d.as_secs_f64()
            ))
        },
    )
}

/// The served certificate, judged: covers every name and has not expired. Ok carries it
/// and openssl's verdict on its chain.
pub fn served(ctx: &Ctx, log: &str) -> StepResult<(CertInfo, String)> {
    let port = ctx.cfg.tls.port;
    let (pem, verify) = ctx
        .exec
        .tls_cert(log, port, &ctx.cfg.app.domain, Duration::from_secs(10))
        .map_err(|e| {
            StepError::transient(
                format!("TLS to 127.0.0.1:{port}: {e}"),
                "see journalctl -u nginx",
            )
        })?;
    let info = crate::certs::parse_pem(&pem)
        .map_err(|e| StepError::permanent(format!("the served certificate: {e}"), ""))?;
    let names = ctx.cfg.tls_names();
    let missing = info.missing(&names);
    if !missing.is_empty() {
        return Err(StepError::permanent(
            format!(
                "port {port} serves a certificate for {} (not {})",
                info.names.join(", "),
                missing.join(", ")
            ),
            "keel install --retry-step tls",
        ));
    }
    if info.expired(crate::certs::now()) {
        return Err(StepError::permanent(
            format!(
                "the served certificate expired ({} days ago)",
                -info.days_left(crate::certs::now())
            ),
            "keel install --retry-step tls; check that certbot.timer runs (systemctl list-timers)",
        ));
    }
    Ok((info, verify))
}
