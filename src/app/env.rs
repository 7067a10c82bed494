//! The app's `.env`: the values keel derives (database and Redis URLs, hosts, HTTPS
//! settings), the admin's own (`[env]`, `keel env set`), secrets kept as keel secrets, and
//! how they are composed over the app's `.env.example`. The app-env step writes the result;
//! `keel env` and the audit read the same functions.
use crate::config::Config;
use crate::dotenv::{self, Ask, Inputs, Line, SecretKind};
use crate::secrets::Secrets;
use crate::step::{Ctx, StepError, StepResult};
use std::collections::BTreeMap;
use std::path::Path;

/// Where a .env value keel keeps as a secret lives: generated ones, and those `keel init`
/// asked for (hidden) and stored rather than put in keel.toml.
pub fn secret_name(key: &str) -> String {
    format!("env_{}", key.to_ascii_lowercase())
}

/// Values keel derives from keel.toml, under the names apps commonly use. `secrets` gives
/// the passwords; without it (fingerprints) they are left out.
pub fn derived(cfg: &Config, secrets: Option<&Secrets>) -> StepResult<BTreeMap<String, String>> {
    let passwords = match secrets {
        Some(s) => Some((
            s.get_or_create("postgres_password")?,
            s.get_or_create("redis_password")?,
        )),
        None => None,
    };
    Ok(derived_with(cfg, passwords))
}

/// The derived values with stand-ins for the passwords: for a trial render that must not
/// create a secret (`keel env` checks that nothing required is missing before it stores any).
pub fn derived_trial(cfg: &Config) -> BTreeMap<String, String> {
    let stand_in = || "keel-trial-stand-in-password".to_string();
    derived_with(cfg, Some((stand_in(), stand_in())))
}

/// Every key keel derives, whatever the secrets' values (`keel init` asks for none of them).
pub fn derived_keys(cfg: &Config) -> Vec<String> {
    derived_with(cfg, Some((String::new(), String::new())))
        .into_keys()
        .collect()
}

/// `derived` with the PostgreSQL and Redis passwords given (None: the keys that hold them
/// are left out).
fn derived_with(cfg: &Config, passwords: Option<(String, String)>) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let hosts = format!("{},localhost,127.0.0.1", cfg.tls_names().join(","));
    for k in ["ALLOWED_HOSTS", "DJANGO_ALLOWED_HOSTS"] {
        m.insert(k.to_string(), hosts.clone());
    }
    for k in ["DEBUG", "DJANGO_DEBUG"] {
        m.insert(k.to_string(), "False".to_string());
    }
    // Django behind keel's TLS: which origins may POST, and the settings of Django's own
    // deploy checks, for apps whose .env.example lists them.
    let tls = cfg.tls_on();
    let b = |on: bool| if on { "True" } else { "False" }.to_string();
    if let Some(origins) = csrf_origins(cfg) {
        for k in ["CSRF_TRUSTED_ORIGINS", "DJANGO_CSRF_TRUSTED_ORIGINS"] {
            m.insert(k.into(), origins.clone());
        }
    }
    let t = &cfg.tls;
    let hsts = if tls { t.hsts_max_age } else { 0 };
    // Each under its own name and DJANGO_-prefixed (cookiecutter-django's style).
    for (k, v) in [
        ("SECURE_SSL_REDIRECT", b(tls)),
        ("SESSION_COOKIE_SECURE", b(tls)),
        ("CSRF_COOKIE_SECURE", b(tls)),
        ("SECURE_HSTS_SECONDS", hsts.to_string()),
        (
            "SECURE_HSTS_INCLUDE_SUBDOMAINS",
            b(tls && t.hsts_include_subdomains),
        ),
        ("SECURE_HSTS_PRELOAD", b(tls && t.hsts_preload)),
        ("SECURE_CONTENT_TYPE_NOSNIFF", b(true)),
    ] {
        m.insert(format!("DJANGO_{k}"), v.clone());
        m.insert(k.into(), v);
    }
    services(cfg, passwords, &mut m);
    m
}

