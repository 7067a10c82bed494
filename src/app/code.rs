//! the app's code as releases: sources (a directory or git), the release tree and its layout, copies that keep root's ownership. A floor below the steps: the app-code step and deploys use it.
use crate::app::{app_user_ids, live_dir};
use crate::exec::Cmd;
use crate::state::{Release, ReleaseStatus};
use crate::step::{Ctx, StepError, StepResult};
use crate::txn::Txn;
use std::path::{Path, PathBuf};

/// Release ids present on disk.
pub fn existing_ids(base: &Path) -> Vec<String> {
    std::fs::read_dir(crate::release::releases_dir(base))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub use crate::project::walk;

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
            &ctx.host(&live_dir(ctx).display().to_string()).join(rel),
            crate::fsx::MAX_INPUT,
        )
        .ok()
        .flatten(),
    }
}

/// The largest single file keel copies from an app source.
pub const MAX_APP_FILE: u64 = 256 << 20;

/// The only directories of a release the app's user may write (media is a link to shared/).
pub const APP_WRITES: &[&str] = &["staticfiles", "media"];

/// Where a release's code comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Dir(PathBuf),
    Git { url: String, git_ref: String },
}

impl Source {
    /// The config's source.
    pub fn configured(cfg: &crate::config::Config) -> Option<Source> {
        match (cfg.app_source(), &cfg.django.git) {
            (Some(src), _) => Some(Source::Dir(src)),
            (None, Some(url)) => Some(Source::Git {
                url: url.clone(),
                git_ref: cfg.django.git_ref.clone(),
            }),
            (None, None) => None,
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Source::Dir(d) => d.display().to_string(),
            Source::Git { url, git_ref } => format!("{url} {git_ref}"),
        }
    }
}

pub(crate) fn copy_source(ctx: &Ctx, tx: &mut Txn, src: &Path, dest: &Path) -> StepResult<String> {
    if !src.is_dir() {
        return Err(StepError::permanent(
            format!("app source {} is not a directory", src.display()),
            format!(
                "fix django.source in {} (relative paths are relative to that file)",
                ctx.cfg.source.display()
            ),
        ));
    }
    let copied = copy_root_owned(
        tx,
        src,
        dest,
        "a file of the app source must be a regular file (no links)",
        true,
    )?;
    let mut parts = vec![];
    for c in &copied {
        parts.push(c.rel.display().to_string());
        parts.push(c.sha256.clone());
    }
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(crate::step::hash(&refs)[..12].to_string())
}

/// One file `copy_root_owned` copied: its path, its content's hash, whether it changed.
pub struct Copied {
    pub rel: PathBuf,
    pub sha256: String,
    pub changed: bool,
}

/// The regular files of `from` (a tree someone else may write: the app's source, a build's
/// scratch copy) copied under `to` as root's, journaled in `tx`: read without following a
/// link anywhere (a link planted there must not copy /etc/shadow into the app), the app's
/// own directories (APP_WRITES) left out. `regular` is the hint when an entry is not a
/// regular file; a file that vanishes meanwhile is an error when `vanished_is_error`, else
/// left out.
pub fn copy_root_owned(
    tx: &mut Txn,
    from: &Path,
    to: &Path,
    regular: &str,
    vanished_is_error: bool,
) -> StepResult<Vec<Copied>> {
    let mut out = vec![];
    for rel in walk(from)? {
        if APP_WRITES.iter().any(|w| rel.starts_with(w)) {
            // The app's own directories are its to fill; keel never writes into them.
            continue;
        }
        let src = from.join(&rel);
        let missing =
            || StepError::permanent(format!("{} vanished while copied", src.display()), "");
        let read = crate::fsx::read_nofollow(&src, MAX_APP_FILE)
            .map_err(|e| StepError::permanent(format!("{}: {e}", src.display()), regular))?;
        let st = crate::fsx::lstat(&src)?;
        let (bytes, st) = match (read, st) {
            (Some(b), Some(st)) => (b, st),
            _ if vanished_is_error => return Err(missing()),
            _ => continue,
        };
        let dest = to.join(&rel);
        if let Some(parent) = dest.parent() {
            tx.ensure_dir(parent)?;
        }
        let mode = if st.st_mode & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        let changed = tx.write(&dest, &bytes, mode, Some((0, 0)))?;
        out.push(Copied {
            sha256: crate::step::sha256_hex(&bytes),
            rel,
            changed,
        });
    }
    Ok(out)
}

/// git as root runs it (the deploy path and `keel init` alike): no `ext::` transport (it
/// runs a command), no hooks, no system config, no prompt, root's own HOME.
pub fn git(args: &[&str]) -> Cmd {
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
}

