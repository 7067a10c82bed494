//! `keel run -- CMD...`, `keel shell`, `keel dbshell`: one-off commands in the current
//! release, as the app's user, with its `.env`, settings and venv, in the sandbox of its
//! units. The command's exit status is keel's.
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::error::{Error, Result};
use crate::exec::{Cmd, Sandbox};
use crate::step::Ctx;
use std::path::{Path, PathBuf};

/// What to run.
pub enum What<'a> {
    Command(&'a [String]),
    Shell(&'a [String]),
    DbShell(&'a [String]),
}

const LOG: &str = "run";

pub fn run(inv: &Invocation, what: What) -> Result<i32> {
    let _cli = &inv.cli;
    if let What::Command([]) = what {
        return Err(Error::usage(
            "keel run: no command given",
            "name one after --, e.g. keel run -- python manage.py showmigrations",
        ));
    }
    let cfg = inv.config()?;
    let mut o = CtxOptions::new(inv, "run");
    o.quiet = true;
    let ctx = build_ctx(cfg, o);
    let release = current_release(&ctx)?;
    let (argv, env_file) = match what {
        What::Command(argv) => (argv.to_vec(), None),
        What::Shell(args) => (words(&["python", "manage.py", "shell"], args), None),
        What::DbShell(args) => (words(&["psql"], args), Some(db_env(&ctx)?)),
    };
    let cmd = command(&ctx, &release, &argv, env_file.as_ref().map(|f| f.path()));
    let code = ctx.exec.attached(LOG, &cmd);
    // The password file goes as soon as the command ends (systemd read it at the start).
    drop(env_file);
    code.map_err(|e| {
        Error::Other(anyhow::anyhow!(
            "{e} (is systemd-run there? see /var/log/keel/steps/run.log)"
        ))
    })
}

fn words(w: &[&str], more: &[String]) -> Vec<String> {
    w.iter()
        .map(|s| s.to_string())
        .chain(more.iter().cloned())
        .collect()
}

/// The release `current` points at, as the units see it; refused (exit 2) before the app
/// was installed.
fn current_release(ctx: &Ctx) -> Result<PathBuf> {
    let base = ctx.cfg.base_dir();
    match crate::release::current_on_disk(&ctx.host(&base.display().to_string())) {
        Some(id) => Ok(crate::release::dir(&base, &id)),
        None => Err(Error::usage(
            format!("{}: no current release", base.join("current").display()),
            "install the app first: keel install",
        )),
    }
}

/// The command as the units run: the app's user and group, the release as working
/// directory, its `.env` (or the database's login for psql), its venv's programs first, and
/// the units' sandbox: only uploads are writable.
fn command(ctx: &Ctx, release: &Path, argv: &[String], env_file: Option<&Path>) -> Cmd {
    let user = ctx.cfg.app_user();
    let venv_bin = release.join("venv/bin");
    // systemd looks a bare name up in its own fixed path, not the unit's PATH: `python` and
    // `celery` would miss the venv. A name the venv has is given by its path.
    let program = crate::app::venv_program(ctx, &venv_bin, &argv[0]);
    let sandbox = Sandbox {
        unit: crate::exec::transient_unit(&user),
        group: user.clone(),
        env_file: Some(match env_file {
            Some(f) => f.to_path_buf(),
            None => ctx.host(&ctx.cfg.env_file().display().to_string()),
        }),
        read_write: vec![ctx.host(&ctx.cfg.shared_dir().join("media").display().to_string())],
        jit: false,
    };
    Cmd::new(&program)
        .args(argv[1..].iter().cloned())
        .user(&user)
        .dir(ctx.host(&release.display().to_string()))
        .env("HOME", &ctx.cfg.base_dir().display().to_string())
        .env(
            "PATH",
            &format!("{}:/usr/local/bin:/usr/bin:/bin", venv_bin.display()),
        )
        .env("VIRTUAL_ENV", &release.join("venv").display().to_string())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // The sandbox's /tmp is private and goes with the command.
        .env("PSQL_HISTORY", "/tmp/.psql_history")
        .sandbox(sandbox)
}

/// psql's login as the app's role, in an environment file only root reads (systemd reads
/// it before the command starts): the password is never on a command line, and is in the
/// environment of the app's own process only. Removed when the returned value is dropped.
fn db_env(ctx: &Ctx) -> Result<tempfile::NamedTempFile> {
    let password = ctx.secrets.get("postgres_password").ok_or_else(|| {
        Error::usage(
            "the app's database password is not among keel's secrets",
            "install the app first: keel install",
        )
    })?;
    let dir = ctx.paths.host("/run/keel");
    crate::paths::private_dir(&dir);
    let mut f = tempfile::Builder::new()
        .prefix("dbshell-")
        .suffix(".env")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    // A host of several reaches the database by its URL, with TLS checked as the app's
    // .env has it.
    let (host, port) = ctx.cfg.db_endpoint();
    let tls = ctx
        .cfg
        .db_tls()
        .map(|(mode, ca)| format!("PGSSLMODE={mode}\nPGSSLROOTCERT={ca}\n"))
        .unwrap_or_default();
    let text = format!(
        "PGHOST={host}\nPGPORT={port}\nPGUSER={}\nPGDATABASE={}\nPGPASSWORD={password}\n{tls}",
        ctx.cfg.db_user(),
        ctx.cfg.db_name()
    );
    use std::io::Write;
    f.write_all(text.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| Error::io(f.path(), e))?;
    Ok(f)
}
