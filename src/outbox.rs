//! The notification outbox: every notification is written here first (one file per
//! channel, root's, 0600), then delivered at once with a short timeout and again by
//! `keel-notify.timer` with backoff, until it gets through or is three days old. The same
//! open problem (a key such as `backup-stale`) is sent at most once a day until resolved.
//! Nothing here ever fails what it reports.
use crate::notify::{Channel, EVENTS, Notify};
use crate::step::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A problem is not sent again within this long while it stays open.
const RESEND_SECS: u64 = 86_400;
/// An undelivered notification is dropped (with an event) after this long.
const GIVE_UP_SECS: u64 = 3 * 86_400;

/// One notification, as every channel gets it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Message {
    pub event: String,
    pub app: String,
    pub host: String,
    pub at: String,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub details: Value,
}

impl Message {
    pub fn new(ctx: &Ctx, event: &str, text: &str, details: Value) -> Message {
        let about = EVENTS
            .iter()
            .find(|e| e.0 == event)
            .map(|e| e.2)
            .unwrap_or("a test notification");
        let host = crate::system::hostname();
        Message {
            event: event.into(),
            app: ctx.cfg.app.name.clone(),
            subject: format!("[keel] {} on {host}: {about}", ctx.cfg.app.name),
            host,
            at: crate::paths::now(),
            text: readable(&ctx.exec.redactor.redact(text)),
            details,
        }
    }

    fn json_body(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["source"] = json!("keel");
        v.to_string()
    }

    fn slack_body(&self) -> String {
        json!({"text": format!("*{}* ({})\n{}", self.subject, self.event, self.text)}).to_string()
    }

    fn mail_body(&self) -> String {
        let details = match &self.details {
            Value::Object(m) if !m.is_empty() => {
                serde_json::to_string_pretty(&self.details).unwrap_or_default()
            }
            _ => String::new(),
        };
        format!(
            "{}\n\nevent: {}\napp: {}\nhost: {}\nat: {}\n\n{details}\n-- \nkeel (keel notify status shows what is pending)\n",
            self.text, self.event, self.app, self.host, self.at
        )
    }
}

/// A notification's text for people: a long command line quoted in an error (a transient
/// unit's forty properties) shortened to its program and last words, at most 3000 characters.
fn readable(text: &str) -> String {
    let mut out = String::new();
    let mut parts = text.split('`');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, p) in parts.enumerate() {
        out.push('`');
        let quoted = i % 2 == 0;
        if quoted && p.chars().count() > 160 {
            let words: Vec<&str> = p.split_whitespace().collect();
            let tail = words[words.len().saturating_sub(4)..].join(" ");
            out.push_str(&format!("{} ... {tail}", words.first().unwrap_or(&"")));
        } else {
            out.push_str(p);
        }
    }
    out.chars().take(3000).collect()
}

/// An outbox entry: one message for one channel.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    channel: String,
    message: Message,
    created: u64,
    attempts: u32,
    next_at: u64,
    #[serde(default)]
    last_error: String,
}

/// An open problem: when it was last sent, and how many times it came again since.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Open {
    sent: u64,
    #[serde(default)]
    repeats: u32,
}

pub fn dir(ctx: &Ctx) -> PathBuf {
    ctx.host(&format!("/var/lib/keel/notify-{}", ctx.cfg.app.name))
}

fn now() -> u64 {
    crate::paths::unix_now() as u64
}

/// Run `f` holding the notify lock (the timer and a command may flush at the same time).
/// `wait`: block for it; otherwise None when another process has it.
fn locked<T>(ctx: &Ctx, wait: bool, f: impl FnOnce(&Path) -> T) -> std::io::Result<Option<T>> {
    let d = dir(ctx);
    crate::fsx::mkdir(&d, 0o700, Some((0, 0))).map_err(std::io::Error::other)?;
    crate::fsx::mkdir(&d.join("outbox"), 0o700, Some((0, 0))).map_err(std::io::Error::other)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(d.join("lock"))?;
    if wait {
        lock.lock()?;
    } else if lock.try_lock().is_err() {
        return Ok(None);
    }
    Ok(Some(f(&d)))
}

fn read_json<T: serde::de::DeserializeOwned>(p: &Path) -> Option<T> {
    let text = crate::fsx::read_text_nofollow(p, crate::fsx::MAX_INPUT).ok()??;
    serde_json::from_str(&text).ok()
}

pub fn write_json(p: &Path, v: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    crate::fsx::write_atomic(p, text.as_bytes(), 0o600, Some((0, 0))).map_err(std::io::Error::other)
}

