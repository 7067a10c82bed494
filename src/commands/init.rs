//! `keel init`: a wizard that reads the Django project first, then asks only what it cannot
//! find out (name, domain, HTTPS, e-mails, the .env.example values nothing can derive),
//! shows the config and `keel plan`, and writes keel.toml once the user agrees.
use super::context::{CtxOptions, Invocation, build_ctx, runner};
use crate::config::{Config, TlsMode};
use crate::dotenv::{self, Line};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What keel found in the project, and where each value came from.
#[derive(Debug, Default, PartialEq)]
pub struct Project {
    /// The app name proposed (never the settings package: "config" names no app).
    pub name: Option<String>,
    pub name_from: String,
    /// DJANGO_SETTINGS_MODULE for every process, when manage.py and wsgi.py disagree.
    pub settings: Option<String>,
    pub settings_note: String,
    pub wsgi: Option<String>,
    pub celery_app: Option<String>,
    pub celery_from: String,
    /// The app's declared environment, as .env.example text, and where it came from.
    pub env_example: Option<String>,
    pub env_from: String,
    pub celery_ping_path: Option<String>,
    pub heartbeat_path: Option<String>,
    /// The dependency file, how keel installs it, and groups proposed.
    pub deps: String,
    pub deps_form: String,
    pub groups: Vec<String>,
    /// What the project asks of the interpreter.
    pub python: String,
    /// What the build does that keel found (npm run build, compilemessages).
    pub build_found: Vec<String>,
    pub media_url: Option<String>,
    /// The Celery queues the code routes tasks to (with the default queue), and where.
    pub queues: Vec<String>,
    pub queues_from: Vec<String>,
    /// PostgreSQL extensions the migrations create, and the first file that does.
    pub extensions: Vec<String>,
    pub extensions_from: String,
}

fn read(p: &Path) -> Option<String> {
    crate::fsx::read_text_nofollow(p, crate::fsx::MAX_INPUT)
        .ok()
        .flatten()
}

/// The first quoted string after `key` in `text`.
fn quoted_after(text: &str, key: &str) -> Option<String> {
    // Past the key's own closing quote.
    let rest = text[text.find(key)? + key.len()..].trim_start_matches(['"', '\'']);
    let q = rest.find(['"', '\''])?;
    let quote = rest[q..].chars().next()?;
    let body = &rest[q + 1..];
    Some(body[..body.find(quote)?].to_string())
}

/// A Python module's dotted path from its file's path in the tree (config/wsgi.py →
/// config.wsgi).
fn module_of(rel: &Path) -> Option<String> {
    let s = rel.to_str()?.strip_suffix(".py")?;
    let m = s.replace('/', ".");
    m.split('.')
        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(m)
}

/// Python files of the project worth reading for its layout (no tests, migrations, or
/// anything deeper than four levels).
fn code_files(files: &[PathBuf]) -> Vec<&PathBuf> {
    files
        .iter()
        .filter(|f| {
            let s = f.to_string_lossy();
            s.ends_with(".py")
                && f.components().count() <= 4
                && !s.contains("test")
                && !s.contains("migrations/")
                && !s.starts_with("docs/")
        })
        .collect()
}

/// An app name from a free-form one: lowercase, '-' for anything else, a letter first.
fn app_name_from(s: &str) -> Option<String> {
    let n: String = s
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let n = n
        .trim_matches('-')
        .trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let n: String = n.chars().take(26).collect();
    let n = n.trim_end_matches('-').to_string();
    (!n.is_empty()).then_some(n)
}

/// Where the project sets DJANGO_SETTINGS_MODULE by default: manage.py's and the WSGI
/// module's, and the one to run with (the WSGI module's: it is what production serves).
fn settings_of(
    manage: &str,
    wsgi_text: Option<&str>,
    files: &[PathBuf],
) -> (Option<String>, String) {
    let m = quoted_after(manage, "DJANGO_SETTINGS_MODULE");
    let w = wsgi_text.and_then(|t| quoted_after(t, "DJANGO_SETTINGS_MODULE"));
    let exists = |module: &str| {
        let p = format!("{}.py", module.replace('.', "/"));
        let pkg = format!("{}/__init__.py", module.replace('.', "/"));
        files
            .iter()
            .any(|f| f.to_str() == Some(&p) || f.to_str() == Some(&pkg))
    };
    // A local or development default with a production sibling: the production one.
    let prod = |module: &str| -> Option<String> {
        let (pkg, last) = module.rsplit_once('.')?;
        ["local", "dev", "development", "settings_dev"]
            .contains(&last)
            .then(|| {
                ["production", "prod"]
                    .iter()
                    .map(|p| format!("{pkg}.{p}"))
                    .find(|c| exists(c))
            })
            .flatten()
    };
    match (m, w) {
        (Some(m), Some(w)) if m != w => (
            Some(w.clone()),
            format!(
                "{w} (wsgi.py's default; manage.py's is {m}: keel runs every command with the one production serves)"
            ),
        ),
        (m, w) => match m.or(w) {
            Some(s) => match prod(&s) {
                Some(p) => (
                    Some(p.clone()),
                    format!("{p} (the project's default is {s}, a development module)"),
                ),
                None => (None, format!("{s} (the project's own default)")),
            },
            None => (None, "not set in manage.py or wsgi.py".into()),
        },
    }
}

