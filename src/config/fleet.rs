//! Several hosts: the roles a host plays, the services it reaches by URL instead of running
//! them, and who may reach the services a database host runs. Checked at load, before any
//! write: every value here reaches postgresql.conf, pg_hba, redis.conf, nftables or a socket.
use super::{Config, Role};
use crate::error::Result;
use std::net::IpAddr;
use std::path::PathBuf;

/// A PostgreSQL or Redis server reached by URL: `postgres://USER@HOST:PORT/DB?sslmode=verify-full`
/// or `rediss://HOST:PORT/N`. Never a password: that is a pre-shared secret file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceUrl {
    pub scheme: String,
    pub user: Option<String>,
    /// As written (a name, or an IP address; v6 without brackets).
    pub host: String,
    pub port: u16,
    /// The database name (PostgreSQL) or index (Redis); empty when not given.
    pub path: String,
    pub query: Vec<(String, String)>,
}

impl ServiceUrl {
    pub fn tls(&self) -> bool {
        matches!(self.scheme.as_str(), "postgres" | "postgresql" | "rediss")
    }
    /// `host:port` for messages and sockets (v6 in brackets).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The URL as given, with any password masked: what error messages show.
pub fn masked(url: &str) -> String {
    crate::validate::redact_userinfo(url)
}

/// Parse and check a service URL; `Err((what, fix))`.
pub fn parse_url(s: &str, postgres: bool) -> std::result::Result<ServiceUrl, (String, String)> {
    let shown = masked(s);
    let bad = |m: String, h: &str| Err((m, h.to_string()));
    let example = if postgres {
        "postgres://USER@HOST:5432/DB?sslmode=verify-full"
    } else {
        "rediss://HOST:6379/0 (or redis:// on a private address)"
    };
    let Some((scheme, rest)) = s.split_once("://") else {
        return bad(format!("{shown:?} is not a URL"), example);
    };
    let schemes: &[&str] = if postgres {
        &["postgres", "postgresql"]
    } else {
        &["redis", "rediss"]
    };
    if !schemes.contains(&scheme) {
        return bad(
            format!("{shown:?}: the scheme must be {}", schemes.join(" or ")),
            example,
        );
    }
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (auth, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    if let Some(u) = user {
        if u.contains(':') {
            return bad(
                format!("{shown:?} holds a password"),
                "leave the password out of the URL: keel reads it from its secret file (/etc/keel/secrets/...), written on each host by you or Terraform",
            );
        }
        if !pg_name(u) {
            return bad(
                format!("{shown:?}: the user {u:?} is not a role name"),
                "lowercase letters, digits and '_', starting with a letter",
            );
        }
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
        (h.to_string(), p.strip_prefix(':').unwrap_or(p))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), ""),
        }
    };
    let host_ok = host.parse::<IpAddr>().is_ok() || crate::validate::dns_name(&host);
    if !host_ok {
        return bad(
            format!("{shown:?}: {host:?} is not a host name or IP address"),
            example,
        );
    }
    let port = if port.is_empty() {
        if postgres { 5432 } else { 6379 }
    } else {
        match port.parse::<u16>() {
            Ok(p) if p > 0 && port.chars().all(|c| c.is_ascii_digit()) => p,
            _ => return bad(format!("{shown:?}: {port:?} is not a port"), example),
        }
    };
    let path_ok = if postgres {
        path.is_empty() || pg_name(path)
    } else {
        path.is_empty() || path.parse::<u8>().is_ok_and(|n| n < 16)
    };
    if !path_ok {
        return bad(
            format!("{shown:?}: {path:?} is not a database name or index"),
            example,
        );
    }
    let mut q = vec![];
    for kv in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        q.push((k.to_string(), v.to_string()));
    }
    let url = ServiceUrl {
        scheme: scheme.to_string(),
        user: user.map(String::from),
        host,
        port,
        path: path.to_string(),
        query: q,
    };
    scheme_rules(&url, &shown, example)?;
    Ok(url)
}