/// Report `event` about the problem `key` ("" for a one-off event): queued for every
/// channel unless the same open problem was sent less than a day ago, then delivered at once where it can be. Never
/// fails: what it reports keeps its own outcome.
pub fn raise(ctx: &Ctx, event: &str, key: &str, text: &str, details: Value) {
    let n = &ctx.cfg.notify;
    if !n.wants(event) || n.channels().is_empty() {
        return;
    }
    let msg = Message::new(ctx, event, text, details);
    let queued = locked(ctx, true, |d| queue(n, d, key, &msg));
    match queued {
        Ok(Some(Ok(true))) => {
            ctx.events.emit(
                "notify-queued",
                None,
                json!({"notification": event, "key": key}),
            );
            flush(ctx, false);
        }
        Ok(Some(Ok(false))) => ctx.ui.line(&format!(
            "[notify] {event}: not sent again (the same problem was sent less than a day ago)"
        )),
        Ok(Some(Err(e))) | Err(e) => ctx
            .ui
            .line(&format!("[notify] {event}: could not be queued: {e}")),
        Ok(None) => {}
    }
}

/// Queue `msg` for every channel, unless `key` is open and was sent within a day.
fn queue(n: &Notify, d: &Path, key: &str, msg: &Message) -> std::io::Result<bool> {
    let open_path = d.join("open.json");
    let mut open: BTreeMap<String, Open> = read_json(&open_path).unwrap_or_default();
    let t = now();
    if let Some(o) = open.get_mut(key)
        && t < o.sent + RESEND_SECS
    {
        o.repeats += 1;
        write_json(&open_path, &open)?;
        return Ok(false);
    }
    // A problem not seen for a week is forgotten (it will be news again).
    open.retain(|_, o| t < o.sent + 7 * RESEND_SECS);
    let id = crate::secrets::random_token(6).replace(['/', '+', '='], "x");
    for (name, _) in n.channels() {
        let e = Entry {
            channel: name.clone(),
            message: msg.clone(),
            created: t,
            attempts: 0,
            next_at: t,
            last_error: String::new(),
        };
        write_json(&d.join("outbox").join(format!("{t}-{id}-{name}.json")), &e)?;
    }
    // An empty key is an event, not a problem that stays open (a release's failure).
    if !key.is_empty() {
        open.insert(
            key.into(),
            Open {
                sent: t,
                repeats: 0,
            },
        );
    }
    write_json(&open_path, &open)?;
    Ok(true)
}

/// The problem `key` is over: the next time it happens is sent at once.
pub fn resolve(ctx: &Ctx, key: &str) {
    if ctx.cfg.notify.channels().is_empty() {
        return;
    }
    let _ = locked(ctx, true, |d| {
        let p = d.join("open.json");
        let mut open: BTreeMap<String, Open> = read_json(&p).unwrap_or_default();
        if open.remove(key).is_some() {
            let _ = write_json(&p, &open);
        }
    });
}

/// What a flush did.
#[derive(Debug, Default, Serialize)]
pub struct Flushed {
    pub sent: u32,
    pub failed: u32,
    pub dropped: u32,
    pub pending: u32,
}

/// Deliver what is due in the outbox; `wait`: for the lock (the timer), else skip when
/// another process is delivering (it will see these too).
pub fn flush(ctx: &Ctx, wait: bool) -> Flushed {
    match locked(ctx, wait, |d| flush_locked(ctx, d)) {
        Ok(Some(f)) => f,
        Ok(None) => Flushed::default(),
        Err(e) => {
            ctx.ui.line(&format!("[notify] the outbox: {e}"));
            Flushed::default()
        }
    }
}

fn outbox_entries(d: &Path) -> Vec<(PathBuf, Entry)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.join("outbox"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| read_json(&p).map(|e| (p, e)))
        .collect()
}

fn flush_locked(ctx: &Ctx, d: &Path) -> Flushed {
    let mut f = Flushed::default();
    let channels = ctx.cfg.notify.channels();
    for (path, mut e) in outbox_entries(d) {
        let t = now();
        if e.next_at > t {
            f.pending += 1;
            continue;
        }
        let Some((_, ch)) = channels.iter().find(|(n, _)| *n == e.channel) else {
            drop_entry(ctx, &path, &e, "the channel is no longer in [notify]");
            f.dropped += 1;
            continue;
        };
        match deliver(ctx, ch, &e.message) {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
                ctx.events.emit(
                    "notify-sent",
                    None,
                    json!({"notification": e.message.event, "channel": e.channel, "attempts": e.attempts + 1}),
                );
                f.sent += 1;
            }
            Err(err) if t >= e.created + GIVE_UP_SECS => {
                drop_entry(ctx, &path, &e, &err);
                f.dropped += 1;
            }
            Err(err) => {
                e.attempts += 1;
                e.next_at = t + backoff(e.attempts);
                e.last_error = ctx.exec.redactor.redact(&err);
                ctx.ui.line(&format!(
                    "[notify] {} through {}: {} (attempt {}; again in {} s)",
                    e.message.event,
                    e.channel,
                    e.last_error,
                    e.attempts,
                    e.next_at - t
                ));
                let _ = write_json(&path, &e);
                f.failed += 1;
                f.pending += 1;
            }
        }
    }
    f
}

