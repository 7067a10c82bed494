//! The app-configuration audit of `keel verify`: settings that make a Django deployment
//! unsafe although every service runs (DEBUG on, a weak SECRET_KEY, ALLOWED_HOSTS = *,
//! a readable .env, a key of .env.example missing, Celery in eager mode) and Django's own
//! `manage.py check --deploy`. Non-critical: a failure makes the verdict degraded.
use crate::checks::{CheckFn, Level, not_checked, ok, warn};
use crate::step::Ctx;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type Check = (String, bool, CheckFn<'static>);

fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// The first of `keys` that the .env sets: (key, value).
fn first<'a>(env: &'a BTreeMap<String, String>, keys: &[&'a str]) -> Option<(&'a str, &'a str)> {
    keys.iter()
        .find_map(|k| env.get(*k).map(|v| (*k, v.as_str())))
}

/// The audit of the .env's values, pure: (check name, result).
pub fn env_findings(
    env: &BTreeMap<String, String>,
    example_keys: &[String],
    file: &str,
) -> Vec<(&'static str, (Level, String, String))> {
    let fix = format!("edit {file} (or set it under [env] in keel.toml), then keel install");
    let mut out = vec![];
    out.push((
        "audit-debug",
        match first(env, &["DEBUG", "DJANGO_DEBUG"]) {
            Some((k, v)) if truthy(v) => warn(
                format!("{k}={v} in {file}: tracebacks and settings are shown to visitors"),
                fix.clone(),
            ),
            Some((k, v)) => ok(format!("{k}={v} in {file}")),
            None => not_checked(
                format!("DEBUG is not in {file}: what the app's settings fall back to was not checked"),
                "set DEBUG=False under [env] in keel.toml (or in the app's .env.example) to have it checked",
            ),
        },
    ));
    out.push((
        "audit-secret-key",
        match first(env, &["SECRET_KEY", "DJANGO_SECRET_KEY"]) {
            None => not_checked(
                format!("no SECRET_KEY in {file}: where the app gets it, and its strength, were not checked"),
                "list SECRET_KEY in the app's .env.example (keel generates a strong one) to have it checked",
            ),
            Some((k, v)) => {
                let distinct = v.chars().collect::<std::collections::BTreeSet<_>>().len();
                if crate::dotenv::is_placeholder(v) {
                    warn(format!("{k} in {file} is a placeholder"), fix.clone())
                } else if v.len() < 50 || distinct < 5 {
                    warn(
                        format!("{k} in {file} is weak ({} characters, {distinct} distinct; Django wants 50+)", v.len()),
                        format!("remove it from {file}: keel generates a strong one"),
                    )
                } else {
                    ok(format!("{k}: {} characters", v.len()))
                }
            }
        },
    ));
    out.push((
        "audit-allowed-hosts",
        match first(env, &["ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS"]) {
            Some((k, v)) if v.split(',').any(|h| h.trim() == "*") => warn(
                format!("{k} in {file} contains '*': any Host header is accepted"),
                "list the site's names (keel derives them from app.domain and tls.domains)",
            ),
            Some((k, _)) => ok(format!("{k} lists names")),
            None => not_checked(
                format!(
                    "ALLOWED_HOSTS is not in {file}: what the app's settings use was not checked"
                ),
                "list ALLOWED_HOSTS in the app's .env.example (keel derives it) to have it checked",
            ),
        },
    ));
    let missing: Vec<&str> = example_keys
        .iter()
        .filter(|k| !env.contains_key(*k))
        .map(|k| k.as_str())
        .collect();
    out.push((
        "audit-env-keys",
        if missing.is_empty() {
            ok(format!(
                "all {} keys of .env.example are set",
                example_keys.len()
            ))
        } else {
            warn(
                format!(
                    "keys of .env.example missing from {file}: {}",
                    missing.join(", ")
                ),
                "keel install --retry-step app-env writes them",
            )
        },
    ));
    out.push((
        "audit-celery-eager",
        match first(env, &["CELERY_TASK_ALWAYS_EAGER", "CELERY_ALWAYS_EAGER"]) {
            Some((k, v)) if truthy(v) => warn(
                format!("{k}={v} in {file}: tasks run inside web requests, the worker idles"),
                fix,
            ),
            _ => ok("Celery tasks go to the worker (not eager)"),
        },
    ));
    out
}

/// What Django itself says, as the app with its .env, in one Python per run: `check
/// --deploy`'s output, and the effective DEBUG and ALLOWED_HOSTS (what the settings make of
/// the environment, defaults included).
#[derive(Debug)]
pub struct Django {
    out: String,
    code: i32,
    debug: Option<bool>,
    hosts: Option<Vec<String>>,
}
type Shared = Arc<std::sync::OnceLock<Result<Django, String>>>;

const SETTINGS_SCRIPT: &str = r#"import io, json
from django.conf import settings
from django.core.management import call_command
out, code = io.StringIO(), 0
try:
    call_command("check", deploy=True, fail_level="CRITICAL", stdout=out, stderr=out)
except BaseException as e:
    out.write("%s: %s\n" % (type(e).__name__, e))
    code = 1
print(out.getvalue())
print("keel-settings " + json.dumps({"DEBUG": bool(settings.DEBUG), "ALLOWED_HOSTS": [str(h) for h in settings.ALLOWED_HOSTS], "code": code}))
"#;

/// Parse the script's output: its report, and its settings line.
pub fn parse_django(stdout: &str) -> Django {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("keel-settings "));
    let v: serde_json::Value = line
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_default();
    Django {
        out: stdout
            .lines()
            .filter(|l| !l.starts_with("keel-settings "))
            .collect::<Vec<_>>()
            .join("\n"),
        code: v["code"].as_i64().unwrap_or(1) as i32,
        debug: v["DEBUG"].as_bool(),
        hosts: v["ALLOWED_HOSTS"].as_array().map(|a| {
            a.iter()
                .filter_map(|h| h.as_str().map(String::from))
                .collect()
        }),
    }
}