/// What each scheme must say: PostgreSQL verify-full and nothing else; Redis no
/// parameters, and plain only to a private address.
fn scheme_rules(
    url: &ServiceUrl,
    shown: &str,
    example: &str,
) -> std::result::Result<(), (String, String)> {
    let bad = |m: String, h: &str| Err((m, h.to_string()));
    let postgres = url.scheme.starts_with("postgres");
    if postgres {
        // A managed service's certificate must match its name: verify-full, nothing weaker.
        for (k, v) in &url.query {
            if k != "sslmode" {
                return bad(
                    format!("{shown:?}: the parameter {k:?} is not one keel passes on"),
                    "only ?sslmode=verify-full",
                );
            }
            if v != "verify-full" {
                return bad(
                    format!(
                        "{shown:?}: sslmode={v} does not check the server's certificate and name"
                    ),
                    "sslmode=verify-full with database.ca_file, the CA that signed the server's certificate",
                );
            }
        }
        if url.query.is_empty() {
            return bad(
                format!("{shown:?} has no sslmode"),
                "add ?sslmode=verify-full: keel reaches a database on another host over TLS only",
            );
        }
    } else {
        if !url.query.is_empty() {
            return bad(
                format!("{shown:?}: keel passes no parameters on a Redis URL"),
                example,
            );
        }
        if url.scheme == "redis" && !private_address(&url.host) {
            return bad(
                format!("{shown:?}: plain Redis to an address that is not private"),
                "rediss:// with redis.ca_file; plain redis:// only to a private address (10/8, 172.16/12, 192.168/16, fd00::/8)",
            );
        }
    }
    Ok(())
}

/// A role or database name as keel creates them: lowercase letters, digits and '_'.
fn pg_name(s: &str) -> bool {
    crate::validate::ident(s, 63) && !s.contains('-')
}

/// An RFC 1918 or unique-local address (not a name: a name may resolve anywhere).
fn private_address(host: &str) -> bool {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_private(),
        Ok(IpAddr::V6(a)) => (a.segments()[0] & 0xfe00) == 0xfc00,
        Err(_) => false,
    }
}

/// A network that may reach the database host's services: not the whole internet.
pub fn allowed_network(s: &str) -> std::result::Result<String, (String, String)> {
    let c = crate::validate::cidr(s).map_err(|m| (m, "a network such as 10.0.0.0/24".into()))?;
    let (addr, len) = c.split_once('/').unwrap_or((&c, ""));
    if len == "0" {
        return Err((
            format!("{s:?} is every address"),
            "name the app hosts' private network (10.0.0.0/24) or addresses".into(),
        ));
    }
    let ip: IpAddr = addr.parse().expect("cidr() canonicalised it");
    if let Ok(n) = len.parse::<u32>() {
        let bits = if ip.is_ipv4() { 32 } else { 128 };
        let host_bits = match ip {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a),
        } & (if n >= bits {
            0
        } else {
            (1u128 << (bits - n)) - 1
        });
        if host_bits != 0 {
            return Err((
                format!("{s:?} has host bits set after /{n}"),
                "give the network's first address (10.0.0.0/24, not 10.0.0.5/24)".into(),
            ));
        }
    }
    Ok(c)
}

/// An address a service listens on besides loopback: one IP address, never "every address".
pub fn listen_address(s: &str) -> std::result::Result<IpAddr, (String, String)> {
    let ip: IpAddr = s.parse().map_err(|_| {
        (
            format!("{s:?} is not an IP address"),
            "the host's private address, e.g. 10.0.0.10 (never * or 0.0.0.0)".to_string(),
        )
    })?;
    if ip.is_unspecified() || ip.is_loopback() || ip.is_multicast() {
        return Err((
            format!("{s:?} is not a private address of this host"),
            "the host's private address, e.g. 10.0.0.10: keel already listens on loopback, and never on every address".into(),
        ));
    }
    Ok(ip)
}

