//! Runs the selected steps: in dependency order, independent ones side by side, each with
//! retry/backoff and its own transaction; on failure, rollback as asked. Every transition is
//! saved to the state file at once, so a kill at any moment leaves a resumable record.
use crate::error::{Error, Result};
use crate::graph::{Graph, Reason};
use crate::retry::Kind;
use crate::state::{ErrorRecord, RunOutcome, RunRecord, State, Status};
use crate::step::{Ctx, Step, StepError};
use crate::txn::Txn;
use serde_json::json;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackMode {
    /// Undo the failed step and every step completed in this run (data kept).
    Run,
    /// Undo only the failed step's own changes.
    Step,
    /// Leave everything as it is (for debugging).
    None,
}

pub struct InstallOpts {
    pub targets: Vec<String>,
    pub retry: Vec<String>,
    pub skip: Vec<String>,
    pub rollback: RollbackMode,
    pub command: String,
}

/// At most this many steps at once; apt steps are serialised further by `Ctx::apt`.
const PARALLEL: usize = 3;

pub struct RunReport {
    pub run_id: String,
    pub outcome: RunOutcome,
    pub plan: Vec<(&'static str, Reason)>,
    pub failed: Option<(String, StepError)>,
    pub rolled_back: Vec<String>,
    /// The end-to-end checks the verify step measured in this run (none if it did not run).
    pub checks: Vec<crate::checks::CheckResult>,
}

impl RunReport {
    pub fn to_json(&self, state: &State) -> serde_json::Value {
        json!({
            "run_id": self.run_id,
            "outcome": self.outcome,
            "failed_step": self.failed.as_ref().map(|f| &f.0),
            "error": self.failed.as_ref().map(|f| json!({"message": f.1.msg, "hint": f.1.hint})),
            "rolled_back": self.rolled_back,
            "steps": self.plan.iter().map(|(id, r)| {
                let rec = state.step(id);
                json!({"id": id, "reason": r.describe(), "status": rec.status, "duration_ms": rec.duration_ms})
            }).collect::<Vec<_>>(),
        })
    }
}

pub fn fingerprint(ctx: &Ctx, step: &dyn Step) -> String {
    crate::step::hash(&[step.id(), &step.inputs(ctx).hash()])
}

enum Msg {
    Done {
        id: &'static str,
        attempts: u32,
        elapsed: Duration,
        result: std::result::Result<(), StepError>,
        produced: Vec<crate::txn::Produced>,
    },
}

pub fn install(
    ctx: &Ctx,
    graph: &Graph,
    state: &mut State,
    state_path: &Path,
    opts: &InstallOpts,
    run_id: &str,
) -> Result<RunReport> {
    let fp = |s: &dyn Step| fingerprint(ctx, s);
    let drift = crate::drift::scan(ctx, state, &graph.all(), &fp);
    let plan = graph.plan(
        state,
        &opts.targets,
        &opts.retry,
        &opts.skip,
        &crate::graph::Judge {
            fingerprints: &fp,
            drifted: &|id| drift.contains_key(id),
            unneeded: &|s| s.not_for(&ctx.cfg).is_some(),
        },
    )?;
    let to_run: Vec<&'static str> = plan
        .iter()
        .filter(|(_, r)| r.runs())
        .map(|(id, _)| *id)
        .collect();
    start_run(ctx, state, state_path, opts, run_id, &to_run)?;
    for (id, r) in &plan {
        before_step(ctx, graph, state, id, r, drift.get(*id), run_id);
    }

    ctx.ui.start_overall("install", to_run.len() as u64);
    let known: Vec<String> = state.releases.list.iter().map(|r| r.id.clone()).collect();
    let (done_ok, failed, checks) = schedule(ctx, graph, state, state_path, &to_run, opts, run_id)?;
    if let Some((step, e)) = &failed {
        mark_failed_releases(ctx, state, &known, step, &e.msg);
    }
    // What the run left, once every step is done: a later step may rewrite an earlier one's
    // file (tls switches nginx's site to HTTPS).
    if failed.is_none() {
        for id in &done_ok {
            record_marks(ctx, graph, state, id);
        }
    }
    let mut rolled_back = vec![];
    if failed.is_some() && opts.rollback == RollbackMode::Run && !done_ok.is_empty() {
        ctx.ui.line(&format!(
            "rolling back the {} step(s) completed in this run (data is kept)",
            done_ok.len()
        ));
        ctx.ui.start_overall("rollback", done_ok.len() as u64);
        for id in done_ok.iter().rev() {
            undo_step(ctx, graph.get(id).expect("step"), state, state_path, run_id)?;
            rolled_back.push(id.to_string());
        }
    }

    tidy_releases(ctx, state);
    let outcome = if failed.is_some() {
        RunOutcome::Failed
    } else {
        RunOutcome::Succeeded
    };
    finish_run(state, outcome, failed.as_ref().map(|f| f.0.clone()));
    state.save(state_path)?;
    ctx.events.emit("run-finished", None, json!({"outcome": outcome, "failed_step": failed.as_ref().map(|f| &f.0), "rolled_back": rolled_back}));
    Ok(RunReport {
        run_id: run_id.into(),
        outcome,
        plan,
        failed,
        rolled_back,
        checks,
    })
}

/// The run's record, saved before any step runs (a kill from here on is a cut run).
fn start_run(
    ctx: &Ctx,
    state: &mut State,
    state_path: &Path,
    opts: &InstallOpts,
    run_id: &str,
    to_run: &[&str],
) -> Result<()> {
    state.last_run = Some(RunRecord {
        id: run_id.into(),
        command: opts.command.clone(),
        pid: std::process::id(),
        started_at: crate::paths::now(),
        finished_at: None,
        outcome: RunOutcome::Running,
        failed_step: None,
        targets: opts.targets.clone(),
        skip: opts.skip.clone(),
        boot_id: crate::resume::boot_id(&ctx.paths),
    });
    state.keel_version = env!("CARGO_PKG_VERSION").into();
    state.save(state_path)?;
    ctx.events.emit(
        "run-started",
        None,
        json!({"command": opts.command, "steps": to_run}),
    );
    Ok(())
}

/// Before the run, per planned step: why it does not run, the hand-edited files a drifted
/// one will overwrite (copied aside first), and marks for one completed before keel
/// recorded them (an upgraded host).
fn before_step(
    ctx: &Ctx,
    graph: &Graph,
    state: &mut State,
    id: &str,
    r: &Reason,
    drift: Option<&Vec<crate::drift::Finding>>,
    run_id: &str,
) {
    if !r.runs() {
        ctx.ui
            .line(&format!("[{id}] {}", r.explain(graph.get(id), &ctx.cfg)));
    }
    if *r == Reason::Drifted
        && let Some(found) = drift
    {
        let saved = crate::drift::backup(ctx, run_id, found);
        for f in found {
            let b = saved
                .iter()
                .find(|(src, _)| Some(src) == f.file.as_ref())
                .map(|(_, dst)| format!("; backup: {}", dst.display()))
                .unwrap_or_default();
            ctx.ui.line(&format!("[{id}] drifted: {}{b}", f.what));
        }
        ctx.events.emit(
            "step-drifted",
            Some(id),
            json!({"findings": found.iter().map(|f| &f.what).collect::<Vec<_>>(), "backups": saved}),
        );
    }
    if *r == Reason::Completed {
        let rec = state.step(id);
        if rec.files.is_empty() && rec.units.is_empty() {
            record_marks(ctx, graph, state, id);
        }
    }
}

/// What a completed step left (files and units), for the next run's drift scan.
fn record_marks(ctx: &Ctx, graph: &Graph, state: &mut State, id: &str) {
    let (files, units) = crate::drift::marks(ctx, graph.get(id).expect("step"));
    let rec = state.step_mut(id);
    rec.files = files;
    rec.units = units;
}

/// The run's record: finished now, its outcome and the step that failed.
fn finish_run(state: &mut State, outcome: RunOutcome, failed_step: Option<String>) {
    if let Some(r) = state.last_run.as_mut() {
        r.finished_at = Some(crate::paths::now());
        r.outcome = outcome;
        r.failed_step = failed_step;
    }
}

/// A release this run made (not in `known`), in a run that failed, is a failed release
/// (kept for inspection, never offered by `deploy --rollback`), whatever step failed after.
fn mark_failed_releases(ctx: &Ctx, state: &mut State, known: &[String], step: &str, msg: &str) {
    for r in state
        .releases
        .list
        .iter_mut()
        .filter(|r| !known.contains(&r.id))
    {
        r.status = crate::state::ReleaseStatus::Failed;
        r.error = Some(format!(
            "the install failed at step {step}: {}",
            ctx.exec.redactor.redact(msg)
        ));
    }
}

/// The state's releases as the disk has them, old ones pruned (deploy.keep_releases).
fn tidy_releases(ctx: &Ctx, state: &mut State) {
    let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
    let keep = ctx.cfg.deploy.keep_releases as usize;
    for id in crate::release::tidy(&base, &mut state.releases, keep) {
        ctx.ui
            .line(&format!("removed release {id} (deploy.keep_releases)"));
    }
}

/// The steps completed in a run (in completion order) and its first failure.
type Scheduled = (
    Vec<&'static str>,
    Option<(String, StepError)>,
    Vec<crate::checks::CheckResult>,
);

/// Run the planned steps, independent ones side by side (at most PARALLEL), each once all its
/// planned ancestors completed; stop starting new ones after a failure. Returns the steps
/// completed in this run, in completion order, and the first failure.
fn schedule(
    ctx: &Ctx,
    graph: &Graph,
    state: &mut State,
    state_path: &Path,
    to_run: &[&'static str],
    opts: &InstallOpts,
    run_id: &str,
) -> Result<Scheduled> {
    let mut pending: Vec<&'static str> = to_run.to_vec();
    let mut done_ok: Vec<&'static str> = vec![];
    let mut failed: Option<(String, StepError)> = None;
    let mut checks = vec![];
    let in_plan: HashSet<&str> = to_run.iter().copied().collect();
    // What each step must wait for: its planned ancestors, not just its direct deps (a
    // skipped step in between, say python-env, must not let django start beside app-code).
    // Computed once here, not on every scheduling pass.
    let waits_for: HashMap<&str, Vec<&str>> = to_run
        .iter()
        .map(|&id| {
            let a = graph.ancestors(&[id]);
            (id, a.into_iter().filter(|d| in_plan.contains(d)).collect())
        })
        .collect();

    std::thread::scope(|sc| -> Result<()> {
        let (tx, rx) = mpsc::channel::<Msg>();
        let mut running = 0usize;
        loop {
            if failed.is_none() {
                let mut i = 0;
                while i < pending.len() && running < PARALLEL {
                    let id = pending[i];
                    let step = graph.get(id).expect("planned step exists");
                    let ready = waits_for[id].iter().all(|d| done_ok.contains(d));
                    if !ready {
                        i += 1;
                        continue;
                    }
                    pending.remove(i);
                    let rec = state.step_mut(id);
                    rec.status = Status::Running;
                    rec.started_at = Some(crate::paths::now());
                    rec.finished_at = None;
                    rec.run_id = Some(run_id.into());
                    state.save(state_path)?;
                    ctx.events.emit("step-started", Some(id), json!({}));
                    ctx.ui.step_started(id, step.about());
                    let tx = tx.clone();
                    let rollback = opts.rollback;
                    running += 1;
                    sc.spawn(move || {
                        let t = Instant::now();
                        // A panicking step is a failed step (recorded, rolled back, exit 1),
                        // never a scheduler waiting forever for a message that never comes.
                        // Its transaction, dropped uncommitted while unwinding, undoes itself.
                        let (attempts, result, produced) =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                run_step(ctx, step, rollback)
                            }))
                            .unwrap_or_else(|p| (1, Err(panicked(p)), vec![]));
                        let _ = tx.send(Msg::Done {
                            id,
                            attempts,
                            elapsed: t.elapsed(),
                            result,
                            produced,
                        });
                    });
                }
            }
            if running == 0 {
                break;
            }
            let Ok(Msg::Done {
                id,
                attempts,
                elapsed,
                result,
                produced,
            }) = rx.recv()
            else {
                break;
            };
            running -= 1;
            if record(
                ctx,
                graph,
                state,
                id,
                attempts,
                elapsed,
                (result, produced),
                (&mut failed, &mut checks),
            ) {
                done_ok.push(id);
            }
            state.save(state_path)?;
        }
        Ok(())
    })?;

    Ok((done_ok, failed, checks))
}