/// A git checkout made by root in root's directory: git never runs in a repository another
/// user controls (its hooks and config would run as root), and every option comes before
/// `--`, so a URL or ref can never be read as an option. Returns the commit.
pub(crate) fn fetch_git(
    ctx: &Ctx,
    url: &str,
    git_ref: &str,
    dest: &Path,
    log: &str,
) -> StepResult<String> {
    let d = dest.display().to_string();
    ctx.run(log, &git(&["init", "-q", "--", &d]))?;
    ctx.run(log, &git(&["-C", &d, "remote", "add", "--", "origin", url]))?;
    ctx.run(
        log,
        &git(&[
            "-C", &d, "fetch", "-q", "--depth", "1", "--", "origin", git_ref,
        ]),
    )
    .map_err(|e| {
        e.hint("check django.git / django.git_ref (or --ref), and that this host can reach the repository")
    })?;
    ctx.run(
        log,
        &git(&["-C", &d, "checkout", "-q", "-f", "FETCH_HEAD", "--"]),
    )?;
    let out = ctx.run(log, &git(&["-C", &d, "rev-parse", "HEAD"]))?;
    Ok(out.stdout.trim().chars().take(12).collect())
}

/// Build release `id` from `source` under <base>/releases: the code (root's), the links to
/// what releases share, and staticfiles for collectstatic. The venv is python-env's.
pub fn build(
    ctx: &Ctx,
    tx: &mut Txn,
    source: &Source,
    id: &str,
    by: &str,
    log: &str,
) -> StepResult<Release> {
    let app_ids = app_user_ids(ctx)?;
    let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
    layout(ctx, tx, &base, app_ids, log)?;
    let dest = crate::release::dir(&base, id);
    tx.ensure_dir_owned(&dest, 0o755, Some((0, 0)))
        .map_err(crate::step::io_err(&dest))?;
    let revision = match source {
        Source::Dir(src) => copy_source(ctx, tx, src, &dest)?,
        Source::Git { url, git_ref } => fetch_git(ctx, url, git_ref, &dest, log)?,
    };
    let static_dir = dest.join("staticfiles");
    tx.ensure_dir_owned(&static_dir, 0o755, Some(app_ids))
        .map_err(crate::step::io_err(&static_dir))?;
    // Settings that read BASE_DIR/.env (manage.py runs) and MEDIA_ROOT find the shared ones.
    for (name, target) in [
        (".env", "../../shared/.env"),
        ("media", "../../shared/media"),
    ] {
        let link = dest.join(name);
        if crate::fsx::lstat(&link)?.is_some() {
            // The source shipped its own (a media/ directory of fixtures): leave it.
            continue;
        }
        tx.symlink(Path::new(target), &link)?;
    }
    Ok(Release {
        id: id.into(),
        source: source.describe(),
        revision,
        created_at: crate::paths::now(),
        status: ReleaseStatus::Building,
        by: by.into(),
        error: None,
    })
}

/// The directories every release shares, and the move from keel's older layout (code in
/// <base>/app, the venv in <base>/venv): its .env and uploads go to shared/.
pub(crate) fn layout(
    ctx: &Ctx,
    tx: &mut Txn,
    base: &Path,
    app_ids: (u32, u32),
    log: &str,
) -> StepResult {
    let shared = base.join("shared");
    for (d, owner) in [
        (base.to_path_buf(), (0, 0)),
        (crate::release::releases_dir(base), (0, 0)),
        (shared.clone(), (0, 0)),
        (shared.join("media"), app_ids),
    ] {
        tx.ensure_dir_owned(&d, 0o755, Some(owner))
            .map_err(crate::step::io_err(&d))?;
    }
    let old = base.join("app");
    let (from, to) = (old.join(".env"), shared.join(".env"));
    let is_file = |p: &Path| matches!(crate::fsx::lstat(p), Ok(Some(st)) if crate::fsx::kind(&st) == rustix::fs::FileType::RegularFile);
    if is_file(&from) && !is_file(&to) {
        std::fs::rename(&from, &to).map_err(crate::step::io_err(&from))?;
        ctx.ui.step_note(
            log,
            &format!("moved {} to {}", from.display(), to.display()),
        );
    }
    let old_media = old.join("media");
    if matches!(crate::fsx::owner_of(&old_media), Ok(Some(o)) if o == app_ids) {
        // Uploads of the old layout: moved once, into an empty shared/media.
        let new_media = shared.join("media");
        if std::fs::read_dir(&new_media)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false)
        {
            std::fs::remove_dir(&new_media).map_err(crate::step::io_err(&new_media))?;
            std::fs::rename(&old_media, &new_media).map_err(crate::step::io_err(&old_media))?;
            ctx.ui.step_note(
                log,
                &format!(
                    "moved the uploads in {} to {}",
                    old_media.display(),
                    new_media.display()
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod git_tests {
    /// Root's git, for deploys and `keel init` alike: no `ext::` transport, no hooks, no
    /// system config, root's HOME.
    #[test]
    fn roots_git_is_fenced() {
        let c = super::git(&["clone", "--", "u", "d"]);
        assert_eq!(
            c.args[..4],
            [
                "-c",
                "protocol.ext.allow=never",
                "-c",
                "core.hooksPath=/dev/null"
            ]
        );
        for (k, v) in [
            ("GIT_CONFIG_NOSYSTEM", "1"),
            ("HOME", "/root"),
            ("GIT_TERMINAL_PROMPT", "0"),
        ] {
            assert!(c.env.iter().any(|(a, b)| a == k && b == v), "{k}");
        }
    }
}