/// The Celery app: the module that instantiates `Celery(`, with the attribute when it is
/// not one Celery finds by itself (`app`, `celery`).
fn celery_of(dir: &Path, code: &[&PathBuf]) -> Option<(String, String)> {
    let mut hits: Vec<(String, String)> = code
        .iter()
        .filter_map(|f| {
            let text = read(&dir.join(f))?;
            let line = text.lines().find(|l| {
                l.contains("Celery(") && l.contains('=') && !l.trim_start().starts_with('#')
            })?;
            let var = line.split('=').next()?.trim();
            let module = module_of(f)?;
            let app = if var == "app" || var == "celery" {
                module.clone()
            } else {
                format!("{module}:{var}")
            };
            Some((app, f.display().to_string()))
        })
        .collect();
    // celery.py / celery_app.py first: other modules may import the app under a new name.
    hits.sort_by_key(|(_, f)| !(f.ends_with("celery.py") || f.ends_with("celery_app.py")));
    hits.into_iter().next()
}

/// Read a Django project: refuse one without manage.py or any dependency file keel reads,
/// detect the rest.
pub fn inspect(dir: &Path) -> std::result::Result<Project, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let manage = read(&dir.join("manage.py")).ok_or_else(|| {
        format!(
            "{} has no manage.py: keel deploys a Django project; give the directory that holds manage.py",
            dir.display()
        )
    })?;
    let reader = |rel: &str| read(&dir.join(rel));
    let deps = crate::deps::detect(&reader).ok_or_else(|| {
        format!(
            "{} declares no Python dependencies keel reads: {}",
            dir.display(),
            crate::deps::NONE_FOUND
        )
    })?;
    let files = crate::tree::walk(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let code = code_files(&files);
    let mut p = Project {
        deps_form: crate::deps::Form::of(&deps).describe().to_string(),
        groups: proposed_groups(&reader),
        deps,
        ..Default::default()
    };
    let wsgi = code.iter().find(|f| {
        f.file_name().is_some_and(|n| n == "wsgi.py")
            && read(&dir.join(f)).is_some_and(|t| t.contains("application"))
    });
    let wsgi_text = wsgi.and_then(|f| read(&dir.join(f)));
    p.wsgi = wsgi
        .and_then(|f| module_of(f))
        .map(|m| format!("{m}:application"));
    (p.settings, p.settings_note) = settings_of(&manage, wsgi_text.as_deref(), &files);
    match celery_of(dir, &code) {
        Some((app, from)) => {
            p.celery_app = Some(app);
            p.celery_from = from;
        }
        None => p.celery_from = "no Celery( in the code".into(),
    }
    let pyname = reader("pyproject.toml")
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("project")?.get("name")?.as_str().map(String::from));
    let dirname = std::fs::canonicalize(dir)
        .ok()
        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()));
    (p.name, p.name_from) = match (
        pyname.as_deref().and_then(app_name_from),
        dirname.as_deref().and_then(app_name_from),
    ) {
        (Some(n), _) => (Some(n), "pyproject.toml's project name".into()),
        (None, Some(n)) => (Some(n), "the project's directory".into()),
        _ => (None, String::new()),
    };
    if let Some(src) = crate::envsource::find(&reader, &files) {
        p.env_example = Some(src.text);
        p.env_from = src.from;
    }
    let wants = crate::pyversion::wanted("", &reader).unwrap_or_default();
    p.python = if wants.is_empty() {
        "no version asked".into()
    } else {
        wants
            .iter()
            .map(|w| format!("{} ({})", w.spec, w.from))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if crate::project::node_build(&reader) {
        p.build_found.push("npm run build (package.json)".into());
    }
    (p.extensions, p.extensions_from) = migration_extensions(dir, &files);
    (p.queues, p.queues_from) = celery_queues(dir, &code);
    if crate::project::has_messages(&files) {
        p.build_found.push("compilemessages (locale/*.po)".into());
    }
    p.media_url = code
        .iter()
        .filter(|f| f.to_string_lossy().contains("settings"))
        .filter_map(|f| quoted_after(&read(&dir.join(f))?, "MEDIA_URL"))
        .find(|m| m.starts_with('/') && m.ends_with('/') && m.len() > 1);
    // The demo app's check endpoints, when the project's URLs have them.
    let urls: String = code
        .iter()
        .filter(|f| f.file_name().is_some_and(|n| n == "urls.py"))
        .filter_map(|f| read(&dir.join(f)))
        .collect();
    for (path, slot) in [
        ("celery-ping/", &mut p.celery_ping_path),
        ("heartbeat/", &mut p.heartbeat_path),
    ] {
        if urls.contains(&format!("\"{path}\"")) || urls.contains(&format!("'{path}'")) {
            *slot = Some(format!("/{path}"));
        }
    }
    Ok(p)
}

