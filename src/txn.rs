//! A step's transaction, after rustup's: every file change is journaled (with a backup of
//! what was there) and undone in reverse order if the step fails. Units whose config was
//! touched are restarted/reloaded again once the files are back, so services run their old
//! configuration. A transaction dropped without `commit()` (a panicking step) rolls back
//! by itself. It depends only on `exec` (for unit commands) and `fsx`.
use crate::exec::{Cmd, Exec};
use crate::fsx;
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
    Undo(Box<Cmd>),
    /// After files are restored: `systemctl <action> <unit>` (reload/restart).
    Reapply(&'static str, String),
}

/// What a step made that the engine records when the step completes: its return value,
/// carried by its transaction (a step's `run` returns only success or an error).
#[derive(Debug, Clone)]
pub enum Produced {
    /// A new release (app-code): recorded in the state file as the current one.
    Release(crate::state::Release),
    /// The end-to-end checks (verify), with their times: the run's report shows them.
    Checks(Vec<crate::checks::CheckResult>),
}

pub struct Txn {
    journal: Vec<Change>,
    produced: Vec<Produced>,
    /// Runs the undo commands and unit re-applies, logged under `log`.
    exec: Exec,
    log: String,
    keep: Vec<PathBuf>,
}

/// Files keel backs up are its own config files: bounded like any input.
const MAX_BACKUP: u64 = 64 << 20;

/// The old file, read without following links; a link or a non-file has no backup.
fn backup_of(path: &Path) -> Option<Backup> {
    let st = fsx::lstat(path).ok()??;
    if fsx::kind(&st) != rustix::fs::FileType::RegularFile {
        return None;
    }
    Some(Backup {
        bytes: fsx::read_nofollow(path, MAX_BACKUP).ok()??,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    })
}

fn restore(path: &Path, b: &Backup) -> std::io::Result<()> {
    fsx::write_atomic(path, &b.bytes, b.mode, Some((b.uid, b.gid)))
}

/// Write through a new file beside `path`, owned and moded through its descriptor (see
/// `fsx::write_atomic`), creating missing parent directories.
pub fn write_atomic(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if fsx::lstat(dir)?.is_none() {
        std::fs::create_dir_all(dir)?;
    }
    fsx::write_atomic(path, bytes, mode, owner)
}

