use crate::app::build::*;
use crate::step::{Ctx, Deps, Inputs, Step, StepResult};
use crate::txn::Txn;

pub struct Build;
const ID: &str = "build";

impl Step for Build {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[
                crate::config::Role::Web,
                crate::config::Role::Worker,
                crate::config::Role::Beat,
            ],
            "no app code here",
        )
    }
    fn deps(&self) -> Deps {
        &[
            &super::python_env::PythonEnv,
            &super::app_env::AppEnv,
            &super::packages::Apt::SYSTEM,
        ]
    }
    fn about(&self) -> &'static str {
        "the app's build: npm run build, compilemessages, build.commands (as the build user)"
    }
    fn of_release(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("app tree", crate::app::code::tree_hash(ctx))
            .value("commands", ctx.cfg.build.commands.join("\n"))
            .value(
                "auto",
                format!("{} {}", ctx.cfg.build.node, ctx.cfg.build.compilemessages),
            )
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        run_build(ctx, tx, &crate::app::live_dir(ctx), ID)
    }
}
