//! keel: a step graph, persisted in an installation-state file, that turns a fresh
//! Debian/Ubuntu host into a Django + Celery production stack.
pub mod checks;
pub mod cli;
pub mod config;
pub mod diagnose;
pub mod dotenv;
pub mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod fsx;
pub mod graph;
pub mod health;
pub mod ops;
pub mod redact;
pub mod render;
pub mod resume;
pub mod retry;
pub mod secrets;
pub mod state;
pub mod steps;
pub mod system;
pub mod txn;
pub mod ui;
pub mod validate;

use crate::cli::{Cli, Command, Output};
use crate::config::Config;
use crate::engine::InstallOpts;
use crate::error::{Error, Result};
use crate::graph::{Ctx, Graph, Reason};
use crate::state::{RunLock, State, Status};
use serde_json::json;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where keel reads and writes on the host. `root` is `/` except in tests (KEEL_ROOT), where a
/// temp directory stands in for the host.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn from_env() -> Paths {
        Paths {
            root: std::env::var_os("KEEL_ROOT")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into()),
        }
    }
    /// A host path under the root.
    pub fn host(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }
    pub fn log_dir(&self) -> PathBuf {
        self.host("/var/log/keel")
    }
    pub fn secrets_dir(&self) -> PathBuf {
        self.host("/etc/keel/secrets")
    }
    pub fn events_file(&self) -> PathBuf {
        self.log_dir().join("events.jsonl")
    }
}

/// Create a log directory readable by root only (logs are redacted, but they describe the
/// host in detail). Best effort: logging must never fail a run.
pub fn private_dir(dir: &Path) {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
}

/// Before a run changes anything: stop what a killed run left running (apt excepted), and
/// say so, since it explains a step the previous run never finished.
fn reap_leftovers(ctx: &Ctx) {
    for l in ctx.exec.reap_leftovers() {
        let (what, event) = match l.action {
            exec::LeftoverAction::Stopped => ("stopped", "leftover_stopped"),
            exec::LeftoverAction::LeftRunning => (
                "left running (apt/dpkg is never interrupted; the dpkg lock serialises it)",
                "leftover_running",
            ),
        };
        ctx.ui.line(&format!(
            "a previous keel run was killed while `{}` (pid {}) ran: {what}",
            l.cmd, l.pgid
        ));
        ctx.events
            .emit(event, None, json!({"pid": l.pgid, "command": l.cmd}));
    }
}

/// The template variables of a unit that runs keel itself (keel-verify, keel-resume): this
/// binary and the config and state file of this run, as absolute paths (systemd runs the unit
/// from / , where a relative path means something else).
pub fn keel_unit_vars(
    config: &Path,
    state_file: &Path,
) -> serde_json::Map<String, serde_json::Value> {
    let keel = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "/usr/local/bin/keel".into());
    let abs = |p: &Path| {
        std::fs::canonicalize(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut m = serde_json::Map::new();
    m.insert("keel".into(), json!(keel));
    m.insert("config".into(), json!(abs(config)));
    m.insert("state_file".into(), json!(abs(state_file)));
    m
}

/// RFC 3339 UTC timestamp, second precision.
pub fn now() -> String {
    let t = time::OffsetDateTime::now_utc();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
        .split('.')
        .next()
        .unwrap_or_default()
        .trim_end_matches('Z')
        .to_string()
        + "Z"
}

fn run_id() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}-{}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        std::process::id()
    )
}

pub fn build_ctx(cfg: Config, quiet: bool, ignore_preflight: Vec<String>, run_id: &str) -> Ctx {
    build_ctx_with(cfg, quiet, ignore_preflight, run_id, false)
}

pub fn build_ctx_with(
    cfg: Config,
    quiet: bool,
    ignore_preflight: Vec<String>,
    run_id: &str,
    interactive: bool,
) -> Ctx {
    let paths = Paths::from_env();
    let redactor = redact::Redactor::default();
    let mode = match std::env::var_os("KEEL_FAKE_HOST") {
        Some(d) => exec::Mode::Fake(d.into()),
        None => exec::Mode::Real,
    };
    render::set_override_dir(paths.host("/etc/keel/templates"));
    let secrets = secrets::Secrets {
        dir: paths.secrets_dir(),
        redactor: redactor.clone(),
    };
    secrets.load_all();
    let exec = exec::Exec {
        mode,
        log_dir: paths.log_dir(),
        redactor: redactor.clone(),
        default_timeout: Duration::from_secs(cfg.timeouts.command_secs),
        children_dir: paths.host("/run/keel/children"),
    };
    let events = events::Events::new(paths.events_file(), run_id.into(), redactor);
    Ctx {
        cfg,
        exec,
        secrets,
        ui: ui::Ui::new(quiet),
        events,
        apt: Default::default(),
        fail_after: std::env::var("KEEL_TEST_FAIL_AFTER")
            .ok()
            .filter(|s| !s.is_empty()),
        ignore_preflight,
        interactive,
        state_file: "/var/lib/keel/state.json".into(),
        app_tree: Default::default(),
        paths,
    }
}

