//! `.env.example` → `.env`: parse the common styles (comments, sections, quotes, `export`,
//! commented-out keys, inline comments), then fill each key from, in order: keel.toml's
//! `[env]`, values keel derives (database, redis, hosts, debug), the existing `.env` (what
//! a user supplied is kept on re-runs), generated secrets (stable: stored as keel secrets),
//! the example's own non-placeholder default, or — when required — a prompt or an error.
use base64::Engine;
use rand::{Rng, TryRngCore};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    Blank,
    Comment(String),
    Entry {
        key: String,
        value: String,
        export: bool,
        /// `# KEY=value`: an optional key, kept commented out.
        commented: bool,
        /// Under a comment or section that says "optional".
        optional: bool,
        raw: String,
    },
}

fn is_key(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Value part of `KEY=value`: quotes, escapes in double quotes, inline ` # comments`.
fn parse_value(v: &str, line_no: usize) -> Result<String, String> {
    let v = v.trim_start();
    if let Some(rest) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => return Ok(out),
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(o) => out.push(o),
                    None => break,
                },
                c => out.push(c),
            }
        }
        return Err(format!("line {line_no}: unterminated double quote"));
    }
    if let Some(rest) = v.strip_prefix('\'') {
        return rest
            .find('\'')
            .map(|i| rest[..i].to_string())
            .ok_or_else(|| format!("line {line_no}: unterminated single quote"));
    }
    let v = match v.find(" #") {
        Some(i) => &v[..i],
        None => v,
    };
    Ok(v.trim().to_string())
}

/// An app's .env.example: parsed as a .env, and a key set on two lines is refused (which one
/// the app means is anyone's guess; a live .env keeps the last, as the units read it).
pub fn parse_example(text: &str) -> Result<Vec<Line>, String> {
    let lines = parse(text)?;
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    // `parse` gives one Line per line of text.
    for (i, l) in lines.iter().enumerate() {
        let no = i + 1;
        if let Line::Entry {
            key,
            commented: false,
            ..
        } = l
            && let Some(first) = seen.insert(key, no)
        {
            return Err(format!(
                "line {no}: {key} is set twice (first on line {first}); keep one"
            ));
        }
    }
    Ok(lines)
}

pub fn parse(text: &str) -> Result<Vec<Line>, String> {
    let mut out = vec![];
    let mut optional_section = false;
    let mut optional_comment = false;
    // A UTF-8 byte-order mark (editors on Windows write one) is not part of the first key.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let control = |s: &str| s.chars().any(|c| c.is_control() && c != '\t');
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        // A newline or escape code in a value would add lines to the EnvironmentFile
        // systemd reads, or garble a terminal: refused, as in keel.toml.
        if control(raw) {
            return Err(format!("line {line_no}: contains a control character"));
        }
        let t = raw.trim();
        if t.is_empty() {
            optional_comment = false;
            out.push(Line::Blank);
            continue;
        }
        if let Some(c) = t.strip_prefix('#') {
            let body = c.trim_start_matches('#').trim();
            let body_kv = body.strip_prefix("export ").unwrap_or(body);
            if let Some((k, v)) = body_kv.split_once('=')
                && is_key(k.trim())
                && !k.contains(' ')
            {
                out.push(Line::Entry {
                    key: k.trim().to_string(),
                    value: parse_value(v, line_no).unwrap_or_default(),
                    export: body.starts_with("export "),
                    commented: true,
                    optional: true,
                    raw: raw.to_string(),
                });
                continue;
            }
            let lower = body.to_ascii_lowercase();
            let header = c.starts_with('#')
                || body.starts_with("---")
                || body.starts_with("===")
                || body.ends_with("---")
                || body.ends_with("===")
                || body.starts_with('[');
            if header {
                optional_section = lower.contains("optional");
            }
            optional_comment = lower.contains("optional");
            out.push(Line::Comment(raw.to_string()));
            continue;
        }
        let (export, kv) = match t.strip_prefix("export ") {
            Some(r) => (true, r.trim_start()),
            None => (false, t),
        };
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: expected KEY=VALUE, found {t:?}"))?;
        let key = k.trim();
        if !is_key(key) {
            return Err(format!(
                "line {line_no}: {key:?} is not a valid variable name"
            ));
        }
        let value = parse_value(v, line_no)?;
        // An escaped "\n" in double quotes is a real value (a PEM key) and is written back
        // escaped; nothing else may decode to a control character.
        if value
            .chars()
            .any(|c| c.is_control() && c != '\t' && c != '\n')
        {
            return Err(format!(
                "line {line_no}: the value of {key} contains a control character"
            ));
        }
        out.push(Line::Entry {
            key: key.to_string(),
            value,
            export,
            commented: false,
            optional: optional_section || optional_comment,
            raw: raw.to_string(),
        });
    }
    Ok(out)
}

