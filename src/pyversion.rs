//! The Python a project asks for (`[python] version`, `requires-python`, `.python-version`,
//! `runtime.txt`) and whether a given interpreter satisfies it: PEP 440 specifiers on
//! release numbers (`>=3.12`, `~=3.11.4`, `==3.12.*`, `!=3.13.0`, `<4`).

/// A version as its release numbers (3.11.2 → [3, 11, 2]).
pub type Version = Vec<u64>;

pub fn parse_version(s: &str) -> Option<Version> {
    let s = s.trim().trim_start_matches(['v', 'V']);
    let v: Option<Version> = s.split('.').map(|p| p.parse().ok()).collect();
    v.filter(|v| !v.is_empty() && v.len() <= 4)
}

pub fn show(v: &[u64]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn cmp(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let n = a.len().max(b.len());
    let at = |v: &[u64], i: usize| v.get(i).copied().unwrap_or(0);
    (0..n)
        .map(|i| at(a, i).cmp(&at(b, i)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// One clause of a specifier against version `v`. Err: the clause does not parse.
fn clause(c: &str, v: &[u64]) -> Result<bool, String> {
    use std::cmp::Ordering::*;
    let c = c.trim();
    let ops = ["===", "~=", "==", "!=", "<=", ">=", "<", ">"];
    let op = ops
        .iter()
        .find(|o| c.starts_with(**o))
        .ok_or_else(|| format!("{c:?} has no comparison (>=, ==, ~=, ...)"))?;
    let rest = c[op.len()..].trim();
    let bad = || format!("{c:?} is not a version comparison keel understands");
    if let Some(prefix) = rest.strip_suffix(".*") {
        let p = parse_version(prefix).ok_or_else(bad)?;
        let matches = v.len() >= p.len() && v[..p.len()] == p[..];
        return match *op {
            "==" => Ok(matches),
            "!=" => Ok(!matches),
            _ => Err(bad()),
        };
    }
    let p = parse_version(rest).ok_or_else(bad)?;
    let o = cmp(v, &p);
    Ok(match *op {
        "==" | "===" => o == Equal,
        "!=" => o != Equal,
        "<=" => o != Greater,
        ">=" => o != Less,
        "<" => o == Less,
        ">" => o == Greater,
        "~=" => {
            if p.len() < 2 {
                return Err(bad());
            }
            let stem = &p[..p.len() - 1];
            o != Less && v.len() >= stem.len() && v[..stem.len()] == stem[..]
        }
        _ => return Err(bad()),
    })
}

/// Whether `v` satisfies every comma-separated clause of `spec`.
pub fn satisfies(spec: &str, v: &[u64]) -> Result<bool, String> {
    let mut all = true;
    for c in spec.split(',').filter(|c| !c.trim().is_empty()) {
        all &= clause(c, v)?;
    }
    Ok(all)
}

/// A request as written in `.python-version` or `runtime.txt` ("3.12", "3.12.1",
/// "python-3.12.1", "cpython@3.12"), as a specifier on the minor version: keel takes the
/// series, not the patch level (Debian's 3.11.2 satisfies "3.11.9").
pub fn series_spec(s: &str) -> Option<String> {
    let t = s.trim();
    let t = t
        .trim_start_matches("python-")
        .trim_start_matches("cpython-")
        .trim_start_matches("cpython@")
        .trim_start_matches("python");
    let v = parse_version(t.split(['-', '+']).next().unwrap_or(""))?;
    match v.as_slice() {
        [3, minor, ..] => Some(format!("==3.{minor}.*")),
        _ => None,
    }
}

/// One requirement on the interpreter and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    pub from: String,
    pub spec: String,
}

/// What the project (and the config) ask of the interpreter. `read` gives a file of the
/// app's tree. Every entry must hold.
pub fn wanted(config: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Want>, String> {
    let mut out = vec![];
    if !config.is_empty() {
        let spec = if config.starts_with(|c: char| c.is_ascii_digit()) {
            series_spec(config).unwrap_or_else(|| format!("=={config}"))
        } else {
            config.to_string()
        };
        out.push(Want {
            from: "python.version".into(),
            spec,
        });
    }
    if let Some(py) = read("pyproject.toml")
        && let Ok(t) = py.parse::<toml::Table>()
        && let Some(r) = t
            .get("project")
            .and_then(|p| p.get("requires-python"))
            .and_then(|r| r.as_str())
    {
        out.push(Want {
            from: "pyproject.toml requires-python".into(),
            spec: r.to_string(),
        });
    }
    for f in [".python-version", "runtime.txt"] {
        if let Some(text) = read(f) {
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with('#'))
                .unwrap_or("");
            if line.is_empty() {
                continue;
            }
            let spec = series_spec(line).ok_or_else(|| {
                format!("{f} asks for {line:?}, which is not a CPython 3 version")
            })?;
            out.push(Want {
                from: f.into(),
                spec,
            });
        }
    }
    for w in &out {
        satisfies(&w.spec, &[3, 12, 0]).map_err(|e| format!("{}: {e}", w.from))?;
    }
    Ok(out)
}

/// The first of `wants` that `v` does not satisfy.
pub fn unmet<'a>(wants: &'a [Want], v: &[u64]) -> Option<&'a Want> {
    wants
        .iter()
        .find(|w| !satisfies(&w.spec, v).unwrap_or(false))
}

/// The request uv is given for a managed Python: the specifiers joined.
pub fn uv_request(wants: &[Want]) -> String {
    wants
        .iter()
        .map(|w| w.spec.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The python3 a release of a distribution ships (`ID`, `VERSION_ID` of os-release), for a
/// host where python3 is not installed yet.
pub fn os_python(id: &str, version_id: &str) -> Option<Version> {
    let v: &[u64] = match (id, version_id) {
        ("debian", "11") => &[3, 9, 2],
        ("debian", "12") => &[3, 11, 2],
        ("debian", "13") => &[3, 13, 5],
        ("ubuntu", "20.04") => &[3, 8, 10],
        ("ubuntu", "22.04") => &[3, 10, 12],
        ("ubuntu", "24.04") => &[3, 12, 3],
        ("ubuntu", "24.10") => &[3, 12, 7],
        ("ubuntu", "25.04") => &[3, 13, 3],
        _ => return None,
    };
    Some(v.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specifiers() {
        let v311 = parse_version("3.11.2").unwrap();
        let v313 = parse_version("3.13.5").unwrap();
        assert!(!satisfies(">=3.12", &v311).unwrap());
        assert!(satisfies(">=3.12", &v313).unwrap());
        assert!(satisfies(">=3.10,<4", &v311).unwrap());
        assert!(satisfies("~=3.11", &v313).unwrap());
        assert!(!satisfies("~=3.11.4", &v313).unwrap());
        assert!(satisfies("==3.11.*", &v311).unwrap());
        assert!(!satisfies("!=3.11.*", &v311).unwrap());
        assert!(satisfies(">3.11", &v311).unwrap());
        assert!(satisfies("", &v311).unwrap());
        assert!(satisfies("3.12", &v311).is_err());
    }

    #[test]
    fn project_requests_are_gathered_and_checked() {
        let files = |p: &str| match p {
            "pyproject.toml" => Some("[project]\nrequires-python = \">=3.12\"\n".to_string()),
            ".python-version" => Some("3.13.1\n".to_string()),
            _ => None,
        };
        let w = wanted("", &files).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(w[1].spec, "==3.13.*");
        let v312 = parse_version("3.12.3").unwrap();
        assert_eq!(unmet(&w, &v312).unwrap().from, ".python-version");
        assert!(unmet(&w, &parse_version("3.13.5").unwrap()).is_none());
        assert_eq!(uv_request(&w), ">=3.12,==3.13.*");
        let cfg = wanted("3.12", &|_| None).unwrap();
        assert_eq!(cfg[0].spec, "==3.12.*");
        assert!(wanted("", &|p| (p == "runtime.txt").then(|| "pypy-7".into())).is_err());
        assert_eq!(series_spec("python-3.12.1").as_deref(), Some("==3.12.*"));
    }
}
