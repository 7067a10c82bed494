//! The app at runtime, below the steps that set it up: its live release, commands run as
//! the app (sandboxed as its units) or as the build user, its venv's programs, its users.
//! Steps, deploys, checks and one-off commands all use these; none of them reaches into a
//! step for it.
pub mod build;
pub mod code;
pub mod env;
pub mod venv;
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use std::path::{Path, PathBuf};

/// A command run as the app user, in the current release (migrate, collectstatic, checks).
pub fn as_app(ctx: &Ctx, program: &str) -> Cmd {
    as_app_in(ctx, &live_dir(ctx), program)
}

/// A command run as the app user in release directory `dir` (a deploy's checks and
/// migrations run in the new release before it is current).
pub fn as_app_in(ctx: &Ctx, dir: &Path, program: &str) -> Cmd {
    let user = ctx.cfg.app_user();
    let host = |p: PathBuf| ctx.host(&p.display().to_string());
    let sandbox = crate::exec::Sandbox {
        unit: crate::exec::transient_unit(&user),
        group: user.clone(),
        env_file: Some(host(ctx.cfg.env_file())),
        read_write: vec![
            host(dir.join("staticfiles")),
            host(ctx.cfg.shared_dir().join("media")),
        ],
        jit: false,
    };
    as_user(ctx, &user, ctx.cfg.base_dir(), dir, program).sandbox(sandbox)
}

/// A command run as the build user, which owns the virtualenvs (pip or uv and the packages'
/// build scripts run as neither root nor the app).
pub fn as_build(ctx: &Ctx, dir: &Path, program: &str) -> Cmd {
    let venvs = crate::release::venvs_dir(&ctx.cfg.base_dir());
    as_user(ctx, &ctx.cfg.build_user(), venvs.clone(), dir, program)
        .nice(10)
        .env(
            "UV_CACHE_DIR",
            &venvs.join(".uv-cache").display().to_string(),
        )
        .env(
            "PIP_CACHE_DIR",
            &venvs.join(".pip-cache").display().to_string(),
        )
        // Never a Python from the network: the venv is built on Debian's python3.
        .env("UV_PYTHON_DOWNLOADS", "never")
        .env("UV_NO_PROGRESS", "1")
        // The OS trust store, as Debian's pip uses: a CA the admin added with
        // update-ca-certificates (a proxy's, a private index's) works for uv too.
        .env("UV_SYSTEM_CERTS", "1")
}

pub fn as_user(ctx: &Ctx, user: &str, home: PathBuf, dir: &Path, program: &str) -> Cmd {
    Cmd::new(program)
        .user(user)
        .dir(ctx.host(&dir.display().to_string()))
        .env("HOME", &home.display().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
}

pub fn build_user_ids(ctx: &Ctx) -> StepResult<(u32, u32)> {
    ids_of(ctx, &ctx.cfg.build_user())
}

/// The program for a command's first word run with the app's venv: a bare name the venv
/// has (always `python` and `python3`) is the venv's, since systemd looks bare names up in
/// its own path, not the unit's PATH. Only looked at, never opened or run by root (`venv`
/// is keel's link to the build user's venv, so the path is followed).
pub fn venv_program(ctx: &Ctx, venv_bin: &Path, first: &str) -> String {
    let has = |n: &str| {
        matches!(n, "python" | "python3")
            || std::fs::symlink_metadata(ctx.host(&venv_bin.join(n).display().to_string())).is_ok()
    };
    if !first.contains('/') && has(first) {
        venv_bin.join(first).display().to_string()
    } else {
        first.to_string()
    }
}

pub fn venv_bin(ctx: &Ctx, tool: &str) -> String {
    ctx.cfg
        .venv_dir()
        .join("bin")
        .join(tool)
        .display()
        .to_string()
}

/// The live release's own directory (as the services see paths): keel's file operations
/// never go through a link, so they use this rather than `current`.
pub fn live_dir(ctx: &Ctx) -> PathBuf {
    let base = ctx.cfg.base_dir();
    match crate::release::current_on_disk(&ctx.host(&base.display().to_string())) {
        Some(id) => crate::release::dir(&base, &id),
        None => ctx.cfg.app_dir(),
    }
}

pub fn app_user_ids(ctx: &Ctx) -> StepResult<(u32, u32)> {
    ids_of(ctx, &ctx.cfg.app_user())
}

/// uid and gid of one of the app's users (made by the system-user step).
pub fn ids_of(ctx: &Ctx, user: &str) -> StepResult<(u32, u32)> {
    crate::system::user_ids(&ctx.paths.root, user).ok_or_else(|| {
        StepError::permanent(
            format!("user {user} does not exist"),
            "keel install --retry-step system-user",
        )
    })
}
