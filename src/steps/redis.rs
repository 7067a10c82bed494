use crate::step::io_err;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult};
use crate::systemd::{apply, ensure_running, require_active, require_loopback_listener};
use crate::txn::Txn;
use std::time::Duration;

pub struct Redis;
const ID: &str = "redis";
const MAIN: &str = "/etc/redis/redis.conf";
const OURS: &str = "/etc/redis/keel.conf";

/// keel's Redis config: included by Debian's redis.conf for the host's app; a named app's
/// instance reads its own file whole (Debian's redis-server@.service: redis-NAME.conf).
fn conf_path(ctx: &Ctx) -> String {
    if ctx.cfg.named {
        format!("/etc/redis/redis-{}.conf", ctx.cfg.app.name)
    } else {
        OURS.into()
    }
}

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
    crate::render::render("redis.conf", serde_json::json!({"port": ctx.cfg.redis.port, "maxmemory_mb": ctx.cfg.redis.maxmemory_mb, "password_sha256": sha, "instance": instance}))
        .map_err(|e| StepError::permanent(e, ""))
}

impl Step for Redis {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM, &super::secrets::SecretsStep]
    }
    fn about(&self) -> &'static str {
        "Redis: loopback only, password required"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("port", ctx.cfg.redis.port)
            .value("maxmemory_mb", ctx.cfg.redis.maxmemory_mb)
            .template("redis.conf")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let unit = ctx.cfg.redis_unit();
        let unit = unit.as_str();
        if ctx.cfg.named {
            let ours = ctx.host(&conf_path(ctx));
            let changed = tx
                .write(
                    &ours,
                    conf(ctx)?.as_bytes(),
                    0o640,
                    crate::step::owner(ctx, "redis"),
                )
                .map_err(io_err(&ours))?;
            ensure_running(ctx, ID, unit, tx)?;
            if changed {
                apply(ctx, ID, "restart", unit, tx)?;
            }
            return Ok(());
        }
        let main = ctx.host(MAIN);
        let text = std::fs::read_to_string(&main).map_err(|e| {
            StepError::permanent(
                format!("{}: {e}", main.display()),
                "install redis-server (keel install packages)",
            )
        })?;
        let conf = conf(ctx)?;
        let ours = ctx.host(&conf_path(ctx));
        // Readable by redis only: it holds the ACL (the password's SHA-256).
        let mut changed = tx
            .write(
                &ours,
                conf.as_bytes(),
                0o640,
                crate::step::owner(ctx, "redis"),
            )
            .map_err(io_err(&ours))?;
        if !text.lines().any(|l| l.trim() == include_line()) {
            // Last, so keel's settings override the distribution's.
            let mut new = text.clone();
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
        let unit = ctx.cfg.redis_unit();
        let unit = unit.as_str();
        require_active(ctx, ID, unit)?;
        let port = ctx.cfg.redis.port;
        require_loopback_listener(ctx, port, unit)?;
        let journal = format!("see journalctl -u {unit}");
        let conf = conf_path(ctx);
        let t = Duration::from_secs(3);
        let net = |e: std::io::Error| {
            StepError::transient(format!("redis on 127.0.0.1:{port}: {e}"), journal.clone())
        };
        let anon = ctx.exec.redis(ID, port, &[&["PING"]], t).map_err(net)?;
        if !anon[0].starts_with("-NOAUTH") {
            return Err(StepError::permanent(
                format!(
                    "a client without the password got {:?} instead of NOAUTH",
                    anon[0]
                ),
                format!(
                    "the ACL is not in effect; check that {unit} reads {conf} (for the host's app, /etc/redis/redis.conf includes it)"
                ),
            ));
        }
        let password = ctx.secrets.get_or_create("redis_password")?;
        let key = format!("keel:probe:{}", std::process::id());
        let steps: [(&[&str], &str, &str); 6] = [
            (&["AUTH", &password], "+OK", "AUTH with the stored password"),
            (&["PING"], "+PONG", "PING"),
            (&["SET", &key, "42"], "+OK", "SET"),
            (&["GET", &key], "42", "GET"),
            (&["DEL", &key], ":1", "DEL"),
            // The ACL holds: the app's credentials cannot reconfigure the server.
            (
                &["CONFIG", "GET", "maxmemory"],
                "-NOPERM",
                "CONFIG (must be refused)",
            ),
        ];
        let cmds: Vec<&[&str]> = steps.iter().map(|(c, _, _)| *c).collect();
        let replies = ctx.exec.redis(ID, port, &cmds, t).map_err(net)?;
        for ((_, want, what), got) in steps.iter().zip(&replies) {
            if !got.starts_with(want) || (*want != "-NOPERM" && got != want) {
                return Err(StepError::permanent(
                    format!("redis {what}: expected {want:?}, got {got:?}"),
                    if *want == "-NOPERM" {
                        format!(
                            "the ACL in {conf} is not in effect; check for a later `user default` or aclfile line"
                        )
                    } else {
                        journal.clone()
                    },
                ));
            }
        }
        Ok(())
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        conf(ctx)
            .map(|c| vec![(ctx.host(&conf_path(ctx)), c)])
            .unwrap_or_default()
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        // The dump (data) and the password secret are kept; keel's settings are removed.
        let unit = ctx.cfg.redis_unit();
        Managed {
            files: vec![ctx.host(&conf_path(ctx))],
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
