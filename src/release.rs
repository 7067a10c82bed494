//! The release layout under an app's base directory, and its one atomic operation:
//!
//! ```text
//! <base>/releases/<id>/     code (root's); staticfiles/ (the app's); links venv, .env, media
//! <base>/venvs/<hash>/      a virtualenv per requirements hash (the build user's), shared
//! <base>/shared/.env        root:app 0640; shared/media/ the app's uploads
//! <base>/current            -> releases/<id>, swapped by rename(2): never absent, never half
//! ```
//!
//! Everything here takes host paths; which release is current is also in the state file.
use crate::state::{Release, ReleaseStatus};
use std::io;
use std::path::{Path, PathBuf};

pub const CURRENT: &str = "current";

pub fn releases_dir(base: &Path) -> PathBuf {
    base.join("releases")
}
pub fn dir(base: &Path, id: &str) -> PathBuf {
    releases_dir(base).join(id)
}
pub fn venvs_dir(base: &Path) -> PathBuf {
    base.join("venvs")
}

/// A new release id: the UTC time to the second, with a suffix when that id exists (two
/// deploys within a second). Ids sort in creation order.
pub fn new_id(existing: &[&str]) -> String {
    let t = crate::paths::stamp();
    let mut id = t.clone();
    let mut n = 2;
    while existing.contains(&id.as_str()) {
        id = format!("{t}-{n}");
        n += 1;
    }
    id
}

/// A release id keel made: digits and dashes only, so it is safe in a path and a unit.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 40
        && id.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && id.as_bytes()[0].is_ascii_digit()
}

/// The release `current` points to, read from the link itself (never through it).
pub fn current_on_disk(base: &Path) -> Option<String> {
    let target = std::fs::read_link(base.join(CURRENT)).ok()?;
    let id = target.strip_prefix("releases").ok()?.to_str()?;
    valid_id(id).then(|| id.to_string())
}

/// Point `current` at release `id`: a new link beside it, renamed over it. rename(2) is
/// atomic, so a request (or nginx's static alias) sees the old release or the new one.
pub fn switch(base: &Path, id: &str) -> io::Result<()> {
    if !valid_id(id) || !dir(base, id).is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no release {id} under {}", releases_dir(base).display()),
        ));
    }
    let cur = base.join(CURRENT);
    if let Some(m) = crate::fsx::lstat(&cur)?
        && crate::fsx::kind(&m) != rustix::fs::FileType::Symlink
    {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} exists and is not a link keel made", cur.display()),
        ));
    }
    crate::txn::relink(&Path::new("releases").join(id), &cur)?;
    // The switch survives a power cut once the directory is on disk.
    std::fs::File::open(base)?.sync_all()
}

/// Releases to delete so that at most `keep` remain: the oldest first, never the current
/// one, never the newest good one before it (what a failed deploy returns to).
pub fn to_prune(list: &[Release], current: Option<&str>, keep: usize) -> Vec<String> {
    let previous = previous_good(list, current).map(|r| r.id.clone());
    let excess = list.len().saturating_sub(keep);
    list.iter()
        .filter(|r| Some(r.id.as_str()) != current && Some(&r.id) != previous.as_ref())
        .take(excess)
        .map(|r| r.id.clone())
        .collect()
}

/// The newest healthy release older than `current`: where `deploy --rollback` goes.
pub fn previous_good<'a>(list: &'a [Release], current: Option<&str>) -> Option<&'a Release> {
    let pos = list
        .iter()
        .position(|r| Some(r.id.as_str()) == current)
        .unwrap_or(list.len());
    list[..pos]
        .iter()
        .rev()
        .find(|r| r.status == ReleaseStatus::Ok)
}

