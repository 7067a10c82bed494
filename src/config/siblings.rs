//! This app beside the host's other apps: nothing two apps would share by accident (users,
//! databases, domains, Redis ports, directories, units), and the host's own settings the
//! same in every config. Checked before the first write, from the other apps' configs.
use super::Config;
use crate::error::Result;
use std::collections::BTreeSet;
use std::path::Path;

/// A value of this app that another app may not have too.
struct Claim {
    key: &'static str,
    what: &'static str,
    values: BTreeSet<String>,
}

fn claims(c: &Config) -> Vec<Claim> {
    let set = |v: Vec<String>| v.into_iter().collect::<BTreeSet<_>>();
    let user_key = if c.app.user.is_some() {
        "app.user"
    } else {
        "app.name"
    };
    vec![
        Claim {
            key: "app.name",
            what: "name",
            values: set(vec![c.app.name.clone()]),
        },
        Claim {
            key: user_key,
            what: "system user",
            values: set(vec![c.app_user(), c.build_user()]),
        },
        Claim {
            key: "database.name",
            what: "database",
            values: set(vec![c.db_name()]),
        },
        Claim {
            key: "database.user",
            what: "database role",
            values: set(vec![c.db_user()]),
        },
        Claim {
            key: "app.domain",
            what: "domain",
            values: set(c.tls_names()),
        },
        Claim {
            key: "redis.port",
            what: "Redis port",
            values: set(vec![c.redis.port.to_string()]),
        },
        Claim {
            key: "app.base_dir",
            what: "directory",
            values: set(vec![c.base_dir().display().to_string()]),
        },
        Claim {
            key: "backup.dir",
            what: "backup directory",
            values: set(vec![c.backup_dir().display().to_string()]),
        },
        Claim {
            key: "process",
            what: "unit",
            values: set(c.app_units()),
        },
    ]
}

/// The host's settings: every app's config must say the same, or the apps' installs would
/// undo each other's.
fn host_settings(c: &Config) -> Vec<(&'static str, serde_json::Value)> {
    let j = |v: serde_json::Result<serde_json::Value>| v.unwrap_or_default();
    vec![
        ("host", j(serde_json::to_value(&c.host))),
        ("firewall", j(serde_json::to_value(&c.firewall))),
        ("postgres", j(serde_json::to_value(&c.postgres))),
        (
            "nginx.disable_default_site",
            c.nginx.disable_default_site.into(),
        ),
        ("packages.recommends", c.packages.recommends.into()),
    ]
}

impl Config {
    /// Refused (exit 2, naming this file's key and the other app's file) when this app
    /// would collide with another on the host, or disagree with it about the host.
    pub fn check_siblings(&self, others: &[(&Path, &Config)]) -> Result<()> {
        let mine = claims(self);
        for (file, other) in others {
            let who = format!("app {:?}", other.app.name);
            let at = format!("in {}", file.display());
            for (a, b) in mine.iter().zip(claims(other)) {
                // A directory inside another app's is as bad as the same one.
                let nested = |x: &String, y: &String| {
                    a.key.ends_with("dir")
                        && (Path::new(x).starts_with(y) || Path::new(y).starts_with(x))
                };
                if let Some(v) = a
                    .values
                    .iter()
                    .find(|x| b.values.iter().any(|y| *x == y || nested(x, y)))
                {
                    return Err(self.err(
                        a.key,
                        format!("{} {v:?} is already {who}'s ({at})", a.what),
                        format!(
                            "every app on a host has its own {}: choose another{}",
                            a.what,
                            if a.key == "redis.port" {
                                format!(" (e.g. {})", free_port(self, others))
                            } else {
                                String::new()
                            }
                        ),
                    ));
                }
            }
            for ((key, mine), (_, theirs)) in host_settings(self).iter().zip(host_settings(other)) {
                if *mine != theirs {
                    return Err(self.err(
                        key,
                        format!(
                            "differs from {who}'s: it is the host's setting, shared by every app"
                        ),
                        format!("make [{key}] the same in every app's config on this host"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A Redis port no app on the host has: the hint's example.
fn free_port(me: &Config, others: &[(&Path, &Config)]) -> u16 {
    let taken: BTreeSet<u16> = others
        .iter()
        .map(|(_, c)| c.redis.port)
        .chain([me.redis.port])
        .collect();
    (6380..u16::MAX)
        .find(|p| !taken.contains(p))
        .unwrap_or(6380)
}