/// Values read from an existing .env.
pub fn values(text: &str) -> BTreeMap<String, String> {
    parse(text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| match l {
            Line::Entry {
                key,
                value,
                commented: false,
                ..
            } => Some((key, value)),
            _ => None,
        })
        .collect()
}

/// A value that only marks a place to fill in, recognised by its shape rather than a list:
/// empty, `<...>`, `!!!SET X!!!`, `change-me`, `replace this`, `your-...`, `...here`,
/// `xxx`, `todo`, `django-insecure-...`, an example.com address.
pub fn is_placeholder(v: &str) -> bool {
    let l = v
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_ascii_lowercase();
    let words: Vec<&str> = l
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    l.is_empty()
        || (l.starts_with('<') && l.ends_with('>'))
        || l.contains("!!!")
        || l.contains("***")
        || l.starts_with("django-insecure")
        || l.starts_with("your")
        || l.starts_with("my-") && l.contains("secret")
        || l.starts_with("change") && (l.contains("me") || l.contains("this"))
        || has("changeme")
        || has("replace")
        || l.starts_with("replaceme")
        || has("here")
            && (has("your")
                || has("domain")
                || has("email")
                || has("key")
                || has("password")
                || has("put"))
        || has("your")
        || [
            "xxx",
            "xxxx",
            "todo",
            "fixme",
            "tbd",
            "placeholder",
            "dummy",
            "secret",
            "insecure",
            "password",
            "...",
        ]
        .contains(&l.as_str())
        || words
            .iter()
            .any(|w| w.chars().all(|c| c == 'x') && w.len() >= 3)
        || l.ends_with("example.com")
        || l.ends_with("example.org")
        || l.contains("@example.")
}

/// A placeholder for this key: as `is_placeholder`, and for a password-like key a value
/// that says what it is ("emailpassword123", "secret123", "mypassword").
pub fn is_placeholder_for(key: &str, v: &str) -> bool {
    let l = v.to_ascii_lowercase();
    is_placeholder(v)
        || crate::redact::secret_key(key)
            && (l.contains("password")
                || l.contains("secret")
                || l.contains("changeme")
                || l == "admin"
                || l == "12345678")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Django's SECRET_KEY: 50 characters from Django's own alphabet.
    Django,
    /// Fernet: url-safe base64 of 32 random bytes (padded, 44 chars).
    Fernet,
    /// JWT/token/signing secrets: url-safe base64 of 48 random bytes.
    Token,
    /// A hard-to-guess admin URL path (cookiecutter's DJANGO_ADMIN_URL): `<token>/`.
    AdminPath,
}

/// Is this key something keel may generate (never an external service's credential)?
pub fn secret_kind(key: &str) -> Option<SecretKind> {
    let k = key.to_ascii_uppercase();
    if k == "ADMIN_URL" || k == "DJANGO_ADMIN_URL" {
        return Some(SecretKind::AdminPath);
    }
    if k.contains("FERNET") || k.contains("ENCRYPTION_KEY") || k.contains("FIELD_ENCRYPTION") {
        return Some(SecretKind::Fernet);
    }
    if k == "SECRET_KEY"
        || k == "DJANGO_SECRET_KEY"
        || k.ends_with("_SECRET_KEY") && !k.contains("AWS") && !k.contains("STRIPE")
    {
        return Some(SecretKind::Django);
    }
    if k.contains("JWT") && (k.contains("SECRET") || k.contains("KEY"))
        || k.contains("SIGNING_KEY")
        || k.contains("TOKEN_SECRET")
        || k.ends_with("_SECRET") && !k.contains("CLIENT") && !k.contains("AWS")
        || k == "SECRET"
    {
        return Some(SecretKind::Token);
    }
    None
}

