//! Preflight: is this host fit for keel? kubeadm-style: errors stop the run unless ignored by
//! name (--ignore-preflight-errors NAME,...|all), warnings are reported.
use super::{CheckFn, CheckResult, Level, error, ok, warn};
use crate::config::Config;
use crate::system;
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const NAMES: &[&str] = &[
    "root",
    "os",
    "cpu",
    "memory",
    "disk",
    "ports",
    "hostname",
    "dns",
    "mirror",
    "disk-writable",
];

/// Which process names are "ours" on each port: finding them there is expected on re-runs.
fn expected_owner(port_key: &str) -> &'static [&'static str] {
    match port_key {
        "postgres" => &["postgres"],
        "redis" => &["redis-server", "redis-check-rdb"],
        "nginx" => &["nginx"],
        _ => &[],
    }
}

pub fn checks(cfg: &Config, root: &Path) -> Vec<(String, CheckFn<'static>)> {
    let root: PathBuf = root.to_path_buf();
    let pf = cfg.preflight.clone();
    let mut ports = vec![
        ("nginx", cfg.nginx.port),
        ("postgres", cfg.postgres.port),
        ("redis", cfg.redis.port),
    ];
    if cfg.tls_on() {
        ports.push(("nginx", cfg.tls.port));
    }
    let base = cfg.base_dir();
    let mut v: Vec<(String, CheckFn<'static>)> = vec![];
    v.push((
        "root".into(),
        Box::new(|| {
            if rustix::process::geteuid().is_root() {
                ok("running as root")
            } else {
                error("not running as root", "run keel as root (sudo keel ...)")
            }
        }),
    ));
    let r = root.clone();
    v.push((
        "os".into(),
        Box::new(move || os_check(&system::os_release(&r))),
    ));
    let min_cpus = pf.min_cpus;
    v.push((
        "cpu".into(),
        Box::new(move || {
            let n = system::cpus();
            if n >= min_cpus {
                ok(format!("{n} CPU(s)"))
            } else {
                error(
                    format!("{n} CPU(s), {min_cpus} needed"),
                    "use a bigger machine or lower preflight.min_cpus",
                )
            }
        }),
    ));
    let min_mem = pf.min_memory_mb;
    v.push((
        "memory".into(),
        Box::new(move || {
            let m = system::mem_total_mb();
            if m >= min_mem {
                ok(format!("{m} MB RAM"))
            } else {
                error(
                    format!("{m} MB RAM, {min_mem} MB needed"),
                    "use a bigger machine, add swap, or lower preflight.min_memory_mb",
                )
            }
        }),
    ));
    let min_disk = pf.min_disk_mb;
    let r = root.clone();
    v.push((
        "disk".into(),
        Box::new(move || {
            let mut worst: Option<(String, u64)> = None;
            for p in ["var", "opt"] {
                if let Some(mb) = system::disk_free_mb(&r.join(p))
                    && worst.as_ref().is_none_or(|w| mb < w.1)
                {
                    worst = Some((format!("/{p}"), mb));
                }
            }
            match worst {
                Some((p, mb)) if mb < min_disk => error(
                    format!("{mb} MB free on {p}, {min_disk} MB needed"),
                    "free some space or grow the disk (apt-get clean helps)",
                ),
                Some((p, mb)) => ok(format!("{mb} MB free on {p}")),
                None => warn("could not measure free space", "check df -h"),
            }
        }),
    ));
    let r = root.clone();
    v.push(("ports".into(), Box::new(move || ports_check(&r, &ports))));
    if !cfg.database.extensions.is_empty() {
        let (r, exts) = (root.clone(), cfg.database.extensions.clone());
        v.push((
            "extensions".into(),
            Box::new(move || extensions_check(&r, &exts)),
        ));
    }
    v.extend(network_checks(&root, base));
    v
}

/// `[database] extensions` against the extension control files of the newest PostgreSQL
/// installed (what pg_available_extensions lists); before PostgreSQL is installed, the
/// postgres step checks them.
fn extensions_check(root: &Path, exts: &[String]) -> (Level, String, String) {
    let base = root.join("usr/share/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(&base)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((v, e.path().join("extension")))
        })
        .filter(|(_, d)| d.is_dir())
        .collect();
    versions.sort();
    let Some((ver, dir)) = versions.pop() else {
        return crate::checks::not_checked(
            "extensions not checked yet: PostgreSQL is not installed (the postgres step checks them before migrate)",
            "",
        );
    };
    let missing: Vec<&str> = exts
        .iter()
        .filter(|e| !dir.join(format!("{e}.control")).is_file())
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        ok(format!("PostgreSQL {ver} has {}", exts.join(", ")))
    } else {
        error(
            format!(
                "PostgreSQL {ver} lacks the extension(s) {}",
                missing.join(", ")
            ),
            format!(
                "install the package that brings them under packages.install (postgis: postgresql-{ver}-postgis-3), or remove them from database.extensions"
            ),
        )
    }
}

