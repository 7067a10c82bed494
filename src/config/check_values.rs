//! keel.toml checked as it is loaded, part 2: Django, HTTPS, [env] and the numbers.
use super::{Config, TlsMode};
use crate::error::Result;
use std::path::PathBuf;

impl Config {
    /// The app: source, git, Python paths, admin, URL paths.
    pub(super) fn validate_django(&self) -> Result<()> {
        use crate::validate as v;
        let d = &self.django;
        if let Some(g) = &d.git {
            self.check("django.git", v::git_url(g))?;
        }
        if d.source.is_some() && d.git.is_some() {
            return Err(self.err(
                "django.source",
                "both django.source and django.git are set",
                "keep one: a local directory or a git URL",
            ));
        }
        self.check("django.git_ref", v::git_ref(&d.git_ref))?;
        if let Some(src) = &d.source {
            let s = src.to_string_lossy();
            if s.is_empty() || s.starts_with('-') {
                return Err(self.err(
                    "django.source",
                    format!("{s:?} is not a directory path"),
                    "use the app's directory, relative to this file or absolute",
                ));
            }
        }
        self.check("django.wsgi", v::wsgi(&self.wsgi()))?;
        self.check("django.celery_app", v::celery_app(&self.celery_app()))?;
        if !d.requirements.is_empty() {
            self.check("django.requirements", v::relative_file(&d.requirements))?;
        }
        self.check("health.path", v::url_path(&self.health.path))?;
        let m = &d.media_url;
        if !m.is_empty() {
            self.check("django.media_url", v::url_path(m))?;
            if !m.ends_with('/')
                || m == "/"
                || m.starts_with("/static/")
                || m.starts_with("/.well-known/")
                || m == "/keel-health/"
            {
                return Err(self.err(
                    "django.media_url",
                    format!("{m:?} cannot be the uploads' URL"),
                    "a path of its own ending in '/', as the app's MEDIA_URL, e.g. \"/media/\" (or \"\" not to serve uploads)",
                ));
            }
        }
        let st = &self.health.statuses;
        if st.is_empty() || st.len() > 10 || st.iter().any(|s| !(200..400).contains(s)) {
            return Err(self.err(
                "health.statuses",
                format!("{st:?}: at least one and at most ten statuses from 200 to 399"),
                "for example [200], or [200, 302] for a page that redirects to a login",
            ));
        }
        if let Some(s) = &d.settings {
            self.check("django.settings", v::module(s))?;
        }
        // Empty: no admin user is made.
        if !d.admin_user.is_empty() {
            self.check("django.admin_user", v::django_username(&d.admin_user))?;
        }
        self.check("django.admin_email", v::email(&self.admin_email()))?;
        for (key, p) in [
            ("django.celery_ping_path", &d.celery_ping_path),
            ("django.heartbeat_path", &d.heartbeat_path),
        ] {
            if !p.is_empty() {
                self.check(key, v::url_path(p))?;
            }
        }
        Ok(())
    }

