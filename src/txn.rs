//! A step's transaction, after rustup's: every file change is journaled (with a backup of
//! what was there) and undone in reverse order if the step fails. Units whose config was
//! touched are restarted/reloaded again once the files are back, so services run their old
//! configuration.
use crate::exec::Cmd;
use crate::graph::Ctx;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
struct Backup {
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

#[derive(Debug, Clone)]
enum Change {
    /// File created (none before) or replaced (backup of the old one).
    Wrote(PathBuf, Option<Backup>),
    /// Symlink created (none before) or replaced (old target).
    Linked(PathBuf, Option<PathBuf>),
    Removed(PathBuf, Backup),
    RemovedLink(PathBuf, PathBuf),
    DirCreated(PathBuf),
    /// Run on rollback (e.g. stop a unit this step started).
    Undo(Cmd),
    /// After files are restored: `systemctl <action> <unit>` (reload/restart).
    Reapply(&'static str, String),
}

#[derive(Default)]
pub struct Txn {
    journal: Vec<Change>,
}

fn backup_of(path: &Path) -> Option<Backup> {
    let md = std::fs::symlink_metadata(path).ok()?;
    if !md.is_file() {
        return None;
    }
    Some(Backup {
        bytes: std::fs::read(path).ok()?,
        mode: md.mode() & 0o7777,
        uid: md.uid(),
        gid: md.gid(),
    })
}

fn restore(path: &Path, b: &Backup) -> std::io::Result<()> {
    write_atomic(path, &b.bytes, b.mode, Some((b.uid, b.gid)))
}

/// Write through a temp file in the same directory, with mode and owner set before the
/// rename, so no reader ever sees a partial file or a secret with loose permissions.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".keel.").tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    if let Some((u, g)) = owner {
        std::os::unix::fs::chown(tmp.path(), Some(u), Some(g))?;
    }
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Txn {
    pub fn new() -> Txn {
        Txn::default()
    }

    pub fn is_empty(&self) -> bool {
        self.journal.is_empty()
    }

    /// Write `bytes` to `path` unless it already holds exactly that (with that mode/owner).
    /// Returns whether anything changed.
    pub fn write(
        &mut self,
        path: &Path,
        bytes: &[u8],
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<bool> {
        let old = backup_of(path);
        if let Some(b) = &old {
            let same_owner = owner.is_none_or(|(u, g)| (b.uid, b.gid) == (u, g));
            if b.bytes == bytes && b.mode == mode && same_owner {
                return Ok(false);
            }
        }
        self.ensure_dir(path.parent().unwrap_or(Path::new("/")))?;
        write_atomic(path, bytes, mode, owner)?;
        self.journal.push(Change::Wrote(path.to_path_buf(), old));
        Ok(true)
    }

    pub fn remove(&mut self, path: &Path) -> std::io::Result<bool> {
        let Ok(md) = std::fs::symlink_metadata(path) else {
            return Ok(false);
        };
        if md.file_type().is_symlink() {
            let target = std::fs::read_link(path)?;
            std::fs::remove_file(path)?;
            self.journal
                .push(Change::RemovedLink(path.to_path_buf(), target));
            return Ok(true);
        }
        let b = backup_of(path).ok_or_else(|| {
            std::io::Error::other(format!("{} is not a regular file", path.display()))
        })?;
        std::fs::remove_file(path)?;
        self.journal.push(Change::Removed(path.to_path_buf(), b));
        Ok(true)
    }

    pub fn symlink(&mut self, target: &Path, link: &Path) -> std::io::Result<bool> {
        let old = std::fs::read_link(link).ok();
        if old.as_deref() == Some(target) {
            return Ok(false);
        }
        if std::fs::symlink_metadata(link).is_ok() {
            if old.is_none() {
                return Err(std::io::Error::other(format!(
                    "{} exists and is not a symlink",
                    link.display()
                )));
            }
            std::fs::remove_file(link)?;
        }
        std::os::unix::fs::symlink(target, link)?;
        self.journal.push(Change::Linked(link.to_path_buf(), old));
        Ok(true)
    }

    /// Create missing directories (0755), journaling each one created.
    pub fn ensure_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        let mut missing = vec![];
        let mut d = dir;
        while !d.exists() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        for m in missing.into_iter().rev() {
            std::fs::create_dir(&m)?;
            self.journal.push(Change::DirCreated(m));
        }
        Ok(())
    }

    pub fn on_rollback(&mut self, cmd: Cmd) {
        self.journal.push(Change::Undo(cmd));
    }

    pub fn reapply(&mut self, action: &'static str, unit: &str) {
        let c = Change::Reapply(action, unit.to_string());
        if !self.journal.iter().any(|x| matches!((x, &c), (Change::Reapply(a, u), Change::Reapply(b, v)) if a == b && u == v)) {
            self.journal.push(c);
        }
    }

    /// Undo everything in reverse order. Errors are collected, never panicked on: a rollback
    /// does as much as it can and reports the rest.
    pub fn rollback(&mut self, ctx: &Ctx, step: &str) -> Vec<String> {
        let mut errors = vec![];
        let mut reapply = vec![];
        while let Some(c) = self.journal.pop() {
            let r: Result<(), String> = match &c {
                Change::Wrote(p, None) => {
                    std::fs::remove_file(p).map_err(|e| format!("{}: {e}", p.display()))
                }
                Change::Wrote(p, Some(b)) | Change::Removed(p, b) => {
                    restore(p, b).map_err(|e| format!("{}: {e}", p.display()))
                }
                Change::Linked(p, old) => std::fs::remove_file(p)
                    .and_then(|_| match old {
                        Some(t) => std::os::unix::fs::symlink(t, p),
                        None => Ok(()),
                    })
                    .map_err(|e| format!("{}: {e}", p.display())),
                Change::RemovedLink(p, t) => {
                    std::os::unix::fs::symlink(t, p).map_err(|e| format!("{}: {e}", p.display()))
                }
                Change::DirCreated(p) => match std::fs::remove_dir(p) {
                    // Something else put files there since: keep it.
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
                    r => r.map_err(|e| format!("{}: {e}", p.display())),
                },
                Change::Undo(cmd) => ctx
                    .exec
                    .run(step, cmd)
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Change::Reapply(a, u) => {
                    reapply.push((*a, u.clone()));
                    Ok(())
                }
            };
            if let Err(e) = r {
                errors.push(e);
            }
        }
        for (action, unit) in reapply.into_iter().rev() {
            let args: Vec<&str> = [action, unit.as_str()]
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect();
            if let Err(e) = crate::steps::systemctl(ctx, step, &args) {
                errors.push(e.msg);
            }
        }
        errors
    }

    /// Keep the changes.
    pub fn commit(&mut self) {
        self.journal.clear();
    }
}
