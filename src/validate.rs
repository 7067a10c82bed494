//! Typed checks for every config value that reaches a template, a unit file, SQL or a
//! command line. Each returns `Err((what is wrong, how to fix it))`; the caller adds the file
//! and the key. Allowlists, not denylists: a value is accepted only if it is what it claims.
use std::path::Path;

pub type Check = std::result::Result<(), (String, String)>;

fn bad(msg: impl Into<String>, hint: impl Into<String>) -> Check {
    Err((msg.into(), hint.into()))
}

/// Any control character (newline, tab, NUL, ESC, DEL, C1) — refused in every value.
pub fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && s.len() <= 100
}

/// Python keywords cannot be module or attribute names.
const PY_KEYWORDS: &[&str] = &[
    "False", "None", "True", "and", "as", "assert", "async", "await", "break", "class", "continue",
    "def", "del", "elif", "else", "except", "finally", "for", "from", "global", "if", "import",
    "in", "is", "lambda", "nonlocal", "not", "or", "pass", "raise", "return", "try", "while",
    "with", "yield",
];

fn dotted(s: &str) -> bool {
    !s.is_empty()
        && s.split('.')
            .all(|p| is_ident(p) && !PY_KEYWORDS.contains(&p))
}

/// `package.module:callable` (Gunicorn's WSGI app).
pub fn wsgi(s: &str) -> Check {
    let ok = s.len() <= 200
        && match s.split_once(':') {
            Some((m, attr)) => dotted(m) && dotted(attr),
            None => false,
        };
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a WSGI callable"),
            "use a dotted Python module, ':' and the callable, e.g. \"demo.wsgi:application\"",
        )
    }
}

/// A dotted Python module (`config.settings.production`).
pub fn module(s: &str) -> Check {
    if s.len() <= 200 && dotted(s) {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a dotted Python module"),
            "e.g. \"config.settings.production\"",
        )
    }
}

/// A file inside the app's tree: a relative path of plain components, no `..`.
pub fn relative_file(s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('/')
        && s.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && !c.starts_with('-')
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
        });
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a file path inside the app"),
            "a path relative to the app's top, e.g. \"requirements/production.txt\"",
        )
    }
}

/// `package.module` or `package.module:app` (Celery's `-A`).
pub fn celery_app(s: &str) -> Check {
    let ok = s.len() <= 200
        && match s.split_once(':') {
            Some((m, attr)) => dotted(m) && dotted(attr),
            None => dotted(s),
        };
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a Python module path"),
            "use a dotted Python module (optionally ':app'), e.g. \"demo\" or \"demo.celery:app\"",
        )
    }
}

/// A Debian package name as apt-get takes it: `name`, `name:arch`, `name=version`.
pub fn package(s: &str) -> Check {
    let (rest, version) = match s.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (s, None),
    };
    let (name, arch) = match rest.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (rest, None),
    };
    let name_ok = name.len() >= 2
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let arch_ok = arch.is_none_or(|a| {
        !a.is_empty()
            && a.len() <= 20
            && a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !a.starts_with('-')
    });
    let version_ok = version.is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 100
            && v.starts_with(|c: char| c.is_ascii_digit())
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".+~:-".contains(c))
    });
    if name_ok && arch_ok && version_ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a Debian package name"),
            "use names as apt-get install takes them: lowercase letters, digits, '+', '-', '.', starting with a letter or digit (e.g. \"nginx\")",
        )
    }
}

