use crate::exec::Cmd;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;
use std::path::{Path, PathBuf};

pub struct AppCode;
const ID: &str = "app-code";
/// The files app-code deployed from a local source, one relative path per line.
fn manifest(ctx: &Ctx) -> PathBuf {
    ctx.host(&format!("/var/lib/keel/{}-files", ctx.cfg.app.name))
}
/// Never copied from a local source: VCS data, caches, virtualenvs, local secrets.
const SKIP: &[&str] = &[
    ".git",
    "__pycache__",
    ".venv",
    "venv",
    "node_modules",
    ".env",
    "staticfiles",
    ".mypy_cache",
    ".pytest_cache",
    ".tox",
];

/// Files of a source tree (relative paths, sorted), skipping SKIP and *.pyc.
pub fn walk(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(root.join(&rel))? {
            let e = e?;
            let name = e.file_name();
            let n = name.to_string_lossy();
            if SKIP.contains(&n.as_ref()) || n.ends_with(".pyc") {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push(rel.join(&name));
            } else if ft.is_file() {
                out.push(rel.join(&name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Hash of the app source (local tree contents, or git URL + ref), once per run.
pub fn tree_hash(ctx: &Ctx) -> String {
    ctx.app_tree
        .get_or_init(|| match (ctx.cfg.app_source(), &ctx.cfg.django.git) {
            (Some(src), _) => {
                let files = walk(&src).unwrap_or_default();
                let mut parts = vec![];
                for f in &files {
                    parts.push(f.display().to_string());
                    // Never through a link: the source may be a directory others can write.
                    let bytes = crate::fsx::read_nofollow(&src.join(f), MAX_APP_FILE)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    parts.push(String::from_utf8_lossy(&bytes).into_owned());
                }
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                crate::step::hash(&refs)
            }
            (None, Some(url)) => format!("git {url} {}", ctx.cfg.django.git_ref),
            (None, None) => "no source".into(),
        })
        .clone()
}

/// A file of the app, read from the source when it is local (so plans see changes before
/// they are deployed), else from the deployed copy.
pub fn app_file(ctx: &Ctx, rel: &str) -> Option<String> {
    match ctx.cfg.app_source() {
        Some(src) => crate::fsx::read_text_nofollow(&src.join(rel), crate::fsx::MAX_INPUT)
            .ok()
            .flatten(),
        None => crate::fsx::read_text_nofollow(
            &ctx.host(&ctx.cfg.app_dir().display().to_string()).join(rel),
            crate::fsx::MAX_INPUT,
        )
        .ok()
        .flatten(),
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

/// The largest single file keel copies from an app source.
const MAX_APP_FILE: u64 = 256 << 20;

/// The only directories of the app tree the app's user may write.
pub const APP_WRITES: &[&str] = &["staticfiles", "media"];

fn copy_source(ctx: &Ctx, tx: &mut Txn, src: &Path, dest: &Path) -> StepResult {
    if !src.is_dir() {
        return Err(StepError::permanent(
            format!("app source {} is not a directory", src.display()),
            format!(
                "fix django.source in {} (relative paths are relative to that file)",
                ctx.cfg.source.display()
            ),
        ));
    }
    let files = walk(src)?;
    // Files keel deployed last time and the source no longer has go too (a deleted module or
    // template must not live on); anything else under the app directory (.env, staticfiles,
    // uploads) is not keel's to remove.
    let manifest = manifest(ctx);
    let listed = std::fs::read_to_string(&manifest).unwrap_or_default();
    for gone in listed.lines().filter(|l| !l.is_empty()).map(Path::new) {
        // `walk` sorts its list: a binary search keeps large apps linear-ish.
        if files.binary_search_by(|f| f.as_path().cmp(gone)).is_ok() {
            continue;
        }
        // Only plain relative paths: the manifest is keel's, but be strict anyway.
        if gone.is_absolute() || gone.components().any(|c| c.as_os_str() == "..") {
            continue;
        }
        tx.remove(&dest.join(gone))?;
    }
    for rel in &files {
        if APP_WRITES.iter().any(|w| rel.starts_with(w)) {
            // The app's own directories are its to fill; keel never writes into them.
            continue;
        }
        let from = src.join(rel);
        let to = dest.join(rel);
        if let Some(parent) = to.parent() {
            tx.ensure_dir(parent)?;
        }
        // The source's files are read without following links: a link planted in a source
        // directory that someone else can write must not copy /etc/shadow into the app.
        let missing =
            || StepError::permanent(format!("{} vanished while deployed", from.display()), "");
        let bytes = crate::fsx::read_nofollow(&from, MAX_APP_FILE)
            .map_err(|e| {
                StepError::permanent(
                    format!("{}: {e}", from.display()),
                    "a file of the app source must be a regular file (no links)",
                )
            })?
            .ok_or_else(missing)?;
        let exec = crate::fsx::lstat(&from)?.ok_or_else(missing)?.st_mode & 0o111 != 0;
        tx.write(&to, &bytes, if exec { 0o755 } else { 0o644 }, Some((0, 0)))?;
    }
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    tx.write(&manifest, list.as_bytes(), 0o600, None)?;
    Ok(())
}

/// A git checkout made by root in root's directory: git never runs in a repository another
/// user controls (its hooks and config would run as root), and every option comes before
/// `--`, so a URL or ref can never be read as an option.
fn fetch_git(ctx: &Ctx, tx: &mut Txn, url: &str, dest: &Path) -> StepResult {
    let d = ctx.cfg.app_dir().display().to_string();
    let git = |args: &[&str]| {
        Cmd::new("git")
            .args([
                "-c",
                "protocol.ext.allow=never",
                "-c",
                "core.hooksPath=/dev/null",
            ])
            .args(args.iter().copied())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", "/root")
    };
    if !matches!(crate::fsx::lstat(&dest.join(".git")), Ok(Some(_))) {
        tx.ensure_dir(dest)?;
        ctx.run(ID, &git(&["init", "-q", "--", &d]))?;
        ctx.run(ID, &git(&["-C", &d, "remote", "add", "--", "origin", url]))?;
    }
    ctx.run(
        ID,
        &git(&["-C", &d, "remote", "set-url", "--", "origin", url]),
    )?;
    ctx.run(
        ID,
        &git(&[
            "-C",
            &d,
            "fetch",
            "-q",
            "--depth",
            "1",
            "--",
            "origin",
            &ctx.cfg.django.git_ref,
        ]),
    )
    .map_err(|e| {
        e.hint("check django.git / django.git_ref, and that this host can reach the repository")
    })?;
    ctx.run(
        ID,
        &git(&["-C", &d, "checkout", "-q", "-f", "FETCH_HEAD", "--"]),
    )?;
    Ok(())
}

impl Step for AppCode {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        // python-packages installs git for a git source (a few seconds; python-env waits for
        // it anyway).
        &[
            &super::system_user::SystemUser,
            &super::packages::Apt::PYTHON,
        ]
    }
    fn about(&self) -> &'static str {
        "put the app's code under the base directory"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("app tree", super::app_code::tree_hash(ctx))
            .value("app_dir", ctx.cfg.app_dir().display())
            // The layout: code root's, staticfiles/media the app's (older keels differ).
            .value("layout", "root-owned")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let app_ids = app_user_ids(ctx)?;
        let dest = ctx.host(&ctx.cfg.app_dir().display().to_string());
        // The code is root's: the app runs it but cannot change it. A tree an older keel
        // gave to the app user is taken back entry by entry (no link followed), except the
        // directories the app writes.
        if let Some((uid, _)) = crate::fsx::owner_of(&dest)? {
            let n = if uid != 0 {
                crate::fsx::reown_tree(&dest, 0, 0, APP_WRITES)?
            } else {
                0
            };
            if n > 0 {
                ctx.ui.step_note(
                    ID,
                    &format!("{n} entries of the code taken back from the app user"),
                );
            }
        }
        tx.ensure_dir_owned(&dest, 0o755, Some((0, 0)))
            .map_err(crate::step::io_err(&dest))?;
        match (ctx.cfg.app_source(), &ctx.cfg.django.git) {
            (Some(src), _) => copy_source(ctx, tx, &src, &dest)?,
            (None, Some(url)) => fetch_git(ctx, tx, url, &dest)?,
            (None, None) => {
                return Err(StepError::permanent(
                    "no app source configured",
                    "set django.source (a directory) or django.git in keel.toml",
                ));
            }
        }
        // What the app may write: static files (collectstatic, at build time) and uploads.
        for d in APP_WRITES {
            let p = dest.join(d);
            tx.ensure_dir_owned(&p, 0o755, Some(app_ids))
                .map_err(crate::step::io_err(&p))?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        let dest = ctx.host(&ctx.cfg.app_dir().display().to_string());
        for f in ["manage.py", "requirements.txt"] {
            if !dest.join(f).is_file() {
                return Err(StepError::permanent(
                    format!("{} has no {f}", dest.display()),
                    "the app source must be a Django project with manage.py and requirements.txt at its top",
                ));
            }
        }
        Ok(())
    }
    // Undo keeps the app directory: it is data.
}
