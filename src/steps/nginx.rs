use super::site::{self, paths};
use crate::exec::Cmd;
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running, require_active};
use crate::txn::Txn;
use std::time::Duration;

pub struct Nginx;
const ID: &str = "nginx";
const UNIT: &str = "nginx";

/// `nginx -t`; on failure the error names the broken file from nginx's own message.
pub fn config_test(ctx: &Ctx, step: &str) -> StepResult {
    let o = ctx.exec.probe(step, &Cmd::new("nginx").arg("-t"))?;
    if o.code == 0 {
        return Ok(());
    }
    let text = format!("{}{}", o.stderr, o.stdout);
    let emerg = text
        .lines()
        .find(|l| l.contains("[emerg]"))
        .unwrap_or_else(|| text.lines().last().unwrap_or(""))
        .trim()
        .to_string();
    let file = emerg
        .rsplit_once(" in ")
        .map(|(_, f)| f.rsplit_once(':').map(|(p, _)| p).unwrap_or(f).to_string());
    Err(StepError::permanent(
        format!("nginx -t failed (exit {}): {emerg}", o.code),
        match file {
            Some(f) => format!(
                "fix or remove {f}, then keel install --retry-step nginx; nginx keeps serving its previous configuration"
            ),
            None => {
                "run nginx -t to see the problem; nginx keeps serving its previous configuration"
                    .into()
            }
        },
    ))
}

impl Step for Nginx {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM]
    }
    fn about(&self) -> &'static str {
        "nginx: keel's site for the app, default site off"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("vars", site::config_vars(&ctx.cfg))
            .template("nginx-site.conf")
            .template("nginx-catch-all.conf")
            .template("placeholder.html")
            .template("maintenance.html")
            .value("disable_default_site", ctx.cfg.nginx.disable_default_site)
            // `keel maintenance on|off` changes the site: a re-run keeps the mode.
            .value(
                "maintenance",
                serde_json::to_string(&crate::maintenance::read(&ctx.paths, &ctx.cfg.app.name))
                    .unwrap_or_default(),
            )
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let p = paths(ctx);
        let page = crate::render::render("placeholder.html", site::config_vars(&ctx.cfg))
            .map_err(|e| StepError::permanent(e, ""))?;
        let index = p.webroot.join("index.html");
        let mut changed = tx
            .write(&index, page.as_bytes(), 0o644, None)
            .map_err(io_err(&index))?;
        // The maintenance page, while the mode is on (nginx answers it from the web root).
        let maint_page = p.webroot.join("__keel_maintenance.html");
        match crate::maintenance::read(&ctx.paths, &ctx.cfg.app.name) {
            Some(m) => {
                let mut vars = site::config_vars(&ctx.cfg);
                vars["message"] = m.message.into();
                vars["retry_after_secs"] = m.retry_after_secs.into();
                let page = crate::render::render("maintenance.html", vars)
                    .map_err(|e| StepError::permanent(e, ""))?;
                changed |= tx
                    .write(&maint_page, page.as_bytes(), 0o644, None)
                    .map_err(io_err(&maint_page))?;
            }
            None => changed |= tx.remove(&maint_page).map_err(io_err(&maint_page))?,
        }
        // HTTPS already if a certificate is in place (a re-run), plain HTTP until the tls
        // step has one.
        let conf = site::render(ctx, ID).map_err(|e| StepError::permanent(e, ""))?;
        changed |= tx
            .write(&p.available, conf.as_bytes(), 0o644, None)
            .map_err(io_err(&p.available))?;
        changed |= tx
            .symlink(&p.available, &p.enabled)
            .map_err(io_err(&p.enabled))?;
        if ctx.cfg.nginx.disable_default_site {
            let default = ctx.host("/etc/nginx/sites-enabled/default");
            changed |= tx.remove(&default).map_err(io_err(&default))?;
        }
        for (path, text) in site::catch_alls(ctx) {
            changed |= tx
                .write(&path, text.as_bytes(), 0o644, None)
                .map_err(io_err(&path))?;
        }
        // Never reload into a broken configuration: a failure here rolls the files back and
        // nginx keeps serving the old ones.
        config_test(ctx, ID)?;
        ensure_running(ctx, ID, UNIT, tx)?;
        if changed {
            apply(ctx, ID, "reload", UNIT, tx)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        require_active(ctx, ID, UNIT)?;
        config_test(ctx, ID)?;
        let port = ctx.cfg.nginx.port;
        let get = |path: &str| {
            ctx.exec
                .http_get(ID, port, &ctx.cfg.app.domain, path, Duration::from_secs(10))
                .map_err(|e| {
                    StepError::transient(
                        format!("HTTP to 127.0.0.1:{port}{path}: {e}"),
                        "see journalctl -u nginx",
                    )
                })
        };
        // A reload is asynchronous: give the new workers a moment before calling it a failure.
        let mut answer = get("/keel-health")?;
        for _ in 0..15 {
            if answer.0 == 200 {
                break;
            }
            ctx.exec.pause(Duration::from_millis(200));
            answer = get("/keel-health")?;
        }
        let (code, body) = answer;
        if code != 200 || body.trim() != "ok" {
            return Err(StepError::transient(
                format!(
                    "GET /keel-health on port {port} answered {code}: keel's site is not the one serving"
                ),
                "check for another server block with default_server on this port",
            ));
        }
        // The app if it runs (a status [health] accepts), keel's placeholder page until then
        // (503); or, with HTTPS up, the redirect to it.
        let path = &ctx.cfg.health.path;
        let (code, body) = get(path)?;
        let https = ctx.cfg.tls_on() && site::installed(ctx).is_some();
        let placeholder = code == 503 && body.contains("keel-placeholder");
        let accepted = ctx.cfg.health.statuses.contains(&code);
        if !(accepted || placeholder || https && code == 301) {
            return Err(StepError::transient(
                format!("GET {path} on port {port} answered {code}"),
                format!("check /var/log/nginx/{}.error.log", ctx.cfg.app.name),
            ));
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        let p = paths(ctx);
        let mut files = vec![p.enabled, p.available, p.webroot.join("index.html")];
        // The default servers are the host's: the last app on it takes them away.
        if crate::apps::others_installed(&ctx.paths, &ctx.cfg).is_empty() {
            files.extend(site::catch_alls(ctx).into_iter().map(|(p, _)| p));
        }
        Managed {
            files,
            after: vec![("reload", UNIT.into())],
            active: vec![UNIT.into()],
            ..Managed::default()
        }
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        let mut v = site::catch_alls(ctx);
        if let Ok(conf) = site::render(ctx, "drift") {
            v.push((paths(ctx).available, conf));
        }
        v
    }
    fn undo(&self, ctx: &Ctx) -> StepResult {
        let _ = std::fs::remove_dir(paths(ctx).webroot);
        // Put the distribution's default site back, as the package left it.
        let avail = ctx.host("/etc/nginx/sites-available/default");
        let enabled = ctx.host("/etc/nginx/sites-enabled/default");
        if ctx.cfg.nginx.disable_default_site
            && crate::apps::others_installed(&ctx.paths, &ctx.cfg).is_empty()
            && avail.exists()
            && std::fs::symlink_metadata(&enabled).is_err()
        {
            std::os::unix::fs::symlink("/etc/nginx/sites-available/default", &enabled)
                .map_err(io_err(&enabled))?;
        }
        // Never reload into a broken configuration.
        if crate::systemd::is_active(ctx, ID, UNIT) {
            config_test(ctx, ID)?;
        }
        Ok(())
    }
}
