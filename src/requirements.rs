//! A pip requirements file and every file it includes (`-r`/`--requirement`,
//! `-c`/`--constraint`), followed inside the app's tree: what the venv is built from, so its
//! fingerprint covers every file read (a change in `base.txt` alone makes a new venv).

/// One file of the closure: its path (relative to the app's top) and its text.
pub type Part = (String, String);

/// The include target of a requirements line, if the line is an include.
fn include(line: &str) -> Option<&str> {
    let l = line.split(" #").next().unwrap_or("").trim();
    for opt in ["--requirement", "--constraint"] {
        if let Some(rest) = l.strip_prefix(opt) {
            let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
            if !rest.is_empty() {
                return Some(rest);
            }
        }
    }
    for opt in ["-r", "-c"] {
        if let Some(rest) = l.strip_prefix(opt) {
            let rest = rest.trim();
            if !rest.is_empty() {
                return Some(rest);
            }
        }
    }
    None
}

/// `base` joined with `rel`, normalised; None when it would leave the app's tree.
fn join(base: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// Every file `top` reads, in reading order, each once. `read(path)` gives a file's text
/// (None: missing). An include outside the tree, absolute, or a URL is refused: keel hashes
/// and reads only the app's own files.
pub fn closure(top: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Part>, String> {
    let mut out: Vec<Part> = vec![];
    let mut todo = vec![(top.to_string(), String::new())];
    while let Some((path, from)) = todo.pop() {
        if out.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let text = read(&path).ok_or_else(|| match from.as_str() {
            "" => format!("{path} is missing"),
            f => format!("{path} (included by {f}) is missing"),
        })?;
        let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let mut next = vec![];
        for line in text.lines() {
            let Some(target) = include(line) else {
                continue;
            };
            if target.contains("://") || target.starts_with('/') {
                return Err(format!(
                    "{path} includes {target}: only files inside the app's tree are followed"
                ));
            }
            let joined = join(dir, target)
                .ok_or_else(|| format!("{path} includes {target}, outside the app's tree"))?;
            next.push((joined, path.clone()));
        }
        out.push((path, text));
        // Depth first, in the order the lines name them.
        todo.extend(next.into_iter().rev());
    }
    Ok(out)
}

/// The closure as one text for a fingerprint: each file's path and content (a lone file's
/// text as it is, so a venv built before includes were followed keeps its key).
pub fn fingerprint_text(parts: &[Part]) -> String {
    if let [(_, text)] = parts {
        return text.clone();
    }
    parts
        .iter()
        .map(|(p, t)| format!("=== {p}\n{t}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn tree(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect()
    }

    #[test]
    fn includes_are_followed_once_in_order() {
        let t = tree(&[
            (
                "requirements/production.txt",
                "-r base.txt\ngunicorn==23\n-c ./constraints.txt\n",
            ),
            (
                "requirements/base.txt",
                "django==5.1\n--requirement=common.txt # shared\n",
            ),
            ("requirements/common.txt", "-r base.txt\ncelery\n"),
            ("requirements/constraints.txt", "urllib3<3\n"),
        ]);
        let parts = closure("requirements/production.txt", &|p| t.get(p).cloned()).unwrap();
        let names: Vec<&str> = parts.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            names,
            [
                "requirements/production.txt",
                "requirements/base.txt",
                "requirements/common.txt",
                "requirements/constraints.txt"
            ]
        );
        // A change in an included file changes the fingerprint.
        let mut t2 = t.clone();
        t2.insert(
            "requirements/common.txt".into(),
            "-r base.txt\ncelery==5.4\n".into(),
        );
        let p2 = closure("requirements/production.txt", &|p| t2.get(p).cloned()).unwrap();
        assert_ne!(fingerprint_text(&parts), fingerprint_text(&p2));
    }

    #[test]
    fn includes_outside_the_tree_or_missing_are_refused() {
        for (text, want) in [
            ("-r ../../etc/shadow\n", "outside the app's tree"),
            ("-r /etc/passwd\n", "only files inside"),
            ("-r https://example.com/r.txt\n", "only files inside"),
            (
                "-r missing.txt\n",
                "missing.txt (included by requirements.txt) is missing",
            ),
        ] {
            let t = tree(&[("requirements.txt", text)]);
            let e = closure("requirements.txt", &|p| t.get(p).cloned()).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
        // `..` that stays inside is fine.
        let t = tree(&[("a/r.txt", "-r ../b.txt\n"), ("b.txt", "six\n")]);
        assert_eq!(closure("a/r.txt", &|p| t.get(p).cloned()).unwrap().len(), 2);
    }
}