/// Record a finished step in the state (and events, and on screen); true if it completed.
#[allow(clippy::too_many_arguments)]
fn record(
    ctx: &Ctx,
    graph: &Graph,
    state: &mut State,
    id: &'static str,
    attempts: u32,
    elapsed: Duration,
    (result, produced): (
        std::result::Result<(), StepError>,
        Vec<crate::txn::Produced>,
    ),
    (failed, checks): (
        &mut Option<(String, StepError)>,
        &mut Vec<crate::checks::CheckResult>,
    ),
) -> bool {
    // The checks a step measured are the run's, passed or failed (the report shows which
    // failed); a release counts only once its step completed.
    let mut made = None;
    for p in produced {
        match p {
            crate::txn::Produced::Checks(c) => *checks = c,
            crate::txn::Produced::Release(r) => made = Some(r),
        }
    }
    let ms = elapsed.as_millis() as u64;
    let rec = state.step_mut(id);
    rec.attempts += attempts;
    rec.finished_at = Some(crate::paths::now());
    rec.duration_ms = Some(ms);
    match result {
        Ok(()) => {
            rec.status = Status::Completed;
            let step = graph.get(id).expect("step");
            rec.fingerprint = Some(fingerprint(ctx, step));
            rec.last_error = None;
            if let Some(r) = made {
                state.releases.current = Some(r.id.clone());
                state.releases.list.push(r);
            }
            ctx.events.emit(
                "step-finished",
                Some(id),
                json!({"duration_ms": ms, "attempts": attempts}),
            );
            ctx.ui
                .step_done(id, true, &format!("done in {}", human(elapsed)));
            true
        }
        Err(e) => {
            rec.status = Status::Failed;
            rec.last_error = Some(ErrorRecord {
                message: ctx.exec.redactor.redact(&e.msg),
                hint: ctx.exec.redactor.redact(&e.hint),
            });
            ctx.events.emit(
                "step-failed",
                Some(id),
                json!({"duration_ms": ms, "attempts": attempts, "error": e.msg, "hint": e.hint}),
            );
            ctx.ui.step_done(
                id,
                false,
                &format!("failed after {}: {}", human(elapsed), e.msg),
            );
            if failed.is_none() {
                *failed = Some((id.to_string(), e));
            }
            false
        }
    }
}