fn django<'a>(c: &Ctx, shared: &'a Shared) -> &'a Result<Django, String> {
    shared.get_or_init(|| {
        let python = crate::app::venv_bin(c, "python");
        // As the app, in its sandbox, with its .env as its units get it (EnvironmentFile).
        let cmd = crate::app::as_app(c, &python)
            .args(["manage.py", "shell", "--no-startup"])
            .stdin(SETTINGS_SCRIPT.to_string())
            .timeout(Duration::from_secs(c.cfg.health.check_timeout_secs.max(1)));
        let o = c.exec.probe("health", &cmd).map_err(|e| e.to_string())?;
        if !o.stdout.contains("keel-settings ") {
            let last = o
                .stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            return Err(format!(
                "the settings do not load: {}",
                c.exec.redactor.redact(last)
            ));
        }
        Ok(parse_django(&o.stdout))
    })
}

/// DEBUG and ALLOWED_HOSTS as Django has them; the .env's finding when they cannot be read.
fn effective_finding(
    name: &str,
    d: &Result<Django, String>,
    from_env: (Level, String, String),
) -> (Level, String, String) {
    let d = match d {
        Ok(d) => d,
        Err(e) => {
            let (l, m, h) = from_env;
            return (l, format!("{m} (Django's own settings not read: {e})"), h);
        }
    };
    match (name, d.debug, &d.hosts) {
        ("audit-debug", Some(true), _) => warn(
            "DEBUG is True in Django's effective settings: tracebacks and settings are shown to visitors",
            "set DEBUG=False (under [env] in keel.toml, or the variable the settings read), then keel install",
        ),
        ("audit-debug", Some(false), _) => ok("DEBUG is False in Django's effective settings"),
        ("audit-allowed-hosts", _, Some(h)) if h.iter().any(|x| x == "*") => warn(
            format!(
                "ALLOWED_HOSTS in Django's effective settings accepts any host: {}",
                h.join(", ")
            ),
            "the settings fall back to '*': give them the site's names (keel derives ALLOWED_HOSTS and DJANGO_ALLOWED_HOSTS)",
        ),
        ("audit-allowed-hosts", _, Some(h)) if h.is_empty() => warn(
            "ALLOWED_HOSTS is empty in Django's effective settings: every request is refused with DEBUG off",
            "give the settings the site's names (keel derives ALLOWED_HOSTS and DJANGO_ALLOWED_HOSTS)",
        ),
        ("audit-allowed-hosts", _, Some(h)) => ok(format!(
            "ALLOWED_HOSTS in Django's effective settings: {}",
            h.join(", ")
        )),
        _ => from_env,
    }
}

