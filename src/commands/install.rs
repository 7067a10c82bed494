//! `keel install [STEP...]`: validate everything, take the lock, run the planned steps, write
//! the diagnostics report, say what happened.
use super::context::{CtxOptions, Invocation, build_ctx, reap_leftovers};
use crate::cli::{Cli, Command, Output};
use crate::config::Config;
use crate::engine::{InstallOpts, RunReport};
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::state::{RunLock, State, Status};
use crate::step::Ctx;
use crate::{engine, resume, steps};

/// Each [[schedule]]'s calendar as systemd reads it (`systemd-analyze calendar`), before the
/// first write: keel's own check at load only keeps odd characters out.
fn check_calendars(cfg: &Config) -> Result<()> {
    if cfg.schedules.is_empty() {
        return Ok(());
    }
    let exec = super::context::runner(
        &Paths::from_env(),
        crate::redact::Redactor::default(),
        std::time::Duration::from_secs(10),
    );
    for (i, s) in cfg.schedules.iter().enumerate() {
        let cmd = crate::exec::Cmd::new("systemd-analyze")
            .args(["calendar", &s.on_calendar])
            .timeout(std::time::Duration::from_secs(10));
        match exec.check(&cmd) {
            Some(o) if o.code == 0 => {}
            Some(o) => {
                return Err(Error::Config {
                    file: cfg.source.clone(),
                    key: format!("schedule[{i}].on_calendar"),
                    msg: format!("systemd cannot read {:?}: {}", s.on_calendar, o.stderr.trim()),
                    hint: "an OnCalendar expression: \"daily\", \"*-*-* 03:00\", \"*:0/15\", \"Mon..Fri 08:00\" (try it with systemd-analyze calendar)".into(),
                });
            }
            None => {
                return Err(Error::usage(
                    "systemd-analyze could not run to check the [[schedule]] calendars",
                    "keel needs systemd (systemd-analyze) on the host",
                ));
            }
        }
    }
    Ok(())
}

/// Refused (exit 2) unless `step` completed on this host: commands that change what an
/// install set up (`maintenance`, `env set`) never set it up themselves.
pub fn require_completed(inv: &Invocation, step: &str, msg: &str, hint: &str) -> Result<()> {
    let cli = &inv.cli;
    let st = super::context::load_state(&cli.state_file)?;
    if st.step(step).status == Status::Completed {
        return Ok(());
    }
    Err(Error::usage(msg, hint))
}

/// `keel install STEP...` on behalf of another command (`maintenance`, `env set`): quiet,
/// unattended, with the caller's config and state file.
pub fn run_targets(
    inv: &Invocation,
    targets: &[&str],
    rollback: crate::cli::RollbackMode,
) -> Result<()> {
    let cli = &inv.cli;
    let install = Cli {
        config: cli.config.clone(),
        state_file: cli.state_file.clone(),
        app: cli.app.clone(),
        yes: true,
        quiet: true,
        verbose: cli.verbose,
        output: Output::Human,
        command: Command::Install {
            steps: targets.iter().map(|s| s.to_string()).collect(),
            retry_step: vec![],
            skip: vec![],
            dry_run: false,
            ignore_preflight_errors: vec![],
            rollback,
            resume: false,
        },
    };
    run(&inv.with_cli(install))
}

