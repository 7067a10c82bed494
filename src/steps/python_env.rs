use super::app_code::app_file;
use crate::exec::Cmd;
use crate::graph::{Ctx, Step, StepError, StepResult};
use crate::txn::Txn;
use std::time::Duration;

pub struct PythonEnv;
const ID: &str = "python-env";

/// A command run as the app user, in the app directory, with HOME in the base dir.
pub fn as_app(ctx: &Ctx, program: &str) -> Cmd {
    Cmd::new(program)
        .user(&ctx.cfg.app_user())
        .dir(ctx.host(&ctx.cfg.app_dir().display().to_string()))
        .env("HOME", &ctx.cfg.base_dir().display().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

pub fn venv_bin(ctx: &Ctx, tool: &str) -> String {
    ctx.cfg
        .venv_dir()
        .join("bin")
        .join(tool)
        .display()
        .to_string()
}

impl Step for PythonEnv {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> &'static [&'static str] {
        &["app-code", "python-packages"]
    }
    fn about(&self) -> &'static str {
        "Python virtualenv with the app's requirements and Gunicorn"
    }
    fn fingerprint(&self, ctx: &Ctx) -> String {
        format!(
            "{} {}",
            app_file(ctx, "requirements.txt").unwrap_or_default(),
            ctx.cfg.venv_dir().display()
        )
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        let venv = ctx.cfg.venv_dir().display().to_string();
        let bin = ctx.host(&venv).join("bin");
        // A venv is complete only with its pip: a run killed during `python3 -m venv` (in
        // ensurepip) leaves bin/python without bin/pip. Rebuild it then; it is derived data.
        if !(bin.join("python").exists() && bin.join("pip").exists()) {
            ctx.run(
                ID,
                &as_app(ctx, "python3").args(["-m", "venv", "--clear", &venv]),
            )
            .map_err(|e| e.hint("python3-venv must be in packages.python"))?;
        }
        let req = ctx
            .cfg
            .app_dir()
            .join("requirements.txt")
            .display()
            .to_string();
        ctx.ui.step_note(ID, "pip install -r requirements.txt");
        ctx.run(
            ID,
            &as_app(ctx, &venv_bin(ctx, "pip"))
                .args([
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-q",
                    "-r",
                    &req,
                    "gunicorn",
                ])
                .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs)),
        )
        .map_err(|e| {
            if e.hint.is_empty() {
                e.hint("see /var/log/keel/steps/python-env.log; network errors are retried")
            } else {
                e
            }
        })?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        ctx.run(
            ID,
            &as_app(ctx, &venv_bin(ctx, "python")).args(["-c", "import django, celery, gunicorn"]),
        )
        .map_err(|e| {
            StepError::permanent(
                format!("the virtualenv lacks Django/Celery/Gunicorn: {}", e.msg),
                "add them to requirements.txt",
            )
        })?;
        Ok(())
    }
    // Undo keeps the virtualenv: it lives in the app's base directory (data).
}
