//! A project's Python dependencies in each standard form: a pip requirements file (its
//! `-r`/`-c` includes followed), `uv.lock` (exported by uv itself), `poetry.lock` and
//! `Pipfile.lock` (pinned, with their hashes, from the lock), and PEP 621 `dependencies`
//! with PEP 735 dependency groups. Everything here is pure: `read(path)` gives a file of
//! the app's tree by relative path.
use crate::requirements::Part;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Requirements,
    UvLock,
    PoetryLock,
    PipfileLock,
    Pyproject,
}

impl Form {
    pub fn of(file: &str) -> Form {
        match file.rsplit('/').next().unwrap_or(file) {
            "uv.lock" => Form::UvLock,
            "poetry.lock" => Form::PoetryLock,
            "Pipfile.lock" => Form::PipfileLock,
            "pyproject.toml" => Form::Pyproject,
            _ => Form::Requirements,
        }
    }
    /// How keel installs it, for `keel plan` and init.
    pub fn describe(self) -> &'static str {
        match self {
            Form::Requirements => "pip requirements (-r/-c includes followed)",
            Form::UvLock => "uv.lock, exported by `uv export --frozen` (hashes checked)",
            Form::PoetryLock => "poetry.lock, pinned from the lock (hashes checked)",
            Form::PipfileLock => "Pipfile.lock, pinned from the lock (hashes checked)",
            Form::Pyproject => "pyproject.toml [project] dependencies and groups (not locked)",
        }
    }
}

/// What keel looks for when `django.requirements` is not set, in this order: a lock first.
pub const CANDIDATES: &[&str] = &[
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "requirements.txt",
    "requirements/production.txt",
    "requirements/prod.txt",
    "requirements-prod.txt",
    "requirements/base.txt",
    "pyproject.toml",
];

/// The hint for a project keel finds no dependencies in.
pub const NONE_FOUND: &str = "keel reads uv.lock, poetry.lock, Pipfile.lock, requirements.txt (or requirements/production.txt), or pyproject.toml's [project] dependencies; set django.requirements to the file";

/// The groups and extras to install beside the main dependencies.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub groups: Vec<String>,
    pub extras: Vec<String>,
}

/// The dependency file of a tree: the first candidate present (a pyproject.toml only when it
/// declares dependencies).
pub fn detect(read: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    CANDIDATES.iter().find_map(|c| {
        let text = read(c)?;
        if *c == "pyproject.toml" && !declares_dependencies(&text) {
            return None;
        }
        Some(c.to_string())
    })
}

fn declares_dependencies(pyproject: &str) -> bool {
    let Ok(v) = pyproject.parse::<toml::Table>() else {
        return false;
    };
    v.get("project")
        .and_then(|p| p.get("dependencies"))
        .is_some()
        || v.contains_key("dependency-groups")
}

