//! An app's source tree as keel reads it: regular files only, VCS data and caches left out.
use std::path::{Path, PathBuf};

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

/// A reader of the tree under `dir`: a file's text by relative path, never through a link
/// (None: missing, unreadable or too large).
pub fn reader(dir: &Path) -> impl Fn(&str) -> Option<String> + use<> {
    let dir = dir.to_path_buf();
    move |rel: &str| {
        crate::fsx::read_text_nofollow(&dir.join(rel), crate::fsx::MAX_INPUT)
            .ok()
            .flatten()
    }
}