impl Config {
    /// The roles this host plays (every role when `app.roles` is not given).
    pub fn roles(&self) -> Vec<Role> {
        self.app
            .roles
            .clone()
            .unwrap_or_else(|| super::ALL_ROLES.to_vec())
    }
    pub fn has(&self, r: Role) -> bool {
        self.app.roles.as_ref().is_none_or(|v| v.contains(&r))
    }
    /// Runs the app's code: web, worker or beat.
    pub fn runs_app(&self) -> bool {
        self.has(Role::Web) || self.has(Role::Worker) || self.has(Role::Beat)
    }
    /// One host of several: roles were named.
    pub fn in_fleet(&self) -> bool {
        self.app.roles.is_some()
    }
    /// The database, when it is reached by URL (checked at load).
    pub fn database_url(&self) -> Option<ServiceUrl> {
        let u = self.database.url.as_deref()?;
        parse_url(u, true).ok()
    }
    pub fn redis_url(&self) -> Option<ServiceUrl> {
        let u = self.redis.url.as_deref()?;
        parse_url(u, false).ok()
    }

    /// The networks of an allow_from list, each with its prefix length (an address alone is
    /// /32 or /128): as pg_hba and nftables take them.
    pub fn networks(list: &[String]) -> Vec<String> {
        list.iter()
            .filter_map(|a| allowed_network(a).ok())
            .map(|c| {
                if c.contains('/') {
                    c
                } else if c.contains(':') {
                    format!("{c}/128")
                } else {
                    format!("{c}/32")
                }
            })
            .collect()
    }

    pub(super) fn validate_fleet(&self) -> Result<()> {
        if let Some(roles) = &self.app.roles {
            if roles.is_empty() {
                return Err(self.err(
                    "app.roles",
                    "no role",
                    "some of \"database\", \"redis\", \"web\", \"worker\", \"beat\" (leave it out for all)",
                ));
            }
            for (i, r) in roles.iter().enumerate() {
                if roles[..i].contains(r) {
                    return Err(self.err(
                        &format!("app.roles[{i}]"),
                        format!("{:?} twice", r.name()),
                        "name each role once",
                    ));
                }
            }
        }
        for (key, url, postgres, role) in [
            ("database.url", &self.database.url, true, Role::Database),
            ("redis.url", &self.redis.url, false, Role::Redis),
        ] {
            let ca_key = if postgres {
                "database.ca_file"
            } else {
                "redis.ca_file"
            };
            let ca = if postgres {
                &self.database.ca_file
            } else {
                &self.redis.ca_file
            };
            match url {
                Some(u) => {
                    let parsed = parse_url(u, postgres).map_err(|(m, h)| self.err(key, m, h))?;
                    if self.has(role) {
                        return Err(self.err(
                            key,
                            format!(
                                "this host runs {} itself (app.roles has {:?})",
                                role.name(),
                                role.name()
                            ),
                            format!("remove {key}, or {:?} from app.roles", role.name()),
                        ));
                    }
                    match ca {
                        Some(p) => self.check(ca_key, crate::validate::abs_path(p))?,
                        None if parsed.tls() => {
                            return Err(self.err(
                                ca_key,
                                format!("{key} is reached over TLS, and no CA file is given"),
                                format!("{ca_key} = \"/etc/keel/...-ca.pem\": the CA that signed the server's certificate (your provider's, or your own)"),
                            ));
                        }
                        None => {}
                    }
                    if postgres {
                        for (k, given, from_url) in [
                            ("database.user", &self.database.user, &parsed.user),
                            (
                                "database.name",
                                &self.database.name,
                                &Some(parsed.path.clone()).filter(|p| !p.is_empty()),
                            ),
                        ] {
                            if let (Some(g), Some(u)) = (given, from_url)
                                && g != u
                            {
                                return Err(self.err(
                                    k,
                                    format!("{g:?} differs from {u:?} in database.url"),
                                    "give it once, in the URL",
                                ));
                            }
                        }
                    }
                }
                None => {
                    if let Some(p) = ca {
                        return Err(self.err(
                            ca_key,
                            format!("{} is given without {key}", p.display()),
                            format!("set {key}, or remove {ca_key}"),
                        ));
                    }
                    if !self.has(role) && self.runs_app() {
                        return Err(self.err(
                            key,
                            format!("app.roles has no {:?}, so the app needs the {} server's URL", role.name(), role.name()),
                            if postgres {
                                "database.url = \"postgres://USER@DB-HOST:5432/DB?sslmode=verify-full\" with database.ca_file"
                            } else {
                                "redis.url = \"rediss://REDIS-HOST:6379/0\" with redis.ca_file"
                            },
                        ));
                    }
                }
            }
        }
        self.validate_listen()
    }

