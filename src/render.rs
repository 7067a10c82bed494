//! Templates under templates/, embedded in the binary, rendered with minijinja in strict
//! mode: a missing variable is an error, never an empty string in a config file. An operator
//! may override one by putting NAME.j2 in /etc/keel/templates/: its source is part of the
//! fingerprints, so editing it re-runs exactly the steps that use it.
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "nginx-site.conf",
        include_str!("../templates/nginx-site.conf.j2"),
    ),
    (
        "placeholder.html",
        include_str!("../templates/placeholder.html.j2"),
    ),
    (
        "maintenance.html",
        include_str!("../templates/maintenance.html.j2"),
    ),
    ("redis.conf", include_str!("../templates/redis.conf.j2")),
    (
        "postgres.conf",
        include_str!("../templates/postgres.conf.j2"),
    ),
    (
        "nginx-lb-health.conf",
        include_str!("../templates/nginx-lb-health.conf.j2"),
    ),
    (
        "postgres-hba.conf",
        include_str!("../templates/postgres-hba.conf.j2"),
    ),
    (
        "web.service",
        include_str!("../templates/systemd/web.service.j2"),
    ),
    (
        "web.socket",
        include_str!("../templates/systemd/web.socket.j2"),
    ),
    (
        "worker.service",
        include_str!("../templates/systemd/worker.service.j2"),
    ),
    (
        "beat.service",
        include_str!("../templates/systemd/beat.service.j2"),
    ),
    (
        "keel-verify.service",
        include_str!("../templates/systemd/keel-verify.service.j2"),
    ),
    (
        "keel-resume.service",
        include_str!("../templates/systemd/keel-resume.service.j2"),
    ),
    (
        "keel-verify.timer",
        include_str!("../templates/systemd/keel-verify.timer.j2"),
    ),
    ("firewall.nft", include_str!("../templates/firewall.nft.j2")),
    (
        "nginx-catch-all.conf",
        include_str!("../templates/nginx-catch-all.conf.j2"),
    ),
    (
        "process.service",
        include_str!("../templates/systemd/process.service.j2"),
    ),
    (
        "schedule.service",
        include_str!("../templates/systemd/schedule.service.j2"),
    ),
    (
        "schedule.timer",
        include_str!("../templates/systemd/schedule.timer.j2"),
    ),
    (
        "keel-schedule-failed.service",
        include_str!("../templates/systemd/keel-schedule-failed.service.j2"),
    ),
    (
        "keel-notify.service",
        include_str!("../templates/systemd/keel-notify.service.j2"),
    ),
    (
        "keel-notify.timer",
        include_str!("../templates/systemd/keel-notify.timer.j2"),
    ),
    (
        "keel-firewall.service",
        include_str!("../templates/systemd/keel-firewall.service.j2"),
    ),
    (
        "keel-backup.service",
        include_str!("../templates/systemd/keel-backup.service.j2"),
    ),
    (
        "keel-backup.timer",
        include_str!("../templates/systemd/keel-backup.timer.j2"),
    ),
];

/// The override file for `name`, if one exists: NAME.j2 in /etc/keel/templates under the
/// host's root (the fake host's in tests).
pub fn override_path(name: &str) -> Option<std::path::PathBuf> {
    let p = crate::paths::Paths::from_env()
        .host("/etc/keel/templates")
        .join(format!("{name}.j2"));
    p.is_file().then_some(p)
}

/// The template's source (the override's if there is one): used in step fingerprints.
pub fn source(name: &str) -> String {
    source_and_origin(name).0
}

/// The source and where it came from (the override file, or built in): one lookup.
fn source_and_origin(name: &str) -> (String, String) {
    if let Some(p) = override_path(name)
        && let Ok(text) = std::fs::read_to_string(&p)
    {
        return (text, p.display().to_string());
    }
    let builtin = TEMPLATES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| s.to_string())
        .unwrap_or_default();
    (builtin, format!("{name} (built in)"))
}

/// The first string in `v` that holds a control character.
fn control_char(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => crate::validate::has_control(s).then(|| s.clone()),
        serde_json::Value::Array(a) => a.iter().find_map(control_char),
        serde_json::Value::Object(m) => m.values().find_map(control_char),
        _ => None,
    }
}

pub fn render<S: Serialize>(name: &str, vars: S) -> Result<String, String> {
    // Config values are validated when keel.toml is loaded; this is the last line: no value
    // with a newline ever reaches a unit file or an nginx site, whatever the caller.
    let value = serde_json::to_value(&vars).map_err(|e| format!("template {name}: {e}"))?;
    if let Some(bad) = control_char(&value) {
        return Err(format!(
            "template {name}: refusing a value with a control character: {:?}",
            bad.escape_debug().to_string()
        ));
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    // The source is read once; where it came from is named only in an error.
    let (src, origin) = source_and_origin(name);
    env.add_template_owned(name.to_string(), src)
        .map_err(|e| format!("template {origin}: {e}"))?;
    // The site and the catch-all include the load balancers' health location.
    if name.starts_with("nginx-") {
        let part = "nginx-lb-health.conf";
        let (src, origin) = source_and_origin(part);
        env.add_template_owned(part.to_string(), src)
            .map_err(|e| format!("template {origin}: {e}"))?;
    }
    let t = env
        .get_template(name)
        .map_err(|e| format!("template {origin}: {e}"))?;
    t.render(value)
        .map_err(|e| format!("template {origin}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_template_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let mut files = vec![];
        for d in [dir.clone(), dir.join("systemd")] {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if let Some(name) = n.strip_suffix(".j2") {
                    files.push(name.to_string());
                }
            }
        }
        for f in &files {
            assert!(
                TEMPLATES.iter().any(|(n, _)| n == f),
                "templates/{f}.j2 is not in render::TEMPLATES"
            );
        }
        assert_eq!(files.len(), TEMPLATES.len());
    }

    #[test]
    fn embedded_templates_parse() {
        let mut env = Environment::new();
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .unwrap_or_else(|e| panic!("templates/{name}.j2: {e}"));
        }
    }

    #[test]
    fn a_newline_in_a_value_never_reaches_a_unit() {
        let e = render(
            "web.socket",
            json!({"app": "demo", "socket": "/run/demo.sock\nExecStartPre=/bin/sh"}),
        )
        .unwrap_err();
        assert!(e.contains("control character"), "{e}");
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let e = render("placeholder.html", json!({})).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
    }
}