fn dir_of(file: &str) -> &str {
    file.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn sibling(file: &str, name: &str) -> String {
    match dir_of(file) {
        "" => name.to_string(),
        d => format!("{d}/{name}"),
    }
}

/// Every file keel reads for the venv, each once (the venv's fingerprint covers them all).
pub fn inputs(file: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Part>, String> {
    let need = |p: &str| -> Result<Part, String> {
        read(p)
            .map(|t| (p.to_string(), t))
            .ok_or_else(|| format!("{p} is missing"))
    };
    Ok(match Form::of(file) {
        Form::Requirements => crate::requirements::closure(file, read)?,
        Form::UvLock | Form::PoetryLock => {
            let lock = need(file)?;
            let py = need(&sibling(file, "pyproject.toml"))
                .map_err(|e| format!("{e}: {file} is read with the pyproject.toml beside it"))?;
            vec![lock, py]
        }
        Form::PipfileLock | Form::Pyproject => vec![need(file)?],
    })
}

/// The fingerprint text of the inputs and the selection. A lone requirements file with no
/// selection hashes as before, so venvs built by older keels keep their keys.
pub fn fingerprint(parts: &[Part], sel: &Selection) -> String {
    let mut t = crate::requirements::fingerprint_text(parts);
    if !sel.groups.is_empty() || !sel.extras.is_empty() {
        t.push_str(&format!(
            "\n=== groups {:?} extras {:?}\n",
            sel.groups, sel.extras
        ));
    }
    t
}

/// The `uv export` arguments for a uv.lock (run in the lock's directory): production only,
/// the selected groups and extras, pinned with hashes, the project itself not installed.
pub fn uv_export_args(sel: &Selection) -> Vec<String> {
    let mut a: Vec<String> = [
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-header",
        "--format",
        "requirements-txt",
    ]
    .map(String::from)
    .to_vec();
    for g in &sel.groups {
        a.extend(["--group".into(), g.clone()]);
    }
    for e in &sel.extras {
        a.extend(["--extra".into(), e.clone()]);
    }
    a
}

/// The pinned requirements keel writes itself for the forms it converts (None: installed
/// from the file as it is, or exported by uv).
pub fn converted(file: &str, parts: &[Part], sel: &Selection) -> Result<Option<String>, String> {
    let text = |name: &str| -> &str {
        parts
            .iter()
            .find(|(p, _)| p.rsplit('/').next() == Some(name))
            .map(|(_, t)| t.as_str())
            .unwrap_or("")
    };
    match Form::of(file) {
        Form::Requirements if !sel.groups.is_empty() => Err(format!(
            "python.groups selects dependency groups, and {file} is a requirements file (name the file of each set instead)"
        )),
        Form::Requirements if !sel.extras.is_empty() => Err(format!(
            "python.extras selects a project's extras, and {file} is a requirements file"
        )),
        Form::Requirements => Ok(None),
        Form::UvLock => {
            check_selection(file, &parse(text("pyproject.toml"), "pyproject.toml")?, sel)?;
            Ok(None)
        }
        Form::Pyproject => pyproject_requirements(&parse(text("pyproject.toml"), file)?, sel)
            .map(Some)
            .map_err(|e| format!("{file}: {e}")),
        Form::PoetryLock => poetry::pinned(
            &parse(text("poetry.lock"), file)?,
            &parse(text("pyproject.toml"), "pyproject.toml")?,
            sel,
        )
        .map(Some)
        .map_err(|e| format!("{file}: {e}")),
        Form::PipfileLock => pipfile_pinned(text("Pipfile.lock"), sel)
            .map(Some)
            .map_err(|e| format!("{file}: {e}")),
    }
}

fn parse(text: &str, name: &str) -> Result<toml::Table, String> {
    text.parse::<toml::Table>()
        .map_err(|e| format!("{name} is not valid TOML: {}", e.message()))
}

/// The groups a pyproject declares (PEP 735 and uv's/poetry's own) and its extras.
fn declared(py: &toml::Table) -> (BTreeSet<String>, BTreeSet<String>) {
    let keys = |v: Option<&toml::Value>| -> BTreeSet<String> {
        v.and_then(|v| v.as_table())
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default()
    };
    let mut groups = keys(py.get("dependency-groups"));
    groups.extend(keys(
        py.get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("group")),
    ));
    let mut extras = keys(
        py.get("project")
            .and_then(|p| p.get("optional-dependencies")),
    );
    extras.extend(keys(
        py.get("tool")
            .and_then(|t| t.get("poetry"))
            .and_then(|p| p.get("extras")),
    ));
    (groups, extras)
}

fn check_selection(file: &str, py: &toml::Table, sel: &Selection) -> Result<(), String> {
    let (groups, extras) = declared(py);
    for g in &sel.groups {
        if !groups.contains(g) {
            return Err(format!(
                "python.groups names {g:?}, which the pyproject.toml beside {file} does not declare (it has: {})",
                list(&groups)
            ));
        }
    }
    for e in &sel.extras {
        if !extras.contains(e) {
            return Err(format!(
                "python.extras names {e:?}, which the pyproject.toml beside {file} does not declare (it has: {})",
                list(&extras)
            ));
        }
    }
    Ok(())
}

fn list(s: &BTreeSet<String>) -> String {
    if s.is_empty() {
        "none".into()
    } else {
        s.iter().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn strings(v: Option<&toml::Value>, what: &str) -> Result<Vec<String>, String> {
    let Some(v) = v else { return Ok(vec![]) };
    let arr = v
        .as_array()
        .ok_or_else(|| format!("{what} is not a list"))?;
    arr.iter()
        .map(|x| {
            x.as_str()
                .map(String::from)
                .ok_or_else(|| format!("{what} has an entry that is not a string"))
        })
        .collect()
}

/// PEP 621 `dependencies`, the selected extras and PEP 735 groups (with `include-group`
/// followed), as requirement lines. Not locked: the README says so.
fn pyproject_requirements(py: &toml::Table, sel: &Selection) -> Result<String, String> {
    check_selection("pyproject.toml", py, sel)?;
    let project = py.get("project");
    let mut lines = strings(
        project.and_then(|p| p.get("dependencies")),
        "[project] dependencies",
    )?;
    for e in &sel.extras {
        lines.extend(strings(
            project
                .and_then(|p| p.get("optional-dependencies"))
                .and_then(|o| o.get(e)),
            &format!("[project.optional-dependencies] {e}"),
        )?);
    }
    let groups = py.get("dependency-groups").and_then(|g| g.as_table());
    let mut seen = BTreeSet::new();
    for g in &sel.groups {
        group_lines(groups, g, &mut seen, &mut lines)?;
    }
    let mut out = String::new();
    for l in lines {
        if l.trim().starts_with('-') {
            return Err(format!("{l:?} is an option, not a requirement"));
        }
        out.push_str(l.trim());
        out.push('\n');
    }
    Ok(out)
}

fn group_lines(
    groups: Option<&toml::Table>,
    name: &str,
    seen: &mut BTreeSet<String>,
    out: &mut Vec<String>,
) -> Result<(), String> {
    if !seen.insert(name.to_string()) {
        return Ok(());
    }
    let entries = groups
        .and_then(|g| g.get(name))
        .and_then(|v| v.as_array())
        .ok_or_else(|| format!("[dependency-groups] has no list {name:?}"))?;
    for e in entries {
        match e {
            toml::Value::String(s) => out.push(s.clone()),
            toml::Value::Table(t) => {
                let inc = t
                    .get("include-group")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| {
                        format!("group {name:?} has a table that is not include-group")
                    })?;
                group_lines(groups, inc, seen, out)?;
            }
            _ => return Err(format!("group {name:?} has an entry that is not a string")),
        }
    }
    Ok(())
}

/// A requirement line: `name==version ; markers` and its hashes, one per line after.
fn pinned_line(name: &str, pin: &str, markers: &str, hashes: &[String]) -> String {
    let mut l = format!("{name}{pin}");
    if !markers.is_empty() {
        l.push_str(&format!(" ; {markers}"));
    }
    for h in hashes {
        l.push_str(&format!(" \\\n    --hash={h}"));
    }
    l.push('\n');
    l
}

/// Pipfile.lock: `default`, plus the selected groups (pipenv's categories); never `develop`
/// unless selected. A package from a path or an editable checkout is refused.
fn pipfile_pinned(text: &str, sel: &Selection) -> Result<String, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let mut sections = vec!["default".to_string()];
    sections.extend(sel.groups.iter().cloned());
    let mut out = BTreeMap::new();
    for s in &sections {
        let Some(pkgs) = v.get(s).and_then(|p| p.as_object()) else {
            if s == "default" {
                return Err("has no \"default\" section".into());
            }
            return Err(format!(
                "python.groups names {s:?}, which it has no section for"
            ));
        };
        for (name, p) in pkgs {
            let markers = p.get("markers").and_then(|m| m.as_str()).unwrap_or("");
            let hashes: Vec<String> = p
                .get("hashes")
                .and_then(|h| h.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let extras = p
                .get("extras")
                .and_then(|e| e.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            let full = if extras.is_empty() {
                name.clone()
            } else {
                format!("{name}[{extras}]")
            };
            let line = if let Some(ver) = p.get("version").and_then(|x| x.as_str()) {
                pinned_line(&full, ver, markers, &hashes)
            } else if let Some(git) = p.get("git").and_then(|x| x.as_str()) {
                let r = p.get("ref").and_then(|x| x.as_str()).unwrap_or("");
                let git = git.strip_prefix("git+").unwrap_or(git);
                pinned_line(&format!("{full} @ git+{git}@{r}"), "", markers, &[])
            } else {
                return Err(format!(
                    "{name} comes from a path or an editable checkout: keel installs only pinned packages (vendor it into the app, or publish it)"
                ));
            };
            out.insert(name.to_ascii_lowercase(), line);
        }
    }
    Ok(out.into_values().collect())
}

/// The name of a PEP 508 requirement (normalised: lowercase, `_`/`.` as `-`).
pub fn req_name(req: &str) -> String {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c)))
        .unwrap_or(req.len());
    normalize(&req[..end])
}

