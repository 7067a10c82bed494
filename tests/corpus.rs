//! The bad-input corpus (tests/corpus/*.cases): every malformed keel.toml, state file,
//! .env.example and argument list must end in exit 2, a message naming the file, key or flag
//! plus a hint, and a fake host whose every byte, mode and owner is as before: no lock file,
//! resume unit, secret or command for a refused run.
use crate::fakehost::Host;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// (name, expected texts, body) for each `### NAME | TEXT & TEXT` case of a file.
fn cases(file: &str) -> Vec<(String, Vec<String>, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(file),
    )
    .unwrap();
    let mut out: Vec<(String, Vec<String>, String)> = vec![];
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let (name, want) = h.split_once(" | ").expect("### NAME | TEXT");
            let want = want.split(" & ").map(str::to_string).collect();
            out.push((name.to_string(), want, String::new()));
        } else if let Some(last) = out.last_mut() {
            last.2.push_str(line);
            last.2.push('\n');
        }
    }
    out
}

/// Placeholders for bytes a text file cannot hold.
fn expand(body: &str) -> Vec<u8> {
    let s = body
        .replace("%%BIG%%", &"a".repeat(9000))
        .replace("%%NUL%%", "\0")
        .replace("%%ESC%%", "\x1b")
        .replace("%%BEL%%", "\x07")
        .replace("%%CR%%", "\r")
        .replace("%%FF%%", "\x0c")
        .replace("%%VT%%", "\x0b")
        .replace("%%DEL%%", "\x7f")
        .replace("%%C1%%", "\u{85}")
        .replace("%%DEEP%%", &"[".repeat(10_000))
        .replace("%%HUGE%%", &format!("A={}\n", "x".repeat(2 << 20)));
    let mut b = s.into_bytes();
    if let Some(i) = b.windows(11).position(|w| w == b"%%BADUTF8%%") {
        b.splice(i..i + 11, [0xff, 0xfe, 0xc3, 0x28]);
    }
    b
}

/// Every entry under `dir`: kind, mode, owner, content hash or link target.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    use sha2::Digest;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else {
                let h = sha2::Sha256::digest(std::fs::read(&p).unwrap_or_default());
                format!("file {h:x}")
            };
            let key = p.strip_prefix(dir).unwrap().display().to_string();
            out.insert(
                key,
                format!("{what} {:o} {}:{}", md.mode(), md.uid(), md.gid()),
            );
        }
    }
    out
}

/// A case's TOML overlay merged into the valid config `base`: the config's text, or why the
/// case itself is not TOML.
fn overlaid(name: &str, base: &str, body: &str) -> Result<String, String> {
    let mut base: toml::Table = toml::from_str(base).unwrap();
    let over: toml::Table =
        toml::from_str(body).map_err(|e| format!("{name}: the case itself is not TOML: {e}"))?;
    deep_merge(&mut base, over);
    Ok(toml::to_string(&base).unwrap())
}

fn deep_merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => deep_merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Run keel, then check exit 2, the expected texts and a hint, and an unchanged host.
fn refused(h: &Host, name: &str, want: &[String], args: &[&str]) -> Result<(), String> {
    let mut cmd = h.keel();
    cmd.args(args).timeout(std::time::Duration::from_secs(20));
    refused_by(h, name, want, cmd)
}

/// `refused`, for a command line of the caller's.
fn refused_by(
    h: &Host,
    name: &str,
    want: &[String],
    mut cmd: assert_cmd::Command,
) -> Result<(), String> {
    let before = snapshot(h.dir.path());
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let after = snapshot(h.dir.path());
    let mut problems = vec![];
    if out.status.code() != Some(2) {
        problems.push(format!("exit {:?}, want 2", out.status.code()));
    }
    for w in want {
        if !stderr.contains(w.as_str()) {
            problems.push(format!("stderr lacks {w:?}"));
        }
    }
    if !stderr.contains("hint:") && !stderr.contains("--help") {
        problems.push("no hint".into());
    }
    if before != after {
        let changed: Vec<_> = after
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(v))
            .map(|(k, _)| k.clone())
            .chain(before.keys().filter(|k| !after.contains_key(*k)).cloned())
            .collect();
        problems.push(format!("the host changed: {changed:?}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{name}: {} | stderr: {}",
            problems.join("; "),
            stderr.trim()
        ))
    }
}