fn drop_entry(ctx: &Ctx, path: &Path, e: &Entry, why: &str) {
    let _ = std::fs::remove_file(path);
    ctx.ui.line(&format!(
        "[notify] dropped {} for {}: {why}",
        e.message.event, e.channel
    ));
    ctx.events.emit(
        "notify-dropped",
        None,
        json!({"notification": e.message.event, "channel": e.channel, "error": why, "attempts": e.attempts}),
    );
}

/// The wait before attempt `attempts + 1`: 1, 2, 4, ... minutes, at most an hour.
fn backoff(attempts: u32) -> u64 {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(60))
        .with_max_delay(Duration::from_secs(3600))
        .with_factor(2.0)
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .map_or(3600, |d| d.as_secs())
}

/// One delivery attempt through one channel.
pub fn deliver(ctx: &Ctx, ch: &Channel, m: &Message) -> Result<(), String> {
    let t = Duration::from_secs(ctx.cfg.notify.timeout_secs);
    match ch {
        Channel::Webhook(w) => {
            let body = if w.format == "slack" {
                m.slack_body()
            } else {
                m.json_body()
            };
            match ctx.exec.http_send("notify", "POST", &w.url, Some(&body), t) {
                Ok(code) if (200..300).contains(&code) => Ok(()),
                Ok(code) => Err(format!("the webhook answered {code}")),
                Err(e) => Err(format!("the webhook: {e}")),
            }
        }
        Channel::Email(e) => {
            let login = if e.username.is_empty() {
                None
            } else {
                let name = format!("notify-{}", e.password_secret);
                let pw = ctx.secrets.get(&name).ok_or_else(|| {
                    format!(
                        "no password: set it with keel notify password {}",
                        e.password_secret
                    )
                })?;
                Some((e.username.clone(), pw))
            };
            let ca_pem = match &e.ca_file {
                Some(f) => Some(read_ca(ctx, f)?),
                None => None,
            };
            let mail = crate::system::send::Mail {
                host: e.host.clone(),
                port: e.port,
                tls: e.tls.clone(),
                login,
                ca_pem,
                from: e.from.clone(),
                to: e.to.clone(),
                subject: m.subject.clone(),
                body: m.mail_body(),
            };
            ctx.exec
                .send_mail("notify", &mail, t)
                .map_err(|err| format!("SMTP {}:{}: {err}", e.host, e.port))
        }
        Channel::Command(c) => {
            let prog = Path::new(&c.command[0]);
            if let Some(why) = crate::fsx::untrusted(&ctx.paths.root, prog, true) {
                return Err(format!("not run: {why}"));
            }
            let cmd = crate::exec::Cmd::new(&c.command[0])
                .args(c.command[1..].iter().cloned())
                .stdin(m.json_body())
                .timeout(t);
            ctx.exec
                .run("notify", &cmd)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }
}

fn read_ca(ctx: &Ctx, f: &Path) -> Result<Vec<u8>, String> {
    if let Some(why) = crate::fsx::untrusted(&ctx.paths.root, f, false) {
        return Err(format!("ca_file not read: {why}"));
    }
    crate::fsx::read_nofollow(&ctx.host(&f.display().to_string()), 1 << 20)
        .ok()
        .flatten()
        .ok_or_else(|| format!("cannot read {}", f.display()))
}

/// What `keel notify status` and `keel verify` show: the outbox and the open problems.
#[derive(Debug, Default, Serialize)]
pub struct Status {
    pub pending: Vec<Value>,
    pub open: Vec<Value>,
    pub heartbeat: Option<Value>,
}

pub fn status(ctx: &Ctx) -> Status {
    let d = dir(ctx);
    let pending = outbox_entries(&d)
        .into_iter()
        .map(|(_, e)| {
            json!({"event": e.message.event, "channel": e.channel, "queued_at": e.message.at,
                   "attempts": e.attempts, "next_at": e.next_at, "last_error": e.last_error})
        })
        .collect();
    let open: BTreeMap<String, Open> = read_json(&d.join("open.json")).unwrap_or_default();
    Status {
        pending,
        open: open
            .into_iter()
            .map(|(k, o)| json!({"key": k, "sent": o.sent, "repeats": o.repeats}))
            .collect(),
        heartbeat: read_json(&d.join("heartbeat.json")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_command_lines_are_shortened_for_people() {
        let long = format!(
            "`systemd-run {} -- /venv/bin/python manage.py shell --no-startup` exited with status 1: boom",
            "-p X=y ".repeat(40)
        );
        assert_eq!(
            readable(&format!("the settings do not load: {long}")),
            "the settings do not load: `systemd-run ... /venv/bin/python manage.py shell --no-startup` exited with status 1: boom"
        );
        assert_eq!(readable("`pg_dump -Fc` failed"), "`pg_dump -Fc` failed");
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(3), 240);
        assert_eq!(backoff(20), 3600);
    }
}
