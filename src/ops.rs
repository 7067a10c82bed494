//! Operating commands: `status --wait`, `env`, `init`.
use crate::cli::{Cli, Output};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::state::{RunLock, RunOutcome, State, Status};
use serde_json::json;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// `keel status --wait`: like `cloud-init status --wait`. Returns the exit code.
pub fn status_wait(cli: &Cli, timeout: Option<u64>) -> Result<i32> {
    let start = Instant::now();
    let deadline = timeout.map(Duration::from_secs);
    let mut said = false;
    let mut said_resume = false;
    let paths = crate::Paths::from_env();
    loop {
        let running = RunLock::is_held(&cli.state_file);
        // A missing state file means keel has not started yet (cloud-init ordering): wait.
        if !running && cli.state_file.exists() {
            let st = State::load(&cli.state_file)?;
            if let Some(run) = &st.last_run {
                let finished = run.outcome != RunOutcome::Running;
                let failed: Vec<(&String, &crate::state::StepRecord)> = st
                    .steps
                    .iter()
                    .filter(|(_, r)| r.status != Status::Completed)
                    .collect();
                // A reboot cut the run and keel-resume.service is yet to take it over: wait.
                let resuming = !finished && crate::resume::pending(&paths, run);
                if resuming && !said_resume {
                    eprintln!(
                        "{} keel: waiting for {} to resume run {} (a reboot cut it)",
                        crate::now(),
                        crate::resume::UNIT,
                        run.id
                    );
                    said_resume = true;
                    said = true;
                }
                if !resuming && (finished || !RunLock::is_held(&cli.state_file)) {
                    let ok = run.outcome == RunOutcome::Succeeded
                        && failed.iter().all(|(_, r)| r.status == Status::Pending);
                    let interrupted = run.outcome == RunOutcome::Running;
                    if cli.output == Output::Json {
                        println!(
                            "{}",
                            json!({"status": if ok { "done" } else { "error" }, "interrupted": interrupted, "last_run": run, "failed_step": run.failed_step, "steps": st.steps})
                        );
                    } else if ok {
                        println!("status: done (run {} succeeded)", run.id);
                    } else if interrupted {
                        println!(
                            "status: error: run {} (pid {}) stopped without finishing (killed or rebooted)",
                            run.id, run.pid
                        );
                        println!(
                            "  hint: run `keel install --resume` (or the same keel install again): it resumes where it stopped"
                        );
                    } else {
                        println!("status: error");
                        if let Some(step) = &run.failed_step {
                            let rec = st.step(step);
                            let (msg, hint) = rec
                                .last_error
                                .map(|e| (e.message, e.hint))
                                .unwrap_or_default();
                            println!("  failed step: {step}: {msg}");
                            if !hint.is_empty() {
                                println!("  hint: {hint}");
                            }
                        }
                    }
                    return Ok(if ok { 0 } else { 1 });
                }
            }
        }
        if let Some(d) = deadline
            && start.elapsed() >= d
        {
            eprintln!("keel: status --wait: timed out after {}s", d.as_secs());
            if cli.output == Output::Json {
                println!("{}", json!({"status": "timeout"}));
            }
            return Ok(1);
        }
        if !said {
            eprintln!(
                "{} keel: waiting for {}",
                crate::now(),
                if running {
                    "the running keel to finish"
                } else {
                    "keel to start"
                }
            );
            said = true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `keel env --example FILE --out FILE`.
pub fn env(cli: &Cli, example: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let text = crate::fsx::read_regular(example, crate::fsx::MAX_INPUT)
        .and_then(|b| String::from_utf8(b).map_err(|_| std::io::Error::other("not UTF-8 text")))
        .map_err(|e| {
            Error::usage(
                format!("--example {}: {e}", example.display()),
                "point --example at the app's .env.example (a regular UTF-8 file of at most 1 MiB)",
            )
        })?;
    // Parsed before anything is derived: a bad example must not leave new secrets behind.
    crate::dotenv::parse(text.strip_prefix('\u{feff}').unwrap_or(&text)).map_err(|e| {
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
    let cfg = Config::load(&cli.config).ok();
    let ctx = cfg.map(|c| crate::build_ctx(c, true, vec![], "env"));
    let derived = match &ctx {
        Some(c) => crate::steps::app_env::derived(&c.cfg, Some(&c.secrets))
            .map_err(|e| Error::usage(e.msg, e.hint))?,
        None => Default::default(),
    };
    let provided = ctx.as_ref().map(|c| c.cfg.env.clone()).unwrap_or_default();
    let interactive = !cli.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
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

/// `keel init`: a wizard that writes keel.toml.
pub fn init(cli: &Cli) -> Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::usage(
            "keel init needs a terminal",
            "write keel.toml yourself (see examples/demo.toml) for unattended use",
        ));
    }
    use dialoguer::{Confirm, Input};
    let io = |e: dialoguer::Error| Error::Other(e.into());
    let path = &cli.config;
    if path.exists()
        && !Confirm::new()
            .with_prompt(format!("{} exists. Overwrite?", path.display()))
            .default(false)
            .interact()
            .map_err(io)?
    {
        return Err(Error::usage(
            "not overwritten",
            "pass --config FILE to write elsewhere",
        ));
    }
    let name: String = Input::new()
        .with_prompt("App name (lowercase, used for units and paths)")
        .default("demo".into())
        .interact_text()
        .map_err(io)?;
    let domain: String = Input::new()
        .with_prompt("Domain")
        .default(format!("{name}.example.com"))
        .interact_text()
        .map_err(io)?;
    let source: String = Input::new()
        .with_prompt("App source: a directory (relative to the config) or a git URL")
        .default(format!("{name}-app"))
        .interact_text()
        .map_err(io)?;
    let email: String = Input::new()
        .with_prompt("Admin e-mail")
        .default(format!("admin@{domain}"))
        .interact_text()
        .map_err(io)?;
    let git = ["https://", "ssh://", "git@", "file://"]
        .iter()
        .any(|p| source.starts_with(p));
    let src_line = if git {
        format!("git = {source:?}\ngit_ref = \"main\"")
    } else {
        format!("source = {source:?}")
    };
    // git sources need git on the host.
    let packages = if git {
        "[\"postgresql\", \"redis-server\", \"nginx\", \"git\"]"
    } else {
        "[\"postgresql\", \"redis-server\", \"nginx\"]"
    };
    let text = format!(
        "# Written by keel init. See examples/demo.toml for every key.\n[app]\nname = {name:?}\ndomain = {domain:?}\n\n[packages]\ninstall = {packages}\n\n[django]\n{src_line}\nadmin_email = {email:?}\n"
    );
    // Validate before writing: the wizard must never produce a config keel refuses.
    Config::parse(&text, path)?;
    if let Some(d) = path.parent() {
        fs_err::create_dir_all(d)?;
    }
    crate::txn::write_atomic(path, text.as_bytes(), 0o644, None).map_err(|e| Error::io(path, e))?;
    println!(
        "wrote {}; next: keel install --config {}",
        path.display(),
        path.display()
    );
    Ok(())
}
