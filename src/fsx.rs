//! Filesystem access for a process that runs as root among files that others may write.
//! Paths are walked one component at a time from `/` with `O_NOFOLLOW`, so a symlink planted
//! anywhere on the way is an error, never followed; files are created with `O_EXCL` next to
//! their destination, owned and moded through their descriptor (`fchown`/`fchmod`), synced,
//! renamed into place relative to the directory descriptor, and the directory is synced. No
//! path is resolved twice, so nothing can be swapped between a check and a use.
use rustix::fs::{AtFlags, Gid, Mode, OFlags, Uid};
use std::ffi::OsStr;
use std::io::{Error, ErrorKind, Read, Result, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Files keel reads as input (config, state, .env.example) are small: a bigger one is a
/// mistake (or an attack), and a FIFO or device would hang the read.
pub const MAX_INPUT: u64 = 1 << 20;

fn err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::other(format!("{}: {msg}", path.display()))
}

fn map(path: &Path) -> impl Fn(rustix::io::Errno) -> Error + '_ {
    move |e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => err(
            path,
            "a symlink (or a non-directory) is in the way; keel does not follow links here",
        ),
        e => {
            let io = Error::from(e);
            Error::new(io.kind(), format!("{}: {io}", path.display()))
        }
    }
}

/// Read an input file given by the admin (links are followed: the admin chose the path),
/// refusing anything but a regular file of at most `max` bytes. Opened non-blocking, so a
/// FIFO is refused instead of hanging.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(Error::from)?;
    read_fd(path, fd, max)
}

fn read_fd(path: &Path, fd: OwnedFd, max: u64) -> Result<Vec<u8>> {
    let st = rustix::fs::fstat(&fd).map_err(Error::from)?;
    if kind(&st) != rustix::fs::FileType::RegularFile {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (a FIFO, device, socket or directory is refused)",
        ));
    }
    if st.st_size as u64 > max {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{} bytes is too large (at most {max})", st.st_size),
        ));
    }
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::with_capacity(st.st_size as usize);
    Read::by_ref(&mut f).take(max + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > max {
        return Err(err(path, format!("grew beyond {max} bytes while read")));
    }
    let _ = path;
    Ok(buf)
}

/// The directory at `dir`, walked from `/` (or the working directory) without following
/// any link.
pub fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let start = if dir.is_absolute() { "/" } else { "." };
    let mut fd = rustix::fs::open(start, flags, Mode::empty()).map_err(map(dir))?;
    for c in dir.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => {
                fd = rustix::fs::openat(&fd, name, flags, Mode::empty()).map_err(map(dir))?;
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(err(dir, "'..' is not allowed in a path keel works on"));
            }
        }
    }
    Ok(fd)
}

fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => Ok((
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            },
            n,
        )),
        // The root directory itself: "." in "/" (lstat of a file's parent reaches it).
        (None, None) if path == Path::new("/") => Ok((path, OsStr::new("."))),
        _ => Err(err(path, "not a file path")),
    }
}

/// Read a file without following a link anywhere in its path (for files in trees that
/// others can write: the app's code, its .env). `Ok(None)` if it does not exist.
pub fn read_nofollow(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    let (dir, name) = split(path)?;
    let dfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let fd = match rustix::fs::openat(
        &dfd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(map(path)(e)),
    };
    read_fd(path, fd, max).map(Some).map_err(|e| err(path, e))
}

/// The text of a file read with `read_nofollow`.
pub fn read_text_nofollow(path: &Path, max: u64) -> Result<Option<String>> {
    read_nofollow(path, max)?
        .map(|b| String::from_utf8(b).map_err(|_| err(path, "is not UTF-8 text")))
        .transpose()
}

/// Metadata of the entry itself (a link is reported as a link), reached without following
/// links on the way.
pub fn lstat(path: &Path) -> Result<Option<rustix::fs::Stat>> {
    let (dir, name) = split(path)?;
    let dfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match rustix::fs::statat(&dfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(map(path)(e)),
    }
}

fn owner_ids(owner: Option<(u32, u32)>) -> (Option<Uid>, Option<Gid>) {
    match owner {
        // SAFETY of from_raw: any u32 is a valid id to pass to the kernel.
        Some((u, g)) => (Some(Uid::from_raw(u)), Some(Gid::from_raw(g))),
        None => (None, None),
    }
}

