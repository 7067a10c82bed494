//! `keel status` (each step's record) and `keel status --wait` (block until the run ends,
//! like `cloud-init status --wait`).
use super::context::Invocation;
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::state::{RunLock, RunOutcome, Status};
use crate::{engine, resume, state, steps};
use serde_json::json;
use std::time::{Duration, Instant};

/// Exit 0 when the run completed, 1 otherwise.
pub fn wait(inv: &Invocation, timeout: Option<u64>) -> Result<()> {
    let _cli = &inv.cli;
    match wait_code(inv, timeout)? {
        0 => Ok(()),
        _ => Err(Error::Unhealthy(
            "the last keel run did not complete".into(),
        )),
    }
}

/// `keel status --wait`: like `cloud-init status --wait`. Returns the exit code.
fn wait_code(inv: &Invocation, timeout: Option<u64>) -> Result<i32> {
    let cli = &inv.cli;
    let start = Instant::now();
    let deadline = timeout.map(Duration::from_secs);
    let mut said = false;
    let mut said_resume = false;
    let paths = crate::paths::Paths::from_env().for_app(cli.app.as_deref());
    let exec = super::context::runner(&paths, Default::default(), Duration::from_secs(10));
    loop {
        let running = RunLock::is_held(&cli.state_file);
        // A missing state file means keel has not started yet (cloud-init ordering): wait.
        if !running && cli.state_file.exists() {
            let st = super::context::load_state(&cli.state_file)?;
            if let Some(run) = &st.last_run {
                let finished = run.outcome != RunOutcome::Running;
                let failed: Vec<(&String, &crate::state::StepRecord)> = st
                    .steps
                    .iter()
                    .filter(|(_, r)| r.status != Status::Completed)
                    .collect();
                // A reboot cut the run and keel-resume.service is yet to take it over: wait.
                let resuming = !finished && crate::resume::pending(&paths, &exec, run);
                if resuming && !said_resume {
                    eprintln!(
                        "{} keel: waiting for {} to resume run {} (a reboot cut it)",
                        crate::paths::now(),
                        crate::resume::unit(&paths),
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
                crate::paths::now(),
                if running {
                    "the running keel to finish"
                } else {
                    "keel to start"
                }
            );
            said = true;
        }
        #[allow(clippy::disallowed_methods)] // --wait polls in real time, by definition
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let graph = steps::graph();
    let st = super::context::load_state(&cli.state_file)?;
    let running = RunLock::is_held(&cli.state_file);
    if cli.output == Output::Json {
        let steps: Vec<_> = graph
            .ids()
            .into_iter()
            .map(|id| {
                let r = st.step(id);
                json!({"id": id, "status": r.status, "attempts": r.attempts, "started_at": r.started_at, "finished_at": r.finished_at, "duration_ms": r.duration_ms, "last_error": r.last_error})
            })
            .collect();
        println!(
            "{}",
            json!({"state_file": cli.state_file, "run_in_progress": running, "last_run": st.last_run, "steps": steps})
        );
        return Ok(());
    }
    if let Some(r) = &st.last_run {
        println!(
            "last run {} ({:?}) started {}{}",
            r.id,
            r.outcome,
            r.started_at,
            if running { ", still running" } else { "" }
        );
        if !running && r.outcome == state::RunOutcome::Running {
            println!(
                "  it was cut short (killed or rebooted): `keel install --resume` continues it \
                 (at boot, {} does)",
                resume::unit(&crate::paths::Paths::from_env().for_app(cli.app.as_deref()))
            );
        }
    } else {
        println!(
            "keel has not run yet (state file {})",
            cli.state_file.display()
        );
    }
    println!(
        "{:<15} {:<12} {:>8} {:>9}  {:<21} LAST ERROR",
        "STEP", "STATUS", "ATTEMPTS", "DURATION", "FINISHED"
    );
    for id in graph.ids() {
        let r = st.step(id);
        let dur = r
            .duration_ms
            .map(|d| engine::human(Duration::from_millis(d)))
            .unwrap_or_else(|| "-".into());
        let err = r
            .last_error
            .as_ref()
            .map(|e| {
                if e.hint.is_empty() {
                    e.message.clone()
                } else {
                    format!("{} (hint: {})", e.message, e.hint)
                }
            })
            .unwrap_or_default();
        println!(
            "{:<15} {:<12} {:>8} {:>9}  {:<21} {}",
            id,
            r.status.as_str(),
            r.attempts,
            dur,
            r.finished_at.as_deref().unwrap_or("-"),
            err
        );
    }
    Ok(())
}