pub fn generate(kind: SecretKind) -> String {
    let mut rng = rand::rngs::OsRng.unwrap_err();
    match kind {
        SecretKind::Django => {
            const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)";
            (0..50)
                .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
                .collect()
        }
        // The byte formats come from the one OS-random helper keel's own secrets use.
        SecretKind::Fernet => {
            base64::engine::general_purpose::URL_SAFE.encode(crate::secrets::random_bytes(32))
        }
        SecretKind::Token => crate::secrets::random_token(48),
        SecretKind::AdminPath => format!(
            "{}/",
            crate::secrets::random_token(12).replace(['-', '_'], "x")
        ),
    }
}

/// Format a value so systemd's EnvironmentFile, shells and python-dotenv read it back as is.
pub fn quote(v: &str) -> String {
    if !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:@,+=-".contains(c))
    {
        v.to_string()
    } else if !v.contains('\'') && !v.contains('\n') {
        format!("'{v}'")
    } else {
        format!(
            "\"{}\"",
            v.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        )
    }
}

pub struct Inputs<'a> {
    /// keel.toml [env]: the user's explicit values.
    pub provided: &'a BTreeMap<String, String>,
    /// Computed from keel.toml (DATABASE_URL, REDIS_URL, ...).
    pub derived: &'a BTreeMap<String, String>,
    /// The current .env, if any.
    pub existing: &'a BTreeMap<String, String>,
}

/// (key, secret-like, suggested value) -> the answer.
pub type Prompt<'a> = dyn FnMut(&str, bool, Option<&str>) -> Result<String, String> + 'a;

pub enum Ask<'a> {
    /// Unattended: a missing required value is an error.
    Never,
    /// Prompt: (key, secret-like, suggested value) -> answer.
    With(&'a mut Prompt<'a>),
}

pub struct Rendered {
    pub text: String,
    /// Keys whose value came from the secret generator (the caller stores them).
    pub generated: Vec<String>,
    pub missing: Vec<String>,
}

/// A commented-out key (`# SECRET_KEY=`) is filled like a present one when keel has a value
/// for it: given, derived, already set, or a secret it generates. Otherwise (None) it stays
/// a comment: its example value is not switched on.
fn commented_value(
    key: &str,
    inp: &Inputs,
    secret: &mut dyn FnMut(&str, SecretKind) -> Result<String, String>,
    generated: &mut Vec<String>,
) -> Result<Option<String>, String> {
    let known = inp
        .provided
        .get(key)
        .or(inp.derived.get(key))
        .cloned()
        .or_else(|| by_pattern(key, inp.derived))
        .or(inp.existing.get(key).filter(|v| !v.is_empty()).cloned());
    Ok(match (known, secret_kind(key)) {
        (Some(v), _) => Some(v),
        (None, Some(k)) => {
            generated.push(key.to_string());
            Some(secret(key, k)?)
        }
        (None, None) => None,
    })
}

