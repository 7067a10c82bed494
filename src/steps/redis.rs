use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running};
use crate::txn::Txn;

pub struct Redis;
const ID: &str = "redis";
const MAIN: &str = "/etc/redis/redis.conf";
const OURS: &str = "/etc/redis/keel.conf";

fn include_line() -> String {
    format!("include {OURS}")
}

/// Exactly what keel appends to redis.conf, so undo can take exactly that away again.
fn suffix() -> String {
    format!(
        "\n# Added by keel: its settings (bind, ACL) override the ones above.\n{}\n",
        include_line()
    )
}

/// keel.conf: loopback, memory bound, the default user's ACL with the password's SHA-256.
fn conf(ctx: &Ctx) -> StepResult<String> {
    let password = ctx.secrets.get_or_create("redis_password")?;
    let sha = crate::step::sha256_hex(password.as_bytes());
    // A named app's instance: its own pid file, dump and log (the journal), so two
    // instances never share a file.
    let instance = ctx.cfg.named.then(|| ctx.cfg.app.name.clone());
    crate::render::render("redis.conf", serde_json::json!({"port": ctx.cfg.redis.port, "maxmemory_mb": ctx.cfg.redis.maxmemory_mb, "password_sha256": sha, "instance": instance, "listen": ctx.cfg.redis.listen}))
        .map_err(|e| StepError::permanent(e, ""))
}

impl Step for Redis {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[crate::config::Role::Redis],
            "redis.url: Redis runs elsewhere",
        )
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM, &super::secrets::SecretsStep]
    }
    fn about(&self) -> &'static str {
        "Redis: loopback (or redis.listen), password required"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("port", ctx.cfg.redis.port)
            .value("maxmemory_mb", ctx.cfg.redis.maxmemory_mb)
            .value("listen", ctx.cfg.redis.listen.as_deref().unwrap_or(""))
            .template("redis.conf")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let unit = ctx.cfg.redis_unit();
        let unit = unit.as_str();
        // The host's app: keel's file is included by Debian's redis.conf, which must be
        // there. A named app's instance reads its own file whole.
        let main = ctx.host(MAIN);
        let main_text = if ctx.cfg.named {
            None
        } else {
            Some(std::fs::read_to_string(&main).map_err(|e| {
                StepError::permanent(
                    format!("{}: {e}", main.display()),
                    "install redis-server (keel install packages)",
                )
            })?)
        };
        let conf = conf(ctx)?;
        let ours = ctx.host(&ctx.cfg.redis_conf());
        // Readable by redis only: it holds the ACL (the password's SHA-256).
        let mut changed = tx
            .write(
                &ours,
                conf.as_bytes(),
                0o640,
                crate::step::owner(ctx, "redis"),
            )
            .map_err(io_err(&ours))?;
        if let Some(text) = main_text
            && !text.lines().any(|l| l.trim() == include_line())
        {
            // Last, so keel's settings override the distribution's.
            let mut new = text;
            if !new.ends_with('\n') {
                new.push('\n');
            }
            new.push_str(&suffix());
            let md = std::fs::metadata(&main)?;
            use std::os::unix::fs::MetadataExt;
            changed |= tx
                .write(
                    &main,
                    new.as_bytes(),
                    md.mode() & 0o7777,
                    Some((md.uid(), md.gid())),
                )
                .map_err(io_err(&main))?;
        }
        ensure_running(ctx, ID, unit, tx)?;
        if changed {
            apply(ctx, ID, "restart", unit, tx)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        crate::probe::redis(ctx, ID)
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        conf(ctx)
            .map(|c| vec![(ctx.host(&ctx.cfg.redis_conf()), c)])
            .unwrap_or_default()
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        // The dump (data) and the password secret are kept; keel's settings are removed.
        let unit = ctx.cfg.redis_unit();
        Managed {
            files: vec![ctx.host(&ctx.cfg.redis_conf())],
            // A named app's instance is stopped by undo (it goes); the host's is restarted
            // without keel's settings.
            after: if ctx.cfg.named {
                vec![]
            } else {
                vec![("restart", unit.clone())]
            },
            active: vec![unit],
            ..Managed::default()
        }
    }
    /// Take keel's include line out of redis.conf (a file keel edits but does not own).
    fn undo(&self, ctx: &Ctx) -> StepResult {
        if ctx.cfg.named {
            // The instance goes with its config; its dump (data) is kept.
            let _ =
                crate::systemd::systemctl(ctx, ID, &["disable", "--now", &ctx.cfg.redis_unit()]);
            return Ok(());
        }
        let main = ctx.host(MAIN);
        if let Ok(text) = std::fs::read_to_string(&main)
            && text.lines().any(|l| l.trim() == include_line())
        {
            let new = match text.strip_suffix(&suffix()) {
                Some(orig) => orig.to_string(),
                // Edited since: drop just our lines.
                None => text
                    .lines()
                    .filter(|l| l.trim() != include_line() && !l.starts_with("# Added by keel:"))
                    .map(|l| format!("{l}\n"))
                    .collect(),
            };
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(&main)?;
            crate::txn::write_atomic(
                &main,
                new.as_bytes(),
                md.mode() & 0o7777,
                Some((md.uid(), md.gid())),
            )
            .map_err(io_err(&main))?;
        }
        Ok(())
    }
}
