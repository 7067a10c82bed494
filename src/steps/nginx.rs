use crate::probe::config_test;
use crate::site::{self, paths};
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running};
use crate::txn::Txn;

pub struct Nginx;
const ID: &str = super::NGINX;
const UNIT: &str = "nginx";

impl Step for Nginx {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(cfg, &[crate::config::Role::Web], "no site here")
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
            .template("nginx-lb-health.conf")
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
        crate::probe::nginx(ctx, ID)
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