    /// [tls]: the mode's own keys, names a CA can certify, HSTS within reason.
    pub(super) fn validate_tls(&self) -> Result<()> {
        use crate::validate as v;
        let t = &self.tls;
        let mode = self.tls_mode();
        if let Some(e) = &t.email {
            self.check("tls.email", v::email(e))?;
        }
        self.check("tls.acme_directory", v::https_url(&t.acme_directory))?;
        if t.domains.len() > 99 {
            return Err(self.err(
                "tls.domains",
                "more than 99 extra names",
                "a certificate holds at most 100 names; split the site",
            ));
        }
        let names = self.tls_names();
        for (i, d) in t.domains.iter().enumerate() {
            let key = format!("tls.domains[{i}]");
            if !v::dns_name(d) {
                return Err(self.err(
                    &key,
                    format!("{d:?} is not a host name"),
                    "use a DNS name such as \"www.example.com\" (no wildcard: http-01 cannot prove one)",
                ));
            }
            if names[..i + 1].contains(d) {
                return Err(self.err(
                    &key,
                    format!("{d:?} is listed twice (app.domain counts)"),
                    "list each extra name once",
                ));
            }
        }
        let files_key = |k: &str, p: &Option<PathBuf>| -> Result<()> {
            match (mode, p) {
                (TlsMode::Files, None) => Err(self.err(
                    k,
                    "mode = \"files\" needs the certificate and its key",
                    format!("set {k} to an absolute path (e.g. \"/etc/ssl/private/site.pem\")"),
                )),
                (TlsMode::Files, Some(p)) => self.check(k, v::abs_path(p)),
                (_, Some(_)) => Err(self.err(
                    k,
                    format!("{k} is only used with mode = \"files\""),
                    "remove it, or set tls.mode = \"files\"",
                )),
                (_, None) => Ok(()),
            }
        };
        files_key("tls.cert_file", &t.cert_file)?;
        files_key("tls.key_file", &t.key_file)?;
        if mode == TlsMode::Acme {
            for (i, name) in names.iter().enumerate() {
                let key = if i == 0 {
                    "app.domain".to_string()
                } else {
                    format!("tls.domains[{}]", i - 1)
                };
                if !v::certifiable(name) {
                    return Err(self.err(
                        &key,
                        format!("an ACME CA cannot certify {name:?}: it is not a name in public DNS"),
                        "use the site's public DNS name, or tls.mode = \"self-signed\" for a host on a private network",
                    ));
                }
            }
            if self.nginx.port != 80 {
                return Err(self.err(
                    "nginx.port",
                    format!(
                        "mode = \"acme\" proves the name over port 80, but nginx.port is {}",
                        self.nginx.port
                    ),
                    "keep nginx.port = 80 (HTTP redirects to HTTPS), or use tls.mode = \"files\"",
                ));
            }
        }
        self.check_ranges(&[(
            "tls.hsts_max_age",
            t.hsts_max_age,
            0,
            63_072_000,
            "0 (no header) to 63072000 seconds (two years)",
        )])?;
        if t.hsts_preload && !(t.hsts_include_subdomains && t.hsts_max_age >= 31_536_000) {
            return Err(self.err(
                "tls.hsts_preload",
                "preload needs hsts_include_subdomains = true and hsts_max_age >= 31536000",
                "set both, or leave hsts_preload = false (preload lists are hard to leave)",
            ));
        }
        Ok(())
    }

    /// The [env] table: names and sizes.
    pub(super) fn validate_env(&self) -> Result<()> {
        for (k, val) in &self.env {
            if !(k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && k.len() <= 128)
            {
                return Err(self.err(
                    &format!("env.{k}"),
                    "not a valid environment variable name",
                    "use letters, digits and '_', starting with a letter",
                ));
            }
            if val.len() > 8192 {
                return Err(self.err(&format!("env.{k}"), "longer than 8192 bytes", "shorten it"));
            }
            crate::dotenv::references(val).map_err(|e| {
                self.err(
                    &format!("env.{k}"),
                    e,
                    "refer to a value keel derives as ${NAME} (e.g. ${REDIS_PASSWORD}); $${ is a literal ${",
                )
            })?;
        }
        if self.env.len() > 500 {
            return Err(self.err("env", "more than 500 variables", "keep at most 500"));
        }
        Ok(())
    }

    pub(super) fn check_ranges(&self, checks: &[(&str, u64, u64, u64, &str)]) -> Result<()> {
        for &(key, val, min, max, range) in checks {
            if val < min || val > max {
                return Err(self.err(
                    key,
                    format!("{val} is out of range"),
                    format!("use {range}"),
                ));
            }
        }
        Ok(())
    }