/// A value keel derives for an app's own name of a database or Redis setting, by its shape:
/// `REDIS_BROKER_PASSWORD`, `CELERY_BROKER_HOST`, `PG_DB_PORT`, `DB_URI`, ... from the
/// canonical derived keys (REDIS_URL, REDIS_PASSWORD, POSTGRES_*, DATABASE_URL).
pub fn by_pattern(key: &str, derived: &BTreeMap<String, String>) -> Option<String> {
    let k = key.to_ascii_uppercase();
    let redis = k.contains("REDIS") || k.contains("BROKER");
    let db = k.contains("POSTGRES")
        || k.starts_with("DB_")
        || k.starts_with("DATABASE")
        || k.starts_with("PG")
        || k.contains("_DB_");
    let suffix = |ends: &[&str]| ends.iter().any(|e| k.ends_with(e));
    let from = if redis {
        if suffix(&["_URL", "_URI", "_DSN", "_LOCATION"]) {
            "REDIS_URL"
        } else if suffix(&["_PASSWORD", "_PASS"]) {
            "REDIS_PASSWORD"
        } else if suffix(&["_HOST", "_HOSTNAME"]) {
            "REDIS_HOST"
        } else if suffix(&["_PORT"]) {
            "REDIS_PORT"
        } else {
            return None;
        }
    } else if db {
        if suffix(&["_URL", "_URI", "_DSN"]) {
            "DATABASE_URL"
        } else if suffix(&["_PASSWORD", "_PASS"]) {
            "POSTGRES_PASSWORD"
        } else if suffix(&["_HOST", "_HOSTNAME"]) {
            "POSTGRES_HOST"
        } else if suffix(&["_PORT"]) {
            "POSTGRES_PORT"
        } else if suffix(&["_USER", "_USERNAME"]) {
            "POSTGRES_USER"
        } else if suffix(&["_NAME", "_DB", "_DATABASE", "_DBNAME"]) {
            "POSTGRES_DB"
        } else {
            return None;
        }
    } else {
        return None;
    };
    derived.get(from).cloned()
}

