use crate::app::venv::*;
use crate::step::{Ctx, Deps, Inputs, Step, StepResult};
use crate::txn::Txn;

pub struct PythonEnv;
const ID: &str = "python-env";

impl Step for PythonEnv {
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
        &[&super::app_code::AppCode, &super::packages::Apt::PYTHON]
    }
    fn about(&self) -> &'static str {
        "the release's virtualenv: the app's requirements and Gunicorn (uv or pip)"
    }
    fn of_release(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value(
                "requirements",
                project_of(ctx, &|rel| crate::app::code::app_file(ctx, rel))
                    .map(|p| p.fingerprint())
                    .unwrap_or_else(|e| e.msg),
            )
            .value(
                "python",
                format!("{:?} {}", ctx.cfg.python.version, ctx.cfg.python.managed),
            )
            .value(
                "venvs",
                crate::release::venvs_dir(&ctx.cfg.base_dir()).display(),
            )
            .value("owner", ctx.cfg.build_user())
            .step(ctx, &super::app_code::AppCode)
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        ensure_venv(ctx, tx, &crate::app::live_dir(ctx), ID)?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        check_imports(ctx, &crate::app::live_dir(ctx), ID)
    }
    // Undo keeps the virtualenvs: they live in the app's base directory (data).
}