    /// `[postgres]`/`[redis]` listen and allow_from: a database host's private side.
    fn validate_listen(&self) -> Result<()> {
        let p = &self.postgres;
        let r = &self.redis;
        for (sec, listen, allow, role) in [
            ("postgres", &p.listen, &p.allow_from, Role::Database),
            ("redis", &r.listen, &r.allow_from, Role::Redis),
        ] {
            for (i, a) in allow.iter().enumerate() {
                allowed_network(a)
                    .map_err(|(m, h)| self.err(&format!("{sec}.allow_from[{i}]"), m, h))?;
            }
            match listen {
                Some(l) => {
                    listen_address(l).map_err(|(m, h)| self.err(&format!("{sec}.listen"), m, h))?;
                    if !self.has(role) {
                        return Err(self.err(
                            &format!("{sec}.listen"),
                            format!("this host has no {:?} role", role.name()),
                            format!("add {:?} to app.roles, or remove {sec}.listen", role.name()),
                        ));
                    }
                    if allow.is_empty() {
                        return Err(self.err(
                            &format!("{sec}.allow_from"),
                            format!("{sec}.listen is set and no network may connect"),
                            "the app hosts' private network, e.g. allow_from = [\"10.0.0.0/24\"]",
                        ));
                    }
                }
                None if !allow.is_empty() => {
                    return Err(self.err(
                        &format!("{sec}.allow_from"),
                        format!("{sec}.listen is not set: the service listens on loopback only"),
                        format!("set {sec}.listen to this host's private address"),
                    ));
                }
                None => {}
            }
        }
        match (&p.listen, &p.tls_cert, &p.tls_key) {
            (Some(_), Some(c), Some(k)) => {
                self.check("postgres.tls_cert", crate::validate::abs_path(c))?;
                self.check("postgres.tls_key", crate::validate::abs_path(k))?;
            }
            (Some(_), _, _) => {
                return Err(self.err(
                    if p.tls_cert.is_none() { "postgres.tls_cert" } else { "postgres.tls_key" },
                    "postgres.listen is set: other hosts connect over TLS only, and no certificate and key are given",
                    "postgres.tls_cert and postgres.tls_key: the server's certificate (for the name or address in the app hosts' database.url) and its key",
                ));
            }
            (None, None, None) => {}
            (None, _, _) => {
                return Err(self.err(
                    "postgres.tls_cert",
                    "a certificate without postgres.listen: nobody connects over TLS",
                    "set postgres.listen, or remove postgres.tls_cert and postgres.tls_key",
                ));
            }
        }
        Ok(())
    }

    /// The files of a fleet's TLS, against this host: root's regular files no other user
    /// can change (keel reads them as root), keys readable by root alone, certificates PEM.
    pub fn check_fleet_files(&self, root: &std::path::Path) -> Result<()> {
        let files: [(&str, &Option<PathBuf>, bool); 4] = [
            ("database.ca_file", &self.database.ca_file, false),
            ("redis.ca_file", &self.redis.ca_file, false),
            ("postgres.tls_cert", &self.postgres.tls_cert, false),
            ("postgres.tls_key", &self.postgres.tls_key, true),
        ];
        for (key, p, private) in files {
            let Some(p) = p else { continue };
            let bytes = self.root_file(root, key, p, private)?;
            if !private {
                let text = String::from_utf8_lossy(&bytes);
                crate::certs::parse_pem(&text).map_err(|e| {
                    self.err(
                        key,
                        format!("{}: {e}", p.display()),
                        "a PEM certificate (-----BEGIN CERTIFICATE-----)",
                    )
                })?;
            }
        }
        Ok(())
    }
}