    /// Every number within bounds that keep the arithmetic on it (delays, sizes, units)
    /// from overflowing and the host usable.
    pub(super) fn validate_numbers(&self) -> Result<()> {
        let r = &self.retry;
        let t = &self.timeouts;
        let checks: &[(&str, u64, u64, u64, &str)] = &[
            (
                "retry.attempts",
                r.attempts as u64,
                1,
                50,
                "1 (no retry) to 50",
            ),
            (
                "retry.initial_delay_ms",
                r.initial_delay_ms,
                0,
                600_000,
                "0 to 600000",
            ),
            (
                "retry.max_delay_ms",
                r.max_delay_ms,
                0,
                600_000,
                "0 to 600000",
            ),
            (
                "retry.max_total_delay_ms",
                r.max_total_delay_ms,
                0,
                3_600_000,
                "0 to 3600000",
            ),
            (
                "timeouts.command_secs",
                t.command_secs,
                1,
                86_400,
                "1 to 86400 seconds",
            ),
            (
                "timeouts.apt_secs",
                t.apt_secs,
                1,
                86_400,
                "1 to 86400 seconds",
            ),
            (
                "timeouts.dpkg_lock_secs",
                t.dpkg_lock_secs,
                0,
                86_400,
                "0 to 86400 seconds",
            ),
            (
                "preflight.min_cpus",
                self.preflight.min_cpus as u64,
                0,
                1024,
                "0 to 1024",
            ),
            (
                "preflight.min_memory_mb",
                self.preflight.min_memory_mb,
                0,
                1 << 24,
                "0 to 16777216",
            ),
            (
                "preflight.min_disk_mb",
                self.preflight.min_disk_mb,
                0,
                1 << 30,
                "0 to 1073741824",
            ),
        ];
        self.check_ranges(checks)?;
        self.validate_service_numbers()
    }

    pub(super) fn validate_service_numbers(&self) -> Result<()> {
        let (r, d) = (&self.retry, &self.django);
        let checks: &[(&str, u64, u64, u64, &str)] = &[
            (
                "redis.maxmemory_mb",
                self.redis.maxmemory_mb,
                1,
                1 << 20,
                "1 to 1048576",
            ),
            (
                "nginx.client_max_body_mb",
                self.nginx.client_max_body_mb as u64,
                1,
                10_240,
                "1 to 10240",
            ),
            ("django.web_workers", d.web_workers as u64, 1, 64, "1 to 64"),
            (
                "django.worker_concurrency",
                d.worker_concurrency as u64,
                1,
                64,
                "1 to 64",
            ),
            (
                "django.heartbeat_interval_secs",
                d.heartbeat_interval_secs,
                1,
                3600,
                "1 to 3600",
            ),
            (
                "health.interval_minutes",
                self.health.interval_minutes as u64,
                1,
                1440,
                "1 to 1440",
            ),
            (
                "host.swap_mb",
                self.host.swap_mb,
                0,
                65_536,
                "0 (none) to 65536",
            ),
            (
                "host.swap_when_ram_below_mb",
                self.host.swap_when_ram_below_mb,
                0,
                1 << 24,
                "0 to 16777216",
            ),
            (
                "host.swappiness",
                self.host.swappiness as u64,
                0,
                100,
                "0 to 100",
            ),
            (
                "host.journal_max_mb",
                self.host.journal_max_mb,
                50,
                1 << 20,
                "50 to 1048576",
            ),
            (
                "backup.keep_daily",
                self.backup.keep_daily,
                0,
                3650,
                "0 to 3650",
            ),
            (
                "backup.keep_weekly",
                self.backup.keep_weekly,
                0,
                520,
                "0 to 520",
            ),
            (
                "backup.max_age_hours",
                self.backup.max_age_hours.unwrap_or(1),
                1,
                24 * 366,
                "1 to 8784",
            ),
            (
                "deploy.keep_releases",
                self.deploy.keep_releases,
                2,
                100,
                "2 to 100 (the previous release is what a failed deploy returns to)",
            ),
            (
                "deploy.worker_stop_timeout_secs",
                self.deploy.worker_stop_timeout_secs,
                10,
                86_400,
                "10 to 86400 (longer than your longest task)",
            ),
            (
                "health.check_timeout_secs",
                self.health.check_timeout_secs,
                1,
                300,
                "1 to 300",
            ),
        ];
        self.check_ranges(checks)?;
        if r.initial_delay_ms > r.max_delay_ms {
            return Err(self.err(
                "retry.initial_delay_ms",
                "is larger than retry.max_delay_ms",
                "make initial_delay_ms <= max_delay_ms",
            ));
        }
        Ok(())
    }
}
