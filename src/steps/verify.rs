use super::python_env::{as_app, venv_bin};
use crate::graph::{Ctx, Step, StepError, StepResult};
use crate::system::net::http_get;
use crate::txn::Txn;
use std::time::{Duration, Instant};

pub struct Verify;
const ID: &str = "verify";

fn get(ctx: &Ctx, path: &str) -> StepResult<(u16, String)> {
    let port = ctx.cfg.nginx.port;
    http_get(port, &ctx.cfg.app.domain, path, Duration::from_secs(15)).map_err(|e| {
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

/// The whole stack, end to end, as a user would see it.
pub fn check_stack(ctx: &Ctx) -> StepResult {
    let app = &ctx.cfg.app.name;
    let (code, body) = get(ctx, "/")?;
    if code != 200 || body.contains("keel-placeholder") {
        return Err(StepError::transient(
            format!(
                "GET / through nginx answered {code}{}",
                if body.contains("keel-placeholder") {
                    " with keel's placeholder: Gunicorn is not answering"
                } else {
                    ""
                }
            ),
            format!("see journalctl -u {app}-web -n 50 and /var/log/nginx/{app}.error.log"),
        ));
    }
    super::require_active(ctx, ID, &format!("{app}-worker"))?;
    let out = ctx.exec.probe(
        ID,
        &as_app(ctx, &venv_bin(ctx, "celery"))
            .args([
                "-A",
                &ctx.cfg.celery_app(),
                "inspect",
                "ping",
                "--timeout",
                "5",
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
    let ping = &ctx.cfg.django.celery_ping_path;
    if !ping.is_empty() {
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
    }
    super::require_active(ctx, ID, &format!("{app}-beat"))?;
    if !ctx.cfg.django.heartbeat_path.is_empty() {
        let first = heartbeat(ctx)?;
        let bound = Duration::from_secs(ctx.cfg.django.heartbeat_interval_secs * 2 + 5);
        let start = Instant::now();
        loop {
            let now = heartbeat(ctx)?;
            if now.is_some() && (first.is_none() || now > first) {
                break;
            }
            if start.elapsed() > bound {
                return Err(StepError::transient(
                    format!(
                        "celery beat's heartbeat did not advance in {}s",
                        bound.as_secs()
                    ),
                    format!("see journalctl -u {app}-beat -n 50"),
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    Ok(())
}

impl Step for Verify {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> &'static [&'static str] {
        &["services", "nginx"]
    }
    fn about(&self) -> &'static str {
        "the app answers through nginx; a Celery task round-trips; beat ticks"
    }
    fn fingerprint(&self, ctx: &Ctx) -> String {
        format!(
            "{} {} {}",
            super::services::Services.fingerprint(ctx),
            super::nginx::Nginx.fingerprint(ctx),
            serde_json::to_string(&ctx.cfg.django).unwrap_or_default()
        )
    }
    fn run(&self, _ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        if ctx.is_fake() {
            return Ok(());
        }
        check_stack(ctx)
    }
}