/// The host name, the package mirror (resolves, answers) and writable disks.
fn network_checks(root: &Path, base: PathBuf) -> Vec<(String, CheckFn<'static>)> {
    let root = root.to_path_buf();
    let mut v: Vec<(String, CheckFn<'static>)> = vec![];
    v.push((
        "hostname".into(),
        Box::new(|| {
            let h = system::hostname();
            if system::valid_hostname(&h) {
                ok(format!("{h:?} is valid"))
            } else {
                error(
                    format!("hostname {h:?} is not a valid DNS name"),
                    "set one with hostnamectl set-hostname NAME",
                )
            }
        }),
    ));
    let mirrors = system::apt_mirrors(&root);
    let m2 = mirrors.clone();
    v.push((
        "dns".into(),
        Box::new(move || {
            let Some((_, host, port)) = m2.first() else {
                return warn(
                    "no apt mirror configured to resolve",
                    "check /etc/apt/sources.list(.d)",
                );
            };
            match (host.as_str(), *port).to_socket_addrs() {
                Ok(a) if a.len() > 0 => ok(format!("{host} resolves")),
                Ok(_) => error(format!("{host} has no address"), "check /etc/resolv.conf"),
                Err(e) => error(
                    format!("cannot resolve {host}: {e}"),
                    "check /etc/resolv.conf and the network",
                ),
            }
        }),
    ));
    v.push((
        "mirror".into(),
        Box::new(move || {
            let Some((_, host, port)) = mirrors.first() else {
                return warn(
                    "no apt mirror configured",
                    "check /etc/apt/sources.list(.d)",
                );
            };
            let addrs: Vec<_> = (host.as_str(), *port)
                .to_socket_addrs()
                .map(|a| a.collect())
                .unwrap_or_default();
            for a in &addrs {
                if std::net::TcpStream::connect_timeout(a, Duration::from_secs(3)).is_ok() {
                    return ok(format!("{host}:{port} reachable"));
                }
            }
            error(
                format!("package mirror {host}:{port} is not reachable"),
                "check the network, a proxy, or the mirror in /etc/apt/sources.list(.d)",
            )
        }),
    ));
    v.push((
        "disk-writable".into(),
        Box::new(move || {
            for d in [
                root.join("var/lib"),
                root.join("etc"),
                base.parent()
                    .map(|p| root.join(p.strip_prefix("/").unwrap_or(p)))
                    .unwrap_or(root.clone()),
            ] {
                if !d.exists() {
                    continue;
                }
                if let Err(e) = tempfile::tempfile_in(&d) {
                    return error(
                        format!("{} is not writable: {e}", d.display()),
                        "remount the filesystem read-write or free inodes",
                    );
                }
            }
            ok("/etc, /var/lib and the base dir's parent are writable")
        }),
    ));
    v
}

fn os_check(os: &std::collections::HashMap<String, String>) -> (Level, String, String) {
    let id = os.get("ID").map(String::as_str).unwrap_or("");
    let ver = os.get("VERSION_ID").map(String::as_str).unwrap_or("");
    let pretty = os
        .get("PRETTY_NAME")
        .cloned()
        .unwrap_or_else(|| format!("{id} {ver}"));
    let supported = matches!(
        (id, ver),
        ("debian", "12") | ("debian", "13") | ("ubuntu", "22.04") | ("ubuntu", "24.04")
    );
    if supported {
        ok(pretty)
    } else if id.is_empty() {
        error(
            "cannot read /etc/os-release",
            "keel supports Debian 12/13 and Ubuntu 22.04/24.04",
        )
    } else {
        error(
            format!("{pretty} is not supported"),
            "use Debian 12/13 or Ubuntu 22.04/24.04, or --ignore-preflight-errors os at your own risk",
        )
    }
}

fn ports_check(root: &Path, ports: &[(&'static str, u16)]) -> (Level, String, String) {
    let mut notes = vec![];
    let mut foreign = vec![];
    for (svc, port) in ports {
        let users = system::port_users(root, *port);
        if users.is_empty() {
            notes.push(format!("{port} free"));
            continue;
        }
        let expected = expected_owner(svc);
        let names: Vec<String> = users
            .iter()
            .map(|(_, o)| {
                o.as_ref()
                    .map(|o| o.1.clone())
                    .unwrap_or_else(|| "?".into())
            })
            .collect();
        if names.iter().all(|n| expected.contains(&n.as_str())) {
            notes.push(format!("{port} served by {}", names[0]));
        } else {
            foreign.push(format!(
                "{port} is taken by {} (expected {svc} or free)",
                names.join("/")
            ));
        }
    }
    if foreign.is_empty() {
        ok(notes.join(", "))
    } else {
        warn(
            foreign.join("; "),
            "stop the program holding the port, or change the port in keel.toml",
        )
    }
}

/// `--ignore-preflight-errors` names a check that exists (or `all`): a typo must not leave
/// the admin believing an error is waived. Err: the unknown name and the known ones.
pub fn check_ignore_names(cfg: &Config, root: &Path, ignore: &[String]) -> Result<(), String> {
    let known: Vec<String> = checks(cfg, root).into_iter().map(|(n, _)| n).collect();
    match ignore.iter().find(|i| *i != "all" && !known.contains(i)) {
        Some(bad) => Err(format!(
            "--ignore-preflight-errors: no preflight check is named {bad:?} (they are: {}, or all)",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

/// Run all checks and mark ignored errors. Returns (results, blocking error names).
pub fn run(cfg: &Config, root: &Path, ignore: &[String]) -> (Vec<CheckResult>, Vec<String>) {
    let mut results = super::run_parallel(checks(cfg, root), Duration::from_secs(10));
    let all = ignore.iter().any(|i| i == "all");
    let mut blocking = vec![];
    for r in &mut results {
        if r.level == Level::Error {
            if all || ignore.iter().any(|i| i == &r.name) {
                r.ignored = true;
            } else {
                blocking.push(r.name.clone());
            }
        }
    }
    (results, blocking)
}

/// Append one line per preflight run, so runs can be compared over time.
pub fn record_preflight(ctx: &crate::step::Ctx, results: &[crate::checks::CheckResult]) {
    use std::io::Write;
    let count = |l| {
        results
            .iter()
            .filter(|r| r.level == l && !r.ignored)
            .count()
    };
    let line = serde_json::json!({
        "ts": crate::paths::now(),
        "passed": count(crate::checks::Level::Ok),
        "warnings": count(crate::checks::Level::Warn),
        "errors": count(crate::checks::Level::Error),
        "checks": results,
    });
    let dir = ctx.paths.log_dir();
    crate::paths::private_dir(&dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("preflight.jsonl"))
    {
        let _ = writeln!(f, "{}", ctx.exec.redactor.redact(&line.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_support() {
        let m = |id: &str, v: &str| {
            [
                ("ID".to_string(), id.to_string()),
                ("VERSION_ID".to_string(), v.to_string()),
            ]
            .into_iter()
            .collect()
        };
        assert_eq!(os_check(&m("debian", "12")).0, Level::Ok);
        assert_eq!(os_check(&m("ubuntu", "24.04")).0, Level::Ok);
        let r = os_check(&m("centos", "9"));
        assert_eq!(r.0, Level::Error);
        assert!(r.2.contains("Debian 12/13"));
    }

    #[test]
    fn foreign_port_user_is_a_warning_naming_it() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (lvl, msg, _) = ports_check(Path::new("/"), &[("redis", port)]);
        assert_eq!(lvl, Level::Warn);
        assert!(msg.contains(&port.to_string()), "{msg}");
    }
}
