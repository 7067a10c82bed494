//! the app's build: commands in a scratch copy of the release as the build user (npm, compilemessages, the admin's own), and the release commands. A floor below the steps: the build step and deploys use it.
use crate::app::build_user_ids;
use crate::exec::{Cmd, Sandbox};
use crate::step::{Ctx, StepError, StepResult, io_err};
use crate::txn::Txn;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Written into a release once its release commands succeeded: they run once per release.
pub(crate) const RELEASED: &str = ".keel-released";
/// Links a release has to what releases share; the scratch copy gets the same ones.
pub(crate) const LINKS: &[&str] = &[".env", "media", "venv"];

/// One build command: where it came from, and the shell line.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildCmd {
    pub what: &'static str,
    pub line: String,
}

/// The build commands for a tree, in order: Node, compilemessages, then the config's.
pub fn commands(
    cfg: &crate::config::Config,
    read: &dyn Fn(&str) -> Option<String>,
    files: &[PathBuf],
) -> Vec<BuildCmd> {
    let mut out = vec![];
    if cfg.build.node == "auto" && crate::project::node_build(read) {
        out.push(BuildCmd {
            what: "package.json",
            line: "npm run build".into(),
        });
    }
    if cfg.build.compilemessages == "auto" && crate::project::has_messages(files) {
        out.push(BuildCmd {
            what: "locale/",
            line: "python manage.py compilemessages --ignore=node_modules --ignore=venv".into(),
        });
    }
    out.extend(cfg.build.commands.iter().map(|l| BuildCmd {
        what: "build.commands",
        line: l.clone(),
    }));
    out
}

pub(crate) fn release_commands_of(ctx: &Ctx, release_host: &Path) -> Vec<BuildCmd> {
    let read = crate::tree::reader(release_host);
    let files = crate::project::walk(release_host).unwrap_or_default();
    commands(&ctx.cfg, &read, &files)
}

/// PATH for the app's and the build's commands: the release's venv first.
pub(crate) fn path_in(dir: &Path) -> String {
    format!("{}/venv/bin:/usr/local/bin:/usr/bin:/bin", dir.display())
}

/// A shell line as the build user, in `dir`, sandboxed as the app's units are, with the
/// app's .env (the build user already shapes the code the app runs: it gains nothing), able
/// to write only `writable`.
pub(crate) fn as_builder(ctx: &Ctx, dir: &Path, line: &str, writable: Vec<PathBuf>) -> Cmd {
    let user = ctx.cfg.build_user();
    let home = home_dir(ctx);
    let host = |p: PathBuf| ctx.host(&p.display().to_string());
    let mut rw: Vec<PathBuf> = writable.into_iter().map(host).collect();
    rw.push(host(home.clone()));
    Cmd::new("sh")
        .args(["-c", line])
        .user(&user)
        .dir(ctx.host(&dir.display().to_string()))
        .env("HOME", &home.display().to_string())
        .env("PATH", &path_in(dir))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NODE_ENV", "production")
        .nice(10)
        .timeout(Duration::from_secs(ctx.cfg.timeouts.apt_secs))
        .sandbox(Sandbox {
            unit: crate::exec::transient_unit(&user),
            group: user,
            env_file: Some(host(ctx.cfg.env_file())),
            read_write: rw,
            jit: true,
        })
}

/// The build user's HOME for builds (npm's cache lives there): under the venvs, its own.
pub(crate) fn home_dir(ctx: &Ctx) -> PathBuf {
    crate::release::venvs_dir(&ctx.cfg.base_dir()).join(".home")
}

/// Directories of `rel` under `top`, made as `owner` where missing.
pub(crate) fn mkdirs(top: &Path, rel: &Path, owner: (u32, u32)) -> StepResult {
    let mut d = top.to_path_buf();
    for c in rel.components() {
        d.push(c);
        crate::fsx::mkdir(&d, 0o755, Some(owner)).map_err(io_err(&d))?;
    }
    Ok(())
}

