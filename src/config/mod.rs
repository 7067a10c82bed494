//! keel.toml: parsed with serde (unknown keys refused), then validated; every error names
//! the file, the key and the fix.
use crate::error::{Error, Result};
use std::path::Path;

mod check;
mod check_values;
pub mod fleet;
mod host;
mod resolved;
mod schema;
mod schema_ops;
mod siblings;
pub use schema::*;
pub use schema_ops::*;

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let cannot = |msg: String| Error::Config {
            file: path.into(),
            key: "-".into(),
            msg,
            hint: "pass --config FILE pointing at a keel.toml (see examples/demo.toml)".into(),
        };
        let bytes = crate::fsx::read_regular(path, crate::fsx::MAX_INPUT)
            .map_err(|e| cannot(format!("cannot read the file: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| cannot("cannot read the file: it is not UTF-8 text".into()))?;
        Self::parse(&text, path)
    }

    /// Another app's config on this host, as its own commands would load it (`named`: one
    /// from /etc/keel/apps/): for the checks of one app against the others.
    pub fn load_other(path: &Path, named: bool) -> Result<Config> {
        let mut c = Self::load(path)?;
        c.named = named;
        Ok(c)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let syntax = |e: toml::de::Error| Error::Config {
            file: path.into(),
            key: key_of_toml_error(&e, text),
            msg: e.message().to_string(),
            hint: toml_hint(&e, text),
        };
        let de = toml::Deserializer::parse(text).map_err(syntax)?;
        // serde_path_to_error names the key a type error or unknown field is about.
        let mut cfg: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let mut key = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().to_string();
            if let Some(field) = msg
                .strip_prefix("unknown field `")
                .and_then(|r| r.split('`').next())
            {
                if key == "." {
                    key = field.into();
                } else if !key.ends_with(&format!(".{field}")) && key != field {
                    key = format!("{key}.{field}");
                }
            }
            if let Some(span) = inner.span() {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                key = format!("{key} (line {line})");
            }
            Error::Config {
                file: path.into(),
                key,
                msg,
                hint: toml_hint(&inner, text),
            }
        })?;
        cfg.source = path.to_path_buf();
        // Control characters are refused in every key and value: a newline in a value that
        // reaches a unit file or nginx would add directives of the writer's choosing.
        if let Ok(table) = toml::from_str::<toml::Table>(text)
            && let Some(key) = control_char_key(&toml::Value::Table(table), "")
        {
            return Err(cfg.err(
                &key,
                "contains a control character (newline, tab, escape, ...)",
                "remove it: no keel setting may contain control characters",
            ));
        }
        cfg.validate()?;
        Ok(cfg)
    }

    pub(crate) fn err(&self, key: &str, msg: impl Into<String>, hint: impl Into<String>) -> Error {
        Error::Config {
            file: self.source.clone(),
            key: key.into(),
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub(crate) fn check(&self, key: &str, r: crate::validate::Check) -> Result<()> {
        r.map_err(|(msg, hint)| self.err(key, msg, hint))
    }
}

/// The dotted key of the first string (key or value) holding a control character.
fn control_char_key(v: &toml::Value, at: &str) -> Option<String> {
    let join = |k: &str| {
        if at.is_empty() {
            k.to_string()
        } else {
            format!("{at}.{k}")
        }
    };
    match v {
        toml::Value::String(s) => crate::validate::has_control(s).then(|| at.to_string()),
        toml::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| control_char_key(x, &format!("{at}[{i}]"))),
        toml::Value::Table(t) => t.iter().find_map(|(k, x)| {
            if crate::validate::has_control(k) {
                Some(join(&k.escape_debug().to_string()))
            } else {
                control_char_key(x, &join(k))
            }
        }),
        _ => None,
    }
}

/// Best effort: the dotted key an error is about, from the message or the span.
fn key_of_toml_error(e: &toml::de::Error, text: &str) -> String {
    if let Some(span) = e.span() {
        // Walk back to the table header and the key on the offending line.
        let start = span.start.min(text.len());
        let before = &text[..start];
        // Include the line the span starts on: it may be the table header itself.
        let upto = text[start..]
            .find('\n')
            .map(|i| start + i)
            .unwrap_or(text.len());
        let table = text[..upto]
            .lines()
            .rev()
            .find_map(|l| {
                let l = l.trim();
                (l.starts_with('[') && l.ends_with(']'))
                    .then(|| l.trim_matches(|c| c == '[' || c == ']').trim().to_string())
            })
            .unwrap_or_default();
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line = text[line_start..].lines().next().unwrap_or("");
        let key = line.split('=').next().unwrap_or("").trim();
        let key = if key.starts_with('[') { "" } else { key };
        let line_no = before.matches('\n').count() + 1;
        let dotted = match (table.is_empty(), key.is_empty()) {
            (true, _) => key.to_string(),
            (false, true) => table,
            (false, false) => format!("{table}.{key}"),
        };
        return format!("{dotted} (line {line_no})");
    }
    "-".into()
}

fn toml_hint(e: &toml::de::Error, text: &str) -> String {
    let m = e.message();
    if m.contains("unknown field") {
        "remove or rename the key; the valid keys are listed above and in examples/demo.toml".into()
    } else if m.contains("missing field") {
        let _ = text;
        "add the missing key (see examples/demo.toml)".into()
    } else {
        "fix the value's type or syntax (see examples/demo.toml)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(s: &str) -> Result<Config> {
        Config::parse(s, Path::new("/x/keel.toml"))
    }

    const MIN: &str = "[app]\nname = \"demo\"\ndomain = \"demo.example.com\"\n";

    #[test]
    fn defaults_fill_in() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.app_user(), "demo");
        assert_eq!(c.base_dir(), PathBuf::from("/opt/demo"));
        assert_eq!(c.db_name(), "demo");
        assert_eq!(c.retry.attempts, 4);
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let e = parse(&format!("{MIN}colour = \"red\"\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("/x/keel.toml"), "{s}");
        assert!(s.contains("app.colour"), "{s}");
        assert!(s.contains("unknown field"), "{s}");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (extra, key) in [
            (
                "[retry]\nattempts = 0\ninitial_delay_ms=1\nmax_delay_ms=2\nmax_total_delay_ms=3\n",
                "retry.attempts",
            ),
            ("[database]\nname = \"Bad Name\"\n", "database.name"),
            (
                "[packages]\ninstall = [\"ok\", \"rm -rf\"]\n",
                "packages.install[1]",
            ),
        ] {
            let e = parse(&format!("{MIN}{extra}")).unwrap_err();
            assert!(e.to_string().contains(key), "{key}: {e}");
            assert!(e.hint().is_some());
        }
        let e = parse("[app]\nname = \"Demo\"\ndomain = \"x.com\"\n").unwrap_err();
        assert!(e.to_string().contains("app.name"), "{e}");
        let e = parse("[app]\nname = \"demo\"\ndomain = \"not a host\"\n").unwrap_err();
        assert!(e.to_string().contains("app.domain"), "{e}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let e = parse(&format!("{MIN}[redis]\nport = \"six\"\nmaxmemory_mb = 1\n")).unwrap_err();
        let s = e.to_string();
        assert!(s.contains("redis.port"), "{s}");
        assert!(s.contains("line 5"), "{s}");
    }

    #[test]
    fn demo_example_is_valid() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo.toml");
        let c = Config::load(&p).unwrap();
        assert_eq!(c.app.name, "demo");
        assert_eq!(c.base_dir(), PathBuf::from("/opt/demo"));
        assert_eq!(c.db_name(), "demo");
        assert_eq!(c.db_user(), "demo");
    }
}
