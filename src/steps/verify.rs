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
    /// The step is the check: it hands the parts' results to the run's report.
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let (checks, r) = crate::stack::measure(ctx);
        tx.produce(crate::txn::Produced::Checks(checks));
        r
    }
    fn verify(&self, _ctx: &Ctx) -> StepResult {
        Ok(())
    }
}