fn panicked(p: Box<dyn std::any::Any + Send>) -> StepError {
    let what = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "unknown cause".into());
    StepError::permanent(
        format!("the step panicked (a bug in keel): {what}"),
        "its changes were undone; please report it with the diagnostics report",
    )
}

/// One step: run (retried while transient), then verify (retried likewise); on failure the
/// step's own transaction is undone unless rollback is off.
fn run_step(
    ctx: &Ctx,
    step: &dyn Step,
    rollback: RollbackMode,
) -> (
    u32,
    std::result::Result<(), StepError>,
    Vec<crate::txn::Produced>,
) {
    let id = step.id();
    let mut tx = Txn::new(&ctx.exec, id).keep(crate::drift::kept_paths(ctx));
    let mut attempts = 0u32;
    let _apt = step
        .uses_apt()
        .then(|| ctx.apt.lock().unwrap_or_else(|p| p.into_inner()));
    let notify = |e: &StepError, d: Duration| {
        ctx.events.emit(
            "step-retried",
            Some(id),
            json!({"error": e.msg, "delay_ms": d.as_millis() as u64}),
        );
        ctx.ui.step_note(
            id,
            &format!("transient failure, retrying in {}: {}", human(d), e.msg),
        );
    };
    let transient = |e: &StepError| e.kind == Kind::Transient;
    let result = crate::retry::retry(
        &ctx.cfg.retry,
        || {
            attempts += 1;
            step.run(ctx, &mut tx)
        },
        transient,
        notify,
    )
    .and_then(|()| {
        crate::retry::retry(&ctx.cfg.retry, || step.verify(ctx), transient, notify).map_err(|e| {
            StepError {
                msg: format!("verification failed: {}", e.msg),
                ..e
            }
        })
    });
    let produced = tx.take_produced();
    match result {
        Ok(()) => {
            tx.commit();
            (attempts, Ok(()), produced)
        }
        Err(mut e) => {
            if rollback == RollbackMode::None {
                // Asked to leave everything as it is (debugging): keep the changes.
                tx.commit();
            } else if !tx.is_empty() {
                let errs = tx.rollback();
                ctx.events
                    .emit("step-changes-undone", Some(id), json!({"errors": errs}));
                if !errs.is_empty() {
                    e.msg
                        .push_str(&format!(" (rollback problems: {})", errs.join("; ")));
                }
            }
            (attempts, Err(e), produced)
        }
    }
}

