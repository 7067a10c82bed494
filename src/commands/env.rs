//! `keel env --example FILE --out FILE`: render a .env as the app-env step does.
use super::context::Invocation;
use crate::cli::Output;
use crate::config::Config;
use crate::error::{Error, Result};
use serde_json::json;

/// `keel env --example FILE --out FILE`.
pub fn run(inv: &Invocation, example: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let cli = &inv.cli;
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
        _ => Some(inv.config()?),
    };
    let interactive = inv.interactive();
    let ctx = cfg.map(|c| {
        let mut o = super::context::CtxOptions::new(inv, "env");
        o.quiet = true;
        super::context::build_ctx(c, o)
    });
    let provided = ctx
        .as_ref()
        .map(|c| crate::app::env::extra_values(&c.cfg))
        .unwrap_or_default();
    // Unattended, a required value that is missing is found by a trial render first (stand-ins
    // for keel's passwords, stored secrets read, none created): a refused run stores nothing.
    if !interactive {
        let trial = ctx.as_ref().map(|c| crate::app::env::derived_trial(&c.cfg));
        crate::app::env::build_with(
            &text,
            &example.display().to_string(),
            existing.as_deref(),
            (&provided, &trial.unwrap_or_default()),
            ctx.as_ref().map(|c| &c.secrets),
            crate::app::env::SecretUse::Trial,
            false,
        )
        .map_err(|e| Error::usage(e.msg, e.hint))?;
    }
    let derived = match &ctx {
        Some(c) => crate::app::env::derived(&c.cfg, Some(&c.secrets))
            .map_err(|e| Error::usage(e.msg, e.hint))?,
        None => Default::default(),
    };
    let r = crate::app::env::build(
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

/// `keel env set|unset|list`.
pub fn action(inv: &Invocation, a: &crate::cli::EnvAction) -> Result<()> {
    let _cli = &inv.cli;
    use crate::cli::EnvAction;
    let cfg = inv.config()?;
    let paths = crate::paths::Paths::from_env();
    let app = cfg.app.name.clone();
    let before = crate::envset::read(&paths, &app);
    let mut after = before.clone();
    match a {
        EnvAction::List => return list(inv, cfg, &before),
        EnvAction::Set { pairs } => {
            let mut from_stdin = false;
            for p in pairs {
                let (k, v) = p.split_once('=').ok_or_else(|| {
                    Error::usage(
                        format!("keel env set {p}: not KEY=VALUE"),
                        "give KEY=VALUE, or KEY=- to read the value from stdin",
                    )
                })?;
                crate::envset::check_key(k).map_err(|e| {
                    Error::usage(format!("keel env set: {e}"), "use a name such as API_TOKEN")
                })?;
                let v = if v == "-" {
                    if from_stdin {
                        return Err(Error::usage(
                            "keel env set: only one value can come from stdin",
                            "set the others separately",
                        ));
                    }
                    from_stdin = true;
                    super::context::read_stdin_value(
                        "keel env set",
                        65_537,
                        "pipe the value in as UTF-8 text",
                    )?
                } else {
                    v.to_string()
                };
                crate::envset::check_value(k, &v).map_err(|e| {
                    Error::usage(format!("keel env set: {e}"), "one line per value")
                })?;
                after.insert(k.to_string(), v);
            }
        }
        EnvAction::Unset { keys } => {
            for k in keys {
                if after.remove(k).is_none() {
                    return Err(Error::usage(
                        format!("keel env unset {k}: not set with keel env set"),
                        "keel env list shows where each value comes from (keel.toml's [env] is edited in keel.toml)",
                    ));
                }
            }
        }
    }
    installed(inv)?;
    if after == before {
        println!("keel: nothing to change");
        return Ok(());
    }
    crate::envset::write(&paths, &app, &after)
        .map_err(|e| Error::io(crate::envset::path(&paths, &app), e))?;
    // The .env is written again and the units restart (Gunicorn while systemd holds its
    // socket: no request is refused); a failure puts everything back.
    if let Err(e) = super::install::run_targets(
        inv,
        &[crate::steps::SERVICES],
        crate::cli::RollbackMode::Run,
    ) {
        let _ = crate::envset::write(&paths, &app, &before);
        return Err(e);
    }
    let changed: Vec<&String> = after
        .keys()
        .chain(before.keys())
        .filter(|k| after.get(*k) != before.get(*k))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!(
        "keel: {} changed; the app restarted with it",
        changed
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The app must be installed: the values go into its .env through the install's steps.
fn installed(inv: &Invocation) -> Result<()> {
    let _cli = &inv.cli;
    super::install::require_completed(
        inv,
        crate::steps::SERVICES,
        "keel env set/unset: the app is not installed on this host",
        "install first (keel install), or put the value in keel.toml's [env]",
    )
}

/// The live .env, each value masked when it is a secret, with where it comes from.
fn list(
    inv: &Invocation,
    cfg: Config,
    set: &std::collections::BTreeMap<String, String>,
) -> Result<()> {
    let cli = &inv.cli;
    let mut o = super::context::CtxOptions::new(inv, "env");
    o.quiet = true;
    let ctx = super::context::build_ctx(cfg, o);
    let path = ctx.host(&ctx.cfg.env_file().display().to_string());
    let text = crate::fsx::read_text_nofollow(&path, crate::fsx::MAX_INPUT)
        .map_err(|e| Error::io(&path, e))?
        .ok_or_else(|| {
            Error::usage(
                format!("{}: no .env yet", ctx.paths.unhost(&path).display()),
                "install the app first: keel install",
            )
        })?;
    let values = crate::dotenv::values(&text);
    let derived = crate::app::env::derived_keys(&ctx.cfg);
    let rows: Vec<(String, String, &str)> = values
        .iter()
        .map(|(k, v)| {
            let source = if set.contains_key(k) {
                "keel env set"
            } else if ctx.cfg.env.contains_key(k) {
                "keel.toml [env]"
            } else if derived.contains(k) {
                "keel"
            } else {
                "the app's example"
            };
            let shown = if crate::redact::secret_key(k) {
                "****".to_string()
            } else {
                ctx.exec.redactor.redact(v)
            };
            (k.clone(), shown, source)
        })
        .collect();
    if cli.output == Output::Json {
        let v: Vec<_> = rows
            .iter()
            .map(|(k, v, s)| json!({"key": k, "value": v, "source": s}))
            .collect();
        println!("{}", json!({"env": v}));
    } else {
        for (k, v, s) in &rows {
            println!("{k}={v}    # {s}");
        }
    }
    Ok(())
}