/// The database's and Redis's values: where they are (loopback, or the URLs of a host of
/// several, with the CA their TLS is checked against) and, given, the passwords.
fn services(cfg: &Config, passwords: Option<(String, String)>, m: &mut BTreeMap<String, String>) {
    let (db, user) = (cfg.db_name(), cfg.db_user());
    let ((phost, pport), (rhost, rport)) = (cfg.db_endpoint(), cfg.redis_endpoint());
    // A server on another host over TLS: libpq and redis-py check its certificate against
    // the CA keel was given (libpq reads PGSSL* from the environment too).
    let pg_query = match cfg.db_tls() {
        Some((mode, ca)) => {
            m.insert("PGSSLMODE".into(), mode.into());
            m.insert("PGSSLROOTCERT".into(), ca.clone());
            format!("?sslmode={mode}&sslrootcert={ca}")
        }
        None => String::new(),
    };
    let (rscheme, rquery) = match (cfg.redis_url(), &cfg.redis.ca_file) {
        (Some(u), Some(ca)) if u.tls() => (
            "rediss",
            format!("?ssl_cert_reqs=required&ssl_ca_certs={}", ca.display()),
        ),
        _ => ("redis", String::new()),
    };
    let rdb = cfg
        .redis_url()
        .map(|u| u.path)
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "0".into());
    let bracket = |h: &str| {
        if h.contains(':') {
            format!("[{h}]")
        } else {
            h.to_string()
        }
    };
    for (keys, v) in [
        (
            &["DB_NAME", "POSTGRES_DB", "DATABASE_NAME", "PGDATABASE"][..],
            db.clone(),
        ),
        (
            &["DB_USER", "POSTGRES_USER", "DATABASE_USER", "PGUSER"][..],
            user.clone(),
        ),
        (
            &["DB_HOST", "POSTGRES_HOST", "DATABASE_HOST", "PGHOST"][..],
            phost.clone(),
        ),
        (
            &["DB_PORT", "POSTGRES_PORT", "DATABASE_PORT", "PGPORT"][..],
            pport.to_string(),
        ),
        (&["REDIS_HOST"][..], rhost.clone()),
        (&["REDIS_PORT"][..], rport.to_string()),
    ] {
        for k in keys {
            m.insert(k.to_string(), v.clone());
        }
    }
    if let Some((pg, rd)) = passwords {
        // Both passwords are url-safe base64: no escaping needed inside URLs.
        m.insert(
            "DATABASE_URL".into(),
            format!(
                "postgres://{user}:{pg}@{}:{pport}/{db}{pg_query}",
                bracket(&phost)
            ),
        );
        for k in [
            "DB_PASSWORD",
            "POSTGRES_PASSWORD",
            "DATABASE_PASSWORD",
            "PGPASSWORD",
        ] {
            m.insert(k.into(), pg.clone());
        }
        let redis = format!(
            "{rscheme}://:{rd}@{}:{rport}/{rdb}{rquery}",
            bracket(&rhost)
        );
        for k in [
            "REDIS_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "BROKER_URL",
            "CACHE_URL",
            "REDIS_CACHE_URL",
        ] {
            m.insert(k.into(), redis.clone());
        }
        m.insert("REDIS_PASSWORD".into(), rd);
    }
}

/// The environment an app tree (a path on this host) declares.
pub fn env_source_in(dir: &Path) -> Option<crate::envsource::Source> {
    let read = crate::tree::reader(dir);
    let files = crate::project::walk(dir).unwrap_or_default();
    crate::envsource::find(&read, &files)
}

/// The environment the app declares: its local source when there is one (plans see changes
/// before a deploy), else the live release.
pub fn app_env_source(ctx: &Ctx) -> Option<crate::envsource::Source> {
    match ctx.cfg.app_source() {
        Some(src) => env_source_in(&src),
        None => env_source_in(&ctx.host(&crate::app::live_dir(ctx).display().to_string())),
    }
}

