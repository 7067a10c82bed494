//! `keel preflight`: the checks alone, as a table or JSON.
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::checks;
use crate::cli::Output;
use crate::error::{Error, Result};
use serde_json::json;

pub fn run(inv: &Invocation, ignore: &[String]) -> Result<()> {
    let cli = &inv.cli;
    let json_out = cli.output == Output::Json;
    let cfg = inv.config()?;
    checks::preflight::check_ignore_names(&cfg, &crate::paths::Paths::from_env().root, ignore)
        .map_err(|m| Error::usage(m, "name a check from `keel preflight`, or all"))?;
    let mut o = CtxOptions::new(inv, &crate::paths::run_id());
    o.ignore_preflight = ignore.to_vec();
    let ctx = build_ctx(cfg, o);
    let (results, blocking) = checks::preflight::run(&ctx.cfg, &ctx.paths.root, ignore);
    checks::preflight::record_preflight(&ctx, &results);
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