/// The config against this host and the other apps on it, before the first write.
fn check_host(cfg: &Config, ignore_preflight_errors: &[String]) -> Result<()> {
    let paths = Paths::from_env();
    let root = &paths.root;
    crate::checks::preflight::check_ignore_names(cfg, root, ignore_preflight_errors)
        .map_err(|m| Error::usage(m, "name a check from `keel preflight`, or all"))?;
    // Another app's names first: "is app demo's" says more than "exists".
    crate::apps::check_others(&paths, cfg)?;
    cfg.check_users(root)?;
    cfg.check_source()?;
    crate::project::check_tree(cfg)?;
    crate::app::env::check_env_refs(cfg)?;
    crate::project::check_host(cfg, root)?;
    cfg.check_tls_files(root)?;
    cfg.check_fleet_files(root)?;
    cfg.check_backup_host(root)?;
    cfg.check_notify_host(root)?;
    check_calendars(cfg)
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let Command::Install {
        steps: targets,
        retry_step,
        skip,
        dry_run,
        ignore_preflight_errors,
        rollback,
        resume,
    } = &cli.command
    else {
        unreachable!("install::run is called for `install`")
    };
    // Everything is checked before the first write: the config and what it points to, the
    // step names and the state file. A run refused here leaves no lock, unit or secret.
    let cfg = inv.config()?;
    let graph = steps::graph();
    graph.check_selection(targets, retry_step, skip)?;
    if let Some(s) = retry_step.iter().find(|s| skip.contains(s)) {
        return Err(Error::usage(
            format!("--retry-step {s} and --skip {s}: a step cannot be both forced and skipped"),
            "drop one of the two",
        ));
    }
    check_host(&cfg, ignore_preflight_errors)?;
    let checked = super::context::load_state(&cli.state_file)?;
    // The cut run's selection, as --resume will use it, names steps this keel has.
    if *resume && let Some(last) = crate::resume::interrupted(checked.last_run.as_ref()) {
        graph
            .check_selection(&last.targets, &[], &last.skip)
            .map_err(|e| Error::State {
                file: cli.state_file.clone(),
                msg: format!("the interrupted run to resume: {e}"),
                hint: "it was written by another keel version or edited by hand; run keel install without --resume".into(),
            })?;
    }
    let id = crate::paths::run_id();
    let mut o = CtxOptions::new(inv, &id);
    o.quiet = cli.output == Output::Json;
    o.ignore_preflight = ignore_preflight_errors.clone();
    o.interactive = inv.interactive();
    let ctx = build_ctx(cfg, o);
    // A host of several: the database and Redis on other hosts answer, over TLS and with
    // the pre-shared passwords, before anything is written here.
    crate::remote::check_services(&ctx.cfg, &ctx.exec, &ctx.paths.root, &ctx.secrets, &ctx.ui)?;
    let mut opts = InstallOpts {
        targets: targets.clone(),
        retry: retry_step.clone(),
        skip: skip.clone(),
        rollback: match rollback {
            crate::cli::RollbackMode::Run => engine::RollbackMode::Run,
            crate::cli::RollbackMode::Step => engine::RollbackMode::Step,
            crate::cli::RollbackMode::None => engine::RollbackMode::None,
        },
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    if *dry_run {
        return super::plan::print_plan(cli, &ctx, &graph, &checked, &opts);
    }
    let _lock = match RunLock::acquire(&cli.state_file) {
        // Someone else is already running (or resuming) it: nothing for us to do.
        Err(Error::Locked { pid, .. }) if *resume => {
            println!("keel: nothing to resume: keel (pid {pid}) is running");
            return Ok(());
        }
        other => other?,
    };
    // The steps every app shares run for one app at a time; this app's own lock (above)
    // still lets another app deploy meanwhile.
    let _host = RunLock::acquire_waiting(&ctx.paths.host(crate::apps::HOST_LOCK), |pid| {
        ctx.ui.line(&format!(
            "waiting for another app's keel install (pid {pid}) to finish"
        ))
    })?;
    let mut st = super::context::load_state(&cli.state_file)?;
    if *resume && !resume_selection(&ctx, &st, &mut opts) {
        return Ok(());
    }
    if let Err(e) = resume::arm(&ctx.paths, &cli.config, &cli.state_file) {
        ctx.ui.line(&format!(
            "warning: could not set up {} (a reboot during this run will need a manual re-run): {e}",
            resume::unit(&ctx.paths)
        ));
    }
    reap_leftovers(&ctx);
    let report = engine::install(&ctx, &graph, &mut st, &cli.state_file, &opts, &id)?;
    // A report after every run, failed or not; service probes only if something ran.
    let full = report.plan.iter().any(|(_, r)| r.runs());
    let health = crate::report::Health::from_run(&report.checks);
    match crate::report::write_with(&ctx, &st, full, health.as_ref()) {
        Ok((txt, html)) => ctx.ui.line(&format!(
            "diagnostics: {} (and {})",
            txt.display(),
            html.display()
        )),
        Err(e) => ctx
            .ui
            .line(&format!("could not write the diagnostics report: {e}")),
    }
    ctx.ui.finish();
    if cli.output == Output::Json {
        println!("{}", report.to_json(&st));
    } else {
        print_outcome(&ctx, &report);
    }
    match engine::step_failed_error(&graph, &report) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `--resume`: the cut run's targets and skips, or false when there is nothing to resume.
fn resume_selection(ctx: &Ctx, st: &State, opts: &mut InstallOpts) -> bool {
    let Some(last) = resume::interrupted(st.last_run.as_ref()) else {
        println!("keel: nothing to resume: the last run finished");
        return false;
    };
    let cut: Vec<&str> = st
        .steps
        .iter()
        .filter(|(_, r)| r.status == Status::Running)
        .map(|(k, _)| k.as_str())
        .collect();
    ctx.ui.line(&format!(
        "resuming run {} (started {}), cut short during: {}",
        last.id,
        last.started_at,
        if cut.is_empty() {
            "-".to_string()
        } else {
            cut.join(", ")
        }
    ));
    opts.targets = last.targets.clone();
    opts.skip = last.skip.clone();
    true
}

fn print_outcome(ctx: &Ctx, report: &RunReport) {
    let ran = report.plan.iter().filter(|(_, r)| r.runs()).count();
    match &report.failed {
        None => println!(
            "keel: {} step(s) run, {} already done: all good",
            ran,
            report.plan.len() - ran
        ),
        Some((sid, e)) => {
            println!("keel: step {sid} failed: {}", e.msg);
            if !e.hint.is_empty() {
                println!("  hint: {}", e.hint);
            }
            if !report.rolled_back.is_empty() {
                println!(
                    "  rolled back (data kept): {}",
                    report.rolled_back.join(", ")
                );
            }
            println!(
                "  log: {}",
                ctx.paths
                    .log_dir()
                    .join("steps")
                    .join(format!("{sid}.log"))
                    .display()
            );
            println!("  after fixing it: keel install --retry-step {sid}");
        }
    }
}