/// [env] values with their `${NAME}` references to derived values filled in.
pub fn resolve_refs(
    provided: &BTreeMap<String, String>,
    derived: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, String> {
    let look = |k: &str| {
        derived
            .get(k)
            .cloned()
            .or_else(|| dotenv::by_pattern(k, derived))
    };
    provided
        .iter()
        .map(|(k, v)| {
            dotenv::substitute(v, &look)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("env.{k}: {e}"))
        })
        .collect()
}

/// Before the first write: every `${NAME}` of [env] names a value keel derives.
pub fn check_env_refs(cfg: &Config) -> crate::error::Result<()> {
    resolve_refs(&cfg.env, &derived_trial(cfg))
        .map(|_| ())
        .map_err(|e| crate::error::Error::Config {
            file: cfg.source.clone(),
            key: e.split(':').next().unwrap_or("env").to_string(),
            msg: e.clone(),
            hint: "refer to a value keel derives as ${NAME} (DATABASE_URL, REDIS_URL, REDIS_PASSWORD, POSTGRES_PASSWORD, ALLOWED_HOSTS, ...)".into(),
        })
}

/// Render a .env from an example: the engine of the `app-env` step and of `keel env`.
/// `https://NAME[:PORT]` for every name the site serves, when TLS is on.
pub fn csrf_origins(cfg: &Config) -> Option<String> {
    if !cfg.tls_on() {
        return None;
    }
    let port = match cfg.tls.port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let v: Vec<String> = cfg
        .tls_names()
        .iter()
        .map(|n| format!("https://{n}{port}"))
        .collect();
    Some(v.join(","))
}

/// What the .env gets beyond the example's keys: keel.toml's [env], and with TLS on
/// CSRF_TRUSTED_ORIGINS (Django refuses cross-origin POSTs over HTTPS without it).
pub fn extra_values(cfg: &Config) -> BTreeMap<String, String> {
    let mut m = cfg.env.clone();
    // `keel env set` wins over keel.toml's [env]: it is the admin's latest word.
    m.extend(crate::envset::read(
        &crate::paths::Paths::from_env(),
        &cfg.app.name,
    ));
    if let Some(o) = csrf_origins(cfg) {
        m.entry("CSRF_TRUSTED_ORIGINS".into()).or_insert(o);
    }
    // [django] settings reaches every process of the app through the .env: the units and
    // every command keel runs (their EnvironmentFile), so migrate and Gunicorn agree.
    if let Some(s) = &cfg.django.settings {
        m.entry("DJANGO_SETTINGS_MODULE".into())
            .or_insert_with(|| s.clone());
    }
    m
}

/// How `build` treats keel's stored secrets: `Store` creates the missing ones; `Trial`
/// reads what is stored and creates nothing (a render that only checks).
#[derive(Clone, Copy, PartialEq)]
pub enum SecretUse {
    Store,
    Trial,
}

pub fn build(
    example: &str,
    example_name: &str,
    existing_text: Option<&str>,
    provided: &BTreeMap<String, String>,
    derived: &BTreeMap<String, String>,
    secrets: Option<&Secrets>,
    interactive: bool,
) -> StepResult<dotenv::Rendered> {
    build_with(
        example,
        example_name,
        existing_text,
        (provided, derived),
        secrets,
        SecretUse::Store,
        interactive,
    )
}