/// Django's `check --deploy` output: the ids of its warnings (`security.W004`, ...).
pub fn deploy_warnings(out: &str) -> Vec<String> {
    let mut ids: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let start = l.find("(")? + 1;
            let end = start + l[start..].find(")")?;
            let id = &l[start..end];
            (id.contains(".W") || id.contains(".E")).then(|| id.to_string())
        })
        .collect();
    ids.dedup();
    ids
}

/// Django's HTTPS warnings (HSTS, SSL redirect, secure cookies).
const HTTPS_WARNINGS: &[&str] = &[
    "security.W004",
    "security.W005",
    "security.W008",
    "security.W012",
    "security.W016",
    "security.W021",
];

/// Warnings that follow from keel's own [tls] choices: reported, not counted. With TLS off
/// keel serves plain HTTP (or a proxy in front terminates TLS), so Django's HTTPS warnings
/// say nothing new; with TLS on, includeSubDomains and preload are opt-in.
fn explained(ctx: &Ctx, id: &str) -> bool {
    let t = &ctx.cfg.tls;
    if !ctx.cfg.tls_on() {
        return HTTPS_WARNINGS.contains(&id);
    }
    (id == "security.W005" && !t.hsts_include_subdomains)
        || (id == "security.W021" && !t.hsts_preload)
}

