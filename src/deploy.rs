//! `keel deploy`: a new release built beside the running one (code, venv, checks,
//! migrations, static files), then one atomic switch of `current`, graceful restarts, and
//! the verify step's checks. When those fail, keel switches back by itself.
use crate::app::as_app_in;
use crate::app::code::Source;
use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::release;
use crate::state::{Release, ReleaseStatus, State};
use crate::step::{Ctx, StepError, StepResult};
use crate::txn::Txn;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const LOG: &str = "deploy";

/// What a deploy or a rollback did, for the summary line and `--output json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub release: String,
    pub previous: Option<String>,
    /// "deployed", "rolled-back" (switched back by itself), "failed" (before the switch),
    /// "switched" (`--rollback`).
    pub result: &'static str,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn base(ctx: &Ctx) -> PathBuf {
    ctx.host(&ctx.cfg.base_dir().display().to_string())
}

fn manage(ctx: &Ctx, release: &Path, args: &[&str]) -> crate::exec::Cmd {
    let py = release.join("venv/bin/python").display().to_string();
    as_app_in(ctx, release, &py)
        .arg("manage.py")
        .args(args.iter().copied())
        .timeout(Duration::from_secs(ctx.cfg.timeouts.command_secs))
}

/// Everything before the switch; any failure leaves `current` as it was.
fn build(ctx: &Ctx, source: &Source, rel: &mut Release) -> StepResult {
    let mut tx = Txn::new(&ctx.exec, LOG);
    let built = crate::app::code::build(ctx, &mut tx, source, &rel.id, "deploy", LOG);
    // A failed release stays for inspection: nothing of it is rolled back.
    tx.commit();
    let b = built?;
    rel.revision = b.revision;
    let dir = ctx.cfg.base_dir().join("releases").join(&rel.id);
    let t = Instant::now();
    let key = crate::app::venv::ensure_venv(ctx, &mut tx, &dir, LOG)?;
    tx.commit();
    ctx.ui.line(&format!(
        "[deploy] venv {key} ready in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let built = crate::app::build::run_build(ctx, &mut tx, &dir, LOG);
    tx.commit();
    built?;
    crate::pg::ensure_extensions(ctx, LOG)?;
    // One Python for the import check, `check`, `migrate` (before the switch, against the
    // live database: see the README on migrations the previous release cannot run
    // against) and collectstatic: each start of Django costs about a second.
    ctx.ui
        .line("[deploy] imports, manage.py check, migrate, collectstatic");
    // The worker's warm shutdown (Celery's pool takes about 2 s to stop even when idle)
    // runs beside the migrations: tasks wait in Redis meanwhile, and none of the old code's
    // runs against a schema being migrated. A failure from here on starts it again.
    stop_worker(ctx);
    // Several app hosts: the first to deploy migrates; the next finds nothing to do.
    let _lock = crate::remote::hold_migrations(ctx, LOG)?;
    ctx.run(
        LOG,
        &manage(ctx, &dir, &["shell", "--no-startup"]).stdin(PRE_SWITCH.to_string()),
    )
    .map_err(|e| {
        let phase = e
            .msg
            .rsplit(" | ")
            .find_map(|l| l.trim().strip_prefix("keel-phase ").map(String::from));
        match phase {
            Some(p) => StepError::permanent(p, "see /var/log/keel/steps/deploy.log"),
            None => StepError::permanent(
                format!("the settings do not load: {}", e.msg),
                "see /var/log/keel/steps/deploy.log",
            ),
        }
    })?;
    crate::app::build::run_release_commands(ctx, &dir, LOG)?;
    Ok(())
}

/// The checks before the switch, in one Python: on a failure its last line names the phase
/// and the exception (`keel-phase PHASE: ...`).
const PRE_SWITCH: &str = r#"import sys, traceback
phase = "the venv lacks Django, Celery or Gunicorn"
try:
    import django, celery, gunicorn
    from django.core.management import call_command
    phase = "manage.py check"
    call_command("check")
    phase = "migrations"
    call_command("migrate", interactive=False)
    phase = "collectstatic"
    call_command("collectstatic", interactive=False, verbosity=0)
except BaseException as e:
    traceback.print_exc()
    why = (str(e).strip().splitlines() or [type(e).__name__])[-1]
    sys.stderr.write("keel-phase %s: %s\n" % (phase, why))
    sys.exit(1)
"#;

fn unit(ctx: &Ctx, process: &str) -> String {
    format!("{}-{process}", ctx.cfg.app.name)
}

/// The units that stop warmly (running tasks finish): the worker and each [[process]].
fn warm_units(ctx: &Ctx) -> Vec<String> {
    // Only this host's roles' units: a web-only host of several has no worker.
    let worker = ctx.cfg.has(crate::config::Role::Worker);
    worker
        .then(|| unit(ctx, "worker"))
        .into_iter()
        .chain(ctx.cfg.process_units())
        .collect()
}

/// Ask the worker (and the [[process]] units) for their warm shutdown and return at once
/// (systemd carries it out).
fn stop_worker(ctx: &Ctx) {
    let units = warm_units(ctx);
    if units.is_empty() {
        return;
    }
    let cmd = crate::exec::Cmd::new("systemctl")
        .args(["stop", "--no-block"])
        .args(units.iter().cloned());
    if let Err(e) = ctx.run(LOG, &cmd) {
        ctx.ui.line(&format!(
            "[deploy] the worker's early stop was not queued ({}): it restarts with the others",
            e.msg
        ));
    }
}

/// The worker (and the [[process]] units) again, as `current` is now: a start waits for a
/// stop still under way (the warm shutdown lets running tasks finish: keel waits as long as
/// systemd does), and a unit that was never stopped is restarted.
fn start_worker(ctx: &Ctx) -> StepResult {
    let wait = Duration::from_secs(ctx.cfg.deploy.worker_stop_timeout_secs + 60);
    let (running, stopped): (Vec<String>, Vec<String>) = warm_units(ctx)
        .into_iter()
        .partition(|u| crate::systemd::is_active(ctx, LOG, u));
    for (verb, units) in [("restart", running), ("start", stopped)] {
        if !units.is_empty() {
            let cmd = crate::exec::Cmd::new("systemctl")
                .arg(verb)
                .args(units)
                .timeout(wait);
            ctx.run(LOG, &cmd)?;
        }
    }
    Ok(())
}

/// Restart the app's units: Gunicorn while systemd holds its socket (requests queue, none
/// is refused) and beat in one job, the worker beside them (its stop may already be under
/// way).
fn restart(ctx: &Ctx) -> StepResult {
    // This host's roles' units only (a host of several runs some of web, worker, beat).
    let names: Vec<String> = ctx.cfg.app_kinds().iter().map(|p| unit(ctx, p)).collect();
    // As exec::systemctl does: a switch back restarts again within seconds, and must not
    // trip systemd's start rate limit.
    let _ = crate::systemd::systemctl(
        ctx,
        LOG,
        &std::iter::once("reset-failed")
            .chain(names.iter().map(String::as_str))
            .collect::<Vec<_>>(),
    );
    // Web and beat restart together; the worker goes by start_worker.
    let worker = unit(ctx, "worker");
    let front: Vec<String> = names.iter().filter(|u| **u != worker).cloned().collect();
    let (web, worker) = std::thread::scope(|s| {
        let worker = s.spawn(|| start_worker(ctx));
        let web = if front.is_empty() {
            Ok(())
        } else {
            let cmd = crate::exec::Cmd::new("systemctl")
                .arg("restart")
                .args(front.iter().cloned())
                .timeout(Duration::from_secs(120));
            ctx.run(LOG, &cmd).map(|_| ())
        };
        (
            web,
            worker
                .join()
                .unwrap_or_else(|_| Err(StepError::permanent("the worker's restart panicked", ""))),
        )
    });
    web.and(worker)
}

/// The verify step's checks, retried as the verify step retries them (units just started).
fn check(ctx: &Ctx) -> StepResult {
    crate::stack::check_stack_retried(ctx)
}

fn switch_to(ctx: &Ctx, st: &mut State, state_path: &Path, id: &str) -> Result<()> {
    release::switch(&base(ctx), id).map_err(|e| Error::io(base(ctx).join("current"), e))?;
    st.releases.current = Some(id.into());
    st.save(state_path)?;
    ctx.events
        .emit("release-switched", None, json!({"release": id}));
    ctx.ui.line(&format!("[deploy] current -> releases/{id}"));
    Ok(())
}

fn set_status(st: &mut State, id: &str, status: ReleaseStatus, error: Option<String>) {
    if let Some(r) = st.releases.get_mut(id) {
        r.status = status;
        r.error = error;
    }
}

/// Build, switch, verify; on failed checks switch back to `previous`.
pub fn deploy(
    ctx: &Ctx,
    graph: &Graph,
    st: &mut State,
    state_path: &Path,
    source: &Source,
) -> Result<Outcome> {
    let t = Instant::now();
    let base = base(ctx);
    let previous = st.releases.current.clone();
    let existing = crate::app::code::existing_ids(&base);
    let refs: Vec<&str> = existing.iter().map(String::as_str).collect();
    let id = release::new_id(&refs);
    let mut rel = Release {
        id: id.clone(),
        source: source.describe(),
        revision: String::new(),
        created_at: crate::paths::now(),
        status: ReleaseStatus::Building,
        by: "deploy".into(),
        error: None,
    };
    st.releases.list.push(rel.clone());
    st.save(state_path)?;
    ctx.events.emit(
        "deploy-started",
        None,
        json!({"release": id, "source": rel.source}),
    );
    ctx.ui.line(&format!(
        "[deploy] building release {id} from {}",
        rel.source
    ));
    let outcome = |result, error: Option<String>| Outcome {
        release: id.clone(),
        previous: previous.clone(),
        result,
        duration_ms: t.elapsed().as_millis() as u64,
        error,
    };
    if let Err(e) = build(ctx, source, &mut rel) {
        let msg = build_failed(ctx, st, state_path, &rel, &e)?;
        return Ok(outcome(
            "failed",
            Some(format!("{msg} (the release was not switched to)")),
        ));
    }
    if let Some(r) = st.releases.get_mut(&id) {
        r.revision = rel.revision.clone();
    }
    switch_to(ctx, st, state_path, &id)?;
    let checked = restart(ctx).and_then(|()| check(ctx));
    let Err(e) = checked else {
        set_status(st, &id, ReleaseStatus::Ok, None);
        finish(ctx, graph, st, state_path)?;
        ctx.events
            .emit("deploy-finished", None, json!({"release": id}));
        tell(ctx, "deploy-succeeded", &rel, "is live".into());
        return Ok(outcome("deployed", None));
    };
    let msg = ctx.exec.redactor.redact(&e.msg);
    set_status(st, &id, ReleaseStatus::Failed, Some(msg.clone()));
    st.save(state_path)?;
    let Some(prev) = previous.clone() else {
        tell(
            ctx,
            "deploy-failed",
            &rel,
            format!("failed its checks (no release to switch back to): {msg}"),
        );
        return Ok(outcome("failed", Some(msg)));
    };
    ctx.ui.line(&format!(
        "[deploy] release {id} failed its checks: {msg}; switching back to {prev}"
    ));
    switch_to(ctx, st, state_path, &prev)?;
    let back = restart(ctx).and_then(|()| check(ctx));
    ctx.events.emit(
        "deploy-rolled-back",
        None,
        json!({"release": id, "to": prev, "error": msg, "previous_healthy": back.is_ok()}),
    );
    let state = if back.is_ok() {
        "healthy"
    } else {
        "NOT healthy either"
    };
    tell(
        ctx,
        "deploy-rolled-back",
        &rel,
        format!("failed its checks; switched back to {prev} ({state}): {msg}"),
    );
    let note = match back {
        Ok(()) => format!("{msg}; switched back to {prev}, which is healthy"),
        Err(b) => format!(
            "{msg}; switched back to {prev}, which is NOT healthy either: {}",
            b.msg
        ),
    };
    finish(ctx, graph, st, state_path)?;
    Ok(outcome("rolled-back", Some(note)))
}

/// Go back to release `target` (default: the newest healthy one before the current).
pub fn rollback(
    ctx: &Ctx,
    graph: &Graph,
    st: &mut State,
    state_path: &Path,
    target: Option<&str>,
) -> Result<Outcome> {
    let t = Instant::now();
    let current = st.releases.current.clone();
    let id = match target {
        Some(id) => id.to_string(),
        None => release::previous_good(&st.releases.list, current.as_deref())
            .map(|r| r.id.clone())
            .ok_or_else(|| {
                Error::usage(
                    "no earlier healthy release to return to",
                    "see keel releases; name one with keel deploy --rollback ID",
                )
            })?,
    };
    switch_to(ctx, st, state_path, &id)?;
    let checked = restart(ctx).and_then(|()| check(ctx));
    let error = checked.err().map(|e| ctx.exec.redactor.redact(&e.msg));
    if error.is_none() {
        set_status(st, &id, ReleaseStatus::Ok, None);
    }
    finish(ctx, graph, st, state_path)?;
    Ok(Outcome {
        release: id,
        previous: current,
        result: "switched",
        duration_ms: t.elapsed().as_millis() as u64,
        error,
    })
}

/// Prune old releases, and tell the install steps that built the release what it now is:
/// a later `keel install` keeps the deployed release instead of rebuilding the config's.
fn finish(ctx: &Ctx, graph: &Graph, st: &mut State, state_path: &Path) -> Result<()> {
    let keep = ctx.cfg.deploy.keep_releases as usize;
    for id in release::tidy(&base(ctx), &mut st.releases, keep) {
        ctx.ui.line(&format!(
            "[deploy] removed release {id} (deploy.keep_releases = {keep})"
        ));
    }
    for step in graph.steps.iter().filter(|s| s.of_release()) {
        let id = step.id();
        if st.step(id).status == crate::state::Status::Completed {
            let fp = crate::engine::fingerprint(ctx, step.as_ref());
            st.step_mut(id).fingerprint = Some(fp);
        }
    }
    st.save(state_path)
}

/// A build that failed: the old release's worker started again, the release marked failed,
/// the admin told. The error, redacted.
fn build_failed(
    ctx: &Ctx,
    st: &mut State,
    state_path: &Path,
    rel: &Release,
    e: &StepError,
) -> Result<String> {
    // The worker may have been stopped for the migrations: the old release's again.
    if let Err(w) = start_worker(ctx) {
        ctx.ui.line(&format!(
            "[deploy] the worker did not start again: {}",
            w.msg
        ));
    }
    let (id, msg) = (&rel.id, ctx.exec.redactor.redact(&e.msg));
    if let Some(r) = st.releases.get_mut(id) {
        r.revision = rel.revision.clone();
    }
    set_status(st, id, ReleaseStatus::Failed, Some(msg.clone()));
    st.save(state_path)?;
    ctx.events
        .emit("deploy-failed", None, json!({"release": id, "error": msg}));
    let what = format!("failed to build and was not switched to: {msg}");
    tell(ctx, "deploy-failed", rel, what);
    Ok(msg)
}

/// A deploy's notification ([notify]): one per release and event.
fn tell(ctx: &Ctx, event: &str, rel: &Release, what: String) {
    let text = format!("release {} from {} {what}", rel.id, rel.source);
    let details = json!({"release": rel.id, "source": rel.source, "revision": rel.revision});
    // A release's outcome happens once: not a problem that stays open.
    crate::outbox::raise(ctx, event, "", &text, details);
}
