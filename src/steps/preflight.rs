use crate::checks::{Level, preflight};
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;

pub struct Preflight;

impl Step for Preflight {
    fn id(&self) -> &'static str {
        "preflight"
    }
    fn deps(&self) -> Deps {
        &[]
    }
    fn about(&self) -> &'static str {
        "check the host: OS, resources, ports, network"
    }
    fn checks_the_host(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("preflight", format!("{:?}", ctx.cfg.preflight))
            .value(
                "ports",
                format!(
                    "{} {} {}",
                    ctx.cfg.nginx.port, ctx.cfg.postgres.port, ctx.cfg.redis.port
                ),
            )
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        let (results, blocking) = preflight::run(&ctx.cfg, &ctx.paths.root, &ctx.ignore_preflight);
        crate::checks::preflight::record_preflight(ctx, &results);
        for r in results.iter().filter(|r| !r.level.fine()) {
            let tag = if r.ignored {
                "ignored error"
            } else if r.level == Level::Error {
                "error"
            } else {
                "warning"
            };
            ctx.ui.line(&format!(
                "[preflight] {tag}: {}: {} (hint: {})",
                r.name, r.message, r.hint
            ));
        }
        if blocking.is_empty() {
            return Ok(());
        }
        let first = results
            .iter()
            .find(|r| r.name == blocking[0])
            .expect("blocking check exists");
        Err(StepError::permanent(
            format!(
                "{} check(s) failed: {} ({}: {})",
                blocking.len(),
                blocking.join(", "),
                first.name,
                first.message
            ),
            format!(
                "{}; or pass --ignore-preflight-errors {}",
                first.hint,
                blocking.join(",")
            ),
        ))
    }
}
