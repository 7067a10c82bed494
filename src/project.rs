//! What keel reads of the app's own tree, checked when the config is loaded (a local source)
//! and again on the tree a release is built from: where its dependencies are and in which
//! form, the Python it asks for, and whether this host's python3 gives it.
use crate::config::Config;
use crate::deps::{self, Form, Selection};
use crate::error::{Error, Result};
use crate::pyversion::{self, Version, Want};
use crate::requirements::Part;
use std::path::{Path, PathBuf};

pub use crate::tree::walk;

/// A problem in the app's tree: the config key it concerns, the message, the fix.
pub type Problem = (String, String, String);

#[derive(Debug, Clone)]
pub struct Project {
    /// The dependency file, relative to the app's top.
    pub file: String,
    pub form: Form,
    /// Every file read for the dependencies (the venv's fingerprint covers them).
    pub parts: Vec<Part>,
    /// The pinned requirements keel made from a lock or pyproject.toml (None: the file is
    /// installed as it is, or uv exports it).
    pub converted: Option<String>,
    pub selection: Selection,
    /// What the config and the project ask of the interpreter.
    pub wants: Vec<Want>,
}

impl Project {
    /// What the venv's key hashes (with the interpreter).
    pub fn fingerprint(&self) -> String {
        deps::fingerprint(&self.parts, &self.selection)
    }
}

pub fn selection(cfg: &Config) -> Selection {
    Selection {
        groups: cfg.python.groups.clone(),
        extras: cfg.python.extras.clone(),
    }
}

/// Read the project from a tree (`read` gives a file by relative path).
pub fn read(
    cfg: &Config,
    read: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<Project, Problem> {
    let key = |k: &str, m: String, h: &str| (k.to_string(), m, h.to_string());
    let file = if cfg.django.requirements.is_empty() {
        deps::detect(read).ok_or_else(|| {
            key(
                "django.requirements",
                "the app declares no Python dependencies keel can read".into(),
                deps::NONE_FOUND,
            )
        })?
    } else {
        cfg.django.requirements.clone()
    };
    let parts = deps::inputs(&file, read).map_err(|e| {
        key(
            "django.requirements",
            e,
            "name a file inside the app's tree; a lock is read with the pyproject.toml beside it, and -r/-c includes must stay inside the tree",
        )
    })?;
    let selection = selection(cfg);
    let converted = deps::converted(&file, &parts, &selection).map_err(|e| {
        key(
            if e.contains("python.groups") {
                "python.groups"
            } else if e.contains("python.extras") {
                "python.extras"
            } else {
                "django.requirements"
            },
            e,
            "fix the file in the app (or regenerate its lock), or the group and extra names in keel.toml",
        )
    })?;
    let wants = pyversion::wanted(&cfg.python.version, read).map_err(|e| {
        key(
            "python.version",
            e,
            "a version (\"3.12\") or a PEP 440 specifier (\">=3.12,<3.14\")",
        )
    })?;
    Ok(Project {
        form: Form::of(&file),
        file,
        parts,
        converted,
        selection,
        wants,
    })
}

/// This host's python3: its version and how keel knows it.
#[derive(Debug, Clone)]
pub struct OsPython {
    pub version: Version,
    pub how: String,
}

/// The python3 of the host under `root`: the installed one's series (the link
/// /usr/bin/python3 names it), with the patch level the OS release ships; or, before it is
/// installed, the one the OS release ships.
pub fn os_python(root: &Path) -> Option<OsPython> {
    let rel = crate::system::os_release(root);
    let get = |k: &str| rel.get(k).cloned().unwrap_or_default();
    let pretty = get("PRETTY_NAME");
    let shipped = pyversion::os_python(&get("ID"), &get("VERSION_ID"));
    let linked = std::fs::read_link(root.join("usr/bin/python3"))
        .ok()
        .and_then(|l| {
            let n = l.file_name()?.to_str()?.strip_prefix("python")?.to_string();
            pyversion::parse_version(&n)
        });
    match (linked, shipped) {
        (Some(l), Some(s)) if l.len() >= 2 && s[..2] == l[..2] => Some(OsPython {
            version: s,
            how: format!("{pretty}'s python3"),
        }),
        (Some(l), _) => Some(OsPython {
            version: l,
            how: "/usr/bin/python3".into(),
        }),
        (None, Some(s)) => Some(OsPython {
            version: s,
            how: format!("{pretty}'s python3"),
        }),
        (None, None) => None,
    }
}

/// The interpreter a release's venv is built on.
#[derive(Debug, Clone, PartialEq)]
pub enum Interp {
    /// The OS's python3.
    Os,
    /// A uv-managed CPython: the request given to uv.
    Managed(String),
}

/// Why the OS's python3 does not do, or None when it does (or cannot be known yet).
pub fn os_unfit(root: &Path, wants: &[Want]) -> Option<(Want, OsPython)> {
    let os = os_python(root)?;
    pyversion::unmet(wants, &os.version).map(|w| (w.clone(), os))
}

/// The interpreter for `wants` on the host under `root`, or the refusal (message, fix).
pub fn choose(
    cfg: &Config,
    root: &Path,
    wants: &[Want],
) -> std::result::Result<Interp, (String, String)> {
    match os_unfit(root, wants) {
        None => Ok(Interp::Os),
        Some(_) if cfg.python.managed => Ok(Interp::Managed(pyversion::uv_request(wants))),
        Some((w, os)) => Err((
            format!(
                "the project asks for Python {} ({}), and this host's python3 is {} ({})",
                w.spec,
                w.from,
                pyversion::show(&os.version),
                os.how
            ),
            "set python.managed = true for a uv-managed CPython (python.mirror: where uv downloads it from), use a newer OS release (Debian 13 ships 3.13, Ubuntu 24.04 3.12), or relax the requirement in the project".into(),
        )),
    }
}

/// Before the first write: a local source's dependencies and Python requests must read.
pub fn check_tree(cfg: &Config) -> Result<()> {
    let Some(src) = cfg.app_source() else {
        return Ok(());
    };
    read(cfg, &|rel| {
        crate::fsx::read_text_nofollow(&src.join(rel), crate::fsx::MAX_INPUT)
            .ok()
            .flatten()
    })
    .map(|_| ())
    .map_err(|(key, msg, hint)| Error::Config {
        file: cfg.source.clone(),
        key,
        msg,
        hint,
    })
}

/// Before the first write: the project's Python must be one this host can give it.
pub fn check_host(cfg: &Config, root: &Path) -> Result<()> {
    let wants = match cfg.app_source() {
        Some(src) => {
            let reader = crate::tree::reader(&src);
            read(cfg, &reader).map(|p| p.wants).unwrap_or_default()
        }
        // A git source is read when fetched: the python-env step checks it there.
        None => pyversion::wanted(&cfg.python.version, &|_| None).unwrap_or_default(),
    };
    choose(cfg, root, &wants)
        .map(|_| ())
        .map_err(|(msg, hint)| Error::Config {
            file: cfg.source.clone(),
            key: "python.managed".into(),
            msg,
            hint,
        })
}

/// Whether the app's package.json has a build script (`npm run build`).
pub fn node_build(read: &dyn Fn(&str) -> Option<String>) -> bool {
    read("package.json")
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.pointer("/scripts/build").is_some_and(|b| b.is_string()))
}

