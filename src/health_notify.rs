//! What the verify timer tells ([notify]): a change of health (unhealthy, recovered), the
//! problems its checks measured (backup age, certificate, certbot's renewal, disk), each
//! raised while it lasts and resolved after; and the heartbeat while not unhealthy.
use crate::outbox::{dir, raise, resolve, write_json};
use crate::step::Ctx;
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// After the verify timer's checks: a change of health, the problems the checks measured
/// (backup age, certificate, disk), and the heartbeat. Never fails.
pub fn after_verify(ctx: &Ctx, r: &crate::checks::health::Report) {
    use crate::checks::health::Verdict;
    let n = &ctx.cfg.notify;
    if !n.on() {
        return;
    }
    let unhealthy = r.verdict == Verdict::Unhealthy;
    let failing = r.failing();
    let d = dir(ctx);
    let health_file = d.join("health");
    let before = crate::fsx::read_text_nofollow(&health_file, 64)
        .ok()
        .flatten()
        .unwrap_or_default();
    let now_state = if unhealthy { "unhealthy" } else { "ok" };
    if before.trim() != now_state {
        if unhealthy {
            raise(
                ctx,
                "host-unhealthy",
                "host-unhealthy",
                &failing.join("\n"),
                json!({"failing": failing}),
            );
        } else if before.trim() == "unhealthy" {
            resolve(ctx, "host-unhealthy");
            raise(
                ctx,
                "host-recovered",
                "",
                "keel verify is no longer unhealthy",
                json!({}),
            );
        }
        if crate::fsx::mkdir(&d, 0o700, Some((0, 0))).is_ok() {
            let _ =
                crate::fsx::write_atomic(&health_file, now_state.as_bytes(), 0o600, Some((0, 0)));
        }
    }
    problems(ctx, r);
    if !n.heartbeat_url.is_empty() && !unhealthy {
        heartbeat(ctx, &d);
    }
}

/// The problems the checks measured, each raised while it lasts and resolved after.
fn problems(ctx: &Ctx, r: &crate::checks::health::Report) {
    let gauge = |name: &str| r.gauges.iter().find(|g| g.0 == name).map(|g| g.2);
    let check = |name: &str| {
        r.checks
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(c, _)| c)
    };
    let max = ctx.cfg.backup_max_age_hours() as f64;
    let stale = match gauge("keel_backup_age_seconds") {
        Some(age) => (age > max * 3600.0).then(|| {
            format!(
                "the newest backup is {:.1} h old (backup.max_age_hours = {max})",
                age / 3600.0
            )
        }),
        None => check("backup")
            .filter(|c| !c.level.fine())
            .map(|c| c.message.clone()),
    };
    set(ctx, "backup-stale", stale);
    let expiring = gauge("keel_tls_certificate_days_left")
        .filter(|d| *d < crate::certs::SHORT_DAYS as f64)
        .map(|d| format!("the served certificate has {d:.0} days left"));
    set(ctx, "certificate-expiring", expiring);
    if ctx.cfg.tls_on() && ctx.cfg.tls_mode() == crate::config::TlsMode::Acme {
        let failed = ctx
            .exec
            .probe(
                "notify",
                &crate::exec::Cmd::new("systemctl").args([
                    "is-failed",
                    "--quiet",
                    "certbot.service",
                ]),
            )
            .is_ok_and(|o| o.code == 0);
        set(
            ctx,
            "certificate-renewal-failed",
            failed.then(|| "certbot.service failed: journalctl -u certbot.service".to_string()),
        );
    }
    // A schedule whose last run succeeded is no longer a problem (its next failure is news).
    for sch in &ctx.cfg.schedules {
        let unit = crate::schedule::units(&ctx.cfg.app.name, &sch.name).0;
        let show =
            crate::exec::Cmd::new("systemctl").args(["show", "-p", "Result", "--value", &unit]);
        if ctx
            .exec
            .probe("notify", &show)
            .is_ok_and(|o| o.stdout.trim() == "success")
        {
            resolve(ctx, &format!("schedule-failed-{}", sch.name));
        }
    }
    let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
    if let Some((_, free)) = crate::system::disk_free(&base) {
        let used = 100.0 - free;
        let limit = ctx.cfg.notify.disk_percent as f64;
        set(
            ctx,
            "disk-full",
            (used >= limit).then(|| {
                format!(
                    "the disk holding {} is {used:.0}% full (notify.disk_percent = {limit})",
                    ctx.cfg.base_dir().display()
                )
            }),
        );
    }
}

/// Raise `event` (its own key) with `text` while it holds, resolve it when it does not.
fn set(ctx: &Ctx, event: &str, text: Option<String>) {
    match text {
        Some(t) => raise(ctx, event, event, &t, json!({})),
        None => resolve(ctx, event),
    }
}

fn heartbeat(ctx: &Ctx, d: &Path) {
    let t = Duration::from_secs(ctx.cfg.notify.timeout_secs);
    let r = ctx
        .exec
        .http_send("notify", "GET", &ctx.cfg.notify.heartbeat_url, None, t);
    let (ok, error) = match r {
        Ok(c) if (200..300).contains(&c) => (true, String::new()),
        Ok(c) => (false, format!("answered {c}")),
        Err(e) => (false, e.to_string()),
    };
    if !ok {
        ctx.ui.line(&format!("[notify] heartbeat: {error}"));
    }
    let _ = write_json(
        &d.join("heartbeat.json"),
        &json!({"at": crate::paths::now(), "ok": ok, "error": error}),
    );
}
