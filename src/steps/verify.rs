use crate::step::{Ctx, Deps, Inputs, Step, StepResult};
use crate::txn::Txn;

pub struct Verify;
const ID: &str = "verify";
impl Step for Verify {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[
            &super::services::Services,
            &super::tls::Tls,
            &super::baseline::Baseline,
        ]
    }
    fn about(&self) -> &'static str {
        "the app answers through nginx; a Celery task round-trips; beat ticks"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .step(ctx, &super::services::Services)
            .step(ctx, &super::nginx::Nginx)
            .value(
                "django",
                serde_json::to_string(&ctx.cfg.django).unwrap_or_default(),
            )
    }
    fn run(&self, _ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        crate::stack::check_stack(ctx)
    }
}