/// A git URL keel may fetch from, with no credentials in it (they would land in argv, logs
/// and .git/config): https://host/path, ssh://[user@]host[:port]/path, user@host:path,
/// file:///absolute/path.
pub fn git_url(s: &str) -> Check {
    let hint = "use https://host/path, ssh://git@host/path, git@host:path or file:///path; put credentials in a deploy key or a credential helper, not in the URL";
    if s.len() > 500 || s.chars().any(|c| c.is_whitespace() || c == '\\') || s.starts_with('-') {
        return bad(format!("{s:?} is not a git URL"), hint);
    }
    let host_ok = |h: &str| {
        let h = h.trim_start_matches('[').trim_end_matches(']');
        !h.starts_with('-')
            && (crate::system::valid_hostname(h) || h.parse::<std::net::IpAddr>().is_ok())
    };
    let path_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('-')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._~-+@%".contains(c))
    };
    if let Some(rest) = s.strip_prefix("https://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.contains('@') {
            return bad(
                format!(
                    "{:?}: credentials in a git URL are refused",
                    redact_userinfo(s)
                ),
                hint,
            );
        }
        let host = authority.rsplit_once(':').map_or(authority, |(h, p)| {
            if p.parse::<u16>().is_ok() {
                h
            } else {
                authority
            }
        });
        if host_ok(host) && path_ok(path) {
            return Ok(());
        }
    } else if let Some(rest) = s.strip_prefix("ssh://") {
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = authority
            .rsplit_once('@')
            .map_or(("git", authority), |(u, h)| (u, h));
        if user.contains(':') {
            return bad(
                format!(
                    "{:?}: a password in a git URL is refused",
                    redact_userinfo(s)
                ),
                hint,
            );
        }
        let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
        if is_ident_dash(user) && host_ok(host) && path_ok(path) {
            return Ok(());
        }
    } else if let Some(path) = s.strip_prefix("file://") {
        if path.starts_with('/') && abs_path_chars(path) && !has_dot_components(path) {
            return Ok(());
        }
    } else if let Some((user_host, path)) = s.split_once(':')
        && let Some((user, host)) = user_host.split_once('@')
        && is_ident_dash(user)
        && host_ok(host)
        && path_ok(path)
    {
        return Ok(());
    }
    bad(format!("{:?} is not a git URL", redact_userinfo(s)), hint)
}

/// A URL with any `user:password@` part masked, for messages.
pub fn redact_userinfo(s: &str) -> String {
    if let Some((scheme, rest)) = s.split_once("://")
        && let Some((authority, path)) = rest.split_once('/').or(Some((rest, "")))
        && let Some((_, host)) = authority.rsplit_once('@')
    {
        return format!("{scheme}://********@{host}/{path}");
    }
    s.to_string()
}

fn is_ident_dash(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// A branch, tag or commit as `git check-ref-format` allows it, and never option-like.
pub fn git_ref(s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 200
        && !s.starts_with('-')
        && !s.starts_with('/')
        && !s.ends_with('/')
        && !s.ends_with('.')
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("@{")
        && !s.contains("//")
        && s != "@"
        && s.split('/').all(|c| !c.starts_with('.'))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a git branch, tag or commit"),
            "use a ref such as \"main\", \"v1.2.0\" or a commit id (letters, digits, '/', '.', '_', '-'; not starting with '-')",
        )
    }
}

fn abs_path_chars(p: &str) -> bool {
    p.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+@".contains(c))
}

fn has_dot_components(p: &str) -> bool {
    p.split('/').any(|c| c == "." || c == "..") || p.contains("//")
}

/// Trees that belong to the system or to other services: never an app's base directory.
const SYSTEM_TREES: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/sys",
    "/tmp",
    "/usr",
    "/var/tmp",
    "/var/run",
    "/var/lock",
    "/var/log",
    "/var/cache",
    "/var/spool",
    "/var/mail",
    "/var/backups",
    "/var/lib/postgresql",
    "/var/lib/redis",
    "/var/lib/dpkg",
    "/var/lib/apt",
    "/var/lib/keel",
    "/var/lib/systemd",
    "/var/lib/nginx",
    "/var/www/html",
    "/snap",
    "/lost+found",
];

