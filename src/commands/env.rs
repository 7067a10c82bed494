//! `keel env --example FILE --out FILE`: render a .env as the app-env step does.
use crate::cli::{Cli, Output};
use crate::config::Config;
use crate::error::{Error, Result};
use serde_json::json;
use std::io::IsTerminal;

/// `keel env --example FILE --out FILE`.
pub fn run(cli: &Cli, example: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let text = crate::fsx::read_regular(example, crate::fsx::MAX_INPUT)
        .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text")))
        .map_err(|e| {
            Error::usage(
                format!("--example {}: {e}", example.display()),
                "point --example at the app's .env.example (a regular UTF-8 file of at most 1 MiB)",
            )
        })?;
    // Parsed before anything is derived: a bad example must not leave new secrets behind.
    crate::dotenv::parse_example(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|e| {
        Error::usage(
            format!("--example {}: {e}", example.display()),
            "fix the .env.example: KEY=value lines, comments starting with '#'",
        )
    })?;
    let existing = crate::fsx::read_text_nofollow(out, crate::fsx::MAX_INPUT).map_err(|e| {
        Error::usage(
            format!("--out {}: {e}", out.display()),
            "write to a new file, or to a regular file that is not a link",
        )
    })?;
    // With a config, derive database/redis values and keep secrets stable; without, generate.
    // A config that exists but does not load is an error, never silently skipped.
    let cfg = match crate::fsx::lstat(&cli.config) {
        Ok(None) => None,
        _ => Some(Config::load(&cli.config)?),
    };
    let interactive = !cli.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let ctx = cfg.map(|c| {
        let mut o = super::context::CtxOptions::new(cli, "env");
        o.quiet = true;
        super::context::build_ctx(c, o)
    });
    let provided = ctx
        .as_ref()
        .map(|c| crate::steps::app_env::extra_values(&c.cfg))
        .unwrap_or_default();
    // Unattended, a required value that is missing is found by a trial render first (stand-ins
    // for keel's passwords, stored secrets read, none created): a refused run stores nothing.
    if !interactive {
        let trial = ctx
            .as_ref()
            .map(|c| crate::steps::app_env::derived_trial(&c.cfg));
        crate::steps::app_env::build_with(
            &text,
            &example.display().to_string(),
            existing.as_deref(),
            (&provided, &trial.unwrap_or_default()),
            ctx.as_ref().map(|c| &c.secrets),
            crate::steps::app_env::SecretUse::Trial,
            false,
        )
        .map_err(|e| Error::usage(e.msg, e.hint))?;
    }
    let derived = match &ctx {
        Some(c) => crate::steps::app_env::derived(&c.cfg, Some(&c.secrets))
            .map_err(|e| Error::usage(e.msg, e.hint))?,
        None => Default::default(),
    };
    let r = crate::steps::app_env::build(
        &text,
        &example.display().to_string(),
        existing.as_deref(),
        &provided,
        &derived,
        ctx.as_ref().map(|c| &c.secrets),
        interactive,
    )
    .map_err(|e| Error::usage(e.msg, e.hint))?;
    crate::txn::write_atomic(out, r.text.as_bytes(), 0o600, None).map_err(|e| Error::io(out, e))?;
    if cli.output == Output::Json {
        println!("{}", json!({"out": out, "generated": r.generated}));
    } else {
        println!(
            "wrote {} (0600); generated: {}",
            out.display(),
            if r.generated.is_empty() {
                "none".into()
            } else {
                r.generated.join(", ")
            }
        );
    }
    Ok(())
}
