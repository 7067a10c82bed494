//! `keel verify`: run the health checks (optionally healing), print them for humans,
//! machines or Prometheus, and exit by the verdict.
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::checks::health::{Report, Verdict, evaluate, heal, prometheus};
use crate::checks::{self, CheckResult};
use crate::cli::Output;
use crate::error::{Error, Result};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn print(inv: &Invocation, r: &Report, healed: &[String]) {
    let cli = &inv.cli;
    match cli.output {
        Output::Json | Output::Dot => {
            let checks: Vec<_> = r.checks.iter().map(|(c, crit)| json!({"name": c.name, "critical": crit, "level": c.level, "message": c.message, "hint": c.hint, "duration_ms": c.duration_ms})).collect();
            println!(
                "{}",
                json!({"verdict": r.verdict, "duration_ms": r.duration_ms, "healed": healed, "checks": checks})
            );
        }
        Output::Prometheus => print!("{}", prometheus(r)),
        Output::Human => {
            let list: Vec<CheckResult> = r.checks.iter().map(|(c, _)| c.clone()).collect();
            print!("{}", checks::render_table(&list));
            println!(
                "{:?} ({} checks in {} ms)",
                r.verdict,
                r.checks.len(),
                r.duration_ms
            );
        }
    }
}

pub struct Opts {
    pub heal: bool,
    pub watch: Option<u64>,
    pub fail_on_degraded: bool,
    pub sequential: bool,
    pub notify: bool,
}

pub fn run(inv: &Invocation, opts: Opts) -> Result<()> {
    let _cli = &inv.cli;
    let Opts {
        heal: do_heal,
        watch,
        fail_on_degraded,
        sequential,
        notify,
    } = opts;
    let cfg = inv.config()?;
    let ctx = Arc::new(build_ctx(cfg, CtxOptions::new(inv, "verify")));
    loop {
        let mut report = evaluate(&ctx, sequential);
        let mut healed = vec![];
        if do_heal && report.verdict != Verdict::Healthy {
            healed = heal(&ctx);
            if !healed.is_empty() {
                report = evaluate(&ctx, sequential);
            }
        }
        print(inv, &report, &healed);
        if notify {
            crate::health_notify::after_verify(&ctx, &report);
        }
        match watch {
            #[allow(clippy::disallowed_methods)] // --watch waits in real time, by definition
            Some(secs) => std::thread::sleep(Duration::from_secs(secs.max(1))),
            None => {
                return match report.verdict {
                    Verdict::Unhealthy => {
                        Err(Error::Unhealthy(format!("unhealthy: {}", failing(&report))))
                    }
                    Verdict::Degraded if fail_on_degraded => {
                        Err(Error::Unhealthy(format!("degraded: {}", failing(&report))))
                    }
                    _ => Ok(()),
                };
            }
        }
    }
}

fn failing(r: &Report) -> String {
    r.failing().join("; ")
}
