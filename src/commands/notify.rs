//! `keel notify test|status|flush|password`: the channels tried now, the outbox shown, what
//! is due delivered, an SMTP password stored as a keel secret (never on a command line).
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::cli::{NotifyAction, Output};
use crate::config::Config;
use crate::error::{Error, Result};
use serde_json::json;

pub fn run(inv: &Invocation, action: &NotifyAction) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    // Checked before anything is read or written (a password name, the channels).
    if let NotifyAction::Password { name } = action {
        return password(inv, cfg, name);
    }
    if matches!(action, NotifyAction::Test | NotifyAction::Flush)
        && cfg.notify.channels().is_empty()
    {
        return Err(Error::usage(
            format!("{}: [notify] has no channel", cli.config.display()),
            "add a [[notify.webhook]], [[notify.email]] or [[notify.command]] (see the README's Notifications)",
        ));
    }
    cfg.check_notify_host(&crate::paths::Paths::from_env().root)?;
    let ctx = build_ctx(cfg, CtxOptions::new(inv, &crate::paths::run_id()));
    match action {
        NotifyAction::Test => test(inv, &ctx),
        NotifyAction::Flush => {
            let f = crate::outbox::flush(&ctx, true);
            match cli.output {
                Output::Json => println!("{}", json!(f)),
                _ => println!(
                    "{} sent, {} failed, {} dropped, {} waiting",
                    f.sent, f.failed, f.dropped, f.pending
                ),
            }
            Ok(())
        }
        NotifyAction::Status => {
            status(inv, &ctx);
            Ok(())
        }
        NotifyAction::Password { .. } => unreachable!("handled above"),
    }
}

/// One test message through every channel, delivered now (not queued): each channel's
/// result is printed, and any failure is exit 1.
fn test(inv: &Invocation, ctx: &crate::step::Ctx) -> Result<()> {
    let cli = &inv.cli;
    let m = crate::outbox::Message::new(
        ctx,
        "test",
        "This is a test notification from keel notify test: this channel works.",
        json!({}),
    );
    let mut results = vec![];
    for (name, ch) in ctx.cfg.notify.channels() {
        let r = crate::outbox::deliver(ctx, &ch, &m);
        results.push(json!({"channel": name, "ok": r.is_ok(), "error": r.as_ref().err()}));
        if cli.output == Output::Human {
            match &r {
                Ok(()) => println!("{name}: sent"),
                Err(e) => println!("{name}: FAILED: {e}"),
            }
        }
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["channel"].as_str().unwrap_or("").to_string())
        .collect();
    ctx.events
        .emit("notify-test", None, json!({"results": results}));
    if cli.output == Output::Json {
        println!("{}", json!({"results": results}));
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::StepFailed {
            step: "notify test".into(),
            msg: format!("not delivered through {}", failed.join(", ")),
            hint: "fix the channel in [notify] (the error above says why), then keel notify test"
                .into(),
        })
    }
}

fn status(inv: &Invocation, ctx: &crate::step::Ctx) {
    let cli = &inv.cli;
    let s = crate::outbox::status(ctx);
    if cli.output == Output::Json {
        println!("{}", json!(s));
        return;
    }
    let names: Vec<String> = ctx.cfg.notify.channels().into_iter().map(|c| c.0).collect();
    println!(
        "channels: {}",
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    );
    println!("outbox: {} waiting", s.pending.len());
    for p in &s.pending {
        println!(
            "  {} via {}: {} attempt(s); last error: {}",
            p["event"].as_str().unwrap_or(""),
            p["channel"].as_str().unwrap_or(""),
            p["attempts"],
            p["last_error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .unwrap_or("-")
        );
    }
    println!("open problems (sent at most once a day): {}", s.open.len());
    for o in &s.open {
        println!(
            "  {} ({} repeat(s) not sent again)",
            o["key"].as_str().unwrap_or(""),
            o["repeats"]
        );
    }
    match &s.heartbeat {
        Some(h) => println!(
            "heartbeat: {} at {}{}",
            if h["ok"] == true { "ok" } else { "FAILED" },
            h["at"].as_str().unwrap_or(""),
            h["error"]
                .as_str()
                .filter(|e| !e.is_empty())
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ),
        None if ctx.cfg.notify.heartbeat_url.is_empty() => {
            println!("heartbeat: not set (notify.heartbeat_url)")
        }
        None => println!("heartbeat: not pinged yet (the verify timer pings it)"),
    }
}

/// The password from stdin (a pipe) or asked for (a terminal), stored 0600 as the keel
/// secret notify-NAME.
fn password(inv: &Invocation, cfg: Config, name: &str) -> Result<()> {
    let cli = &inv.cli;
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok {
        return Err(Error::usage(
            format!("keel notify password {name:?}: not a secret name"),
            "the email channel's password_secret: lowercase letters, digits and '-'",
        ));
    }
    let value = if inv.terminal.stdin {
        if cli.yes {
            return Err(Error::usage(
                "keel notify password: --yes, and no password piped in",
                "pipe it in: printf '%s' \"$PW\" | keel notify password NAME",
            ));
        }
        dialoguer::Password::new()
            .with_prompt(format!("SMTP password ({name})"))
            .interact()
            .map_err(|e| Error::Other(e.into()))?
    } else {
        super::context::read_stdin_value(
            "keel notify password",
            4097,
            "pipe the password in as text",
        )?
    };
    if value.is_empty() || value.len() > 4096 || value.chars().any(char::is_control) {
        return Err(Error::usage(
            "keel notify password: empty, over 4096 bytes, or with control characters",
            "give the password on one line",
        ));
    }
    let ctx = build_ctx(cfg, CtxOptions::new(inv, &crate::paths::run_id()));
    let secret = format!("notify-{name}");
    ctx.secrets
        .set(&secret, &value)
        .map_err(|e| Error::io(ctx.secrets.path(&secret), e))?;
    println!(
        "stored as {} (0600)",
        ctx.paths.unhost(&ctx.secrets.path(&secret)).display()
    );
    Ok(())
}