/// Point `link` at `target` through a new link renamed over it: the link is never absent
/// (the `current` release link is read by nginx and systemd at any moment).
pub fn relink(target: &Path, link: &Path) -> std::io::Result<()> {
    let name = link.file_name().unwrap_or_default().to_string_lossy();
    let tmp = link.with_file_name(format!(".{name}.keel-new"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link)
}

impl Txn {
    pub fn new(exec: &Exec, log: &str) -> Txn {
        Txn {
            produced: vec![],
            journal: vec![],
            exec: exec.clone(),
            log: log.into(),
            keep: vec![],
        }
    }

    /// Files an operator keeps as edited ([drift] keep): never overwritten while they exist.
    pub fn keep(mut self, paths: Vec<PathBuf>) -> Txn {
        self.keep = paths;
        self
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
        if self.keep.iter().any(|k| k == path) && fsx::lstat(path)?.is_some() {
            return Ok(false);
        }
        let old = backup_of(path);
        if let Some(b) = &old {
            let same_owner = owner.is_none_or(|(u, g)| (b.uid, b.gid) == (u, g));
            if b.bytes == bytes && b.mode == mode && same_owner {
                return Ok(false);
            }
        }
        self.ensure_dir(path.parent().unwrap_or(Path::new("/")))?;
        fsx::write_atomic(path, bytes, mode, owner)?;
        self.journal.push(Change::Wrote(path.to_path_buf(), old));
        Ok(true)
    }

    pub fn remove(&mut self, path: &Path) -> std::io::Result<bool> {
        let Some(st) = fsx::lstat(path)? else {
            return Ok(false);
        };
        if fsx::kind(&st) == rustix::fs::FileType::Symlink {
            let target = std::fs::read_link(path)?;
            fsx::unlink(path)?;
            self.journal
                .push(Change::RemovedLink(path.to_path_buf(), target));
            return Ok(true);
        }
        let b = backup_of(path).ok_or_else(|| {
            std::io::Error::other(format!("{} is not a regular file", path.display()))
        })?;
        fsx::unlink(path)?;
        self.journal.push(Change::Removed(path.to_path_buf(), b));
        Ok(true)
    }

    pub fn symlink(&mut self, target: &Path, link: &Path) -> std::io::Result<bool> {
        let old = std::fs::read_link(link).ok();
        if old.as_deref() == Some(target) {
            return Ok(false);
        }
        if std::fs::symlink_metadata(link).is_ok() && old.is_none() {
            return Err(std::io::Error::other(format!(
                "{} exists and is not a symlink",
                link.display()
            )));
        }
        relink(target, link)?;
        self.journal.push(Change::Linked(link.to_path_buf(), old));
        Ok(true)
    }

    /// Create missing directories (0755, root), journaling each one created. Nothing on
    /// the way may be a link.
    pub fn ensure_dir(&mut self, dir: &Path) -> std::io::Result<()> {
        self.ensure_dir_owned(dir, 0o755, None)
    }

    /// Like `ensure_dir`, with the mode and owner of the last directory set through its
    /// descriptor (also when it already existed).
    pub fn ensure_dir_owned(
        &mut self,
        dir: &Path,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> std::io::Result<()> {
        let mut missing = vec![];
        let mut d = dir;
        while fsx::lstat(d)?.is_none() {
            missing.push(d.to_path_buf());
            match d.parent() {
                Some(p) => d = p,
                None => break,
            }
        }
        // An existing directory still gets the mode and owner asked for (fsx::mkdir sets
        // them either way); a created one gets them once, when it is made.
        let existed = missing.is_empty();
        for m in missing.into_iter().rev() {
            let last = m == dir;
            if fsx::mkdir(
                &m,
                if last { mode } else { 0o755 },
                if last { owner } else { None },
            )? {
                self.journal.push(Change::DirCreated(m));
            }
        }
        if existed && owner.is_some() {
            fsx::mkdir(dir, mode, owner)?;
        }
        Ok(())
    }

    pub fn on_rollback(&mut self, cmd: Cmd) {
        self.journal.push(Change::Undo(Box::new(cmd)));
    }

    pub fn reapply(&mut self, action: &'static str, unit: &str) {
        let c = Change::Reapply(action, unit.to_string());
        if !self.journal.iter().any(|x| matches!((x, &c), (Change::Reapply(a, u), Change::Reapply(b, v)) if a == b && u == v)) {
            self.journal.push(c);
        }
    }

    /// Undo everything in reverse order. Errors are collected, never panicked on: a rollback
    /// does as much as it can and reports the rest.
    pub fn rollback(&mut self) -> Vec<String> {
        let step = self.log.clone();
        let mut errors = vec![];
        let mut reapply = vec![];
        while let Some(c) = self.journal.pop() {
            let r: Result<(), String> = match &c {
                Change::Wrote(p, None) => fsx::unlink(p)
                    .map(|_| ())
                    .map_err(|e| format!("{}: {e}", p.display())),
                Change::Wrote(p, Some(b)) | Change::Removed(p, b) => {
                    restore(p, b).map_err(|e| format!("{}: {e}", p.display()))
                }
                Change::Linked(p, old) => match old {
                    Some(t) => relink(t, p),
                    None => std::fs::remove_file(p),
                }
                .map_err(|e| format!("{}: {e}", p.display())),
                Change::RemovedLink(p, t) => {
                    std::os::unix::fs::symlink(t, p).map_err(|e| format!("{}: {e}", p.display()))
                }
                Change::DirCreated(p) => match std::fs::remove_dir(p) {
                    // Something else put files there since: keep it.
                    Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
                    r => r.map_err(|e| format!("{}: {e}", p.display())),
                },
                Change::Undo(cmd) => self
                    .exec
                    .run(&step, cmd)
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
            if let Err(e) = crate::exec::systemctl(&self.exec, &step, &args) {
                errors.push(e.to_string());
            }
        }
        errors
    }

    /// Keep the changes.
    /// Hand `p` to the engine (a retried attempt's replaces the one before of its kind).
    pub fn produce(&mut self, p: Produced) {
        let same = |q: &Produced| std::mem::discriminant(q) == std::mem::discriminant(&p);
        self.produced.retain(|q| !same(q));
        self.produced.push(p);
    }

    /// What the step produced (taken: it is the engine's now).
    pub fn take_produced(&mut self) -> Vec<Produced> {
        std::mem::take(&mut self.produced)
    }

    pub fn commit(&mut self) {
        self.journal.clear();
    }
}

/// A transaction that is dropped uncommitted (a step that panicked) undoes itself, like
/// rustup's: a half-applied step never stays half-applied.
impl Drop for Txn {
    fn drop(&mut self) {
        if !self.journal.is_empty() {
            let _ = self.rollback();
        }
    }
}

// The journal's tests run commands on the fake host.
#[cfg(all(test, feature = "fake-host"))]
mod tests {
    use super::*;

    fn runner(dir: &Path) -> Exec {
        Exec {
            mode: crate::exec::Mode::Fake(dir.join("fake")),
            log_dir: dir.join("log"),
            redactor: Default::default(),
            default_timeout: std::time::Duration::from_secs(5),
            children_dir: dir.join("children"),
            echo: false,
            terminal: false,
        }
    }

    /// A transaction dropped without commit (a step that panicked) undoes its changes,
    /// restoring what was there; a committed one keeps them.
    #[test]
    fn dropped_uncommitted_rolls_back_committed_keeps() {
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old.conf");
        std::fs::write(&old, "before").unwrap();
        let new = d.path().join("sub/new.conf");
        {
            let mut tx = Txn::new(&runner(d.path()), "t");
            tx.write(&new, b"created", 0o644, None).unwrap();
            tx.write(&old, b"after", 0o644, None).unwrap();
            tx.reapply("reload", "nginx");
            assert_eq!(std::fs::read_to_string(&old).unwrap(), "after");
        }
        assert!(!new.exists() && !d.path().join("sub").exists());
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "before");
        let log = std::fs::read_to_string(d.path().join("fake/commands.log")).unwrap();
        assert!(log.contains("[t] systemctl reload nginx"), "{log}");
        let mut tx = Txn::new(&runner(d.path()), "t");
        tx.write(&new, b"created", 0o644, None).unwrap();
        tx.commit();
        drop(tx);
        assert_eq!(std::fs::read_to_string(&new).unwrap(), "created");
    }
}