/// An app's base directory: absolute, canonical (no `.`, `..`, `//`, trailing `/`), plain
/// characters (it is written into nginx and unit files), at least two levels deep, and
/// outside system trees. If it exists, it must contain no symlink.
pub fn base_dir(p: &Path) -> Check {
    let s = p.to_string_lossy();
    let hint = "use a dedicated directory such as \"/opt/demo\" or \"/srv/demo\" (absolute, no '..', letters, digits, '.', '_', '-')";
    if !s.starts_with('/')
        || s.len() > 200
        || !abs_path_chars(&s)
        || has_dot_components(&s)
        || s.ends_with('/')
    {
        return bad(format!("{s:?} is not an absolute canonical path"), hint);
    }
    if let Some(t) = SYSTEM_TREES
        .iter()
        .find(|t| s == **t || s.starts_with(&format!("{t}/")))
    {
        return bad(format!("{s} is inside the system tree {t}"), hint);
    }
    if s.matches('/').count() < 2 {
        return bad(format!("{s} is a top-level directory"), hint);
    }
    Ok(())
}

/// A directory keel creates and writes into a unit: absolute, canonical, plain characters.
pub fn plain_dir(p: &Path) -> Check {
    let s = p.to_string_lossy();
    if !s.starts_with('/')
        || s.len() > 200
        || !abs_path_chars(&s)
        || has_dot_components(&s)
        || s.ends_with('/')
        || s.matches('/').count() < 2
    {
        return bad(
            format!("{s:?} is not an absolute canonical path at least two levels deep"),
            "for example \"/var/backups/keel/demo\" (letters, digits, '.', '_', '-')",
        );
    }
    Ok(())
}

/// What the stack cannot run without, among keel's package lists.
pub const STACK_NEEDS: &[&str] = &[
    "postgresql",
    "redis-server",
    "nginx",
    "python3",
    "python3-venv",
];

/// Which of `STACK_NEEDS` a package (its bare name) provides: PostgreSQL by version too,
/// nginx in any of Debian's flavours.
pub fn stack_need(p: &str) -> Option<&'static str> {
    let pg_versioned = p
        .strip_prefix("postgresql-")
        .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()));
    match p {
        "postgresql" => Some("postgresql"),
        _ if pg_versioned => Some("postgresql"),
        "redis-server" => Some("redis-server"),
        "nginx" | "nginx-light" | "nginx-full" | "nginx-extras" | "nginx-core" => Some("nginx"),
        "python3" => Some("python3"),
        "python3-venv" => Some("python3-venv"),
        _ => None,
    }
}

/// Homes and the temporary trees: other users write there.
const USER_TREES: &[&str] = &[
    "/home",
    "/root",
    "/tmp",
    "/var/tmp",
    "/run/user",
    "/dev/shm",
];

fn under(s: &str, t: &str) -> bool {
    s == t || s.starts_with(&format!("{t}/"))
}

/// The backup directory: a plain directory outside the system trees (`/var/backups`
/// excepted: it is their place), outside the app's base directory (the app could reach it)
/// and outside homes. keel makes it root's 0700; a directory of someone else's is never
/// taken over.
pub fn backup_dir(p: &Path, base: &Path) -> Check {
    plain_dir(p)?;
    let s = p.to_string_lossy();
    let hint =
        "use a directory of its own such as \"/var/backups/keel/demo\" or \"/srv/backups/demo\"";
    if let Some(t) = SYSTEM_TREES
        .iter()
        .chain(USER_TREES)
        .filter(|t| **t != "/var/backups")
        .find(|t| under(&s, t))
    {
        return bad(format!("{s} is inside {t}"), hint);
    }
    let base = base.to_string_lossy();
    if under(&s, &base) || under(&base, &s) {
        return bad(
            format!("{s} overlaps the app's base directory {base} (the app's users reach it)"),
            hint,
        );
    }
    Ok(())
}