/// The release's files, copied into a new scratch directory of the build user's.
pub(crate) fn scratch_copy(release: &Path, scratch: &Path, owner: (u32, u32)) -> StepResult {
    if crate::fsx::lstat(scratch)?.is_some() {
        // A killed build's leftover: derived data (remove_dir_all never follows a link).
        std::fs::remove_dir_all(scratch).map_err(io_err(scratch))?;
    }
    crate::fsx::mkdir(scratch, 0o755, Some(owner)).map_err(io_err(scratch))?;
    for rel in crate::project::walk(release)? {
        let from = release.join(&rel);
        let Some(bytes) = crate::fsx::read_nofollow(&from, crate::app::code::MAX_APP_FILE)? else {
            continue;
        };
        if let Some(parent) = rel.parent() {
            mkdirs(scratch, parent, owner)?;
        }
        let exec = crate::fsx::lstat(&from)?.is_some_and(|st| st.st_mode & 0o111 != 0);
        let to = scratch.join(&rel);
        crate::fsx::write_atomic(&to, &bytes, if exec { 0o755 } else { 0o644 }, Some(owner))
            .map_err(io_err(&to))?;
    }
    for l in LINKS {
        if let Ok(t) = std::fs::read_link(release.join(l)) {
            let at = scratch.join(l);
            std::os::unix::fs::symlink(&t, &at).map_err(io_err(&at))?;
        }
    }
    Ok(())
}

/// What the build made or changed, copied back into the release as root's files (the
/// scratch tree is the build user's). Returns how many files changed.
pub(crate) fn copy_back(tx: &mut Txn, scratch: &Path, release: &Path) -> StepResult<usize> {
    let copied = crate::app::code::copy_root_owned(
        tx,
        scratch,
        release,
        "a build may make regular files only (no links)",
        false,
    )?;
    Ok(copied.iter().filter(|c| c.changed).count())
}

/// node_modules for a package lock, made once by `npm ci` in a directory of its own under
/// the venvs (keyed by the lock's hash, as venvs are), then hard-linked into the scratch.
pub(crate) fn node_modules(
    ctx: &Ctx,
    scratch_host: &Path,
    scratch: &Path,
    log: &str,
) -> StepResult<String> {
    let owner = build_user_ids(ctx)?;
    let read = |f: &str| {
        crate::fsx::read_nofollow(&scratch_host.join(f), 64 << 20)
            .ok()
            .flatten()
    };
    let (pkg, lock) = (
        read("package.json").unwrap_or_default(),
        read("package-lock.json"),
    );
    let key = crate::step::hash(&[
        "node",
        &String::from_utf8_lossy(&pkg),
        &String::from_utf8_lossy(lock.as_deref().unwrap_or_default()),
    ])[..16]
        .to_string();
    let venvs = crate::release::venvs_dir(&ctx.cfg.base_dir());
    let cache = venvs.join(format!("node-{key}"));
    let cache_host = ctx.host(&cache.display().to_string());
    let done = cache_host.join(".keel-complete");
    if crate::fsx::lstat(&done)?.is_none() {
        if crate::fsx::lstat(&cache_host)?.is_some() {
            std::fs::remove_dir_all(&cache_host).map_err(io_err(&cache_host))?;
        }
        crate::fsx::mkdir(&cache_host, 0o755, Some(owner)).map_err(io_err(&cache_host))?;
        crate::fsx::write_atomic(&cache_host.join("package.json"), &pkg, 0o644, Some(owner))?;
        let install = match &lock {
            Some(l) => {
                crate::fsx::write_atomic(
                    &cache_host.join("package-lock.json"),
                    l,
                    0o644,
                    Some(owner),
                )?;
                "npm ci --no-audit --no-fund --include=dev"
            }
            None => "npm install --no-audit --no-fund --include=dev",
        };
        ctx.ui
            .step_note(log, &format!("{install} (node_modules {key})"));
        ctx.run(log, &as_builder(ctx, &cache, install, vec![cache.clone()]))
            .map_err(|e| e.hint("npm could not install the app's Node packages: see /var/log/keel/steps/build.log"))?;
        crate::fsx::write_atomic(&done, b"", 0o644, Some(owner))?;
    } else {
        ctx.ui.step_note(
            log,
            &format!("package lock unchanged: node_modules {key} reused"),
        );
    }
    let nm = cache.join("node_modules");
    if crate::fsx::lstat(&ctx.host(&nm.display().to_string()))?.is_some() {
        let line = format!("cp -al -- '{}' node_modules", nm.display());
        ctx.run(
            log,
            &as_builder(ctx, scratch, &line, vec![scratch.to_path_buf()]),
        )?;
    }
    Ok(format!("node-{key}"))
}

