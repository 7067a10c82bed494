use crate::exec::Cmd;
use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{is_active, systemctl};
use crate::txn::Txn;

pub struct Services;
const ID: &str = super::SERVICES;
pub const KINDS: [&str; 3] = ["web", "worker", "beat"];

pub fn socket(cfg: &crate::config::Config) -> String {
    cfg.web_socket_path()
}

pub fn unit_names(ctx: &Ctx) -> Vec<String> {
    ctx.cfg.app_units()
}

/// What marks a unit file as a [[process]] of keel's.
const PROCESS_MARK: &str = "# Managed by keel. [[process]] ";

/// Each [[process]] unit file with its text.
fn process_files(ctx: &Ctx) -> StepResult<Vec<(std::path::PathBuf, String)>> {
    let c = &ctx.cfg;
    let venv_bin = c.venv_dir().join("bin");
    let mut out = vec![];
    for p in &c.processes {
        let first = crate::app::venv_program(ctx, &venv_bin, &p.command[0]);
        let exec: Vec<String> = std::iter::once(first.as_str())
            .chain(p.command[1..].iter().map(String::as_str))
            .map(crate::schedule::exec_arg)
            .collect();
        let mut v = vars(ctx);
        v["name"] = p.name.clone().into();
        v["command_shown"] = p.command.join(" ").into();
        v["exec"] = exec.join(" ").into();
        let text = crate::render::render("process.service", &v)
            .map_err(|e| StepError::permanent(e, ""))?;
        let unit = crate::process::unit(&c.app.name, &p.name);
        out.push((
            ctx.host(&format!("/etc/systemd/system/{unit}.service")),
            text,
        ));
    }
    Ok(out)
}

