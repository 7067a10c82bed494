//! Celery as the app routes it, checked with no code of the app's: the queues its Redis
//! transport knows (the exchange bindings every producer declares), how many tasks wait in
//! each and for how long, and whether beat sends due tasks (its journal).
use super::{Level, error, not_checked, ok, warn};
use crate::step::Ctx;
use std::collections::BTreeMap;
use std::time::Duration;

/// kombu's separator inside a binding set member: routing key, pattern, queue.
const SEP: &str = "\x06\x16";
fn now_secs() -> u64 {
    crate::paths::unix_now() as u64
}

/// The queues the workers of this config consume: the worker's, and those a [[process]]
/// names with -Q/--queues.
pub fn consumed(ctx: &Ctx) -> Vec<String> {
    let mut v = if ctx.cfg.celery.queues.is_empty() {
        vec!["celery".into()]
    } else {
        ctx.cfg.celery.queues.clone()
    };
    for p in &ctx.cfg.processes {
        for q in crate::process::queues(&p.command) {
            if !v.contains(&q) {
                v.push(q);
            }
        }
    }
    v
}

/// The Redis database the app's broker URL names (its .env), 0 by default.
fn broker_db(ctx: &Ctx) -> String {
    let env = ctx.host(&ctx.cfg.env_file().display().to_string());
    let values = crate::fsx::read_text_nofollow(&env, crate::fsx::MAX_INPUT)
        .ok()
        .flatten()
        .map(|t| crate::dotenv::values(&t))
        .unwrap_or_default();
    ["CELERY_BROKER_URL", "BROKER_URL", "REDIS_URL"]
        .iter()
        .find_map(|k| values.get(*k))
        .and_then(|u| u.rsplit('/').next())
        .filter(|d| !d.is_empty() && d.len() <= 2 && d.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or("0")
        .to_string()
}

/// One queue: its name, the tasks waiting, the id of the oldest.
#[derive(Debug, Clone, PartialEq)]
pub struct Depth {
    pub queue: String,
    pub waiting: u64,
    pub oldest: Option<String>,
}

/// The queues named in kombu's bindings (SMEMBERS replies, one member per line).
pub fn queues_of_bindings(members: &str) -> Vec<String> {
    members
        .lines()
        .filter_map(|m| m.rsplit(SEP).next())
        .filter(|q| !q.is_empty() && !q.contains(SEP))
        .map(String::from)
        .collect()
}

/// A waiting message's id: the task id of Celery's envelope, or kombu's delivery tag.
pub fn message_id(raw: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(raw).ok()?;
    v.pointer("/headers/id")
        .or_else(|| v.pointer("/properties/delivery_tag"))
        .and_then(|x| x.as_str().map(String::from))
}

/// Every queue the transport knows, plus the consumed ones, with their depth.
pub fn depths(ctx: &Ctx, log: &str) -> Result<Vec<Depth>, String> {
    let password = ctx
        .secrets
        .get("redis_password")
        .ok_or("keel's Redis password is not stored yet")?;
    let port = ctx.cfg.redis.port;
    let t = Duration::from_secs(5);
    let db = broker_db(ctx);
    let r = |cmds: &[&[&str]]| -> Result<Vec<String>, String> {
        let (auth, select) = (["AUTH", password.as_str()], ["SELECT", db.as_str()]);
        let mut all: Vec<&[&str]> = vec![&auth, &select];
        all.extend_from_slice(cmds);
        let out = ctx
            .exec
            .redis(log, port, &all, t)
            .map_err(|e| format!("Redis on port {port}: {e}"))?;
        Ok(out[2..].to_vec())
    };
    let keys = r(&[&["SCAN", "0", "MATCH", "_kombu.binding.*", "COUNT", "10000"]])?;
    let keys: Vec<String> = keys[0].lines().skip(1).map(String::from).collect();
    let mut queues = consumed(ctx);
    for k in keys.iter().take(200) {
        for q in queues_of_bindings(&r(&[&["SMEMBERS", k]])?[0]) {
            if !queues.contains(&q) {
                queues.push(q);
            }
        }
    }
    let mut out = vec![];
    for q in queues {
        let n: u64 = r(&[&["LLEN", &q]])?[0]
            .trim_start_matches(':')
            .parse()
            .unwrap_or(0);
        let oldest = if n > 0 {
            message_id(&r(&[&["LINDEX", &q, "-1"]])?[0])
        } else {
            None
        };
        out.push(Depth {
            queue: q,
            waiting: n,
            oldest,
        });
    }
    Ok(out)
}

/// How long the oldest waiting task of each queue has been seen waiting (first seen by this
/// or an earlier check), and the record kept for the next check.
fn ages(ctx: &Ctx, depths: &[Depth], now: u64) -> BTreeMap<String, u64> {
    let path = ctx.host(&ctx.cfg.keel_var("queue-watch.json"));
    let before: BTreeMap<String, (String, u64)> =
        crate::fsx::read_text_nofollow(&path, crate::fsx::MAX_INPUT)
            .ok()
            .flatten()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
    let mut next = BTreeMap::new();
    let mut ages = BTreeMap::new();
    for d in depths {
        let Some(id) = &d.oldest else { continue };
        let first = match before.get(&d.queue) {
            Some((seen, t)) if seen == id => *t,
            _ => now,
        };
        ages.insert(d.queue.clone(), now.saturating_sub(first));
        next.insert(d.queue.clone(), (id.clone(), first));
    }
    if let Ok(text) = serde_json::to_string(&next) {
        let _ = crate::fsx::write_atomic(&path, text.as_bytes(), 0o600, Some((0, 0)));
    }
    ages
}

/// The queues check: a queue with waiting tasks that no worker consumes is an error at
/// once; a consumed queue whose oldest task waited longer than celery.queue_max_age_secs is
/// one too (the worker is stuck or cannot keep up).
pub fn check_queues(ctx: &Ctx) -> (Level, String, String) {
    let ds = match depths(ctx, "health") {
        Ok(d) => d,
        Err(e) => return not_checked(format!("queues not checked: {e}"), ""),
    };
    let mine = consumed(ctx);
    let now = now_secs();
    let ages = ages(ctx, &ds, now);
    let max = ctx.cfg.celery.queue_max_age_secs;
    let summary: Vec<String> = ds
        .iter()
        .map(|d| format!("{} {}", d.queue, d.waiting))
        .collect();
    let orphans: Vec<&Depth> = ds
        .iter()
        .filter(|d| d.waiting > 0 && !mine.contains(&d.queue))
        .collect();
    if let Some(d) = orphans.first() {
        return error(
            format!(
                "{} task(s) wait in queue {:?}, which no worker consumes (the worker's queues: {})",
                d.waiting,
                d.queue,
                mine.join(", ")
            ),
            format!(
                "add {:?} to celery.queues in keel.toml (the app routes tasks there), then keel install",
                d.queue
            ),
        );
    }
    if let Some((q, age)) = ages.iter().find(|(_, a)| **a > max) {
        return error(
            format!(
                "the oldest task in queue {q:?} has waited {age} s (more than celery.queue_max_age_secs = {max})"
            ),
            format!(
                "the worker consumes {q:?} but does not keep up or is stuck: journalctl -u {}-worker",
                ctx.cfg.app.name
            ),
        );
    }
    let msg = format!("tasks waiting per queue: {}", summary.join(", "));
    match ages.values().max() {
        Some(a) if *a > max / 2 => warn(
            format!("{msg}; the oldest has waited {a} s"),
            "the worker falls behind",
        ),
        _ => ok(msg),
    }
}

/// Beat without the app's heartbeat page: its journal since it started shows whether it
/// sends due tasks ("Sending due task").
pub fn beat_by_journal(ctx: &Ctx, unit: &str) -> (Level, String, String) {
    let Some(since) = crate::stack::active_since(ctx, unit) else {
        return not_checked(format!("{unit} is active; its start time is unknown"), "");
    };
    // The last hour at most (a beat up for weeks has a long journal).
    let from = (since as u64).max(now_secs().saturating_sub(3600));
    let sent = ctx
        .exec
        .journal_since("health", unit, from, 5000)
        .map(|text| {
            text.lines()
                .filter(|l| l.contains("Sending due task"))
                .count()
        })
        .unwrap_or(0);
    let up = (now_secs() as f64 - since).max(0.0) as u64;
    let window = (now_secs() - from).min(up);
    if sent > 0 {
        ok(format!(
            "{unit} is active and ticks: it sent {sent} due task(s) in the last {window} s (its journal)"
        ))
    } else {
        not_checked(
            format!(
                "{unit} is active; whether it ticks is not checked: no periodic task was due in the last {window} s"
            ),
            "set django.heartbeat_path to a page that shows beat's last tick, or wait for a due task",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_and_messages_read_as_kombu_writes_them() {
        let members = "celery\x06\x16\x06\x16celery\nemails\x06\x16\x06\x16emails";
        assert_eq!(queues_of_bindings(members), ["celery", "emails"]);
        let msg = r#"{"body": "W10=", "headers": {"id": "5b1f", "task": "x"}, "properties": {"delivery_tag": "d1"}}"#;
        assert_eq!(message_id(msg).as_deref(), Some("5b1f"));
        assert_eq!(
            message_id(r#"{"properties": {"delivery_tag": "d1"}}"#).as_deref(),
            Some("d1")
        );
        assert_eq!(message_id("not json"), None);
    }
}
