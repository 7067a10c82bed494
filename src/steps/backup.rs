use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::systemctl;
use crate::txn::Txn;

/// The backup directory (0700, root), the timer that runs `keel backup`, and a first
/// backup: a host is never without one, and pg_dump is proven to work at install time.
pub struct BackupStep;
const ID: &str = "backup";

fn units(ctx: &Ctx) -> (String, String) {
    let app = &ctx.cfg.app.name;
    (
        format!("keel-backup-{app}.service"),
        format!("keel-backup-{app}.timer"),
    )
}

fn rendered(ctx: &Ctx) -> StepResult<Vec<(std::path::PathBuf, String)>> {
    let mut v = crate::paths::keel_unit_vars(&ctx.cfg.source, &ctx.state_file);
    v.insert("app".into(), ctx.cfg.app.name.clone().into());
    v.insert("schedule".into(), ctx.cfg.backup.schedule.clone().into());
    let (svc, timer) = units(ctx);
    let mut out = vec![];
    for (tpl, unit) in [("keel-backup.service", svc), ("keel-backup.timer", timer)] {
        let text = crate::render::render(tpl, &v).map_err(|e| StepError::permanent(e, ""))?;
        out.push((ctx.host(&format!("/etc/systemd/system/{unit}")), text));
    }
    Ok(out)
}

impl Step for BackupStep {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[crate::config::Role::Database],
            "backups run on the database host",
        )
    }
    fn deps(&self) -> Deps {
        // After the migrations: pg_dump beside a running `migrate` fails (seen: a column or
        // index dropped between pg_dump's catalog read and its COPY).
        &[&super::django::Django]
    }
    fn about(&self) -> &'static str {
        "database backups: a private directory, a timer, retention, a first backup"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value(
                "backup",
                serde_json::to_string(&ctx.cfg.backup).unwrap_or_default(),
            )
            .value("dir", ctx.cfg.backup_dir().display())
            .template("keel-backup.service")
            .template("keel-backup.timer")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        crate::backup::ensure_dir(ctx)?;
        let (_, timer) = units(ctx);
        let on = ctx.cfg.backup.timer;
        if crate::systemd::timer_files(ctx, ID, tx, &timer, &rendered(ctx)?, on)? && on {
            tx.reapply("daemon-reload", "");
            systemctl(ctx, ID, &["daemon-reload"])?;
        }
        if on {
            crate::systemd::enable_timer(ctx, ID, tx, &timer)?;
        }
        if crate::backup::list(&ctx.cfg.app.name, &crate::backup::dir(ctx)).is_empty() {
            let r = crate::backup::make(ctx, "");
            crate::backup::record(ctx, &r);
            r?;
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        let (svc, timer) = units(ctx);
        let units = vec![timer.clone(), svc];
        Managed {
            files: units
                .iter()
                .map(|u| ctx.host(&format!("/etc/systemd/system/{u}")))
                .collect(),
            units,
            after: vec![],
            active: if ctx.cfg.backup.timer {
                vec![timer]
            } else {
                vec![]
            },
        }
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        rendered(ctx).unwrap_or_default()
    }
    // Undo removes the timer and its service; the backups are data and stay.
}
