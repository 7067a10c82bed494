//! `keel rollback`: undo everything keel set up, keeping data.
use super::context::{CtxOptions, Invocation, build_ctx, confirm, reap_leftovers};
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::state::{RunLock, Status};
use crate::{engine, resume, steps};
use serde_json::json;

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let cfg = inv.config()?;
    let graph = steps::graph();
    let id = crate::paths::run_id();
    // Validated before the lock file is created beside it.
    super::context::load_state(&cli.state_file)?;
    let mut o = CtxOptions::new(inv, &id);
    o.quiet = cli.output == Output::Json;
    // Asked before the lock is taken: a refusal (no terminal, or no) leaves nothing behind.
    if !confirm(
        inv,
        "Undo everything keel set up (databases, secrets and the app directory are kept)?",
    )? {
        return Err(Error::usage("rollback cancelled", "nothing was changed"));
    }
    let ctx = build_ctx(cfg, o);
    let _lock = RunLock::acquire(&cli.state_file)?;
    let mut st = super::context::load_state(&cli.state_file)?;
    reap_leftovers(&ctx);
    let done = engine::rollback_all(&ctx, &graph, &mut st, &cli.state_file, &id);
    ctx.ui.finish();
    let done = done?;
    resume::disarm(&ctx.paths);
    if cli.output == Output::Json {
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