pub fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace(['_', '.'], "-")
}

/// poetry.lock: the packages reachable from the project's main dependencies (and the selected
/// groups and extras), following the lock's own dependency edges with their markers, pinned
/// with the lock's hashes. This is what `poetry install --only main` installs.
mod poetry {
    use super::{normalize, pinned_line, req_name};
    use std::collections::{BTreeMap, VecDeque};

    /// A dependency edge: the target's name, its markers ("" = always) and extras.
    struct Edge {
        name: String,
        markers: String,
        extras: Vec<String>,
    }

    fn edge_of(name: &str, spec: &toml::Value) -> Option<Edge> {
        let (markers, optional, extras) = match spec {
            toml::Value::Table(t) => (
                t.get("markers").and_then(|m| m.as_str()).unwrap_or(""),
                t.get("optional").and_then(|o| o.as_bool()).unwrap_or(false),
                t.get("extras")
                    .and_then(|e| e.as_array())
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(normalize)).collect())
                    .unwrap_or_default(),
            ),
            // A list of constraints (one per Python/platform): installed if any applies.
            _ => ("", false, vec![]),
        };
        (!optional).then(|| Edge {
            name: normalize(name),
            markers: markers.to_string(),
            extras,
        })
    }

    /// The root edges: `[tool.poetry.dependencies]` (or PEP 621 `[project] dependencies`),
    /// the selected groups, and the optional packages the selected extras name.
    fn roots(py: &toml::Table, sel: &super::Selection) -> Result<Vec<Edge>, String> {
        let tp = py.get("tool").and_then(|t| t.get("poetry"));
        let mut out = vec![];
        let table_edges = |t: Option<&toml::Value>, out: &mut Vec<Edge>| {
            for (n, spec) in t.and_then(|t| t.as_table()).into_iter().flatten() {
                if n != "python"
                    && let Some(e) = edge_of(n, spec)
                {
                    out.push(e);
                }
            }
        };
        table_edges(tp.and_then(|p| p.get("dependencies")), &mut out);
        for r in super::strings(
            py.get("project").and_then(|p| p.get("dependencies")),
            "[project] dependencies",
        )? {
            let markers = r.split_once(';').map(|(_, m)| m.trim()).unwrap_or("");
            out.push(Edge {
                name: req_name(&r),
                markers: markers.to_string(),
                extras: vec![],
            });
        }
        for g in &sel.groups {
            let deps = tp
                .and_then(|p| p.get("group"))
                .and_then(|gs| gs.get(g))
                .and_then(|g| g.get("dependencies"));
            table_edges(deps, &mut out);
        }
        for e in &sel.extras {
            let names = tp
                .and_then(|p| p.get("extras"))
                .and_then(|x| x.get(e))
                .and_then(|a| a.as_array());
            for n in names.into_iter().flatten().filter_map(|n| n.as_str()) {
                out.push(Edge {
                    name: normalize(n),
                    markers: String::new(),
                    extras: vec![],
                });
            }
        }
        Ok(out)
    }

    fn and(a: &str, b: &str) -> String {
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("({a}) and ({b})"),
        }
    }

    pub fn pinned(
        lock: &toml::Table,
        py: &toml::Table,
        sel: &super::Selection,
    ) -> Result<String, String> {
        super::check_selection("poetry.lock", py, sel)?;
        let pkgs = lock
            .get("package")
            .and_then(|p| p.as_array())
            .ok_or("has no [[package]] entries")?;
        let by_name: BTreeMap<String, &toml::Value> = pkgs
            .iter()
            .filter_map(|p| Some((normalize(p.get("name")?.as_str()?), p)))
            .collect();
        // For each package reached: the markers it is installed under ("" = always).
        let mut reached: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut todo: VecDeque<(Edge, String)> = roots(py, sel)?
            .into_iter()
            .map(|e| (e, String::new()))
            .collect();
        let mut steps = 0;
        while let Some((edge, parent)) = todo.pop_front() {
            steps += 1;
            if steps > 100_000 {
                return Err("its dependency graph is too large to follow".into());
            }
            let m = and(&parent, &edge.markers);
            let p = *by_name
                .get(&edge.name)
                .ok_or_else(|| format!("{} is not in the lock: run `poetry lock`", edge.name))?;
            let seen = reached.entry(edge.name.clone()).or_default();
            if seen.iter().any(|s| s.is_empty() || *s == m) && edge.extras.is_empty() {
                continue;
            }
            if !seen.contains(&m) {
                seen.push(m.clone());
            }
            for (n, spec) in p
                .get("dependencies")
                .and_then(|d| d.as_table())
                .into_iter()
                .flatten()
            {
                if let Some(e) = edge_of(n, spec) {
                    todo.push_back((e, m.clone()));
                }
            }
            // Extras asked of this package bring its optional dependencies.
            for x in &edge.extras {
                let names = p
                    .get("extras")
                    .and_then(|xs| xs.get(x))
                    .and_then(|a| a.as_array());
                for r in names.into_iter().flatten().filter_map(|r| r.as_str()) {
                    todo.push_back((
                        Edge {
                            name: req_name(r),
                            markers: String::new(),
                            extras: vec![],
                        },
                        m.clone(),
                    ));
                }
            }
        }
        lines(&reached, &by_name)
    }

    /// The requirement lines of the packages reached, with their markers and hashes.
    fn lines(
        reached: &BTreeMap<String, Vec<String>>,
        by_name: &BTreeMap<String, &toml::Value>,
    ) -> Result<String, String> {
        let mut out = String::new();
        for (name, markers) in reached {
            let p = by_name[name];
            let version = p.get("version").and_then(|v| v.as_str()).unwrap_or("");
            let marker = if markers.iter().any(|m| m.is_empty()) {
                String::new()
            } else if markers.len() == 1 {
                markers[0].clone()
            } else {
                markers
                    .iter()
                    .map(|m| format!("({m})"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            };
            let hashes: Vec<String> = p
                .get("files")
                .and_then(|f| f.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f.get("hash")?.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            let source = p.get("source");
            match source.and_then(|s| s.get("type")).and_then(|t| t.as_str()) {
                None | Some("legacy") => out.push_str(&pinned_line(
                    name,
                    &format!("=={version}"),
                    &marker,
                    &hashes,
                )),
                Some("git") => {
                    let url = source
                        .and_then(|s| s.get("url"))
                        .and_then(|u| u.as_str())
                        .unwrap_or("");
                    let r = source
                        .and_then(|s| s.get("resolved_reference").or_else(|| s.get("reference")))
                        .and_then(|u| u.as_str())
                        .unwrap_or("");
                    out.push_str(&pinned_line(
                        &format!("{name} @ git+{url}@{r}"),
                        "",
                        &marker,
                        &[],
                    ))
                }
                Some(t) => {
                    return Err(format!(
                        "{name} comes from a {t} source: keel installs only packages from an index or git (vendor it into the app, or publish it)"
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(files: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let m: BTreeMap<String, String> = files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |p: &str| m.get(p).cloned()
    }

    #[test]
    fn detection_prefers_a_lock_and_needs_declared_dependencies() {
        let r = reader(&[
            ("uv.lock", "x"),
            ("pyproject.toml", "[project]\ndependencies=[]"),
        ]);
        assert_eq!(detect(&r).as_deref(), Some("uv.lock"));
        let r = reader(&[("requirements/production.txt", "-r base.txt")]);
        assert_eq!(detect(&r).as_deref(), Some("requirements/production.txt"));
        let r = reader(&[("pyproject.toml", "[tool.black]\nline-length = 88\n")]);
        assert_eq!(detect(&r), None);
        let r = reader(&[(
            "pyproject.toml",
            "[dependency-groups]\nprod = [\"django\"]\n",
        )]);
        assert_eq!(detect(&r).as_deref(), Some("pyproject.toml"));
    }

    #[test]
    fn pyproject_groups_follow_include_group() {
        let py = "[project]\nname='x'\ndependencies = ['django>=5']\n\
                  [project.optional-dependencies]\ns3 = ['boto3']\n\
                  [dependency-groups]\nbase = ['celery[redis]>=5']\n\
                  prod = [{include-group = 'base'}, 'gunicorn']\ndev = ['pytest']\n";
        let r = reader(&[("pyproject.toml", py)]);
        let parts = inputs("pyproject.toml", &r).unwrap();
        let sel = Selection {
            groups: vec!["prod".into()],
            extras: vec!["s3".into()],
        };
        let t = converted("pyproject.toml", &parts, &sel).unwrap().unwrap();
        assert_eq!(t, "django>=5\nboto3\ncelery[redis]>=5\ngunicorn\n");
        let bad = Selection {
            groups: vec!["nope".into()],
            extras: vec![],
        };
        let e = converted("pyproject.toml", &parts, &bad).unwrap_err();
        assert!(
            e.contains("\"nope\"") && e.contains("base, dev, prod"),
            "{e}"
        );
    }

    #[test]
    fn uv_lock_needs_its_pyproject_and_known_groups() {
        let r = reader(&[("uv.lock", "version = 1")]);
        assert!(
            inputs("uv.lock", &r)
                .unwrap_err()
                .contains("pyproject.toml")
        );
        let r = reader(&[
            ("uv.lock", "version = 1"),
            ("pyproject.toml", "[dependency-groups]\nprod=[]\n"),
        ]);
        let parts = inputs("uv.lock", &r).unwrap();
        let sel = Selection {
            groups: vec!["prod".into()],
            extras: vec![],
        };
        assert_eq!(converted("uv.lock", &parts, &sel).unwrap(), None);
        let a = uv_export_args(&sel);
        assert!(a.contains(&"--frozen".into()) && a.contains(&"--no-dev".into()));
        assert!(a.windows(2).any(|w| w == ["--group", "prod"]));
        assert_ne!(
            fingerprint(&parts, &sel),
            fingerprint(&parts, &Selection::default())
        );
    }

    #[test]
    fn pipfile_lock_pins_default_with_hashes() {
        let lock = r#"{"_meta": {}, "default": {
            "django": {"hashes": ["sha256:aa", "sha256:bb"], "version": "==5.1.2"},
            "tzdata": {"hashes": ["sha256:cc"], "markers": "sys_platform == 'win32'", "version": "==2024.1"}
        }, "develop": {"pytest": {"version": "==8.0.0", "hashes": []}}}"#;
        let t = pipfile_pinned(lock, &Selection::default()).unwrap();
        assert!(
            t.starts_with("django==5.1.2 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"),
            "{t}"
        );
        assert!(t.contains("tzdata==2024.1 ; sys_platform == 'win32'"));
        assert!(!t.contains("pytest"));
        let e = pipfile_pinned(
            r#"{"default": {"x": {"path": "."}}}"#,
            &Selection::default(),
        );
        assert!(e.unwrap_err().contains("path"));
    }

    #[test]
    fn poetry_lock_follows_the_main_graph_only() {
        let py = "[tool.poetry.dependencies]\npython = '^3.11'\nDjango = '^5.0'\n\
                  psycopg = {version = '^3.1', extras = ['c']}\n\
                  [tool.poetry.group.dev.dependencies]\npytest = '*'\n";
        let lock = r#"
[[package]]
name = "django"
version = "5.0.1"
files = [{file = "Django-5.0.1.whl", hash = "sha256:d1"}]
[package.dependencies]
asgiref = ">=3.7"
tzdata = {version = "*", markers = "sys_platform == \"win32\""}

[[package]]
name = "asgiref"
version = "3.7.2"
files = [{file = "a.whl", hash = "sha256:a1"}]

[[package]]
name = "tzdata"
version = "2024.1"
files = []

[[package]]
name = "psycopg"
version = "3.1.18"
files = []
[package.dependencies]
psycopg-c = {version = "3.1.18", optional = true}
[package.extras]
c = ["psycopg-c (==3.1.18)"]

[[package]]
name = "psycopg-c"
version = "3.1.18"
files = []

[[package]]
name = "pytest"
version = "8.0.0"
files = []
"#;
        let t = poetry::pinned(
            &lock.parse().unwrap(),
            &py.parse().unwrap(),
            &Selection::default(),
        )
        .unwrap();
        assert!(
            t.contains("django==5.0.1 \\\n    --hash=sha256:d1\n"),
            "{t}"
        );
        assert!(t.contains("asgiref==3.7.2"));
        assert!(t.contains("tzdata==2024.1 ; sys_platform == \"win32\""));
        assert!(
            t.contains("psycopg==3.1.18") && t.contains("psycopg-c==3.1.18"),
            "{t}"
        );
        assert!(!t.contains("pytest"));
    }
}