/// A program root runs (backup.upload_command[0]): an absolute path outside every tree a
/// less privileged user writes (the app's base directory, homes, temporary trees).
pub fn root_program(p: &Path, base: &Path) -> Check {
    abs_path(p)?;
    let s = p.to_string_lossy();
    let hint = "give a program installed by root (such as /usr/bin/rclone or /usr/local/bin/upload-backup), root's and writable by root alone";
    if let Some(t) = USER_TREES.iter().find(|t| under(&s, t)) {
        return bad(format!("{s} is inside {t}, which other users write"), hint);
    }
    if under(&s, &base.to_string_lossy()) {
        return bad(
            format!(
                "{s} is inside the app's base directory {}: the app's build user could change what root runs",
                base.display()
            ),
            hint,
        );
    }
    Ok(())
}

/// A systemd OnCalendar value keel writes into a timer: a shorthand or a plain expression.
pub fn calendar(s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || " *:,./~-".contains(c));
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a calendar expression keel accepts"),
            "\"hourly\", \"daily\", \"weekly\", or an OnCalendar expression such as \"*-*-* 03:00\" (check it with systemd-analyze calendar)",
        )
    }
}

/// A URL path keel requests and writes into nginx config: `/` then plain characters.
pub fn url_path(s: &str) -> Check {
    let ok = s.starts_with('/')
        && s.len() <= 200
        && !s.contains("//")
        && !s.split('/').any(|c| c == "..")
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._~-".contains(c));
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a plain URL path"),
            "start it with '/' and use letters, digits, '/', '.', '_', '~', '-' (e.g. \"/celery-ping/\"), or leave it empty",
        )
    }
}

/// An https URL with a host, for certbot's `--server`: no userinfo, quotes, spaces or
/// shell/argv specials (it is passed as one argument, never through a shell).
pub fn https_url(s: &str) -> Check {
    let rest = s.strip_prefix("https://").unwrap_or("");
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host_name = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.chars().all(|c| c.is_ascii_digit()) && !p.is_empty() {
            h
        } else {
            host
        }
    });
    let ok = s.len() <= 500
        && !host_name.is_empty()
        && (crate::system::valid_hostname(host_name)
            || host_name.parse::<std::net::IpAddr>().is_ok()
            || host_name
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok()))
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._~-:?=&%[]".contains(c));
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not an https URL"),
            "use the ACME directory's https URL, e.g. \"https://acme-staging-v02.api.letsencrypt.org/directory\"",
        )
    }
}

/// A keel name (app, user, database): 1 to `max` characters, a lowercase letter first, then
/// lowercase letters, digits, '_' or '-'. Safe in a path, a unit name and SQL (quoted).
pub fn ident(val: &str, max: usize) -> bool {
    !val.is_empty()
        && val.len() <= max
        && val.starts_with(|c: char| c.is_ascii_lowercase())
        && val
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A DNS name a site can serve: valid labels and at least one letter (an IP address is
/// not a name nginx's server_name or a certificate's DNS entry should hold).
pub fn dns_name(s: &str) -> bool {
    crate::system::valid_hostname(s) && s.contains(|c: char| c.is_ascii_alphabetic())
}

/// A name a public ACME CA can prove over http-01: a DNS name with a dot, not an IP, not
/// localhost and not a link-local/mDNS name.
pub fn certifiable(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains('.')
        && n.parse::<std::net::IpAddr>().is_err()
        && !n.contains('*')
        && ![
            "localhost",
            "local",
            "localdomain",
            "internal",
            "home.arpa",
            "invalid",
        ]
        .iter()
        .any(|t| n == *t || n.ends_with(&format!(".{t}")))
}

/// A name a public CA would certify (`keel init`'s default for HTTPS): `certifiable`, and not
/// one of RFC 6761's names for tests and examples (a private ACME CA may still issue those).
pub fn public_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    certifiable(&n)
        && !["test", "example", "lan"]
            .iter()
            .any(|t| n == *t || n.ends_with(&format!(".{t}")))
}

/// An absolute path without `..` (a file the admin provides).
pub fn abs_path(p: &std::path::Path) -> Check {
    let s = p.to_string_lossy();
    if p.is_absolute()
        && !p.components().any(|c| c == std::path::Component::ParentDir)
        && s.len() <= 4096
    {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not an absolute path"),
            "give the file's absolute path, without '..'",
        )
    }
}