/// The `${NAME}` references in a value, in order (Err: one that does not close or names no
/// variable). `$${` is a literal `${`.
pub fn references(v: &str) -> Result<Vec<String>, String> {
    let mut out = vec![];
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest[..i].ends_with('$') {
            rest = &rest[i + 2..];
            continue;
        }
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or("a ${ that does not close: write ${NAME}, or $${ for a literal ${")?;
        let name = &after[..end];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "${{{name}}} does not name a variable (A-Z, 0-9, _)"
            ));
        }
        out.push(name.to_string());
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// `v` with each `${NAME}` replaced by `lookup(NAME)` (None: unknown, an error) and `$${`
/// made `${`.
pub fn substitute(v: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = v;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or("a ${ that does not close")?;
        let name = &after[..end];
        out.push_str(&lookup(name).ok_or_else(|| {
            format!("${{{name}}} is not a value keel derives (e.g. DATABASE_URL, REDIS_PASSWORD, POSTGRES_PASSWORD, ALLOWED_HOSTS)")
        })?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Render the .env. `secret(key, kind)` returns the stored (or newly generated) secret.
pub fn render(
    example: &[Line],
    inp: &Inputs,
    secret: &mut dyn FnMut(&str, SecretKind) -> Result<String, String>,
    ask: &mut Ask,
) -> Result<Rendered, String> {
    let mut text = String::from(
        "# Generated by keel from .env.example; values you set here are kept on re-runs,\n# except those keel derives from keel.toml (database, redis, hosts, debug).\n",
    );
    let mut generated = vec![];
    let mut missing = vec![];
    let mut seen = vec![];
    for line in example {
        match line {
            Line::Blank => text.push('\n'),
            Line::Comment(c) => {
                text.push_str(c);
                text.push('\n');
            }
            Line::Entry {
                key,
                commented: true,
                raw,
                ..
            } => match commented_value(key, inp, secret, &mut generated)? {
                Some(v) => {
                    text.push_str(&format!("{key}={}\n", quote(&v)));
                    seen.push(key.clone());
                }
                None => {
                    text.push_str(raw);
                    text.push('\n');
                }
            },
            Line::Entry {
                key,
                value,
                export,
                optional,
                ..
            } => {
                seen.push(key.clone());
                let kind = secret_kind(key);
                let v = if let Some(v) = inp
                    .provided
                    .get(key)
                    .or(inp.derived.get(key))
                    .cloned()
                    .or_else(|| by_pattern(key, inp.derived))
                {
                    Some(v)
                } else if let Some(v) = inp
                    .existing
                    .get(key)
                    .filter(|v| !v.is_empty() && (kind.is_none() || !is_placeholder(v)))
                {
                    Some(v.clone())
                } else if let (Some(k), true) = (kind, is_placeholder_for(key, value)) {
                    generated.push(key.clone());
                    Some(secret(key, k)?)
                } else if !value.is_empty() && !is_placeholder_for(key, value) {
                    Some(value.clone())
                } else if *optional {
                    Some(String::new())
                } else {
                    match ask {
                        Ask::Never => {
                            missing.push(key.clone());
                            None
                        }
                        Ask::With(f) => Some(f(
                            key,
                            kind.is_some() || crate::redact::secret_key(key),
                            None,
                        )?),
                    }
                };
                let v = v.unwrap_or_default();
                // No `export`: systemd's EnvironmentFile ignores such lines (shells and
                // python-dotenv read plain KEY=value too).
                let _ = export;
                let shown = if v.is_empty() {
                    String::new()
                } else {
                    quote(&v)
                };
                text.push_str(&format!("{key}={shown}\n"));
            }
        }
    }
    let extra: Vec<_> = inp
        .provided
        .iter()
        .filter(|(k, _)| !seen.contains(k))
        .collect();
    if !extra.is_empty() {
        text.push_str(
            "\n# From keel.toml [env] (and CSRF_TRUSTED_ORIGINS, when keel serves HTTPS)\n",
        );
        for (k, v) in extra {
            text.push_str(&format!("{k}={}\n", quote(v)));
        }
    }
    Ok(Rendered {
        text,
        generated,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(text: &str) -> Vec<(String, String, bool, bool)> {
        parse(text)
            .unwrap()
            .into_iter()
            .filter_map(|l| match l {
                Line::Entry {
                    key,
                    value,
                    commented,
                    optional,
                    ..
                } => Some((key, value, commented, optional)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn corpus_of_real_world_styles() {
        let text = r#"
# Django (cookiecutter-django style)
DJANGO_SECRET_KEY=!!!SET DJANGO_SECRET_KEY!!!
DJANGO_DEBUG=True
export DJANGO_ALLOWED_HOSTS="example.com, localhost"
QUOTED_SINGLE='it''s'
ESCAPED="a \"b\" c\nd"
INLINE=value # a comment
HASH_IN_QUOTES="a # b"
EMPTY=
SPACED = spaced value
#COMMENTED_OUT=1
# export ALSO_COMMENTED="x y"
# This is prose = not a key
## ---- Optional: monitoring ----
SENTRY_DSN=
"#;
        let e = entries(text);
        let get = |k: &str| {
            e.iter()
                .find(|x| x.0 == k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} missing: {e:?}"))
        };
        assert_eq!(get("DJANGO_SECRET_KEY").1, "!!!SET DJANGO_SECRET_KEY!!!");
        assert_eq!(get("DJANGO_ALLOWED_HOSTS").1, "example.com, localhost");
        assert_eq!(get("QUOTED_SINGLE").1, "it");
        assert_eq!(get("ESCAPED").1, "a \"b\" c\nd");
        assert_eq!(get("INLINE").1, "value");
        assert_eq!(get("HASH_IN_QUOTES").1, "a # b");
        assert_eq!(get("EMPTY").1, "");
        assert!(!get("EMPTY").3, "EMPTY is required");
        assert_eq!(get("SPACED").1, "spaced value");
        assert!(get("COMMENTED_OUT").2);
        assert_eq!(get("ALSO_COMMENTED").1, "x y");
        assert!(get("SENTRY_DSN").3, "under an optional section");
        assert!(!e.iter().any(|x| x.0.contains("prose")));
    }

    #[test]
    fn parse_errors_name_the_line() {
        assert!(parse("A=1\nnot a line\n").unwrap_err().contains("line 2"));
        assert!(parse("A=\"open\n").unwrap_err().contains("line 1"));
        assert!(
            parse("1BAD=x\n")
                .unwrap_err()
                .contains("not a valid variable name")
        );
    }

    #[test]
    fn secret_kinds() {
        assert_eq!(secret_kind("SECRET_KEY"), Some(SecretKind::Django));
        assert_eq!(secret_kind("DJANGO_SECRET_KEY"), Some(SecretKind::Django));
        assert_eq!(secret_kind("FERNET_KEY"), Some(SecretKind::Fernet));
        assert_eq!(
            secret_kind("FIELD_ENCRYPTION_KEY"),
            Some(SecretKind::Fernet)
        );
        assert_eq!(secret_kind("JWT_SECRET"), Some(SecretKind::Token));
        assert_eq!(
            secret_kind("SIMPLE_JWT_SIGNING_KEY"),
            Some(SecretKind::Token)
        );
        assert_eq!(secret_kind("AWS_SECRET_ACCESS_KEY"), None);
        assert_eq!(secret_kind("STRIPE_API_KEY"), None);
        assert_eq!(secret_kind("OAUTH_CLIENT_SECRET"), None);
        assert_eq!(secret_kind("DEBUG"), None);
    }

    #[test]
    fn generated_keys_have_the_right_shape() {
        let d = generate(SecretKind::Django);
        assert_eq!(d.chars().count(), 50);
        assert_ne!(d, generate(SecretKind::Django));
        let f = generate(SecretKind::Fernet);
        assert_eq!(f.len(), 44);
        assert_eq!(
            base64::engine::general_purpose::URL_SAFE
                .decode(&f)
                .unwrap()
                .len(),
            32
        );
        let t = generate(SecretKind::Token);
        assert!(t.len() >= 64 && !t.contains('+') && !t.contains('/'));
    }

    #[test]
    fn quoting_round_trips() {
        for v in ["plain", "with space", "a'b", "x#y$z", "", "a\"b\\c"] {
            let line = format!("K={}\n", quote(v));
            assert_eq!(
                values(&line).get("K").map(String::as_str),
                Some(v),
                "{line}"
            );
        }
    }

    #[test]
    fn render_fills_in_priority_order_and_reports_missing() {
        let example = parse("# top\nexport EXPORTED=1\nSECRET_KEY=change-me\nDEBUG=True\nDATABASE_URL=postgres://x\nAPI_TOKEN=\nKEEP=default\nUSER_SET=\n# OPTIONAL\nOPT=\n#LATER=1\n").unwrap();
        let provided = BTreeMap::from([("EXTRA".to_string(), "1".to_string())]);
        let derived = BTreeMap::from([
            ("DEBUG".to_string(), "False".to_string()),
            ("DATABASE_URL".to_string(), "postgres://u:p@h/d".to_string()),
        ]);
        let existing = BTreeMap::from([("USER_SET".to_string(), "mine".to_string())]);
        let inp = Inputs {
            provided: &provided,
            derived: &derived,
            existing: &existing,
        };
        let mut secret = |k: &str, _kind| Ok(format!("gen-{k}"));
        let r = render(&example, &inp, &mut secret, &mut Ask::Never).unwrap();
        let v = values(&r.text);
        assert_eq!(v["SECRET_KEY"], "gen-SECRET_KEY");
        assert_eq!(v["DEBUG"], "False");
        assert_eq!(v["DATABASE_URL"], "postgres://u:p@h/d");
        assert_eq!(v["KEEP"], "default");
        assert!(
            r.text.contains("\nEXPORTED=1\n"),
            "systemd ignores `export` lines: {}",
            r.text
        );
        assert_eq!(v["USER_SET"], "mine");
        assert_eq!(v["OPT"], "");
        assert_eq!(v["EXTRA"], "1");
        assert!(r.text.contains("#LATER=1"));
        assert!(r.text.contains("# top"));
        assert_eq!(r.generated, vec!["SECRET_KEY"]);
        assert_eq!(r.missing, vec!["API_TOKEN"]);
        // Asked when interactive.
        let mut asked = vec![];
        let mut f = |k: &str, secret: bool, _s: Option<&str>| {
            asked.push((k.to_string(), secret));
            Ok("typed".to_string())
        };
        let r = render(&example, &inp, &mut secret, &mut Ask::With(&mut f)).unwrap();
        assert!(r.missing.is_empty());
        assert_eq!(values(&r.text)["API_TOKEN"], "typed");
        assert_eq!(asked, vec![("API_TOKEN".to_string(), true)]);
    }

    /// Commented-out keys keel has a value for are filled like present ones (generated,
    /// derived); others stay comments, their example values never switched on.
    #[test]
    fn commented_out_keys_are_generated_or_derived() {
        let example =
            parse("# SECRET_KEY=\n# POSTGRES_PASSWORD=\n# DEBUG=True\n# SENTRY_DSN=https://x\n")
                .unwrap();
        let derived = BTreeMap::from([("POSTGRES_PASSWORD".to_string(), "pgpw".to_string())]);
        let empty = BTreeMap::new();
        let inp = Inputs {
            provided: &empty,
            derived: &derived,
            existing: &empty,
        };
        let mut secret = |k: &str, _kind| Ok(format!("gen-{k}"));
        let r = render(&example, &inp, &mut secret, &mut Ask::Never).unwrap();
        let v = values(&r.text);
        assert_eq!(v["SECRET_KEY"], "gen-SECRET_KEY");
        assert_eq!(v["POSTGRES_PASSWORD"], "pgpw");
        assert!(
            !v.contains_key("DEBUG") && r.text.contains("# DEBUG=True"),
            "{}",
            r.text
        );
        assert!(r.text.contains("# SENTRY_DSN=https://x"), "{}", r.text);
        assert_eq!(r.generated, vec!["SECRET_KEY"]);
        assert!(r.missing.is_empty());
    }

    #[test]
    fn placeholders_by_shape() {
        for v in [
            "",
            "your.domain.here",
            "your@email.here",
            "!!!SET DJANGO_SECRET_KEY!!!",
            "<your key>",
            "change-me-please",
            "CHANGEME",
            "xxxx-xxxx",
            "noreply@example.com",
            "django-insecure-abc",
        ] {
            assert!(is_placeholder(v), "{v:?}");
        }
        for v in [
            "none",
            "redis://127.0.0.1:6379/0",
            "True",
            "en-us",
            "mail.shop.io",
            "30",
        ] {
            assert!(!is_placeholder(v), "{v:?}");
        }
        assert!(is_placeholder_for(
            "EMAIL_HOST_PASSWORD",
            "emailpassword123"
        ));
        assert!(!is_placeholder_for("EMAIL_HOST_USER", "emailuser"));
    }

    #[test]
    fn own_names_of_services_are_derived_by_shape() {
        let d = BTreeMap::from(
            [
                ("REDIS_URL", "redis://:rp@127.0.0.1:6379/0"),
                ("REDIS_PASSWORD", "rp"),
                ("REDIS_HOST", "127.0.0.1"),
                ("REDIS_PORT", "6379"),
                ("POSTGRES_PASSWORD", "pp"),
                ("POSTGRES_DB", "shop"),
                ("DATABASE_URL", "postgres://shop:pp@127.0.0.1:5432/shop"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let got = |k: &str| by_pattern(k, &d);
        assert_eq!(got("REDIS_BROKER_PASSWORD").as_deref(), Some("rp"));
        assert_eq!(got("REDIS_ACTIVITY_PORT").as_deref(), Some("6379"));
        assert_eq!(got("CELERY_BROKER_HOST").as_deref(), Some("127.0.0.1"));
        assert_eq!(got("PGDATABASE"), None);
        assert_eq!(got("POSTGRES_NAME").as_deref(), Some("shop"));
        assert_eq!(
            got("DB_URI").as_deref(),
            Some("postgres://shop:pp@127.0.0.1:5432/shop")
        );
        assert_eq!(got("REDIS_MAX_CONNECTIONS"), None);
        assert_eq!(got("SENTRY_DSN"), None);
    }

    #[test]
    fn env_values_refer_to_derived_ones() {
        let d = BTreeMap::from([("REDIS_PASSWORD".to_string(), "rp".to_string())]);
        let look = |k: &str| d.get(k).cloned().or_else(|| by_pattern(k, &d));
        assert_eq!(substitute("a${REDIS_PASSWORD}b", &look).unwrap(), "arpb");
        assert_eq!(substitute("$${HOME}", &look).unwrap(), "${HOME}");
        assert!(substitute("${NOPE}", &look).unwrap_err().contains("NOPE"));
        assert_eq!(references("x${A_1}y${B}").unwrap(), ["A_1", "B"]);
        assert!(references("${lower}").is_err() && references("${OPEN").is_err());
    }
}
