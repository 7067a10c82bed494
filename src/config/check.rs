//! keel.toml checked as it is loaded, part 1: names, the project, Celery, backups and the
//! services; every error names the key and the fix.
use super::{Config, Packages};
use crate::error::Result;
use std::path::Path;

impl Config {
    /// The config's own [python], [build] and [release] values, checked at load.
    pub(super) fn validate_project(&self) -> Result<()> {
        let cfg = self;
        let p = &cfg.python;
        crate::pyversion::wanted(&p.version, &|_| None).map_err(|e| {
            cfg.err(
                "python.version",
                e,
                "a version (\"3.12\") or a PEP 440 specifier (\">=3.12,<3.14\")",
            )
        })?;
        if !p.mirror.is_empty() {
            let ok = ["https://", "http://", "file:///"]
                .iter()
                .any(|s| p.mirror.starts_with(s))
                && p.mirror.len() <= 500
                && !p
                    .mirror
                    .contains(|c: char| c.is_whitespace() || c == '\'' || c == '"');
            if !ok {
                return Err(cfg.err(
                    "python.mirror",
                    format!("{:?} is not a URL", p.mirror),
                    "an https:// (or file:///) URL laid out as python-build-standalone's releases",
                ));
            }
        }
        for (k, list) in [("python.groups", &p.groups), ("python.extras", &p.extras)] {
            for (i, g) in list.iter().enumerate() {
                let ok = !g.is_empty()
                    && g.len() <= 64
                    && g.starts_with(|c: char| c.is_ascii_alphanumeric())
                    && g.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                if !ok {
                    return Err(cfg.err(
                        &format!("{k}[{i}]"),
                        format!("{g:?} is not a group or extra name"),
                        "letters, digits, '.', '_' and '-', as the project declares it",
                    ));
                }
            }
        }
        for (k, list) in [
            ("build.commands", &cfg.build.commands),
            ("release.commands", &cfg.release.commands),
        ] {
            for (i, c) in list.iter().enumerate() {
                if c.trim().is_empty() || c.len() > 2000 {
                    return Err(cfg.err(
                        &format!("{k}[{i}]"),
                        "an empty or over-long command line",
                        "one shell command line of at most 2000 characters, e.g. \"python manage.py compile_themes\"",
                    ));
                }
            }
        }
        for (k, v) in [
            ("build.node", &cfg.build.node),
            ("build.compilemessages", &cfg.build.compilemessages),
        ] {
            if v != "auto" && v != "off" {
                return Err(cfg.err(k, format!("{v:?} is not auto or off"), "auto or off"));
            }
        }
        Ok(())
    }