pub fn email(s: &str) -> Check {
    let ok = s.len() <= 254
        && match s.rsplit_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && local.len() <= 64
                    && !local.starts_with('.')
                    && !local.ends_with('.')
                    && !local.contains("..")
                    && local
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
                    && crate::system::valid_hostname(domain)
            }
            None => false,
        };
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not an e-mail address"),
            "use local@domain, e.g. \"admin@example.com\" (letters, digits, '.', '_', '+', '-')",
        )
    }
}

/// Django's username rule (letters, digits and @/./+/-/_), bounded.
pub fn django_username(s: &str) -> Check {
    let ok = !s.is_empty()
        && s.len() <= 150
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.+-_".contains(c));
    if ok {
        Ok(())
    } else {
        bad(
            format!("{s:?} is not a Django user name"),
            "use 1-150 letters, digits or @ . + - _ (e.g. \"admin\")",
        )
    }
}

/// Users and groups that belong to the system or to the services keel sets up.
pub fn reserved_user(name: &str) -> bool {
    const NAMES: &[&str] = &[
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "_apt",
        "messagebus",
        "postgres",
        "redis",
        "nginx",
        "sshd",
        "keel",
        "admin",
        "sudo",
        "adm",
        "staff",
        "users",
        "operator",
        "shadow",
        "utmp",
        "tty",
        "disk",
        "kmem",
        "wheel",
        "ssl-cert",
        "polkitd",
        "dnsmasq",
        "ntp",
        "chrony",
        "tss",
        "uuidd",
        "syslog",
        "debian",
        "ubuntu",
        "cloud-init",
        "git",
        "tcpdump",
        "input",
        "render",
        "sgx",
        "kvm",
    ];
    NAMES.contains(&name)
        || name.starts_with("systemd-")
        || name.starts_with("pg_")
        || name.starts_with('_')
}