pub fn undo_step(
    ctx: &Ctx,
    step: &dyn Step,
    state: &mut State,
    state_path: &Path,
    run_id: &str,
) -> Result<()> {
    let id = step.id();
    ctx.ui.step_started(id, "rolling back");
    let t = Instant::now();
    let r = crate::systemd::undo_managed(ctx, step);
    let rec = state.step_mut(id);
    rec.run_id = Some(run_id.into());
    match r {
        Ok(()) => {
            rec.status = Status::RolledBack;
            rec.fingerprint = None;
            rec.files.clear();
            rec.units.clear();
            ctx.events.emit(
                "step-rolled-back",
                Some(id),
                json!({"duration_ms": t.elapsed().as_millis() as u64}),
            );
            ctx.ui.step_done(id, true, "rolled back");
        }
        Err(e) => {
            // Keep it marked for a re-run; say what could not be undone.
            rec.status = Status::Failed;
            rec.last_error = Some(ErrorRecord {
                message: format!("rollback failed: {}", e.msg),
                hint: e.hint.clone(),
            });
            ctx.events
                .emit("step-rollback-failed", Some(id), json!({"error": e.msg}));
            ctx.ui
                .step_done(id, false, &format!("rollback failed: {}", e.msg));
        }
    }
    state.save(state_path)
}