    pub(super) fn validate_celery(&self) -> Result<()> {
        let c = &self.celery;
        let plain = |s: &str, extra: &str| {
            !s.is_empty()
                && s.len() <= 100
                && s.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || extra.contains(ch))
        };
        self.check_ranges(&[(
            "celery.queue_max_age_secs",
            c.queue_max_age_secs,
            10,
            86_400,
            "10 to 86400",
        )])?;
        if c.queues.len() > 32 {
            return Err(self.err("celery.queues", "more than 32 queues", "list at most 32"));
        }
        for (i, q) in c.queues.iter().enumerate() {
            if !plain(q, "_.:-") || q.starts_with('-') {
                return Err(self.err(
                    &format!("celery.queues[{i}]"),
                    format!("{q:?} is not a queue name"),
                    "letters, digits, '_', '.', ':' and '-', as the app's task routes name them",
                ));
            }
        }
        if let Some(p) = &c.pool
            && !["prefork", "threads", "solo", "gevent", "eventlet"].contains(&p.as_str())
        {
            return Err(self.err(
                "celery.pool",
                format!("{p:?} is not a Celery pool"),
                "prefork (the default), threads, solo, gevent or eventlet",
            ));
        }
        const KEELS: &[&str] = &[
            "--app",
            "--hostname",
            "--queues",
            "--concurrency",
            "--pool",
            "--loglevel",
        ];
        for (i, a) in c.extra_args.iter().enumerate() {
            let name = a.split('=').next().unwrap_or("");
            if KEELS.contains(&name) {
                return Err(self.err(
                    &format!("celery.extra_args[{i}]"),
                    format!("{name} is set by keel"),
                    "use celery.queues, celery.pool or django.worker_concurrency",
                ));
            }
            if !a.starts_with("--") || !plain(a, "_.:,=/-") || a.len() > 200 {
                return Err(self.err(
                    &format!("celery.extra_args[{i}]"),
                    format!("{a:?} is not a plain --option or --option=value"),
                    "one argument per string, e.g. \"--max-tasks-per-child=100\" (no spaces, '%' or '$')",
                ));
            }
        }
        Ok(())
    }

    pub(super) fn validate(&self) -> Result<()> {
        // The URLs first: the database's names may come from database.url.
        self.validate_fleet()?;
        self.validate_names()?;
        self.validate_celery()?;
        self.validate_project()?;
        self.validate_services()?;
        self.validate_django()?;
        self.validate_tls()?;
        self.validate_backup()?;
        for (key, list) in [
            ("firewall.allow_tcp", &self.firewall.allow_tcp),
            ("firewall.allow_udp", &self.firewall.allow_udp),
        ] {
            if let Some(i) = list.iter().position(|p| *p == 0) {
                return Err(self.err(&format!("{key}[{i}]"), "port 0", "a port from 1 to 65535"));
            }
        }
        if self.firewall.ssh_port == Some(0) {
            return Err(self.err(
                "firewall.ssh_port",
                "port 0",
                "a port from 1 to 65535, or leave it out to use the port sshd listens on",
            ));
        }
        for (i, p) in self.drift.keep.iter().enumerate() {
            self.check(&format!("drift.keep[{i}]"), crate::validate::abs_path(p))?;
        }
        crate::schedule::check(&self.schedules).map_err(|(k, m, h)| self.err(&k, m, h))?;
        crate::process::check(&self.processes).map_err(|(k, m, h)| self.err(&k, m, h))?;
        crate::notify::check(&self.notify).map_err(|(k, m, h)| self.err(&k, m, h))?;
        self.validate_env()
    }

    pub(super) fn validate_backup(&self) -> Result<()> {
        use crate::validate as v;
        let b = &self.backup;
        self.check("backup.schedule", v::calendar(&b.schedule))?;
        if let Some(d) = &b.dir {
            self.check("backup.dir", v::backup_dir(d, &self.base_dir()))?;
        }
        if let Some((i, _)) = b
            .upload_command
            .iter()
            .enumerate()
            .find(|(_, a)| v::has_control(a))
        {
            return Err(self.err(
                &format!("backup.upload_command[{i}]"),
                "has a control character",
                "one argument per string, plain text",
            ));
        }
        if let Some(p) = b.upload_command.first() {
            self.check(
                "backup.upload_command[0]",
                v::root_program(Path::new(p), &self.base_dir()),
            )?;
        }
        if b.keep_daily + b.keep_weekly == 0 {
            return Err(self.err(
                "backup.keep_daily",
                "keep_daily and keep_weekly are both 0: every backup would be deleted",
                "keep at least one (keep_daily = 7 is the default)",
            ));
        }
        Ok(())
    }

    pub(super) fn validate_names(&self) -> Result<()> {
        use crate::validate as v;
        let ident = |key: &str, val: &str, max: usize| -> Result<()> {
            if v::ident(val, max) {
                Ok(())
            } else {
                Err(self.err(
                    key,
                    format!("{val:?} is not a valid name"),
                    format!(
                        "use 1-{max} characters: a lowercase letter, then lowercase letters, digits, '_' or '-' (e.g. \"demo\")"
                    ),
                ))
            }
        };
        ident("app.name", &self.app.name, 32)?;
        // The build user is "<user>-build"; useradd takes at most 32 characters.
        ident("app.user", &self.app_user(), 26)?;
        let user_key = if self.app.user.is_some() {
            "app.user"
        } else {
            "app.name"
        };
        if v::reserved_user(&self.app_user()) || v::reserved_user(&self.build_user()) {
            return Err(self.err(
                user_key,
                format!(
                    "{:?} is a name that belongs to the system or to a service",
                    self.app_user()
                ),
                "give the app its own user, e.g. the app's name (\"demo\"); keel creates it",
            ));
        }
        ident("database.name", &self.db_name(), 63)?;
        ident("database.user", &self.db_user(), 63)?;
        if self.db_name().contains('-') || self.db_user().contains('-') {
            return Err(self.err(
                "database.name",
                "'-' is not allowed in PostgreSQL names keel creates",
                "use '_' instead of '-'",
            ));
        }
        for (key, name) in [
            ("database.user", self.db_user()),
            ("database.name", self.db_name()),
        ] {
            if v::reserved_pg(&name) {
                return Err(self.err(
                    key,
                    format!("{name:?} belongs to the PostgreSQL cluster itself"),
                    "use the app's own name (e.g. \"demo\"): keel strips superuser from the role it manages",
                ));
            }
        }
        if !v::dns_name(&self.app.domain) {
            return Err(self.err(
                "app.domain",
                format!("{:?} is not a valid host name", self.app.domain),
                "use a DNS name such as \"example.com\" (labels of letters, digits and '-')",
            ));
        }
        self.check("app.base_dir", v::base_dir(&self.base_dir()))?;
        Ok(())
    }

    /// Packages, numbers, ports.
    pub(super) fn validate_services(&self) -> Result<()> {
        use crate::validate as v;
        for (i, e) in self.database.extensions.iter().enumerate() {
            let ok = !e.is_empty()
                && e.len() <= 63
                && e.starts_with(|c: char| c.is_ascii_lowercase())
                && e.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
            if !ok {
                return Err(self.err(
                    &format!("database.extensions[{i}]"),
                    format!("{e:?} is not an extension name"),
                    "an extension as pg_available_extensions names it, e.g. \"pg_trgm\"",
                ));
            }
        }
        let lists = self
            .packages
            .install
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("packages.install[{i}]"), p));
        let lists = lists.chain(
            self.packages
                .python
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("packages.python[{i}]"), p)),
        );
        let lists = lists.chain(
            self.packages
                .build
                .iter()
                .enumerate()
                .map(|(i, p)| (format!("packages.build[{i}]"), p)),
        );
        for (key, p) in lists {
            self.check(&key, v::package(p))?;
        }
        // The list replaces keel's default: the stack's own packages must stay in it.
        let base = |p: &String| -> String { p.split([':', '=']).next().unwrap_or("").to_string() };
        let all: Vec<String> = self
            .packages
            .install
            .iter()
            .chain(&self.packages.python)
            .map(base)
            .collect();
        let provided: Vec<&str> = all
            .iter()
            .filter_map(|p| crate::validate::stack_need(p))
            .collect();
        if let Some(name) = crate::validate::STACK_NEEDS
            .iter()
            .find(|n| !provided.contains(n))
        {
            let key = if name.starts_with("python3") {
                "packages.python"
            } else {
                "packages.install"
            };
            return Err(self.err(
                key,
                format!("lacks {name}, which the stack needs (the list replaces keel's default)"),
                format!(
                    "keep {name} in the list and add your packages beside it (the default is {:?})",
                    match key {
                        "packages.python" => Packages::default().python,
                        _ => Packages::default().install,
                    }
                ),
            ));
        }
        if self.packages.install.len() + self.packages.python.len() + self.packages.build.len()
            > 200
        {
            return Err(self.err(
                "packages.install",
                "more than 200 packages",
                "list at most 200",
            ));
        }
        self.validate_numbers()?;
        let ports = [
            ("postgres.port", self.postgres.port),
            ("redis.port", self.redis.port),
            ("nginx.port", self.nginx.port),
            ("tls.port", self.tls.port),
        ];
        for (i, (key, p)) in ports.iter().enumerate() {
            if *p == 0 {
                return Err(self.err(key, "0 is not a usable port", "use a port from 1 to 65535"));
            }
            if *p == 22 {
                return Err(self.err(
                    key,
                    "22 is the SSH port",
                    "use the service's usual port (5432, 6379, 80)",
                ));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == p) {
                return Err(self.err(
                    key,
                    format!("port {p} is already used by {other}"),
                    "give each service its own port",
                ));
            }
        }
        Ok(())
    }
}
