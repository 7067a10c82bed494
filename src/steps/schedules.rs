use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::systemctl;
use crate::txn::Txn;
use std::path::PathBuf;

/// `[[schedule]]`: a timer and a oneshot service per schedule, and the unit that records a
/// failed run; timers of schedules no longer configured are stopped and removed.
pub struct Schedules;
const ID: &str = "schedules";

fn unit_path(ctx: &Ctx, unit: &str) -> PathBuf {
    ctx.host(&format!("/etc/systemd/system/{unit}"))
}

fn failed_unit(ctx: &Ctx) -> String {
    format!("keel-schedule-failed-{}@.service", ctx.cfg.app.name)
}

/// Every file this step writes, with its text.
fn rendered(ctx: &Ctx) -> StepResult<Vec<(PathBuf, String)>> {
    let c = &ctx.cfg;
    let mut out = vec![];
    let r = |tpl: &str, v: &serde_json::Value| {
        crate::render::render(tpl, v).map_err(|e| StepError::permanent(e, ""))
    };
    for s in &c.schedules {
        let venv_bin = c.venv_dir().join("bin");
        let first = crate::app::venv_program(ctx, &venv_bin, &s.command[0]);
        let argv: Vec<String> = std::iter::once(first.as_str())
            .chain(s.command[1..].iter().map(String::as_str))
            .map(crate::schedule::exec_arg)
            .collect();
        let v = serde_json::json!({
            "app": c.app.name,
            "name": s.name,
            "command_shown": s.command.join(" "),
            "user": c.app_user(),
            "app_dir": c.app_dir(),
            "env_file": c.env_file(),
            "venv": c.venv_dir(),
            "media_dir": c.shared_dir().join("media"),
            "exec": argv.join(" "),
            "timeout": s.timeout_secs,
            "on_calendar": s.on_calendar,
            "redis_unit": c.redis_unit(),
        });
        let (svc, timer) = crate::schedule::units(&c.app.name, &s.name);
        out.push((unit_path(ctx, &svc), r("schedule.service", &v)?));
        out.push((unit_path(ctx, &timer), r("schedule.timer", &v)?));
    }
    if !c.schedules.is_empty() {
        let mut v = crate::paths::keel_unit_vars(&c.source, &ctx.state_file);
        v.insert("app".into(), c.app.name.clone().into());
        out.push((
            unit_path(ctx, &failed_unit(ctx)),
            r(
                "keel-schedule-failed.service",
                &serde_json::Value::Object(v),
            )?,
        ));
    }
    Ok(out)
}

/// Timers of this app's schedules on disk that the config no longer names.
fn orphans(ctx: &Ctx) -> Vec<String> {
    let prefix = format!("{}-schedule-", ctx.cfg.app.name);
    let wanted: Vec<String> = ctx
        .cfg
        .schedules
        .iter()
        .map(|s| crate::schedule::units(&ctx.cfg.app.name, &s.name).1)
        .collect();
    std::fs::read_dir(ctx.host("/etc/systemd/system"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix) && n.ends_with(".timer") && !wanted.contains(n))
                .collect()
        })
        .unwrap_or_default()
}

impl Step for Schedules {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[crate::config::Role::Beat],
            "schedules run on the beat host, once",
        )
    }
    fn deps(&self) -> Deps {
        &[&super::services::Services]
    }
    fn about(&self) -> &'static str {
        "scheduled commands ([[schedule]]): a timer each, run as the app in the current release"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value(
                "schedules",
                serde_json::to_string(&ctx.cfg.schedules).unwrap_or_default(),
            )
            .value("orphans", orphans(ctx).join(" "))
            .template("schedule.service")
            .template("schedule.timer")
            .template("keel-schedule-failed.service")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let mut changed = false;
        for timer in orphans(ctx) {
            let svc = timer.replace(".timer", ".service");
            let _ = systemctl(ctx, ID, &["disable", "--now", &timer]);
            for u in [&timer, &svc] {
                let p = unit_path(ctx, u);
                changed |= tx.remove(&p).map_err(crate::step::io_err(&p))?;
            }
            ctx.ui
                .step_note(ID, &format!("removed {timer} (no longer in [[schedule]])"));
        }
        if ctx.cfg.schedules.is_empty() {
            let p = unit_path(ctx, &failed_unit(ctx));
            changed |= tx.remove(&p).map_err(crate::step::io_err(&p))?;
        }
        for (p, text) in rendered(ctx)? {
            changed |= tx
                .write(&p, text.as_bytes(), 0o644, None)
                .map_err(crate::step::io_err(&p))?;
        }
        if changed {
            tx.reapply("daemon-reload", "");
            systemctl(ctx, ID, &["daemon-reload"])?;
        }
        for s in &ctx.cfg.schedules {
            let (_, timer) = crate::schedule::units(&ctx.cfg.app.name, &s.name);
            crate::systemd::enable_timer(ctx, ID, tx, &timer)?;
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        let mut units = vec![];
        for s in &ctx.cfg.schedules {
            let (svc, timer) = crate::schedule::units(&ctx.cfg.app.name, &s.name);
            units.extend([timer, svc]);
        }
        let active: Vec<String> = units
            .iter()
            .filter(|u| u.ends_with(".timer"))
            .cloned()
            .collect();
        let mut files: Vec<PathBuf> = units.iter().map(|u| unit_path(ctx, u)).collect();
        if !ctx.cfg.schedules.is_empty() {
            files.push(unit_path(ctx, &failed_unit(ctx)));
        }
        Managed {
            files,
            units,
            after: vec![],
            active,
        }
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(PathBuf, String)> {
        rendered(ctx).unwrap_or_default()
    }
}