fn report(total: usize, failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failures over {total} corpus cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn malformed_keel_toml_is_refused_and_changes_nothing() {
    let all = cases("keel-toml.cases");
    assert!(all.len() >= 150, "{} cases", all.len());
    let mut failures = vec![];
    for (name, want, body) in &all {
        let h = Host::new();
        // An account that exists and that keel did not make.
        let passwd = h.read("root/etc/passwd");
        h.write(
            "root/etc/passwd",
            &format!("{passwd}alice:x:1000:1000:Alice:/home/alice:/bin/bash\n"),
        );
        let bytes = if let Some(_raw) = name.strip_prefix("raw:") {
            expand(body)
        } else {
            let text = String::from_utf8(expand(body)).unwrap();
            match overlaid(name, &crate::fakehost::config(""), &text) {
                Ok(t) => t.into_bytes(),
                Err(e) => {
                    failures.push(e);
                    continue;
                }
            }
        };
        std::fs::write(h.path("keel.toml"), &bytes).unwrap();
        let mut want = want.clone();
        want.push("keel.toml".into());
        if let Err(e) = refused(&h, name, &want, &["install", "--yes"]) {
            failures.push(e);
        }
    }
    report(all.len(), failures);
}

#[test]
fn malformed_state_files_are_refused_and_left_as_they_are() {
    let all = cases("state.cases");
    let mut failures = vec![];
    for (name, want, body) in &all {
        let h = Host::new();
        std::fs::write(h.path("state.json"), expand(body.trim_end())).unwrap();
        let mut want = want.clone();
        want.push("state.json".into());
        for args in [
            &["install", "--yes"][..],
            &["rollback", "--yes"],
            &["status"],
        ] {
            if let Err(e) = refused(&h, &format!("{name} ({})", args[0]), &want, args) {
                failures.push(e);
            }
        }
    }
    report(all.len(), failures);
}

/// A second app ("shop", /etc/keel/apps/shop.toml) beside the host's ("demo",
/// /etc/keel/keel.toml): every collision or disagreement is refused before anything is
/// written, naming the key and the other app.
#[test]
fn apps_that_collide_are_refused_and_change_nothing() {
    let all = cases("apps.cases");
    assert!(all.len() >= 14, "{} cases", all.len());
    let mut failures = vec![];
    for (name, want, body) in &all {
        let h = Host::new();
        h.write("root/etc/keel/keel.toml", &crate::fakehost::config(""));
        let shop = crate::fakehost::named_config("shop", 6380);
        match overlaid(name, &shop, body) {
            Ok(t) => h.write("root/etc/keel/apps/shop.toml", &t),
            Err(e) => {
                failures.push(e);
                continue;
            }
        }
        let mut want = want.clone();
        want.push("shop.toml".into());
        if let Err(e) = refused_app(&h, name, &want) {
            failures.push(e);
        }
    }
    report(all.len(), failures);
}

/// `refused`, for `keel --app shop install --yes` (its files from --app, not --config).
fn refused_app(h: &Host, name: &str, want: &[String]) -> Result<(), String> {
    let mut cmd = h.keel_bare();
    cmd.args(["--app", "shop", "install", "--yes"])
        .timeout(std::time::Duration::from_secs(20));
    refused_by(h, name, want, cmd)
}

/// A copy of the demo app with `example` as its .env.example, configured as the source.
fn app_with_example(h: &Host, example: &[u8]) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-app");
    let dst = h.path("app");
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        std::fs::create_dir_all(dst.join(&rel)).unwrap();
        for e in std::fs::read_dir(src.join(&rel)).unwrap().flatten() {
            let r = rel.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                stack.push(r);
            } else {
                std::fs::copy(e.path(), dst.join(&r)).unwrap();
            }
        }
    }
    std::fs::write(dst.join(".env.example"), example).unwrap();
    let cfg = crate::fakehost::config("").replace(
        &format!("{}/examples/demo-app", env!("CARGO_MANIFEST_DIR")),
        &dst.display().to_string(),
    );
    h.write("keel.toml", &cfg);
}

#[test]
fn malformed_env_examples_are_refused_before_any_step() {
    let all = cases("env-example.cases");
    let mut failures = vec![];
    for (name, want, body) in &all {
        let h = Host::new();
        app_with_example(&h, &expand(body));
        let mut want = want.clone();
        want.push(".env.example".into());
        if let Err(e) = refused(&h, name, &want, &["install", "--yes"]) {
            failures.push(e);
        }
        // `keel env` parses before it derives anything: no secret appears either.
        let ex = h.path("app/.env.example").display().to_string();
        let out = h.path("out.env").display().to_string();
        if let Err(e) = refused(
            &h,
            &format!("{name} (env)"),
            &["--example".into()],
            &["env", "--example", &ex, "--out", &out],
        ) {
            failures.push(e);
        }
    }
    report(all.len(), failures);
}

#[test]
fn bad_arguments_are_refused_and_change_nothing() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/cli.cases"),
    )
    .unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    let mut failures = vec![];
    for line in &lines {
        let (want, args) = line.split_once('\t').expect("TEXT<TAB>ARGS");
        let args: Vec<String> = args.split(' ').map(|a| a.replace("%%SP%%", " ")).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let h = Host::new();
        if let Err(e) = refused(&h, line, &[want.to_string()], &args) {
            failures.push(e);
        }
    }
    report(lines.len(), failures);
}

/// Valid edge cases: accepted, and (for the BOM) really used.
#[test]
fn valid_edge_cases_are_accepted() {
    // A byte-order mark and CRLF line ends in .env.example (editors on Windows).
    let h = Host::new();
    app_with_example(
        &h,
        "\u{feff}SECRET_KEY=change-me\r\nDEBUG=True\r\nDATABASE_URL=x\r\nREDIS_URL=x\r\n"
            .as_bytes(),
    );
    h.install(&[]).success();
    let env = h.read("root/opt/demo/shared/.env");
    let sk = env
        .lines()
        .find_map(|l| l.strip_prefix("SECRET_KEY="))
        .unwrap_or("");
    assert!(sk.len() >= 50 && !sk.contains("change-me"), "{env:?}");
    assert!(!env.contains('\u{feff}') && !env.contains('\r'), "{env:?}");
    // A BOM in keel.toml, an ssh URL with a port, a package with an arch and a version.
    for extra in [
        "",
        "[packages]\ninstall = [\"nginx\", \"libpq5:amd64\", \"redis-server=5:7.0.15-1~deb12u1\", \"postgresql-15\"]\n",
    ] {
        let h = Host::new();
        h.write(
            "keel.toml",
            &format!("\u{feff}{}", crate::fakehost::config(extra)),
        );
        h.keel().args(["install", "--dry-run"]).assert().success();
    }
    let h = Host::new();
    h.write(
        "keel.toml",
        &crate::fakehost::git_config(
            "ssh://git@git.example.com:2222/acme/shop.git",
            "release/v1.2",
        ),
    );
    h.keel().args(["install", "--dry-run"]).assert().success();
}