/// The quoted name right after `key` at each place it occurs (`"queue": "x"`, `queue="x"`,
/// `Queue("x"`).
fn names_after(text: &str, key: &str) -> Vec<String> {
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = text[i + key.len()..].trim_start();
            let q = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let body = &rest[1..];
            let name = &body[..body.find(q)?];
            let ok = !name.is_empty()
                && name.len() <= 100
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c));
            ok.then(|| name.to_string())
        })
        .collect()
}

/// The queues the code routes tasks to: task routes (`"queue": "x"`), declared
/// `Queue("x")`s, `queue="x"` on tasks and calls; with the default queue first (Celery's
/// `celery`, or the one the settings name). Empty when the code routes nowhere.
fn celery_queues(dir: &Path, code: &[&PathBuf]) -> (Vec<String>, Vec<String>) {
    let mut default = "celery".to_string();
    let mut found: Vec<String> = vec![];
    let mut from = vec![];
    for f in code {
        let Some(text) = read(&dir.join(f)) else {
            continue;
        };
        let mut here = vec![];
        for key in ["\"queue\":", "'queue':", "queue=", "Queue("] {
            here.extend(names_after(&text, key));
        }
        for key in [
            "CELERY_TASK_DEFAULT_QUEUE =",
            "task_default_queue =",
            "task_default_queue=",
        ] {
            if let Some(d) = names_after(&text, key).into_iter().next() {
                default = d;
                from.push(f.display().to_string());
            }
        }
        if !here.is_empty() {
            from.push(f.display().to_string());
        }
        for q in here {
            if !found.contains(&q) {
                found.push(q);
            }
        }
    }
    if found.is_empty() {
        return (vec![], vec![]);
    }
    let mut out = vec![default];
    for q in found {
        if !out.contains(&q) {
            out.push(q);
        }
    }
    from.dedup();
    (out, from)
}

/// Django's operations for the contrib.postgres extensions, by the extension they create.
const EXTENSION_OPS: &[(&str, &str)] = &[
    ("TrigramExtension(", "pg_trgm"),
    ("BloomExtension(", "bloom"),
    ("BtreeGinExtension(", "btree_gin"),
    ("BtreeGistExtension(", "btree_gist"),
    ("CITextExtension(", "citext"),
    ("CryptoExtension(", "pgcrypto"),
    ("HStoreExtension(", "hstore"),
    ("UnaccentExtension(", "unaccent"),
];

/// The PostgreSQL extensions the project's migrations create (Django's extension
/// operations, `CreateExtension("x")`, or `CREATE EXTENSION x` in raw SQL), and the first
/// migration that does.
fn migration_extensions(dir: &Path, files: &[PathBuf]) -> (Vec<String>, String) {
    let mut out: Vec<String> = vec![];
    let mut first = String::new();
    for f in files.iter().filter(|f| {
        let s = f.to_string_lossy();
        s.contains("migrations/") && s.ends_with(".py")
    }) {
        let Some(text) = read(&dir.join(f)) else {
            continue;
        };
        let mut found: Vec<String> = EXTENSION_OPS
            .iter()
            .filter(|(op, _)| text.contains(op))
            .map(|(_, e)| e.to_string())
            .collect();
        for (i, _) in text.match_indices("CreateExtension(") {
            let rest = text[i + "CreateExtension(".len()..].trim_start();
            let rest = rest.strip_prefix("name=").unwrap_or(rest);
            if let Some(name) = rest
                .strip_prefix(['"', '\''])
                .and_then(|r| r.split(['"', '\'']).next())
            {
                found.push(name.to_string());
            }
        }
        let upper = text.to_ascii_uppercase();
        for (i, _) in upper.match_indices("CREATE EXTENSION") {
            let rest = upper[i + "CREATE EXTENSION".len()..].trim_start();
            let rest = rest
                .strip_prefix("IF NOT EXISTS")
                .unwrap_or(rest)
                .trim_start();
            let name: String = rest
                .trim_start_matches('"')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name.to_ascii_lowercase());
            }
        }
        for e in found {
            if !out.contains(&e) {
                if out.is_empty() {
                    first = f.display().to_string();
                }
                out.push(e);
            }
        }
    }
    (out, first)
}

