//! `keel schedules`: each `[[schedule]]` with its last run and its next; and the hidden
//! `keel schedule-failed UNIT` that a failed run's OnFailure= unit calls (an event).
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::step::Ctx;
use serde_json::json;
use std::collections::BTreeMap;

const LOG: &str = "schedules";

/// `systemctl show UNIT -p ...` as a map (timestamps as Unix seconds, `@N`).
fn show(ctx: &Ctx, unit: &str, props: &str) -> BTreeMap<String, String> {
    let out = ctx
        .exec
        .probe(
            LOG,
            &Cmd::new("systemctl").args(["show", "--timestamp=unix", "-p", props, unit]),
        )
        .map(|o| o.stdout)
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_start_matches('@').to_string()))
        .collect()
}

fn when(secs: Option<&String>) -> String {
    secs.and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".into())
}

/// When the timer fires next, in Unix seconds: `systemctl show` prints this one as a date
/// whatever --timestamp says, `list-timers --output=json` as microseconds.
fn next_run(ctx: &Ctx, timer: &str) -> Option<String> {
    let out = ctx
        .exec
        .probe(
            LOG,
            &Cmd::new("systemctl").args(["list-timers", "--all", "--output=json", timer]),
        )
        .ok()?;
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).ok()?;
    let us = v.as_array()?.iter().find(|t| t["unit"] == timer)?["next"].as_u64()?;
    Some((us / 1_000_000).to_string())
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    let mut o = CtxOptions::new(inv, "schedules");
    o.quiet = true;
    let ctx = build_ctx(cfg, o);
    let mut rows = vec![];
    for s in &ctx.cfg.schedules {
        let (svc, timer) = crate::schedule::units(&ctx.cfg.app.name, &s.name);
        let sv = show(
            &ctx,
            &svc,
            "Result,ExecMainStatus,ExecMainExitTimestamp,ActiveState",
        );
        let tv = show(&ctx, &timer, "ActiveState");
        let ran = sv
            .get("ExecMainExitTimestamp")
            .is_some_and(|t| !t.is_empty() && t != "0");
        let result = match (sv.get("ActiveState").map(String::as_str), ran) {
            (Some("activating"), _) => "running".to_string(),
            (_, false) => "never run".to_string(),
            _ => match sv.get("Result").map(String::as_str) {
                Some("success") => "ok".into(),
                Some(r) => format!(
                    "failed ({r}, exit {})",
                    sv.get("ExecMainStatus").map(String::as_str).unwrap_or("?")
                ),
                None => "unknown".into(),
            },
        };
        let next = next_run(&ctx, &timer);
        rows.push(json!({
            "name": s.name,
            "on_calendar": s.on_calendar,
            "command": s.command.join(" "),
            "timer": tv.get("ActiveState").cloned().unwrap_or_default(),
            "last_run": when(sv.get("ExecMainExitTimestamp")),
            "result": result,
            "next_run": when(next.as_ref()),
        }));
    }
    if cli.output == Output::Json {
        println!("{}", json!({"schedules": rows}));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no [[schedule]] in {}", ctx.cfg.source.display());
        return Ok(());
    }
    println!(
        "{:<20} {:<18} {:<21} {:<24} {:<21} COMMAND",
        "NAME", "ON CALENDAR", "LAST RUN", "RESULT", "NEXT RUN"
    );
    for r in &rows {
        let s = |k: &str| r[k].as_str().unwrap_or("").to_string();
        println!(
            "{:<20} {:<18} {:<21} {:<24} {:<21} {}",
            s("name"),
            s("on_calendar"),
            s("last_run"),
            s("result"),
            s("next_run"),
            s("command")
        );
    }
    Ok(())
}

/// Called by `keel-schedule-failed-<app>@UNIT.service`: records the failure as an event.
pub fn failed(inv: &Invocation, unit: &str) -> Result<()> {
    let _cli = &inv.cli;
    let cfg = inv.config()?;
    let name = cfg
        .schedules
        .iter()
        .find(|s| crate::schedule::units(&cfg.app.name, &s.name).0 == unit)
        .map(|s| s.name.clone())
        .ok_or_else(|| {
            Error::usage(
                format!(
                    "keel schedule-failed {unit}: not a [[schedule]] unit of {}",
                    cfg.app.name
                ),
                "systemd calls this (OnFailure=); there is nothing to run by hand",
            )
        })?;
    let ctx = build_ctx(cfg, CtxOptions::new(inv, &crate::paths::run_id()));
    let sv = show(&ctx, unit, "Result,ExecMainStatus");
    ctx.events.emit(
        "schedule-failed",
        None,
        json!({
            "schedule": name,
            "unit": unit,
            "result": sv.get("Result").cloned().unwrap_or_default(),
            "exit_status": sv.get("ExecMainStatus").cloned().unwrap_or_default(),
            "error": format!("[[schedule]] {name} failed ({})", sv.get("Result").map(String::as_str).unwrap_or("?")),
        }),
    );
    crate::outbox::raise(
        &ctx,
        "schedule-failed",
        &format!("schedule-failed-{name}"),
        &format!(
            "[[schedule]] {name} failed ({}, exit status {}): keel logs --failed",
            sv.get("Result").map(String::as_str).unwrap_or("?"),
            sv.get("ExecMainStatus").map(String::as_str).unwrap_or("?")
        ),
        json!({"schedule": name, "unit": unit}),
    );
    Ok(())
}