/// Run the build of release `release` (a path as the services see it): nothing when the app
/// has no build command.
pub fn run_build(ctx: &Ctx, tx: &mut Txn, release: &Path, log: &str) -> StepResult {
    let release_host = ctx.host(&release.display().to_string());
    let cmds = release_commands_of(ctx, &release_host);
    if cmds.is_empty() {
        return Ok(());
    }
    let owner = build_user_ids(ctx)?;
    let venvs = crate::release::venvs_dir(&ctx.cfg.base_dir());
    let home = ctx.host(&home_dir(ctx).display().to_string());
    let venvs_host = ctx.host(&venvs.display().to_string());
    tx.ensure_dir_owned(&venvs_host, 0o755, Some(owner))
        .map_err(io_err(&venvs_host))?;
    crate::fsx::mkdir(&home, 0o700, Some(owner)).map_err(io_err(&home))?;
    let id = release
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let scratch = venvs.join(format!(".build-{id}"));
    let scratch_host = ctx.host(&scratch.display().to_string());
    scratch_copy(&release_host, &scratch_host, owner)?;
    let result = (|| -> StepResult<usize> {
        for c in &cmds {
            if c.what == "package.json" {
                // The release links to its cache, so pruning keeps it while the release stays.
                let cache = node_modules(ctx, &scratch_host, &scratch, log)?;
                let link = release_host.join(crate::release::NODE_LINK);
                tx.symlink(&Path::new("../../venvs").join(cache), &link)?;
            }
            ctx.ui
                .line(&format!("[{log}] build: {} ({})", c.line, c.what));
            ctx.run(
                log,
                &as_builder(ctx, &scratch, &c.line, vec![scratch.clone()]),
            )
            .map_err(|e| {
                StepError::permanent(
                    format!(
                        "the build command {:?} ({}) failed: {}",
                        c.line, c.what, e.msg
                    ),
                    "see /var/log/keel/steps/build.log; the release is not switched to",
                )
            })?;
        }
        copy_back(tx, &scratch_host, &release_host)
    })();
    // The scratch copy goes whatever happened (a failed build's output is in the log).
    let _ = std::fs::remove_dir_all(&scratch_host);
    let n = result?;
    ctx.ui
        .line(&format!("[{log}] build: {n} file(s) made or changed"));
    Ok(())
}

/// The release commands of release `release`, as the app, after migrate: once per release
/// (a retried step or a resumed run does not repeat them).
pub fn run_release_commands(ctx: &Ctx, release: &Path, log: &str) -> StepResult {
    if ctx.cfg.release.commands.is_empty() {
        return Ok(());
    }
    let mark = ctx.host(&release.join(RELEASED).display().to_string());
    if crate::fsx::lstat(&mark)?.is_some() {
        ctx.ui.line(&format!(
            "[{log}] release commands ran for this release already"
        ));
        return Ok(());
    }
    let py = release.join("venv/bin/python").display().to_string();
    for line in &ctx.cfg.release.commands {
        ctx.ui.line(&format!("[{log}] release: {line}"));
        let cmd = crate::app::as_app_in(ctx, release, "sh")
            .args(["-c", line])
            .env("PATH", &path_in(release))
            .env("PYTHON", &py)
            .timeout(Duration::from_secs(ctx.cfg.timeouts.command_secs));
        ctx.run(log, &cmd).map_err(|e| {
            StepError::permanent(
                format!("the release command {line:?} failed: {}", e.msg),
                format!("see /var/log/keel/steps/{log}.log; fix release.commands or the app"),
            )
        })?;
    }
    crate::fsx::write_atomic(&mark, b"", 0o644, Some((0, 0))).map_err(io_err(&mark))?;
    Ok(())
}