/// The dependency groups to install for a pyproject whose main dependencies live in groups
/// (none of the development ones).
fn proposed_groups(read: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let Some(t) = read("pyproject.toml").and_then(|t| t.parse::<toml::Table>().ok()) else {
        return vec![];
    };
    let main = t
        .get("project")
        .and_then(|p| p.get("dependencies"))
        .and_then(|d| d.as_array())
        .is_some_and(|d| !d.is_empty());
    let groups: Vec<String> = t
        .get("dependency-groups")
        .and_then(|g| g.as_table())
        .map(|g| g.keys().cloned().collect())
        .unwrap_or_default();
    let dev = [
        "dev", "test", "tests", "lint", "docs", "typing", "ci", "local", "debug", "format", "mypy",
    ];
    let prod = [
        "prod",
        "production",
        "main",
        "base",
        "server",
        "web",
        "deploy",
    ];
    let chosen: Vec<String> = groups
        .iter()
        .filter(|g| prod.contains(&g.as_str()))
        .cloned()
        .collect();
    if !chosen.is_empty() || main {
        return chosen;
    }
    groups
        .into_iter()
        .filter(|g| !dev.contains(&g.as_str()))
        .collect()
}

/// The .env.example keys a person must answer: required, empty or a placeholder, neither
/// derived from keel.toml nor generated by keel.
pub fn keys_to_ask(example: &str, cfg: &Config) -> Vec<String> {
    let derived = crate::app::env::derived_trial(cfg);
    let Ok(lines) = dotenv::parse(example) else {
        return vec![];
    };
    lines
        .into_iter()
        .filter_map(|l| match l {
            Line::Entry {
                key,
                value,
                commented: false,
                optional: false,
                ..
            } if dotenv::is_placeholder_for(&key, &value)
                && dotenv::secret_kind(&key).is_none()
                && !derived.contains_key(&key)
                && dotenv::by_pattern(&key, &derived).is_none()
                && !cfg.env.contains_key(&key) =>
            {
                Some(key)
            }
            _ => None,
        })
        .collect()
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

struct Answers {
    name: String,
    domain: String,
    source: String,
    git_ref: Option<String>,
    tls: TlsMode,
    acme_email: Option<String>,
    admin_email: String,
    /// Asked when the code did not show it.
    celery_app: Option<String>,
    groups: Vec<String>,
    managed_python: bool,
    build: Vec<String>,
    release: Vec<String>,
    env: BTreeMap<String, String>,
}

fn toml_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
    format!("[{}]", items.join(", "))
}

fn render(a: &Answers, p: &Project) -> String {
    let mut s = format!(
        "# Written by keel init. Every key: /usr/share/doc/keel/examples/demo.toml\n[app]\nname = {}\ndomain = {}\n\n[django]\n",
        toml_str(&a.name),
        toml_str(&a.domain)
    );
    match &a.git_ref {
        Some(r) => s.push_str(&format!(
            "git = {}\ngit_ref = {}\n",
            toml_str(&a.source),
            toml_str(r)
        )),
        None => s.push_str(&format!("source = {}\n", toml_str(&a.source))),
    }
    let opt = |k: &str, v: &Option<String>| {
        v.as_ref()
            .map(|v| format!("{k} = {}\n", toml_str(v)))
            .unwrap_or_default()
    };
    s.push_str(&format!(
        "requirements = {}    # {}\n",
        toml_str(&p.deps),
        p.deps_form
    ));
    s.push_str(&opt("settings", &p.settings));
    s.push_str(&opt("wsgi", &p.wsgi));
    s.push_str(&opt(
        "celery_app",
        &a.celery_app.clone().or(p.celery_app.clone()),
    ));
    s.push_str(&format!("admin_email = {}\n", toml_str(&a.admin_email)));
    s.push_str(&opt("celery_ping_path", &p.celery_ping_path));
    s.push_str(&opt("heartbeat_path", &p.heartbeat_path));
    s.push_str(&opt("media_url", &p.media_url));
    if !p.queues.is_empty() {
        s.push_str(&format!(
            "\n[celery]\nqueues = {}    # where the code routes tasks\n",
            toml_list(&p.queues)
        ));
    }
    if !p.extensions.is_empty() {
        s.push_str(&format!(
            "\n[database]\nextensions = {}    # the migrations create them; the app's role stays unprivileged\n",
            toml_list(&p.extensions)
        ));
    }
    if !a.groups.is_empty() || a.managed_python {
        s.push_str("\n[python]\n");
        if !a.groups.is_empty() {
            s.push_str(&format!("groups = {}\n", toml_list(&a.groups)));
        }
        if a.managed_python {
            s.push_str("managed = true                # a uv-managed CPython: this OS's python3 does not fit\n");
        }
    }
    if !a.build.is_empty() {
        s.push_str(&format!("\n[build]\ncommands = {}\n", toml_list(&a.build)));
    }
    if !a.release.is_empty() {
        s.push_str(&format!(
            "\n[release]\ncommands = {}\n",
            toml_list(&a.release)
        ));
    }
    if a.git_ref.is_some() {
        s.push_str(
            "\n[packages]\ninstall = [\"postgresql\", \"redis-server\", \"nginx\", \"git\"]\n",
        );
    }
    let mode = match a.tls {
        TlsMode::Acme => "acme",
        TlsMode::SelfSigned => "self-signed",
        TlsMode::Files => "files",
        TlsMode::Off => "off",
    };
    s.push_str(&format!("\n[tls]\nmode = \"{mode}\"\n"));
    s.push_str(&opt("email", &a.acme_email));
    if !a.env.is_empty() {
        s.push_str("\n[env]                         # .env values keel cannot derive (secrets: /etc/keel/secrets)\n");
        for (k, v) in &a.env {
            s.push_str(&format!("{k} = {}\n", toml_str(v)));
        }
    }
    s
}