/// Whether the tree has gettext catalogues to compile (`locale/**/*.po`).
pub fn has_messages(files: &[PathBuf]) -> bool {
    files.iter().any(|f| {
        f.extension().is_some_and(|e| e == "po")
            && f.components().any(|c| c.as_os_str() == "locale")
    })
}

/// Debian packages a project needs to build, found in its tree, each with why: Node for a
/// package.json build, gettext for catalogues, the headers of packages commonly built from
/// source. `project` is None when the dependencies do not read (an error said elsewhere).
pub fn build_packages(
    cfg: &Config,
    read: &dyn Fn(&str) -> Option<String>,
    files: &[PathBuf],
    project: Option<&Project>,
) -> Vec<(&'static str, &'static str)> {
    let mut out = vec![];
    if cfg.build.node == "auto" && node_build(read) {
        out.extend([
            ("nodejs", "package.json build"),
            ("npm", "package.json build"),
        ]);
    }
    if cfg.build.compilemessages == "auto" && has_messages(files) {
        out.push(("gettext", "locale/*.po"));
    }
    let text: String = project
        .map(|p| {
            let mut t: String = p
                .parts
                .iter()
                .map(|(_, t)| t.to_ascii_lowercase())
                .collect();
            t.push_str(&p.converted.clone().unwrap_or_default().to_ascii_lowercase());
            t
        })
        .unwrap_or_default();
    let names = |n: &str| {
        text.lines().any(|l| {
            let l = l.trim().trim_start_matches("name = \"");
            crate::deps::req_name(l) == n
        })
    };
    let psycopg_c = names("psycopg2") || names("psycopg-c") || text.contains("psycopg[c");
    if psycopg_c {
        out.extend([
            ("build-essential", "psycopg built from source"),
            ("python3-dev", "psycopg built from source"),
            ("libpq-dev", "psycopg built from source"),
        ]);
    }
    if names("mysqlclient") {
        out.extend([
            ("build-essential", "mysqlclient"),
            ("python3-dev", "mysqlclient"),
            ("default-libmysqlclient-dev", "mysqlclient"),
            ("pkg-config", "mysqlclient"),
        ]);
    }
    if names("python-ldap") {
        out.extend([
            ("build-essential", "python-ldap"),
            ("python3-dev", "python-ldap"),
            ("libldap2-dev", "python-ldap"),
            ("libsasl2-dev", "python-ldap"),
        ]);
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|(p, _)| seen.insert(*p));
    out
}