/// Write through a new file beside `path` (created with O_EXCL, moded and owned through its
/// descriptor before a byte is written, synced), renamed over `path` (a link there is
/// replaced, never followed), then the directory synced so a power cut cannot lose it.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let (dir, name) = split(path)?;
    let dfd = open_dir(dir)?;
    let dirfd = reopen_dir(&dfd, dir)?;
    let tmp = format!(
        ".keel.{}.{:016x}",
        std::process::id(),
        rand::random::<u64>()
    );
    let fd = rustix::fs::openat(
        &dirfd,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(map(path))?;
    let result = (|| -> Result<()> {
        let (u, g) = owner_ids(owner);
        if owner.is_some() {
            rustix::fs::fchown(&fd, u, g).map_err(map(path))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(map(path))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(bytes)?;
        f.sync_all()?;
        rustix::fs::renameat(&dirfd, tmp.as_str(), &dirfd, name).map_err(map(path))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = rustix::fs::unlinkat(&dirfd, tmp.as_str(), AtFlags::empty());
        return result;
    }
    // The rename is durable only once the directory entry is.
    rustix::fs::fsync(&dirfd).map_err(map(dir))
}

/// An O_PATH descriptor cannot be synced or listed: reopen it for reading.
fn reopen_dir(fd: &OwnedFd, dir: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(map(dir))
}

/// Create directory `path` (its parent must exist) with `mode` and `owner`, set through the
/// new directory's descriptor. Returns false if it existed (then mode and owner are set too,
/// if given, and it must be a real directory).
pub fn mkdir(path: &Path, mode: u32, owner: Option<(u32, u32)>) -> Result<bool> {
    let (dir, name) = split(path)?;
    let dfd = open_dir(dir)?;
    let created = match rustix::fs::mkdirat(&dfd, name, Mode::from_raw_mode(mode)) {
        Ok(()) => true,
        Err(rustix::io::Errno::EXIST) => false,
        Err(e) => return Err(map(path)(e)),
    };
    let fd = rustix::fs::openat(
        &dfd,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(map(path))?;
    if created || owner.is_some() {
        let (u, g) = owner_ids(owner);
        if owner.is_some() {
            rustix::fs::fchown(&fd, u, g).map_err(map(path))?;
        }
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(map(path))?;
    }
    if created {
        rustix::fs::fsync(reopen_dir(&dfd, dir)?).map_err(map(dir))?;
    }
    Ok(created)
}

/// Remove a file or a link (never what a link points to). Ok(false) if it was not there.
pub fn unlink(path: &Path) -> Result<bool> {
    let (dir, name) = split(path)?;
    let dfd = match open_dir(dir) {
        Ok(fd) => fd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match rustix::fs::unlinkat(&dfd, name, AtFlags::empty()) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::NOENT) => Ok(false),
        Err(e) => Err(map(path)(e)),
    }
}

/// Give a tree keel owns back to `(uid, gid)`: every entry is changed through its parent's
/// descriptor without following links; the names in `keep` at the top (the app's own
/// writable directories) are left to their owner. Returns how many entries changed.
pub fn reown_tree(top: &Path, uid: u32, gid: u32, keep: &[&str]) -> Result<u64> {
    let fd = rustix::fs::openat(
        open_dir(top.parent().unwrap_or(Path::new("/")))?,
        top.file_name().unwrap_or(top.as_os_str()),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(map(top))?;
    let (u, g) = owner_ids(Some((uid, gid)));
    let mut n = 0;
    let st = rustix::fs::fstat(&fd).map_err(map(top))?;
    if st.st_uid != uid || st.st_gid != gid {
        rustix::fs::fchown(&fd, u, g).map_err(map(top))?;
        n += 1;
    }
    n += reown_dir(top, &fd, u, g, keep)?;
    Ok(n)
}

fn reown_dir(
    at: &Path,
    fd: &OwnedFd,
    u: Option<Uid>,
    g: Option<Gid>,
    keep: &[&str],
) -> Result<u64> {
    let mut n = 0;
    let mut subdirs = vec![];
    for entry in rustix::fs::Dir::read_from(fd).map_err(map(at))? {
        let entry = entry.map_err(map(at))?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
        if name == "." || name == ".." || keep.iter().any(|k| OsStr::new(k) == name) {
            continue;
        }
        let st =
            rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).map_err(map(at))?;
        if Some(st.st_uid) != u.map(|x| x.as_raw()) || Some(st.st_gid) != g.map(|x| x.as_raw()) {
            rustix::fs::chownat(fd, name.as_os_str(), u, g, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(map(at))?;
            n += 1;
        }
        if kind(&st) == rustix::fs::FileType::Directory {
            subdirs.push(name);
        }
    }
    for name in subdirs {
        let sub = rustix::fs::openat(
            fd,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(map(at))?;
        n += reown_dir(&at.join(&name), &sub, u, g, &[])?;
    }
    Ok(n)
}

/// What kind of entry a `Stat` describes (file, directory, link, ...).
pub fn kind(st: &rustix::fs::Stat) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.st_mode)
}

/// The owner of a path's entry (not following a final link), if it exists.
pub fn owner_of(path: &Path) -> Result<Option<(u32, u32)>> {
    Ok(lstat(path)?.map(|s| (s.st_uid, s.st_gid)))
}

/// A directory of root's that only root can enter (mode exactly 0700): what keel takes as
/// its own private directory when it did not just make it.
pub fn root_private_dir(st: &rustix::fs::Stat) -> bool {
    kind(st) == rustix::fs::FileType::Directory && st.st_uid == 0 && st.st_mode & 0o7777 == 0o700
}

/// Why root must not trust `path` (inside `root`, the host's `/`), or None: every
/// directory from `/` down is root's and writable by no one else (no sticky exception: a
/// world-writable /tmp lets another user swap a name), no link on the way, and the file a
/// regular one of root's that group and others cannot write. `exe`: it must be executable.
pub fn untrusted(root: &Path, path: &Path, exe: bool) -> Option<String> {
    let rel = path.strip_prefix("/").ok()?;
    let mut at = root.to_path_buf();
    let mut shown = PathBuf::from("/");
    let check_dir = |st: &rustix::fs::Stat, shown: &Path| {
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            Some(format!(
                "{} (a directory above it) is {}: another user could swap what it holds",
                shown.display(),
                if st.st_uid != 0 {
                    format!("owned by uid {}", st.st_uid)
                } else {
                    format!(
                        "writable by group or others (mode {:o})",
                        st.st_mode & 0o7777
                    )
                }
            ))
        } else {
            None
        }
    };
    match lstat(&at) {
        Ok(Some(st)) => {
            if let Some(w) = check_dir(&st, &shown) {
                return Some(w);
            }
        }
        _ => return Some(format!("{} cannot be read", shown.display())),
    }
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        at.push(c);
        shown.push(c);
        let st = match lstat(&at) {
            Ok(Some(st)) => st,
            Ok(None) => return Some(format!("{} does not exist", shown.display())),
            Err(e) => return Some(format!("{}: {e}", shown.display())),
        };
        let k = kind(&st);
        if k == rustix::fs::FileType::Symlink {
            return Some(format!(
                "{} is a symbolic link (root follows none: give the real path)",
                shown.display()
            ));
        }
        if i + 1 < n {
            if k != rustix::fs::FileType::Directory {
                return Some(format!("{} is not a directory", shown.display()));
            }
            if let Some(w) = check_dir(&st, &shown) {
                return Some(w);
            }
            continue;
        }
        if k != rustix::fs::FileType::RegularFile {
            return Some(format!("{} is not a regular file", shown.display()));
        }
        if st.st_uid != 0 {
            return Some(format!(
                "{} is owned by uid {}, not root",
                shown.display(),
                st.st_uid
            ));
        }
        if st.st_mode & 0o022 != 0 {
            return Some(format!(
                "{} is writable by group or others (mode {:o})",
                shown.display(),
                st.st_mode & 0o7777
            ));
        }
        if exe && st.st_mode & 0o100 == 0 {
            return Some(format!("{} is not executable", shown.display()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A file directly under `/` (keel's swap file): its parent, the root, is a directory.
    #[test]
    fn the_root_directory_is_a_directory() {
        let st = lstat(Path::new("/")).unwrap().expect("/ exists");
        assert_eq!(kind(&st), rustix::fs::FileType::Directory);
    }

    #[test]
    fn links_on_the_way_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("link")).unwrap();
        std::os::unix::fs::symlink(real.join("secret"), d.path().join("flink")).unwrap();
        assert!(read_nofollow(&d.path().join("link/secret"), 100).is_err());
        assert!(read_nofollow(&d.path().join("flink"), 100).is_err());
        assert_eq!(
            read_nofollow(&real.join("secret"), 100).unwrap().unwrap(),
            b"s"
        );
        assert!(read_nofollow(&real.join("none"), 100).unwrap().is_none());
        assert!(write_atomic(&d.path().join("link/new"), b"x", 0o644, None).is_err());
        assert!(!real.join("new").exists());
        assert!(mkdir(&d.path().join("link/sub"), 0o755, None).is_err());
        // Writing over a link replaces the link, never its target.
        write_atomic(&d.path().join("flink"), b"mine", 0o600, None).unwrap();
        assert_eq!(std::fs::read_to_string(real.join("secret")).unwrap(), "s");
        assert_eq!(
            std::fs::read_to_string(d.path().join("flink")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn write_sets_mode_and_owner_and_leaves_no_temp() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        write_atomic(&p, b"hello", 0o640, Some((998, 997))).unwrap();
        let md = std::fs::metadata(&p).unwrap();
        assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o640, 998, 997));
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn fifo_and_large_inputs_are_refused_without_hanging() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let e = read_regular(&fifo, MAX_INPUT).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let big = d.path().join("big");
        std::fs::write(&big, vec![b'a'; 2048]).unwrap();
        assert!(
            read_regular(&big, 1024)
                .unwrap_err()
                .to_string()
                .contains("too large")
        );
        assert!(read_regular(d.path(), 1024).is_err());
    }

    #[test]
    fn reown_changes_the_tree_but_not_link_targets_or_kept_dirs() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("app");
        std::fs::create_dir_all(top.join("pkg")).unwrap();
        std::fs::create_dir_all(top.join("media")).unwrap();
        std::fs::write(top.join("pkg/a.py"), "").unwrap();
        std::fs::write(top.join("media/up"), "").unwrap();
        let outside = d.path().join("outside");
        std::fs::write(&outside, "").unwrap();
        std::os::unix::fs::symlink(&outside, top.join("pkg/evil")).unwrap();
        for p in ["", "pkg", "pkg/a.py", "media", "media/up"] {
            std::os::unix::fs::chown(top.join(p), Some(998), Some(998)).unwrap();
        }
        reown_tree(&top, 0, 0, &["media"]).unwrap();
        let uid = |p: &Path| std::fs::symlink_metadata(p).unwrap().uid();
        assert_eq!(uid(&top), 0);
        assert_eq!(uid(&top.join("pkg/a.py")), 0);
        assert_eq!(uid(&top.join("media")), 998);
        assert_eq!(uid(&top.join("media/up")), 998);
        assert_eq!(uid(&outside), 0);
    }

    /// The attack on the old write path: a user who can write the directory swaps keel's
    /// temp file for a link to a file of theirs choosing between its creation and the
    /// chown by path, and gets that file chowned to them. With descriptors there is no
    /// window; the victim's owner never changes however hard the loop tries.
    #[test]
    fn a_swapped_temp_file_never_gets_chowned() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("appdir");
        std::fs::create_dir(&dir).unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "root's").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attacker = {
            let (dir, victim, stop) = (dir.clone(), victim.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for e in std::fs::read_dir(&dir).unwrap().flatten() {
                        let n = e.file_name();
                        if n.to_string_lossy().starts_with(".keel.") {
                            let _ = std::fs::remove_file(e.path());
                            let _ = std::os::unix::fs::symlink(&victim, e.path());
                        }
                    }
                }
            })
        };
        for _ in 0..2000 {
            let _ = write_atomic(&dir.join(".env"), b"X=1\n", 0o600, Some((998, 998)));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        attacker.join().unwrap();
        assert_eq!(
            std::fs::metadata(&victim).unwrap().uid(),
            0,
            "victim chowned"
        );
    }
}