/// Append one line per preflight run, so runs can be compared over time.
pub fn record_preflight(ctx: &Ctx, results: &[checks::CheckResult]) {
    use std::io::Write;
    let count = |l| {
        results
            .iter()
            .filter(|r| r.level == l && !r.ignored)
            .count()
    };
    let line = json!({
        "ts": now(),
        "passed": count(checks::Level::Ok),
        "warnings": count(checks::Level::Warn),
        "errors": count(checks::Level::Error),
        "checks": results,
    });
    let dir = ctx.paths.log_dir();
    private_dir(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("preflight.jsonl"))
    {
        let _ = writeln!(f, "{}", ctx.exec.redactor.redact(&line.to_string()));
    }
}

fn confirm(cli: &Cli, question: &str) -> Result<bool> {
    if cli.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::usage(
            format!("{question}: no terminal to ask on"),
            "pass --yes to confirm in unattended use",
        ));
    }
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| Error::Other(e.into()))
}

pub fn run(cli: Cli) -> Result<()> {
    let json_out = cli.output == Output::Json;
    match &cli.command {
        Command::StateSchema => {
            print!("{}", state::schema_json());
            Ok(())
        }
        Command::Status {
            wait: true,
            timeout,
        } => match ops::status_wait(&cli, *timeout)? {
            0 => Ok(()),
            _ => Err(Error::Unhealthy(
                "the last keel run did not complete".into(),
            )),
        },
        Command::Status { .. } => status(&cli),
        Command::Env { example, out } => ops::env(&cli, example, out),
        Command::Init => ops::init(&cli),
        Command::Verify {
            heal,
            watch,
            fail_on_degraded,
            sequential,
        } => health::run(&cli, *heal, *watch, *fail_on_degraded, *sequential),
        Command::Diagnose => {
            let cfg = Config::load(&cli.config)?;
            let ctx = build_ctx(cfg, true, vec![], &run_id());
            let (txt, _) = diagnose::write(&ctx, &cli.state_file)?;
            println!("wrote {}", txt.display());
            Ok(())
        }
        Command::Plan => plan(&cli),
        Command::Preflight {
            ignore_preflight_errors,
        } => {
            let cfg = Config::load(&cli.config)?;
            let ctx = build_ctx(cfg, json_out, ignore_preflight_errors.clone(), &run_id());
            let (results, blocking) =
                checks::preflight::run(&ctx.cfg, &ctx.paths.root, ignore_preflight_errors);
            record_preflight(&ctx, &results);
            if json_out {
                println!(
                    "{}",
                    json!({"ok": blocking.is_empty(), "blocking": blocking, "checks": results})
                );
            } else {
                print!("{}", checks::render_table(&results));
            }
            if blocking.is_empty() {
                Ok(())
            } else {
                Err(Error::Preflight {
                    failed: blocking.join(", "),
                })
            }
        }
        Command::Install {
            steps,
            retry_step,
            skip,
            dry_run,
            ignore_preflight_errors,
            rollback,
            resume,
        } => {
            // Everything is checked before the first write: the config and what it points
            // to, the step names and the state file. A run refused here leaves no lock, unit
            // or secret behind.
            let cfg = Config::load(&cli.config)?;
            let graph = steps::graph();
            graph.plan(&State::default(), steps, retry_step, skip, &|_| {
                String::new()
            })?;
            cfg.check_users(&Paths::from_env().root)?;
            cfg.check_source()?;
            State::load(&cli.state_file)?;
            let id = run_id();
            let interactive =
                !cli.yes && std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
            let mut ctx = build_ctx_with(
                cfg,
                json_out,
                ignore_preflight_errors.clone(),
                &id,
                interactive,
            );
            ctx.state_file = cli.state_file.clone();
            let mut opts = InstallOpts {
                targets: steps.clone(),
                retry: retry_step.clone(),
                skip: skip.clone(),
                rollback: *rollback,
                command: std::env::args().collect::<Vec<_>>().join(" "),
            };
            if *dry_run {
                let st = State::load(&cli.state_file)?;
                return print_plan(&cli, &ctx, &graph, &st, &opts);
            }
            let _lock = match RunLock::acquire(&cli.state_file) {
                // Someone else is already running (or resuming) it: nothing for us to do.
                Err(Error::Locked { pid, .. }) if *resume => {
                    println!("keel: nothing to resume: keel (pid {pid}) is running");
                    return Ok(());
                }
                other => other?,
            };
            let mut st = State::load(&cli.state_file)?;
            if *resume {
                let Some(last) = resume::interrupted(st.last_run.as_ref()) else {
                    println!("keel: nothing to resume: the last run finished");
                    return Ok(());
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
            }
            if let Err(e) = resume::arm(&ctx.paths, &cli.config, &cli.state_file) {
                ctx.ui.line(&format!(
                    "warning: could not set up {} (a reboot during this run will need a manual re-run): {e}",
                    resume::UNIT
                ));
            }
            reap_leftovers(&ctx);
            let report = engine::install(&ctx, &graph, &mut st, &cli.state_file, &opts, &id)?;
            // A report after every run, failed or not; service probes only if something ran.
            let full = report.plan.iter().any(|(_, r)| r.runs());
            match diagnose::write_with(&ctx, &st, full) {
                Ok((txt, _)) => ctx.ui.line(&format!("diagnostics: {}", txt.display())),
                Err(e) => ctx
                    .ui
                    .line(&format!("could not write the diagnostics report: {e}")),
            }
            ctx.ui.finish();
            if json_out {
                println!("{}", report.to_json(&st));
            } else {
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
            match engine::step_failed_error(&report) {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        Command::Rollback => {
            let cfg = Config::load(&cli.config)?;
            let graph = steps::graph();
            let id = run_id();
            // Validated before the lock file is created beside it.
            State::load(&cli.state_file)?;
            let ctx = build_ctx(cfg, json_out, vec![], &id);
            let _lock = RunLock::acquire(&cli.state_file)?;
            let mut st = State::load(&cli.state_file)?;
            if !confirm(
                &cli,
                "Undo everything keel set up (databases, secrets and the app directory are kept)?",
            )? {
                return Err(Error::usage("rollback cancelled", "nothing was changed"));
            }
            reap_leftovers(&ctx);
            let done = engine::rollback_all(&ctx, &graph, &mut st, &cli.state_file, &id);
            ctx.ui.finish();
            let done = done?;
            resume::disarm(&ctx.paths);
            if json_out {
                println!("{}", json!({"rolled_back": done}));
            } else {
                println!(
                    "keel: rolled back {} step(s): {}",
                    done.len(),
                    done.join(", ")
                );
            }
            let failed: Vec<_> = st
                .steps
                .iter()
                .filter(|(_, r)| r.status == Status::Failed)
                .map(|(k, _)| k.clone())
                .collect();
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Error::StepFailed {
                    step: failed.join(","),
                    msg: "could not be fully rolled back".into(),
                    hint: "see keel status".into(),
                })
            }
        }
    }
}

fn print_plan(cli: &Cli, ctx: &Ctx, graph: &Graph, st: &State, opts: &InstallOpts) -> Result<()> {
    let fp = |s: &dyn graph::Step| engine::fingerprint(ctx, s);
    let plan = graph.plan(st, &opts.targets, &opts.retry, &opts.skip, &fp)?;
    if cli.output == Output::Json {
        let v: Vec<_> = plan.iter().map(|(id, r)| json!({"id": id, "runs": r.runs(), "reason": r.describe(), "deps": graph.get(id).map(|s| s.deps())})).collect();
        println!("{}", json!({"dry_run": true, "steps": v}));
    } else {
        for (id, r) in &plan {
            println!("{:<15} {}", id, r.describe());
        }
    }
    Ok(())
}

fn plan(cli: &Cli) -> Result<()> {
    let graph = steps::graph();
    if cli.output == Output::Dot {
        print!("{}", graph.dot());
        return Ok(());
    }
    // The plan reads the config only to tell what an install would do; without one it still
    // prints the graph.
    let st = State::load(&cli.state_file)?;
    let cfg = Config::load(&cli.config);
    let reasons: Vec<(&str, Option<Reason>)> = match cfg {
        Ok(cfg) => {
            let ctx = build_ctx(cfg, true, vec![], &run_id());
            let fp = |s: &dyn graph::Step| engine::fingerprint(&ctx, s);
            graph
                .plan(&st, &[], &[], &[], &fp)?
                .into_iter()
                .map(|(i, r)| (i, Some(r)))
                .collect()
        }
        Err(_) => graph.ids().into_iter().map(|i| (i, None)).collect(),
    };
    if cli.output == Output::Json {
        let v: Vec<_> = reasons
            .iter()
            .map(|(id, r)| {
                let s = graph.get(id).expect("step");
                json!({"id": id, "about": s.about(), "deps": s.deps(), "next_install": r.map(|r| r.describe())})
            })
            .collect();
        println!("{}", json!({"steps": v}));
        return Ok(());
    }
    for (i, (id, r)) in reasons.iter().enumerate() {
        let s = graph.get(id).expect("step");
        let deps = if s.deps().is_empty() {
            "-".to_string()
        } else {
            s.deps().join(", ")
        };
        println!("{:>2}. {:<15} {:<60} after: {}", i + 1, id, s.about(), deps);
        if let Some(r) = r {
            println!("    {:<12} next install: {}", "", r.describe());
        }
    }
    Ok(())
}

fn status(cli: &Cli) -> Result<()> {
    let graph = steps::graph();
    let st = State::load(&cli.state_file)?;
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
                resume::UNIT
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