/// Bring the state's list in line with the disk, then prune beyond `keep` releases and drop
/// virtualenvs no release uses. Returns the ids removed.
pub fn tidy(base: &Path, rels: &mut crate::state::Releases, keep: usize) -> Vec<String> {
    if let Some(id) = current_on_disk(base) {
        rels.current = Some(id);
    }
    rels.list.retain(|r| dir(base, &r.id).is_dir());
    let mut gone = vec![];
    for id in to_prune(&rels.list, rels.current.as_deref(), keep) {
        if remove(base, &id).is_ok() {
            rels.list.retain(|r| r.id != id);
            gone.push(id);
        }
    }
    for v in unused_venvs(base) {
        let _ = std::fs::remove_dir_all(v);
    }
    gone
}

/// Remove a release's directory (no link followed: remove_dir_all never does).
pub fn remove(base: &Path, id: &str) -> io::Result<()> {
    if !valid_id(id) {
        return Ok(());
    }
    match std::fs::remove_dir_all(dir(base, id)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// A release's link to the node_modules cache (under venvs/) its build used.
pub const NODE_LINK: &str = ".keel-node";

/// Virtualenvs (and node_modules caches) no remaining release links to (a release's `venv` is `../../venvs/<hash>`).
pub fn unused_venvs(base: &Path) -> Vec<PathBuf> {
    let mut used = std::collections::BTreeSet::new();
    if let Ok(rd) = std::fs::read_dir(releases_dir(base)) {
        for e in rd.flatten() {
            // The venv, and the node_modules cache its build used.
            for link in ["venv", NODE_LINK] {
                if let Ok(t) = std::fs::read_link(e.path().join(link))
                    && let Some(name) = t.file_name()
                {
                    used.insert(name.to_os_string());
                }
            }
        }
    }
    let mut out = vec![];
    if let Ok(rd) = std::fs::read_dir(venvs_dir(base)) {
        for e in rd.flatten() {
            let name = e.file_name();
            // Hidden entries are uv's cache and the like, not venvs.
            if !name.to_string_lossy().starts_with('.') && !used.contains(&name) {
                out.push(e.path());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(id: &str, status: ReleaseStatus) -> Release {
        Release {
            id: id.into(),
            source: "s".into(),
            revision: "r".into(),
            created_at: "t".into(),
            status,
            by: "deploy".into(),
            error: None,
        }
    }

    #[test]
    fn ids_are_unique_and_valid() {
        let a = new_id(&[]);
        assert!(valid_id(&a), "{a}");
        let b = new_id(&[&a]);
        assert_ne!(a, b);
        assert!(valid_id(&b), "{b}");
        for bad in ["", "../x", "1/2", "a1", "1 2"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn prune_keeps_current_and_previous_good() {
        use ReleaseStatus::*;
        let l = vec![
            rel("1", Ok),
            rel("2", Ok),
            rel("3", Failed),
            rel("4", Ok),
            rel("5", Failed),
        ];
        // current 4: previous good is 2; keep 2 → three go, oldest first, but never 4 or 2.
        assert_eq!(to_prune(&l, Some("4"), 2), vec!["1", "3", "5"]);
        assert_eq!(
            previous_good(&l, Some("4")).map(|r| r.id.as_str()),
            Some("2")
        );
        assert!(to_prune(&l, Some("4"), 5).is_empty());
        assert_eq!(previous_good(&l, Some("1")), None);
    }

    #[test]
    fn switch_is_a_relative_link_and_refuses_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let base = t.path();
        std::fs::create_dir_all(dir(base, "1")).unwrap();
        std::fs::create_dir_all(dir(base, "2")).unwrap();
        switch(base, "1").unwrap();
        assert_eq!(current_on_disk(base).as_deref(), Some("1"));
        switch(base, "2").unwrap();
        assert_eq!(
            std::fs::read_link(base.join(CURRENT)).unwrap(),
            Path::new("releases/2")
        );
        assert!(switch(base, "9").is_err());
        std::fs::remove_file(base.join(CURRENT)).unwrap();
        std::fs::create_dir(base.join(CURRENT)).unwrap();
        assert!(switch(base, "1").is_err());
    }
}