/// [[process]] units of this app on disk that the config no longer names.
fn process_orphans(ctx: &Ctx) -> Vec<String> {
    let prefix = format!("{}-", ctx.cfg.app.name);
    let wanted = ctx.cfg.process_units();
    let dir = ctx.host("/etc/systemd/system");
    std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    let u = n.strip_suffix(".service")?.to_string();
                    let ours = n.starts_with(&prefix)
                        && !wanted.contains(&u)
                        && crate::fsx::read_text_nofollow(&e.path(), 4096)
                            .ok()
                            .flatten()
                            .is_some_and(|t| t.starts_with(PROCESS_MARK));
                    ours.then_some(u)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Each of web, worker and beat this host runs, with its unit's name.
fn kinds(ctx: &Ctx) -> Vec<(&'static str, String)> {
    ctx.cfg
        .app_kinds()
        .into_iter()
        .map(|k| (k, format!("{}-{k}", ctx.cfg.app.name)))
        .collect()
}

/// The socket unit Gunicorn is started from.
pub fn web_socket(ctx: &Ctx) -> String {
    format!("{}-web.socket", ctx.cfg.app.name)
}

fn vars(ctx: &Ctx) -> serde_json::Value {
    let c = &ctx.cfg;
    serde_json::json!({
        "app": c.app.name,
        "user": c.app_user(),
        "base_dir": c.base_dir(),
        "app_dir": c.app_dir(),
        "venv": c.venv_dir(),
        "env_file": c.env_file(),
        "media_dir": c.shared_dir().join("media"),
        "socket": socket(&ctx.cfg),
        "workers": c.django.web_workers,
        "concurrency": c.django.worker_concurrency,
        "queues": c.celery.queues.join(","),
        "pool": c.celery.pool.clone().unwrap_or_default(),
        "extra_args": c.celery.extra_args.join(" "),
        "wsgi": c.wsgi(),
        "celery_app": c.celery_app(),
        "worker_stop_timeout": c.deploy.worker_stop_timeout_secs,
        "redis_unit": c.redis_unit(),
        "beat_guard": beat_guard(c),
    })
}

/// A host of several runs beat through `keel beat-guard` (one beat across hosts).
fn beat_guard(c: &crate::config::Config) -> serde_json::Value {
    if !c.in_fleet() {
        return serde_json::Value::Null;
    }
    let (host, port) = c.db_endpoint();
    let keel = crate::paths::keel_unit_vars(&c.source, std::path::Path::new("/"))["keel"].clone();
    serde_json::json!({
        "keel": keel,
        "host": host,
        "port": port,
        "user": c.db_user(),
        "database": c.db_name(),
        "ca": c.database.ca_file.as_ref().filter(|_| c.database_url().is_some()).map(|p| p.display().to_string()),
        "secret": format!("{}/postgres_password", c.secrets_dir()),
    })
}

/// keel's own timers: keel-verify (`[health] timer = true`, every interval_minutes) and
/// keel-notify (`[notify]` has a channel: the outbox every minute), with whether each is on.
fn keel_timers(ctx: &Ctx) -> [(&'static str, bool, u64); 2] {
    [
        (
            "keel-verify",
            // [notify] needs it: health changes, the heartbeat and the measured problems
            // are the verify timer's to send.
            ctx.cfg.health.timer || ctx.cfg.notify.on(),
            ctx.cfg.health.interval_minutes.into(),
        ),
        ("keel-notify", !ctx.cfg.notify.channels().is_empty(), 1),
    ]
}

/// Each of keel's timers written when on, removed when turned off.
fn timers(ctx: &Ctx, tx: &mut Txn) -> StepResult<bool> {
    let mut changed = false;
    for (base, on, minutes) in keel_timers(ctx) {
        let mut v = crate::paths::keel_unit_vars(&ctx.cfg.source, &ctx.state_file);
        v.insert("minutes".into(), minutes.into());
        let mut files = vec![];
        // A named app's timers carry its name (keel-verify-shop.timer).
        let unit = ctx.cfg.keel_unit(base);
        for kind in ["service", "timer"] {
            let text = crate::render::render(&format!("{base}.{kind}"), &v)
                .map_err(|e| StepError::permanent(e, ""))?;
            files.push((
                ctx.host(&format!("/etc/systemd/system/{unit}.{kind}")),
                text,
            ));
        }
        changed |= crate::systemd::timer_files(
            ctx,
            ID,
            tx,
            &format!("{}.timer", ctx.cfg.keel_unit(base)),
            &files,
            on,
        )?;
    }
    Ok(changed)
}

impl Step for Services {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[
                crate::config::Role::Web,
                crate::config::Role::Worker,
                crate::config::Role::Beat,
            ],
            "no app processes here",
        )
    }
    fn deps(&self) -> Deps {
        &[&super::django::Django]
    }
    fn about(&self) -> &'static str {
        "systemd units: Gunicorn, Celery worker, Celery beat"
    }
    fn of_release(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        // Code, settings and units: any change restarts the services.
        let mut i = Inputs::new().value("vars", vars(ctx));
        for k in KINDS {
            i = i.template(&format!("{k}.service"));
        }
        // The health timer is this step's too: turning it on or off re-runs the step.
        i.template("web.socket")
            .template("keel-verify.service")
            .template("keel-verify.timer")
            .template("keel-notify.service")
            .template("keel-notify.timer")
            .value("keel timers", format!("{:?}", keel_timers(ctx)))
            .template("process.service")
            .value(
                "processes",
                serde_json::to_string(&ctx.cfg.processes).unwrap_or_default(),
            )
            .value("process orphans", process_orphans(ctx).join(" "))
            .value("app tree", crate::app::code::tree_hash(ctx))
            .step(ctx, &super::app_env::AppEnv)
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let v = vars(ctx);
        let mut changed = false;
        for (kind, unit) in kinds(ctx) {
            let text = crate::render::render(&format!("{kind}.service"), &v)
                .map_err(|e| StepError::permanent(e, ""))?;
            let path = ctx.host(&format!("/etc/systemd/system/{unit}.service"));
            changed |= tx
                .write(&path, text.as_bytes(), 0o644, None)
                .map_err(io_err(&path))?;
        }
        for (path, text) in process_files(ctx)? {
            changed |= tx
                .write(&path, text.as_bytes(), 0o644, None)
                .map_err(io_err(&path))?;
        }
        for unit in process_orphans(ctx) {
            let _ = systemctl(ctx, ID, &["disable", "--now", &unit]);
            let path = ctx.host(&format!("/etc/systemd/system/{unit}.service"));
            changed |= tx.remove(&path).map_err(io_err(&path))?;
            ctx.ui
                .step_note(ID, &format!("removed {unit} (no longer in [[process]])"));
        }
        let sock_unit = web_socket(ctx);
        let web = ctx.cfg.has(crate::config::Role::Web);
        if web {
            let text =
                crate::render::render("web.socket", &v).map_err(|e| StepError::permanent(e, ""))?;
            let path = ctx.host(&format!("/etc/systemd/system/{sock_unit}"));
            changed |= tx
                .write(&path, text.as_bytes(), 0o644, None)
                .map_err(io_err(&path))?;
        }
        changed |= timers(ctx, tx)?;
        if changed {
            tx.reapply("daemon-reload", "");
            systemctl(ctx, ID, &["daemon-reload"])?;
        }
        for (base, on, _) in keel_timers(ctx) {
            if on {
                crate::systemd::enable_timer(
                    ctx,
                    ID,
                    tx,
                    &format!("{}.timer", ctx.cfg.keel_unit(base)),
                )?;
            }
        }
        // The socket first: Gunicorn takes it from systemd. A web unit of an older keel that
        // bound the socket itself is stopped so the socket unit can take the path.
        if web && !is_active(ctx, ID, &sock_unit) {
            let web = format!("{}-web", ctx.cfg.app.name);
            if is_active(ctx, ID, &web) {
                systemctl(ctx, ID, &["stop", &web])?;
            }
            tx.on_rollback(Cmd::new("systemctl").args(["disable", "--now", &sock_unit]));
            systemctl(ctx, ID, &["enable", "--now", &sock_unit])
                .map_err(|e| e.hint(format!("see journalctl -u {sock_unit} -n 50")))?;
        }
        let mut start = vec![];
        for unit in unit_names(ctx) {
            if is_active(ctx, ID, &unit) {
                // The step runs because its inputs changed: pick up new code, settings, units.
                crate::systemd::apply(ctx, ID, "restart", &unit, tx)?;
            } else {
                tx.on_rollback(Cmd::new("systemctl").args(["disable", "--now", &unit]));
                start.push(unit);
            }
        }
        if !start.is_empty() {
            // One call: systemd starts them side by side.
            let mut args = vec!["enable", "--now"];
            args.extend(start.iter().map(String::as_str));
            systemctl(ctx, ID, &args)
                .map_err(|e| e.hint(format!("see journalctl -u {} -n 50", start.join(" -u "))))?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        for (base, on, _) in keel_timers(ctx) {
            if on {
                crate::systemd::require_active(
                    ctx,
                    ID,
                    &format!("{}.timer", ctx.cfg.keel_unit(base)),
                )?;
            }
        }
        crate::systemd::require_stable(ctx, ID, &unit_names(ctx))?;
        if ctx.cfg.has(crate::config::Role::Web) && !ctx.host(&socket(&ctx.cfg)).exists() {
            return Err(StepError::transient(
                format!("Gunicorn's socket {} is not there yet", socket(&ctx.cfg)),
                format!("see journalctl -u {}-web -n 50", ctx.cfg.app.name),
            ));
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        // The app's units first, then the socket they take, then keel's health timer.
        let units: Vec<String> = unit_names(ctx)
            .into_iter()
            .map(|u| format!("{u}.service"))
            .chain([web_socket(ctx)])
            .chain(
                keel_timers(ctx)
                    .iter()
                    .map(|(b, _, _)| ctx.cfg.keel_unit(b))
                    .flat_map(|u| [format!("{u}.timer"), format!("{u}.service")]),
            )
            .collect();
        // Running: the socket and the app's three units (and the health timer if on).
        let mut active: Vec<String> = vec![];
        if ctx.cfg.has(crate::config::Role::Web) {
            active.push(web_socket(ctx));
        }
        active.extend(unit_names(ctx).into_iter().map(|u| format!("{u}.service")));
        for (base, on, _) in keel_timers(ctx) {
            if on {
                active.push(format!("{}.timer", ctx.cfg.keel_unit(base)));
            }
        }
        Managed {
            files: units
                .iter()
                .map(|u| ctx.host(&format!("/etc/systemd/system/{u}")))
                .collect(),
            units,
            after: vec![],
            active,
        }
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        let v = vars(ctx);
        let mut out = vec![];
        for (kind, unit) in kinds(ctx) {
            if let Ok(t) = crate::render::render(&format!("{kind}.service"), &v) {
                out.push((ctx.host(&format!("/etc/systemd/system/{unit}.service")), t));
            }
        }
        out.extend(process_files(ctx).unwrap_or_default());
        if let Ok(t) = crate::render::render("web.socket", &v) {
            out.push((
                ctx.host(&format!("/etc/systemd/system/{}", web_socket(ctx))),
                t,
            ));
        }
        out
    }
}