/// A git source, shallow-cloned into a temporary directory to be read (never run: hooks
/// are off and nothing of it is executed).
fn clone(url: &str, git_ref: &str) -> std::result::Result<tempfile::TempDir, String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let paths = crate::paths::Paths::from_env();
    let ex = runner(&paths, Default::default(), Duration::from_secs(300));
    let dest = tmp.path().join("src");
    ex.probe(
        "init",
        &crate::app::code::git(&[
            "clone",
            "-q",
            "--depth",
            "1",
            "--no-tags",
            "--branch",
            git_ref,
            "--",
            url,
            &dest.display().to_string(),
        ]),
    )
    .map_err(|e| e.to_string())
    .and_then(|o| {
        if o.code == 0 {
            Ok(())
        } else {
            Err(format!(
                "git clone {url} ({git_ref}) failed: {}",
                o.stderr.trim()
            ))
        }
    })?;
    Ok(tmp)
}

/// A question left (Ctrl-C, Ctrl-D, or a closed terminal): nothing is written.
fn io(e: dialoguer::Error) -> Error {
    Error::usage(
        format!("keel init left ({e}): nothing written"),
        "run keel init again",
    )
}

fn left() -> Error {
    Error::usage("keel init left: nothing written", "run keel init again")
}

/// Ask for the source until it is a Django project keel can deploy.
fn ask_source(
    theme: &dyn dialoguer::theme::Theme,
    config_dir: &Path,
) -> Result<(String, Option<String>, Project)> {
    use dialoguer::Input;
    loop {
        let source: String = Input::with_theme(theme)
            .with_prompt(
                "App source: the Django project's directory (relative to the config) or a git URL; empty to leave",
            )
            .allow_empty(true)
            .interact_text()
            .map_err(io)?;
        let source = source.trim().to_string();
        if source.is_empty() {
            return Err(left());
        }
        let git = crate::validate::git_url(&source).is_ok()
            && ["https://", "ssh://", "git@", "file://"]
                .iter()
                .any(|p| source.starts_with(p));
        let found = if git {
            let r: String = Input::with_theme(theme)
                .with_prompt("Git ref (branch or tag)")
                .default("main".into())
                .interact_text()
                .map_err(io)?;
            clone(&source, &r)
                .and_then(|t| inspect(&t.path().join("src")))
                .map(|p| (Some(r), p))
        } else {
            let dir = if Path::new(&source).is_absolute() {
                PathBuf::from(&source)
            } else {
                config_dir.join(&source)
            };
            inspect(&dir).map(|p| (None, p))
        };
        match found {
            Ok((r, p)) => return Ok((source, r, p)),
            Err(why) => eprintln!("  refused: {why}"),
        }
    }
}