pub fn checks(ctx: &Arc<Ctx>, app_code: bool) -> Vec<Check> {
    let env_path = ctx.host(&ctx.cfg.env_file().display().to_string());
    let file = ctx.cfg.env_file().display().to_string();
    let text = crate::fsx::read_text_nofollow(&env_path, crate::fsx::MAX_INPUT)
        .ok()
        .flatten();
    let mut v: Vec<Check> = vec![];
    let Some(text) = text else {
        v.push((
            "audit-env-file".into(),
            false,
            Box::new(move || {
                warn(
                    format!("{file} is missing or unreadable"),
                    "keel install --retry-step app-env",
                )
            }),
        ));
        return v;
    };
    let env = crate::dotenv::values(&text);
    let c = ctx.clone();
    let f = file.clone();
    v.push((
        "audit-env-file".into(),
        false,
        Box::new(move || match crate::app::env::verify(&c) {
            Ok(()) => ok(format!("{f}: 0640 root:{}", c.cfg.app_user())),
            Err(e) => warn(e.msg, e.hint),
        }),
    ));
    let example =
        crate::app::env::env_source_in(&ctx.host(&crate::app::live_dir(ctx).display().to_string()))
            .and_then(|s| crate::dotenv::parse(&s.text).ok())
            .unwrap_or_default();
    let keys: Vec<String> = example
        .iter()
        .filter_map(|l| match l {
            crate::dotenv::Line::Entry {
                key,
                commented: false,
                ..
            } => Some(key.clone()),
            _ => None,
        })
        .collect();
    let shared: Shared = Arc::new(std::sync::OnceLock::new());
    for (name, r) in env_findings(&env, &keys, &file) {
        let effective = matches!(name, "audit-debug" | "audit-allowed-hosts") && app_code;
        let (c, sh) = (ctx.clone(), shared.clone());
        v.push((
            name.into(),
            false,
            Box::new(move || {
                if effective {
                    effective_finding(name, django(&c, &sh), r)
                } else {
                    r
                }
            }),
        ));
    }
    let c = ctx.clone();
    v.push((
        "audit-deploy-check".into(),
        false,
        Box::new(move || {
            let d = match django(&c, &shared) {
                Ok(d) => d,
                Err(e) => return warn(format!("manage.py check --deploy: {e}"), ""),
            };
            let (out, code) = (&d.out, d.code);
            if code != 0 {
                let last = out
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                return warn(
                    format!(
                        "manage.py check --deploy failed: {}",
                        c.exec.redactor.redact(last)
                    ),
                    "run it as the app user to see why",
                );
            }
            let ids = deploy_warnings(out);
            let (noted, counted): (Vec<String>, Vec<String>) =
                ids.into_iter().partition(|i| explained(&c, i));
            let note = if noted.is_empty() {
                String::new()
            } else {
                let why = if c.cfg.tls_on() {
                    "follow the [tls] hsts_* opt-ins"
                } else {
                    "are HTTPS settings, and [tls] is off"
                };
                format!(" ({} {why})", noted.join(", "))
            };
            if counted.is_empty() {
                ok(format!("Django's deploy checks pass{note}"))
            } else {
                warn(
                    format!("Django's deploy checks warn: {}{note}", counted.join(", ")),
                    "see manage.py check --deploy; keel's README lists the settings behind TLS",
                )
            }
        }),
    ));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn level(f: &[(&str, (Level, String, String))], name: &str) -> (Level, String) {
        let r = &f.iter().find(|(n, _)| *n == name).unwrap().1;
        (r.0, r.1.clone())
    }

    /// What the .env does not say is not checked, and never reported as ok.
    #[test]
    fn settings_missing_from_the_env_are_not_checked_never_ok() {
        let f = env_findings(&env(&[("REDIS_URL", "x")]), &[], "/opt/demo/shared/.env");
        for name in ["audit-debug", "audit-secret-key", "audit-allowed-hosts"] {
            let (l, msg) = level(&f, name);
            assert_eq!(l, Level::NotChecked, "{name}: {msg}");
            assert!(msg.contains("not checked"), "{name}: {msg}");
        }
    }

    #[test]
    fn a_sound_env_passes_and_each_fault_is_named() {
        let key = "k".repeat(10) + "abcdefghij0123456789ABCDEFGHIJklmnopqrst";
        let good = env(&[
            ("DEBUG", "False"),
            ("SECRET_KEY", &key),
            ("ALLOWED_HOSTS", "a.example.com"),
            ("REDIS_URL", "x"),
        ]);
        let keys = vec!["DEBUG".to_string(), "SECRET_KEY".into(), "REDIS_URL".into()];
        let f = env_findings(&good, &keys, "/opt/demo/app/.env");
        assert!(f.iter().all(|(_, r)| r.0 == Level::Ok), "{f:?}");
        let mut bad = good.clone();
        bad.insert("DEBUG".into(), "True".into());
        bad.insert("ALLOWED_HOSTS".into(), "a.example.com, *".into());
        bad.insert("CELERY_TASK_ALWAYS_EAGER".into(), "1".into());
        bad.remove("REDIS_URL");
        let f = env_findings(&bad, &keys, "/opt/demo/app/.env");
        let (l, m) = level(&f, "audit-debug");
        assert_eq!(l, Level::Warn);
        assert!(
            m.contains("DEBUG=True") && m.contains("/opt/demo/app/.env"),
            "{m}"
        );
        assert_eq!(level(&f, "audit-allowed-hosts").0, Level::Warn);
        assert_eq!(level(&f, "audit-celery-eager").0, Level::Warn);
        let (l, m) = level(&f, "audit-env-keys");
        assert_eq!(l, Level::Warn);
        assert!(m.contains("REDIS_URL"), "{m}");
        for weak in [
            "change-me",
            "short",
            &"a".repeat(60),
            "django-insecure-abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnop",
        ] {
            let f = env_findings(&env(&[("SECRET_KEY", weak)]), &[], "f");
            assert_eq!(level(&f, "audit-secret-key").0, Level::Warn, "{weak}");
        }
    }

    #[test]
    fn deploy_check_ids_are_read_from_djangos_output() {
        let out = "System check identified some issues:\n\nWARNINGS:\n?: (security.W004) You have not set a value for the SECURE_HSTS_SECONDS setting.\n?: (security.W008) Your SECURE_SSL_REDIRECT setting is not set to True.\n\nSystem check identified 2 issues (0 silenced).\n";
        assert_eq!(deploy_warnings(out), ["security.W004", "security.W008"]);
        assert!(deploy_warnings("System check identified no issues (0 silenced).\n").is_empty());
    }
}
