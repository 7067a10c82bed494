//! `keel apps`: every app on this host, from the configs and state files themselves.
use super::context::Invocation;
use crate::cli::Output;
use crate::error::Result;
use crate::paths::Paths;
use serde_json::json;

pub fn run(inv: &Invocation) -> Result<()> {
    let paths = Paths::from_env();
    let rows: Vec<serde_json::Value> = crate::apps::list(&paths)
        .iter()
        .map(|e| row(&paths, e))
        .collect();
    if inv.cli.output == Output::Json {
        println!("{}", json!({"apps": rows}));
        return Ok(());
    }
    if rows.is_empty() {
        println!(
            "no app on this host: write {} (one app) or {}/NAME.toml (several), then keel install",
            crate::apps::HOST_CONFIG,
            crate::apps::APPS_DIR
        );
        return Ok(());
    }
    println!(
        "{:<20} {:<14} {:<32} {:<16} CONFIG",
        "APP", "STATUS", "DOMAIN", "RELEASE"
    );
    let s = |v: &serde_json::Value| v.as_str().unwrap_or("-").to_string();
    for r in &rows {
        let mut name = s(&r["app"]);
        if r["host_app"] == true {
            name.push_str(" (host)");
        }
        println!(
            "{:<20} {:<14} {:<32} {:<16} {}",
            name,
            s(&r["status"]),
            s(&r["domain"]),
            s(&r["release"]),
            s(&r["config"])
        );
    }
    Ok(())
}

/// One app: its name, domain and release from its config, its status from its state file.
fn row(paths: &Paths, e: &crate::apps::Entry) -> serde_json::Value {
    let mut v = json!({
        "app": e.name,
        "host_app": e.name.is_none(),
        "config": e.config.display().to_string(),
        "state_file": e.state_file.display().to_string(),
    });
    match e.load() {
        Ok(c) => {
            v["app"] = c.app.name.clone().into();
            v["domain"] = c.app.domain.clone().into();
            v["https"] = c.tls_on().into();
            let base = paths.host(&c.base_dir().display().to_string());
            v["release"] = crate::release::current_on_disk(&base).into();
        }
        Err(err) => v["config_error"] = err.to_string().into(),
    }
    v["status"] = match crate::state::State::load(&e.state_file) {
        Err(_) => "state unreadable".into(),
        Ok(st) => match &st.last_run {
            _ if v.get("config_error").is_some() => "config error".into(),
            None => "not installed".into(),
            // As the state file spells it: running, succeeded, failed, rolled-back.
            Some(r) => serde_json::to_value(r.outcome).unwrap_or_default(),
        },
    };
    v
}