/// PostgreSQL roles and databases that belong to the cluster.
pub fn reserved_pg(name: &str) -> bool {
    ["postgres", "template0", "template1", "public", "root"].contains(&name)
        || name.starts_with("pg_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_paths() {
        assert!(wsgi("demo.wsgi:application").is_ok());
        assert!(wsgi("demo.wsgi").is_err());
        assert!(wsgi("demo.wsgi:application\nUser=root").is_err());
        assert!(wsgi("demo.wsgi:app; rm -rf /").is_err());
        assert!(wsgi("import.wsgi:app").is_err());
        assert!(celery_app("demo").is_ok());
        assert!(celery_app("demo.celery:app").is_ok());
        assert!(celery_app("-A").is_err());
        assert!(celery_app("demo..x").is_err());
    }

    #[test]
    fn packages() {
        for ok in [
            "nginx",
            "redis-server",
            "libpq5:amd64",
            "python3=3.11.2-1",
            "g++",
        ] {
            assert!(package(ok).is_ok(), "{ok}");
        }
        for bad in [
            "-odpkg::pre-invoke::=id",
            "",
            "a",
            "Nginx",
            "nginx;id",
            "nginx=",
            "x:-y",
        ] {
            assert!(package(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn git_urls_and_refs() {
        for ok in [
            "https://github.com/acme/shop.git",
            "https://git.example.com:8443/acme/shop",
            "ssh://git@git.example.com:2222/acme/shop.git",
            "git@github.com:acme/shop.git",
            "file:///srv/demo-app",
        ] {
            assert!(git_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://user:pw@github.com/acme/shop",
            "https://token@github.com/acme/shop",
            "ssh://git:pw@host/x",
            "ssh://-oProxyCommand=id/x",
            "--upload-pack=id",
            "ext::sh -c id",
            "file://relative",
            "file:///srv/../etc",
            "http://plain.example.com/x",
        ] {
            assert!(git_url(bad).is_err(), "{bad}");
        }
        let (msg, _) = git_url("https://user:hunter2@github.com/x").unwrap_err();
        assert!(!msg.contains("hunter2"), "{msg}");
        for ok in ["main", "v1.2.0", "feature/x", "0123abcd"] {
            assert!(git_ref(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--upload-pack=id",
            "-x",
            "a..b",
            "x.lock",
            "a b",
            "x@{1}",
            ".hidden",
            "a//b",
            "",
        ] {
            assert!(git_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_dirs() {
        for ok in [
            "/opt/demo",
            "/srv/shop",
            "/var/www/demo",
            "/home/deploy/app",
        ] {
            assert!(base_dir(Path::new(ok)).is_ok(), "{ok}");
        }
        for bad in [
            "/etc",
            "/etc/demo",
            "/",
            "/opt",
            "opt/demo",
            "/opt/../etc",
            "/opt/demo/",
            "/opt/de mo",
            "/opt/x;include /etc/passwd;",
            "/usr/local/demo",
            "/var/lib/postgresql/x",
            "/opt/./demo",
            "/tmp/x",
            "/root/app",
        ] {
            assert!(base_dir(Path::new(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn small_things() {
        assert!(url_path("/celery-ping/").is_ok());
        assert!(url_path("/a;b").is_err());
        assert!(url_path("/../x").is_err());
        assert!(email("admin@demo.localhost").is_ok());
        assert!(email("a@b@c").is_err());
        assert!(email("x\"@y.com").is_err());
        assert!(django_username("admin").is_ok());
        assert!(django_username("ad min").is_err());
        assert!(
            reserved_user("root") && reserved_user("postgres") && reserved_user("systemd-network")
        );
        assert!(!reserved_user("demo"));
        assert!(
            reserved_pg("pg_signal_backend") && reserved_pg("postgres") && !reserved_pg("demo")
        );
        assert!(has_control("a\nb") && has_control("a\u{1b}[31m") && !has_control("héllo"));
    }

    /// A private ACME CA (Pebble in the tests) may certify a .test name; init's default for
    /// HTTPS counts only names a public CA would.
    #[test]
    fn test_names_are_certifiable_but_not_public() {
        assert!(super::certifiable("demo.keel.test"));
        assert!(!super::public_name("demo.keel.test"));
        assert!(!super::public_name("shop.example"));
        assert!(super::public_name("shop.example.com"));
        assert!(!super::certifiable("app.localhost"));
    }
}

/// An address or network as nginx's `geo` and nftables take it (`203.0.113.7`,
/// `10.0.0.0/8`, `2001:db8::/32`), returned in its canonical form: anything else (a name, a
/// prefix too long, text after it) is refused, since it reaches a config file.
pub fn cidr(s: &str) -> Result<String, String> {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: std::net::IpAddr = addr.parse().map_err(|_| {
        format!("{s:?} is not an IP address or network (e.g. 203.0.113.7 or 10.0.0.0/8)")
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match prefix {
        None => Ok(ip.to_string()),
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max && p.chars().all(|c| c.is_ascii_digit()) => Ok(format!("{ip}/{n}")),
            _ => Err(format!("{s:?}: the prefix length must be 0 to {max}")),
        },
    }
}

#[cfg(test)]
mod cidr_tests {
    #[test]
    fn addresses_and_networks_only() {
        assert_eq!(super::cidr("10.0.0.0/8").unwrap(), "10.0.0.0/8");
        assert_eq!(super::cidr("2001:db8::1").unwrap(), "2001:db8::1");
        assert_eq!(super::cidr("2001:0db8::/32").unwrap(), "2001:db8::/32");
        for bad in [
            "",
            "example.com",
            "10.0.0.0/33",
            "10.0.0.0/8; deny all",
            "1.2.3.4/+8",
            "::/129",
        ] {
            assert!(super::cidr(bad).is_err(), "{bad}");
        }
    }
}
