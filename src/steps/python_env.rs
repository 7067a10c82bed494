use crate::exec::Cmd;
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;
use std::time::Duration;

pub struct PythonEnv;
const ID: &str = "python-env";

/// A command run as the app user, in the app directory (migrate, collectstatic, checks).
pub fn as_app(ctx: &Ctx, program: &str) -> Cmd {
    as_user(ctx, &ctx.cfg.app_user(), ctx.cfg.base_dir(), program)
}

/// A command run as the build user, which owns the virtualenv (pip and its build scripts
/// run as neither root nor the app): HOME, and so pip's cache, inside the venv.
pub fn as_build(ctx: &Ctx, program: &str) -> Cmd {
    as_user(ctx, &ctx.cfg.build_user(), ctx.cfg.venv_dir(), program)
}

fn as_user(ctx: &Ctx, user: &str, home: std::path::PathBuf, program: &str) -> Cmd {
    Cmd::new(program)
        .user(user)
        .dir(ctx.host(&ctx.cfg.app_dir().display().to_string()))
        .env("HOME", &home.display().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

pub fn build_user_ids(ctx: &Ctx) -> StepResult<(u32, u32)> {
    super::app_code::ids_of(ctx, &ctx.cfg.build_user())
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
    fn deps(&self) -> Deps {
        &[&super::app_code::AppCode, &super::packages::Apt::PYTHON]
    }
    fn about(&self) -> &'static str {
        "Python virtualenv with the app's requirements and Gunicorn"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value(
                "app file requirements.txt",
                super::app_code::app_file(ctx, "requirements.txt").unwrap_or_default(),
            )
            .value("venv", ctx.cfg.venv_dir().display())
            .value("owner", ctx.cfg.build_user())
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let venv = ctx.cfg.venv_dir().display().to_string();
        let dir = ctx.host(&venv);
        let bin = dir.join("bin");
        let build = build_user_ids(ctx)?;
        // A venv another user owns (the app user, in keel's older layout) is derived data:
        // rebuilt under the build user. remove_dir_all never follows links.
        if let Some(owner) = crate::fsx::owner_of(&dir)?
            && owner != build
        {
            ctx.ui
                .step_note(ID, "rebuilding the virtualenv under the build user");
            std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
        }
        tx.ensure_dir_owned(&dir, 0o755, Some(build))
            .map_err(io_err(&dir))?;
        // A venv is complete only with its pip: a run killed during `python3 -m venv` (in
        // ensurepip) leaves bin/python without bin/pip. Rebuild it then; it is derived data.
        let present = |n: &str| matches!(crate::fsx::lstat(&bin.join(n)), Ok(Some(_)));
        if !(present("python") && present("pip")) {
            ctx.run(
                ID,
                &as_build(ctx, "python3").args(["-m", "venv", "--clear", &venv]),
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
            &as_build(ctx, &venv_bin(ctx, "pip"))
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