/// Ask `prompt` until `check` (the config's own validation) accepts the answer.
fn ask_valid(
    theme: &dyn dialoguer::theme::Theme,
    prompt: &str,
    default: Option<String>,
    check: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> Result<String> {
    let mut i = dialoguer::Input::<String>::with_theme(theme).with_prompt(prompt);
    if let Some(d) = default {
        i = i.default(d);
    }
    i.validate_with(|s: &String| check(s.trim()))
        .interact_text()
        .map(|s| s.trim().to_string())
        .map_err(io)
}

/// The config's own validation of one answer: a minimal keel.toml with it.
fn checker<'a>(
    path: &'a Path,
    make: impl Fn(&str) -> String + 'a,
) -> impl Fn(&str) -> std::result::Result<(), String> + 'a {
    move |s| {
        Config::parse(&make(s), path)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Name, domain, HTTPS and e-mails, each checked by the config's own validation.
fn ask_app(
    theme: &dyn dialoguer::theme::Theme,
    path: &Path,
    project: &Project,
    source: String,
    git_ref: Option<String>,
) -> Result<Answers> {
    use dialoguer::Select;
    let app = |name: &str, domain: &str| {
        format!(
            "[app]\nname = {}\ndomain = {}\n",
            toml_str(name),
            toml_str(domain)
        )
    };
    let name = ask_valid(
        theme,
        &format!(
            "App name (lowercase: units, paths, database){}",
            if project.name_from.is_empty() {
                String::new()
            } else {
                format!("; proposed from {}", project.name_from)
            }
        ),
        project.name.clone(),
        &checker(path, |s| app(s, "example.com")),
    )?;
    let domain = ask_valid(
        theme,
        "Domain the site answers on",
        None,
        &checker(path, |s| app(&name, s)),
    )?;
    let public = crate::validate::public_name(&domain);
    let modes = [
        "acme: a Let's Encrypt certificate (the domain must point at this host)",
        "self-signed: HTTPS with keel's own certificate (testing, or behind a proxy)",
        "off: plain HTTP",
    ];
    let pick = Select::with_theme(theme)
        .with_prompt("HTTPS")
        .items(&modes)
        .default(if public { 0 } else { 2 })
        .interact()
        .map_err(io)?;
    let tls = [TlsMode::Acme, TlsMode::SelfSigned, TlsMode::Off][pick];
    let acme_email = if tls == TlsMode::Acme {
        Some(ask_valid(
            theme,
            "E-mail for the certificate authority (expiry warnings)",
            None,
            &checker(path, |s| {
                format!(
                    "{}[tls]\nmode = \"acme\"\nemail = {}\n",
                    app(&name, &domain),
                    toml_str(s)
                )
            }),
        )?)
    } else {
        None
    };
    let admin_email = ask_valid(
        theme,
        "Django admin's e-mail",
        Some(
            acme_email
                .clone()
                .unwrap_or_else(|| format!("admin@{domain}")),
        ),
        &checker(path, |s| {
            format!(
                "{}[django]\nadmin_email = {}\n",
                app(&name, &domain),
                toml_str(s)
            )
        }),
    )?;
    Ok(Answers {
        name,
        domain,
        source,
        git_ref,
        tls,
        acme_email,
        admin_email,
        celery_app: None,
        groups: project.groups.clone(),
        managed_python: false,
        build: vec![],
        release: vec![],
        env: BTreeMap::new(),
    })
}

/// What keel found, each with where it came from.
fn print_found(p: &Project) {
    let or = |v: &Option<String>, none: &str| v.clone().unwrap_or_else(|| none.to_string());
    eprintln!("  found:");
    eprintln!("    dependencies  {} ({})", p.deps, p.deps_form);
    if !p.groups.is_empty() {
        eprintln!("    groups        {} (pyproject.toml)", p.groups.join(", "));
    }
    eprintln!("    python        {}", p.python);
    eprintln!("    settings      {}", p.settings_note);
    eprintln!(
        "    wsgi          {}",
        or(&p.wsgi, "not found (default <name>.wsgi:application)")
    );
    eprintln!(
        "    celery app    {}",
        match &p.celery_app {
            Some(c) => format!("{c} ({})", p.celery_from),
            None => p.celery_from.clone(),
        }
    );
    eprintln!(
        "    environment   {}",
        if p.env_from.is_empty() {
            "nothing declared (the .env gets keel.toml's values)".to_string()
        } else {
            p.env_from.clone()
        }
    );
    if !p.build_found.is_empty() {
        eprintln!("    build         {}", p.build_found.join(", "));
    }
    if let Some(m) = &p.media_url {
        eprintln!("    media         {m} (MEDIA_URL in the settings)");
    }
    if !p.queues.is_empty() {
        eprintln!(
            "    queues        {} ({}; one worker consumes them all)",
            p.queues.join(", "),
            p.queues_from.join(", ")
        );
    }
    if !p.extensions.is_empty() {
        eprintln!(
            "    extensions    {} ({}; created by the superuser before migrate)",
            p.extensions.join(", "),
            p.extensions_from
        );
    }
}

/// Lines until an empty one (each checked by the config's own validation).
fn ask_lines(
    theme: &dyn dialoguer::theme::Theme,
    prompt: &str,
    check: &dyn Fn(&str) -> std::result::Result<(), String>,
) -> Result<Vec<String>> {
    let mut out = vec![];
    loop {
        let v: String = dialoguer::Input::with_theme(theme)
            .with_prompt(prompt)
            .allow_empty(true)
            .validate_with(|s: &String| {
                if s.trim().is_empty() {
                    Ok(())
                } else {
                    check(s.trim())
                }
            })
            .interact_text()
            .map_err(io)?;
        if v.trim().is_empty() {
            return Ok(out);
        }
        out.push(v.trim().to_string());
    }
}

/// What the code did not show: the Celery app, the groups, a Python this host lacks, build
/// and release commands.
fn ask_project(
    theme: &dyn dialoguer::theme::Theme,
    path: &Path,
    p: &Project,
    a: &mut Answers,
) -> Result<()> {
    let base = format!(
        "[app]\nname = {}\ndomain = {}\n",
        toml_str(&a.name),
        toml_str(&a.domain)
    );
    if p.celery_app.is_none() {
        a.celery_app = Some(ask_valid(
            theme,
            "Celery app for the worker and beat (the module that creates Celery(...), e.g. proj.celery)",
            None,
            &checker(path, |s| {
                format!("{base}[django]\ncelery_app = {}\n", toml_str(s))
            }),
        )?);
    }
    if !p.groups.is_empty() || p.deps.ends_with("pyproject.toml") || p.deps.ends_with("uv.lock") {
        let g = ask_valid(
            theme,
            "Dependency groups to install besides the main dependencies (comma-separated; empty: none)",
            Some(p.groups.join(",")),
            &checker(path, |s| {
                let list: Vec<String> = s
                    .split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect();
                format!("{base}[python]\ngroups = {}\n", toml_list(&list))
            }),
        )?;
        a.groups = g
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect();
    }
    let root = crate::paths::Paths::from_env().root;
    if let Some(dir) = (a.git_ref.is_none()).then(|| Path::new(&a.source)) {
        let dir = if dir.is_absolute() {
            dir.to_path_buf()
        } else {
            path.parent().unwrap_or(Path::new(".")).join(dir)
        };
        let wants = crate::pyversion::wanted("", &|rel| read(&dir.join(rel))).unwrap_or_default();
        if let Some((w, os)) = crate::project::os_unfit(&root, &wants) {
            eprintln!(
                "  the project asks for Python {} ({}); this host's python3 is {} ({})",
                w.spec,
                w.from,
                crate::pyversion::show(&os.version),
                os.how
            );
            a.managed_python = dialoguer::Confirm::with_theme(theme)
                .with_prompt(
                    "Use a uv-managed CPython (downloaded by uv)? Without it the install refuses",
                )
                .default(false)
                .interact()
                .map_err(io)?;
        }
    }
    let cmd_check = |key: &'static str| {
        let base = base.clone();
        move |s: &str| {
            Config::parse(
                &format!("{base}[{key}]\ncommands = [{}]\n", toml_str(s)),
                path,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
        }
    };
    a.build = ask_lines(
        theme,
        "Build command, run as the build user before collectstatic (empty: no more)",
        &cmd_check("build"),
    )?;
    a.release = ask_lines(
        theme,
        "Release command, run as the app after migrate, once per release (empty: no more)",
        &cmd_check("release"),
    )?;
    Ok(())
}

/// The .env.example keys nothing can fill: plain ones into `a.env`, secret ones (asked
/// hidden) returned, to be stored like keel's own secrets once the user agrees.
fn ask_env(
    theme: &dyn dialoguer::theme::Theme,
    path: &Path,
    project: &Project,
    a: &mut Answers,
) -> Result<BTreeMap<String, String>> {
    use dialoguer::Password;
    let mut secrets = BTreeMap::new();
    if let Some(example) = &project.env_example {
        let cfg = Config::parse(&render(a, project), path)?;
        let keys = keys_to_ask(example, &cfg);
        if !keys.is_empty() {
            eprintln!(
                "  .env.example: {} value(s) keel cannot derive or generate",
                keys.len()
            );
        }
        for k in keys {
            if crate::redact::secret_key(&k) {
                let v = Password::with_theme(theme)
                    .with_prompt(format!("{k} (hidden; stored 0600 under /etc/keel/secrets)"))
                    .allow_empty_password(true)
                    .interact()
                    .map_err(io)?;
                if v.is_empty() {
                    // Left empty on purpose: kept as an empty value, not asked again.
                    a.env.insert(k, v);
                } else {
                    secrets.insert(k, v);
                }
            } else {
                let v: String = dialoguer::Input::with_theme(theme)
                    .with_prompt(k.clone())
                    .allow_empty(true)
                    .interact_text()
                    .map_err(io)?;
                a.env.insert(k, v);
            }
        }
    }
    Ok(secrets)
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    if !inv.terminal.can_ask() {
        return Err(Error::usage(
            "keel init needs a terminal",
            "write keel.toml yourself (see examples/demo.toml) for unattended use",
        ));
    }
    use dialoguer::Confirm;
    let theme = dialoguer::theme::SimpleTheme;
    let path = &cli.config;
    if path.exists()
        && !Confirm::with_theme(&theme)
            .with_prompt(format!("{} exists. Overwrite?", path.display()))
            .default(false)
            .interact()
            .map_err(io)?
    {
        return Err(Error::usage(
            "not overwritten",
            "pass --config FILE to write elsewhere",
        ));
    }
    let config_dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let (source, git_ref, project) = ask_source(&theme, &config_dir)?;
    print_found(&project);
    let mut a = ask_app(&theme, path, &project, source, git_ref)?;
    ask_project(&theme, path, &project, &mut a)?;
    let secrets = ask_env(&theme, path, &project, &mut a)?;
    let text = render(&a, &project);
    // The full load (the source checked too): the wizard never writes a config keel refuses.
    let cfg = Config::parse(&text, path)?;
    cfg.check_source()?;
    crate::project::check_tree(&cfg)?;
    eprintln!(
        "\n---- {} ----\n{text}---- what keel install would do ----",
        path.display()
    );
    let ctx = build_ctx(cfg, {
        let mut o = CtxOptions::new(inv, "init");
        o.quiet = true;
        o
    });
    let st = super::context::load_state(&cli.state_file)?;
    super::plan::print_plan(
        cli,
        &ctx,
        &crate::steps::graph(),
        &st,
        &crate::engine::InstallOpts {
            targets: vec![],
            retry: vec![],
            skip: vec![],
            rollback: crate::engine::RollbackMode::Step,
            command: "init".into(),
        },
    )?;
    if !Confirm::with_theme(&theme)
        .with_prompt(format!("Write {}?", path.display()))
        .default(true)
        .interact()
        .map_err(io)?
    {
        return Err(Error::usage("not written", "run keel init again"));
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    crate::txn::write_atomic(path, text.as_bytes(), 0o644, None).map_err(|e| Error::io(path, e))?;
    for (k, v) in secrets.iter().filter(|(_, v)| !v.is_empty()) {
        let name = crate::app::env::secret_name(k);
        // A new answer replaces an earlier init's.
        ctx.secrets
            .set(&name, v)
            .map_err(|e| Error::io(ctx.secrets.path(&name), e))?;
    }
    println!(
        "wrote {}; next: keel install --config {}",
        path.display(),
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_demo_project() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo-app");
        let p = inspect(&dir).unwrap();
        assert_eq!(p.name.as_deref(), Some("demo-app"));
        assert_eq!(p.deps, "requirements.txt");
        assert_eq!(p.wsgi.as_deref(), Some("demo.wsgi:application"));
        assert_eq!(p.celery_app.as_deref(), Some("demo.celery"));
        assert_eq!(p.celery_ping_path.as_deref(), Some("/celery-ping/"));
        assert_eq!(p.heartbeat_path.as_deref(), Some("/heartbeat/"));
        assert!(p.env_example.is_some());
        let e = inspect(&dir.join("core")).unwrap_err();
        assert!(e.contains("no manage.py"), "{e}");
    }

    #[test]
    fn asks_only_what_nothing_fills() {
        let cfg = Config::parse(
            "[app]\nname = \"demo\"\ndomain = \"demo.example.com\"\n",
            Path::new("/etc/keel/keel.toml"),
        )
        .unwrap();
        let example = "SECRET_KEY=change-me\nDEBUG=True\nDATABASE_URL=postgres://x\nREDIS_URL=\nSTRIPE_API_KEY=\nMAIL_DOMAIN=your-domain\nSITE_NAME=Shop\n# Optional\nSENTRY_DSN=\n";
        assert_eq!(
            keys_to_ask(example, &cfg),
            ["STRIPE_API_KEY", "MAIL_DOMAIN"]
        );
    }

    /// The fixture projects in their real shapes (tests/projects): what init finds in each.
    #[test]
    fn reads_real_project_shapes() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/projects");
        let uv = inspect(&dir.join("uvshop")).unwrap();
        assert_eq!(uv.name.as_deref(), Some("uvshop"));
        assert_eq!(uv.name_from, "pyproject.toml's project name");
        assert_eq!(uv.settings.as_deref(), Some("config.settings.production"));
        assert!(
            uv.settings_note.contains("config.settings.local"),
            "{}",
            uv.settings_note
        );
        assert_eq!(uv.wsgi.as_deref(), Some("config.wsgi:application"));
        assert_eq!(uv.celery_app.as_deref(), Some("config.celery_app"));
        assert_eq!(uv.env_from, ".envs/.production/*");
        assert!(uv.build_found[0].contains("npm run build"));
        assert_eq!(uv.queues, ["celery", "slow"]);
        assert_eq!(uv.queues_from, ["config/settings/base.py"]);
        let g = inspect(&dir.join("groupsapp")).unwrap();
        assert_eq!(g.name.as_deref(), Some("groups-app"));
        assert_eq!(g.deps, "pyproject.toml");
        assert_eq!(g.groups, ["main"]);
        assert_eq!(g.celery_app.as_deref(), Some("groupsapp.celerysetup:tasks"));
        assert_eq!(g.media_url.as_deref(), Some("/images/"));
        assert_eq!(g.settings, None);
        assert!(g.build_found.iter().any(|b| b.contains("compilemessages")));
        let r = inspect(&dir.join("reqsapp")).unwrap();
        assert_eq!(r.deps, "requirements/production.txt");
        assert_eq!(r.celery_app.as_deref(), Some("reqsapp.celery"));
        assert_eq!(r.env_from, ".env.example");
        assert_eq!(r.extensions, ["pg_trgm"]);
        assert_eq!(r.extensions_from, "catalog/migrations/0001_initial.py");
    }
}