pub fn build_with(
    example: &str,
    example_name: &str,
    existing_text: Option<&str>,
    (provided, derived): (&BTreeMap<String, String>, &BTreeMap<String, String>),
    secrets: Option<&Secrets>,
    secret_use: SecretUse,
    interactive: bool,
) -> StepResult<dotenv::Rendered> {
    let lines = dotenv::parse_example(example).map_err(|e| {
        StepError::permanent(format!("{example_name}: {e}"), "fix the .env.example")
    })?;
    let existing = existing_text.map(dotenv::values).unwrap_or_default();
    // [env] values may refer to derived ones (${REDIS_PASSWORD}): resolved first.
    let provided = resolve_refs(provided, derived)
        .map_err(|e| StepError::permanent(e, "fix it in keel.toml [env]"))?;
    // Values `keel init` stored as secrets count as provided (keel.toml's [env] wins); the
    // ones keel generated keep their own rule (a hand-set value in .env is kept).
    let mut provided = provided;
    if let Some(s) = secrets {
        for l in &lines {
            if let Line::Entry { key, .. } = l
                && !provided.contains_key(key)
                && dotenv::secret_kind(key).is_none()
                && let Some(v) = s.get(&secret_name(key))
            {
                provided.insert(key.clone(), v);
            }
        }
    }
    let provided = &provided;
    if let Some(s) = secrets {
        // What a user supplied for secret-looking keys must not leak into logs either.
        for (k, v) in existing.iter().chain(provided.iter()) {
            if crate::redact::secret_key(k) {
                s.redactor.add(v);
            }
        }
    }
    let inputs = Inputs {
        provided,
        derived,
        existing: &existing,
    };
    let mut secret = |key: &str, kind: SecretKind| -> Result<String, String> {
        match (secrets, secret_use) {
            (Some(s), SecretUse::Store) => s
                .get_or_create_with(&secret_name(key), || dotenv::generate(kind))
                .map_err(|e| e.to_string()),
            (Some(s), SecretUse::Trial) => Ok(s
                .get(&secret_name(key))
                .unwrap_or_else(|| dotenv::generate(kind))),
            (None, _) => Ok(dotenv::generate(kind)),
        }
    };
    let mut prompt = |key: &str, secret: bool, suggested: Option<&str>| -> Result<String, String> {
        let theme = dialoguer::theme::SimpleTheme;
        if secret {
            dialoguer::Password::with_theme(&theme)
                .with_prompt(format!("{key} (hidden)"))
                .interact()
                .map_err(|e| e.to_string())
        } else {
            let mut i = dialoguer::Input::<String>::with_theme(&theme).with_prompt(key.to_string());
            if let Some(s) = suggested {
                i = i.default(s.to_string());
            }
            i.interact_text().map_err(|e| e.to_string())
        }
    };
    let mut ask = if interactive {
        Ask::With(&mut prompt)
    } else {
        Ask::Never
    };
    let r = dotenv::render(&lines, &inputs, &mut secret, &mut ask)
        .map_err(|e| StepError::permanent(e, ""))?;
    if !r.missing.is_empty() {
        return Err(StepError::permanent(
            format!("required values missing for .env: {}", r.missing.join(", ")),
            format!(
                "set them under [env] in keel.toml (e.g. {} = \"...\"), or run keel install on a terminal to be asked",
                r.missing[0]
            ),
        ));
    }
    Ok(r)
}

/// The live .env: a 0640 file of root's, group the app's (never a link or another's).
pub fn verify(ctx: &Ctx) -> crate::step::StepResult {
    let path = ctx.host(&ctx.cfg.env_file().display().to_string());
    let st = crate::fsx::lstat(&path)
        .map_err(|e| crate::step::StepError::permanent(format!("{}: {e}", path.display()), ""))?
        .ok_or_else(|| {
            crate::step::StepError::permanent(
                format!("{} is missing", path.display()),
                "keel install --retry-step app-env",
            )
        })?;
    let (_, gid) = crate::app::app_user_ids(ctx)?;
    if st.st_mode & 0o170777 != 0o100640 || st.st_uid != 0 || st.st_gid != gid {
        return Err(crate::step::StepError::permanent(
            format!(
                "{} must be a 0640 file owned by root, group {}",
                path.display(),
                ctx.cfg.app_user()
            ),
            "keel install --retry-step app-env",
        ));
    }
    Ok(())
}
