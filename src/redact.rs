//! Masks secret values (known ones, and values of secret-looking keys) before anything is
//! stored or printed.
use std::sync::{Arc, RwLock};

pub const MASK: &str = "********";

#[derive(Clone, Default)]
pub struct Redactor {
    values: Arc<RwLock<Vec<String>>>,
}

impl Redactor {
    pub fn add(&self, secret: &str) {
        let s = secret.trim();
        // Very short values would mask innocent text; keel never generates those.
        if s.len() < 6 {
            return;
        }
        let mut v = self.values.write().expect("redactor lock");
        if !v.iter().any(|x| x == s) {
            v.push(s.to_string());
            // Longest first, so a secret containing another is masked whole.
            v.sort_by_key(|x| std::cmp::Reverse(x.len()));
        }
    }

    pub fn redact(&self, text: &str) -> String {
        let v = self.values.read().expect("redactor lock");
        let mut out = text.to_string();
        for s in v.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), MASK);
            }
        }
        out
    }
}

/// Does this key name look like it holds a secret? (sosreport-style)
pub fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_uppercase();
    [
        "PASSWORD",
        "PASSWD",
        "SECRET",
        "TOKEN",
        "KEY",
        "REQUIREPASS",
        "CREDENTIAL",
    ]
    .iter()
    .any(|p| k.contains(p))
}

/// The values of a settings map (keel.toml's `[env]`, a `.env`) that must never be shown:
/// those of secret-looking keys, and every password inside a URL.
pub fn secret_values<'a>(map: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    let mut v = vec![];
    for (k, val) in map {
        if secret_key(k) {
            v.push(val.clone());
        }
        v.extend(url_passwords(val));
    }
    v
}

/// Where the password of each `scheme://user:password@host` in `text` lies (byte ranges).
fn url_password_spans(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut spans = vec![];
    let mut from = 0;
    while let Some(i) = text[from..].find("://") {
        let start = from + i + 3;
        let tail = &text[start..];
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        if let (Some(at), Some(colon)) = (authority.rfind('@'), authority.find(':'))
            && colon < at
        {
            spans.push(start + colon + 1..start + at);
        }
        from = start + end;
    }
    spans
}

/// The `password` of each `scheme://user:password@host` in `text`.
pub fn url_passwords(text: &str) -> Vec<String> {
    url_password_spans(text)
        .into_iter()
        .map(|r| text[r].to_string())
        .collect()
}

/// Mask `user:password@` in URLs.
pub fn mask_url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for r in url_password_spans(text) {
        out.push_str(&text[last..r.start]);
        out.push_str(MASK);
        last = r.end;
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_known_values_longest_first() {
        let r = Redactor::default();
        r.add("abcdef");
        r.add("abcdefghij");
        r.add("abc"); // too short, ignored
        assert_eq!(
            r.redact("x abcdefghij y abcdef z abc"),
            format!("x {MASK} y {MASK} z abc")
        );
    }

    #[test]
    fn masks_url_passwords() {
        assert_eq!(
            mask_url_passwords("REDIS_URL=redis://:pw@127.0.0.1:6379/0 and postgres://u:p@h/db"),
            format!("REDIS_URL=redis://:{MASK}@127.0.0.1:6379/0 and postgres://u:{MASK}@h/db")
        );
        assert_eq!(
            mask_url_passwords("http://example.com/a"),
            "http://example.com/a"
        );
    }

    #[test]
    fn secrets_of_settings_maps() {
        let m: std::collections::BTreeMap<String, String> = [
            ("STRIPE_SECRET_KEY", "sk_live_abcdef123"),
            ("SITE_NAME", "shop"),
            ("CACHE_URL", "redis://:cachepass99@127.0.0.1:6379/1"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .into();
        assert_eq!(
            secret_values(&m),
            vec!["cachepass99".to_string(), "sk_live_abcdef123".into()]
        );
    }

    #[test]
    fn secret_looking_keys() {
        assert!(secret_key("SECRET_KEY"));
        assert!(secret_key("db_password"));
        assert!(secret_key("requirepass"));
        assert!(!secret_key("DEBUG"));
    }
}

/// Mask the values of secret-looking keys in `KEY=value`, `export KEY="v"`, `"key": "v"`
/// and `requirepass v` lines (sosreport-cleaner style), plus URL passwords.
pub fn mask_secret_assignments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let (body, nl) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        out.push_str(&mask_line(body));
        out.push_str(nl);
    }
    mask_url_passwords(&out)
}

fn mask_line(line: &str) -> String {
    let t = line.trim_start();
    let indent = &line[..line.len() - t.len()];
    if let Some(rest) = t.strip_prefix("requirepass ")
        && !rest.trim().is_empty()
    {
        return format!("{indent}requirepass {MASK}");
    }
    // "key": "value"
    if let Some(stripped) = t.strip_prefix('"')
        && let Some((k, v)) = stripped.split_once("\":")
        && secret_key(k)
    {
        let v = v.trim();
        if v.starts_with('"') && v.len() > 2 {
            let comma = if v.ends_with(',') { "," } else { "" };
            return format!("{indent}\"{k}\": \"{MASK}\"{comma}");
        }
    }
    // KEY=value (also `export KEY=value`)
    if let Some((k, v)) = t.split_once('=') {
        let key = k.trim().trim_start_matches("export ").trim();
        if !key.is_empty() && !key.contains(' ') && secret_key(key) && !v.trim().is_empty() {
            return format!("{indent}{k}={MASK}");
        }
    }
    line.to_string()
}

#[cfg(test)]
mod mask_tests {
    use super::*;

    #[test]
    fn masks_secret_looking_assignments() {
        let t = "SECRET_KEY='abc'\nDEBUG=False\nexport API_TOKEN=xyz\n  \"redis_password\": \"p\",\nrequirepass hunter2\nDATABASE_URL=postgres://u:pw@h/db\n";
        let m = mask_secret_assignments(t);
        assert!(
            !m.contains("abc")
                && !m.contains("xyz")
                && !m.contains("hunter2")
                && !m.contains(":pw@"),
            "{m}"
        );
        assert!(m.contains("DEBUG=False"));
        assert!(m.contains(&format!("\"redis_password\": \"{MASK}\",")));
    }
}
