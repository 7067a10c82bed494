//! Where an app declares its environment: a `.env.example` (or `.env.sample`, `env.example`,
//! ...), cookiecutter-django's `.envs/.production/*`, or, with none of those, the variables
//! its settings code reads (`env("X")`, `env.bool("X", default=...)`, `os.environ["X"]`,
//! `os.getenv("X")`, `config("X")`), required ones told from those with a default.
use std::path::{Path, PathBuf};

/// Example files, in the order keel looks for them.
pub const EXAMPLES: &[&str] = &[
    ".env.example",
    ".env.sample",
    "env.example",
    ".env.template",
    ".env.dist",
    "example.env",
    ".env.production.example",
];
/// cookiecutter-django's production variables: every file in this directory.
pub const ENVS_DIR: &str = ".envs/.production";

/// The app's declared environment, as .env.example text, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub from: String,
    pub text: String,
}

/// The environment an app declares. `read` gives a file by relative path; `files` lists the
/// tree (relative paths).
pub fn find(read: &dyn Fn(&str) -> Option<String>, files: &[PathBuf]) -> Option<Source> {
    declared(read, files).map(|mut s| {
        s.text = with_settings_reads(s.text, read, files);
        s
    })
}

/// An example's text, plus the variables the settings read that it does not list, as
/// commented entries: filled only when keel knows them (an SSL redirect that defaults to
/// True in the code gets keel's value; nothing new is asked).
fn with_settings_reads(
    mut text: String,
    read: &dyn Fn(&str) -> Option<String>,
    files: &[PathBuf],
) -> String {
    let listed: Vec<String> = crate::dotenv::parse(&text)
        .map(|lines| {
            lines
                .into_iter()
                .filter_map(|l| match l {
                    crate::dotenv::Line::Entry { key, .. } => Some(key),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let more: Vec<Var> = from_settings(read, files)
        .into_iter()
        .filter(|v| !listed.contains(&v.key))
        .collect();
    if !more.is_empty() && !text.starts_with("# Found by keel") {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(
            "\n# Read by the settings code, not listed above (keel fills those it knows)\n",
        );
        for v in more {
            text.push_str(&format!("# {}=\n", v.key));
        }
    }
    text
}

/// The environment as the app itself declares it.
fn declared(read: &dyn Fn(&str) -> Option<String>, files: &[PathBuf]) -> Option<Source> {
    for e in EXAMPLES {
        if let Some(text) = read(e) {
            return Some(Source {
                from: e.to_string(),
                text,
            });
        }
    }
    let envs: Vec<&PathBuf> = files
        .iter()
        .filter(|f| f.parent() == Some(Path::new(ENVS_DIR)))
        .collect();
    if !envs.is_empty() {
        let mut text = String::new();
        for f in &envs {
            let p = f.display().to_string();
            text.push_str(&format!("# from {p}\n"));
            text.push_str(&read(&p).unwrap_or_default());
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
        return Some(Source {
            from: format!("{ENVS_DIR}/*"),
            text,
        });
    }
    let found = from_settings(read, files);
    if found.is_empty() {
        return None;
    }
    let mut text = String::from(
        "# Found by keel in the settings code: a variable read with no default is required;\n# one with a default is filled only when keel has a value for it.\n",
    );
    for v in &found {
        if v.required {
            text.push_str(&format!("{}=\n", v.key));
        } else {
            text.push_str(&format!("# {}=\n", v.key));
        }
    }
    Some(Source {
        from: "settings code".into(),
        text,
    })
}

/// A variable the settings read.
#[derive(Debug, Clone, PartialEq)]
pub struct Var {
    pub key: String,
    pub required: bool,
}

/// Settings files: under a `settings` package or named settings*.py, not the local, test or
/// development ones.
fn is_settings(f: &Path) -> bool {
    let s = f.to_string_lossy();
    let name = f
        .file_stem()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    s.ends_with(".py")
        && (s.contains("settings") || name == "celery" || name == "celery_app")
        && ![
            "local",
            "test",
            "tests",
            "dev",
            "development",
            "ci",
            "testing",
        ]
        .contains(&name.as_ref())
        && !s.contains("/tests/")
        && !s.contains("/migrations/")
}

/// The variables the settings code reads, each once (required wins), in first-seen order.
pub fn from_settings(read: &dyn Fn(&str) -> Option<String>, files: &[PathBuf]) -> Vec<Var> {
    let mut out: Vec<Var> = vec![];
    for f in files.iter().filter(|f| is_settings(f)) {
        let Some(code) = read(&f.display().to_string()) else {
            continue;
        };
        for v in scan(&code) {
            match out.iter_mut().find(|o| o.key == v.key) {
                Some(o) => o.required |= v.required,
                None => out.push(v),
            }
        }
    }
    out
}

/// The calls that read the environment, and whether a call without a default is required.
const CALLS: &[(&str, bool)] = &[
    ("os.environ[", true),
    ("os.environ.get(", false),
    ("os.getenv(", false),
    ("environ.get(", false),
    ("env(", true),
    ("config(", true),
];

/// The env reads of one file.
pub fn scan(code: &str) -> Vec<Var> {
    let mut out = vec![];
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let rest = &code[i..];
        // `env.str(`, `env.bool(`, ... are env( with a cast.
        let hit = CALLS
            .iter()
            .find(|(c, _)| rest.starts_with(c))
            .map(|(c, r)| (c.len(), *r))
            .or_else(|| env_cast(rest).map(|n| (n, true)));
        let boundary =
            i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.');
        let Some((n, required)) = hit.filter(|_| boundary) else {
            i += rest.chars().next().map(char::len_utf8).unwrap_or(1);
            continue;
        };
        i += n;
        let args = &code[i..];
        if let Some((key, after)) = literal(args) {
            let call = &after[..closing(after)];
            let defaulted = call.contains("default=") || positional_default(call);
            if is_key(&key) {
                out.push(Var {
                    key,
                    required: required && !defaulted,
                });
            }
        }
    }
    out
}

/// Whether the argument after the key is positional (a default: `env.bool("X", False)`,
/// `os.getenv("X", "INFO")`), not a keyword such as `cast=bool`.
fn positional_default(call: &str) -> bool {
    let Some(next) = call.trim_start().strip_prefix(',') else {
        return false;
    };
    let next = next.trim_start();
    let word: String = next
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let after = next[word.len()..].trim_start();
    let keyword = after.starts_with('=') && !after.starts_with("==");
    !next.is_empty() && !keyword
}

/// `env.<cast>(`: the length of the prefix.
fn env_cast(s: &str) -> Option<usize> {
    let r = s.strip_prefix("env.")?;
    let word: String = r
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty() && word != "read_env" && r[word.len()..].starts_with('('))
        .then_some(4 + word.len() + 1)
}

/// A string literal at the start of `s` (after blanks): its text and what follows it.
fn literal(s: &str) -> Option<(String, &str)> {
    let t = s.trim_start();
    let q = t.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let body = &t[1..];
    let end = body.find(q)?;
    Some((body[..end].to_string(), &body[end + 1..]))
}

/// Where the call's closing parenthesis (or bracket) is, counting nesting.
fn closing(s: &str) -> usize {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    s.len()
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 100
        && k.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_reads_are_found_required_or_defaulted() {
        let code = r#"
import os, environ
env = environ.Env()
SECRET_KEY = env("DJANGO_SECRET_KEY")
DEBUG = env.bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["example.com"])
DATABASES = {"default": env.db("DATABASE_URL")}
REDIS = os.environ["REDIS_URL"]
SENTRY = os.environ.get("SENTRY_DSN")
LEVEL = os.getenv("LOG_LEVEL", "INFO")
X = myenv("NOT_ME")
env.read_env(str(BASE_DIR / ".env"))
"#;
        let v = scan(code);
        let got: Vec<(&str, bool)> = v.iter().map(|v| (v.key.as_str(), v.required)).collect();
        assert_eq!(
            got,
            [
                ("DJANGO_SECRET_KEY", true),
                ("DJANGO_DEBUG", false),
                ("DJANGO_ALLOWED_HOSTS", false),
                ("DATABASE_URL", true),
                ("REDIS_URL", true),
                ("SENTRY_DSN", false),
                ("LOG_LEVEL", false),
            ]
        );
    }

    #[test]
    fn examples_then_envs_dir_then_settings() {
        let files: Vec<PathBuf> = [
            ".envs/.production/.django",
            ".envs/.production/.postgres",
            ".envs/.local/.django",
            "config/settings/base.py",
            "config/settings/local.py",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let read = |p: &str| match p {
            ".envs/.production/.django" => Some("DJANGO_SECRET_KEY=!!!SET!!!\n".to_string()),
            ".envs/.production/.postgres" => Some("POSTGRES_DB=x".to_string()),
            "config/settings/base.py" => Some("A = env('BASE_ONE')\n".to_string()),
            "config/settings/local.py" => Some("B = env('LOCAL_ONLY')\n".to_string()),
            _ => None,
        };
        let s = find(&read, &files).unwrap();
        assert_eq!(s.from, ".envs/.production/*");
        assert!(s.text.contains("DJANGO_SECRET_KEY=") && s.text.contains("POSTGRES_DB=x\n"));
        assert!(!s.text.contains(".local"));
        let s = find(&read, &files[3..]).unwrap();
        assert_eq!(s.from, "settings code");
        assert!(s.text.contains("BASE_ONE=\n") && !s.text.contains("LOCAL_ONLY"));
        let with_example = |p: &str| (p == ".env.sample").then(|| "A=1\n".to_string());
        assert_eq!(find(&with_example, &[]).unwrap().from, ".env.sample");
    }
}
