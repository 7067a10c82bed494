//! The probes of the host's services as keel set them up: what the redis and nginx steps
//! verify, and what `keel verify` and the report check again. A floor below the steps.
use crate::exec::Cmd;
use crate::step::{Ctx, StepError, StepResult};
use crate::systemd::{require_active, require_listener};
use std::time::Duration;

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
/// The app's Redis: active, on loopback only, refusing a client without the password,
/// a round trip with it, and the ACL keeping CONFIG from it.
pub fn redis(ctx: &Ctx, log: &str) -> StepResult {
    let unit = ctx.cfg.redis_unit();
    let unit = unit.as_str();
    require_active(ctx, log, unit)?;
    let port = ctx.cfg.redis.port;
    require_listener(ctx, port, unit, ctx.cfg.redis.listen.as_deref())?;
    let journal = format!("see journalctl -u {unit}");
    let conf = ctx.cfg.redis_conf();
    let t = Duration::from_secs(3);
    let net = |e: std::io::Error| {
        StepError::transient(format!("redis on 127.0.0.1:{port}: {e}"), journal.clone())
    };
    let anon = ctx.exec.redis(log, port, &[&["PING"]], t).map_err(net)?;
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
    let replies = ctx.exec.redis(log, port, &cmds, t).map_err(net)?;
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

/// nginx: active, `nginx -t` clean, keel's site the one serving the app's name, and the
/// app (or keel's placeholder, or the redirect to HTTPS) behind it.
pub fn nginx(ctx: &Ctx, log: &str) -> StepResult {
    const UNIT: &str = "nginx";
    require_active(ctx, log, UNIT)?;
    config_test(ctx, log)?;
    let port = ctx.cfg.nginx.port;
    let get = |path: &str| {
        ctx.exec
            .http_get(
                log,
                port,
                &ctx.cfg.app.domain,
                path,
                Duration::from_secs(10),
            )
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
    let https = ctx.cfg.tls_on() && crate::site::installed(ctx).is_some();
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