/// `keel rollback`: undo every step that did something, in reverse graph order.
pub fn rollback_all(
    ctx: &Ctx,
    graph: &Graph,
    state: &mut State,
    state_path: &Path,
    run_id: &str,
) -> Result<Vec<String>> {
    let touched: BTreeSet<String> = state
        .steps
        .iter()
        .filter(|(_, r)| {
            matches!(
                r.status,
                Status::Completed | Status::Failed | Status::Running
            )
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut done = vec![];
    // The host's shared steps stay while another app still needs them.
    let others = crate::apps::others_installed(&ctx.paths, &ctx.cfg);
    ctx.events.emit("rollback-started", None, json!({}));
    ctx.ui.start_overall("rollback", touched.len() as u64);
    for s in graph.steps.iter().rev() {
        if !touched.contains(s.id()) {
            continue;
        }
        if s.host_wide() && !others.is_empty() {
            let rec = state.step_mut(s.id());
            rec.status = Status::RolledBack;
            rec.fingerprint = None;
            rec.run_id = Some(run_id.into());
            ctx.ui.step_done(
                s.id(),
                true,
                &format!("kept: the host's, still used by {}", others.join(", ")),
            );
            state.save(state_path)?;
            continue;
        }
        undo_step(ctx, s.as_ref(), state, state_path, run_id)?;
        done.push(s.id().to_string());
    }
    ctx.events
        .emit("rollback-finished", None, json!({"steps": done}));
    Ok(done)
}

pub fn human(d: Duration) -> String {
    if d.as_secs() >= 60 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub fn step_failed_error(graph: &Graph, report: &RunReport) -> Option<Error> {
    report.failed.as_ref().map(|(id, e)| {
        if graph.get(id).is_some_and(|s| s.checks_the_host()) {
            Error::Preflight {
                failed: e.msg.clone(),
            }
        } else {
            Error::StepFailed {
                step: id.clone(),
                msg: e.msg.clone(),
                hint: e.hint.clone(),
            }
        }
    })
}
