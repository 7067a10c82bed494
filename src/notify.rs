//! Notifications (`[notify]`): what went wrong reaches the admin through webhooks (JSON or
//! Slack's format), e-mail over SMTP and a command, without ever changing the outcome of what
//! it reports.
//!
//! Every notification is written to an outbox first (one file per channel, root's, 0600) and
//! then delivered: at once, with a short timeout, and again by `keel-notify.timer` with
//! backoff until it gets through or is three days old. A reboot or a receiver that is down
//! loses nothing. The same open problem (a key such as `backup-stale`) is sent at most once a
//! day until it is resolved; then a recurrence is news again.
use crate::step::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The events, whether they are on when `events` is not given, and what each means.
pub const EVENTS: &[(&str, bool, &str)] = &[
    ("deploy-failed", true, "a deploy failed"),
    (
        "deploy-rolled-back",
        true,
        "a deploy switched back to the previous release",
    ),
    ("deploy-succeeded", false, "a deploy went live"),
    ("backup-failed", true, "a backup run failed"),
    (
        "backup-stale",
        true,
        "the newest backup is older than backup.max_age_hours",
    ),
    (
        "certificate-expiring",
        true,
        "the served certificate has under 14 days left",
    ),
    (
        "certificate-renewal-failed",
        true,
        "certbot's renewal run failed",
    ),
    ("host-unhealthy", true, "keel verify went unhealthy"),
    ("host-recovered", true, "keel verify is no longer unhealthy"),
    (
        "disk-full",
        true,
        "the disk holding the app is fuller than notify.disk_percent",
    ),
    ("schedule-failed", true, "a [[schedule]] command failed"),
];

/// A problem is not sent again within this long while it stays open.
const RESEND_SECS: u64 = 86_400;
/// An undelivered notification is dropped (with an event) after this long.
const GIVE_UP_SECS: u64 = 3 * 86_400;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Which events are sent (default: every problem; `deploy-succeeded` is opt-in).
    #[serde(default = "default_events")]
    pub events: Vec<String>,
    /// `disk-full` when the filesystem holding the app is at least this full (percent).
    #[serde(default = "default_disk")]
    pub disk_percent: u8,
    /// Pinged (GET) by the verify timer while the host is not unhealthy: an outside monitor
    /// notices a host that stopped pinging (healthchecks.io style).
    #[serde(default)]
    pub heartbeat_url: String,
    /// Per delivery attempt, per channel (seconds).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default)]
    pub webhook: Vec<Webhook>,
    #[serde(default)]
    pub email: Vec<Email>,
    #[serde(default)]
    pub command: Vec<CommandChannel>,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            events: default_events(),
            disk_percent: default_disk(),
            heartbeat_url: String::new(),
            timeout_secs: default_timeout(),
            webhook: vec![],
            email: vec![],
            command: vec![],
        }
    }
}

fn default_events() -> Vec<String> {
    EVENTS
        .iter()
        .filter(|e| e.1)
        .map(|e| e.0.to_string())
        .collect()
}
fn default_disk() -> u8 {
    90
}
fn default_timeout() -> u64 {
    10
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// http(s) URL; POSTed to. Its path and query are masked in keel's logs (a Slack
    /// webhook's path is its secret).
    pub url: String,
    /// `json` (keel's object) or `slack` (`{"text": ...}`, also read by Mattermost and
    /// Discord's /slack endpoints).
    #[serde(default = "default_format")]
    pub format: String,
}

fn default_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Email {
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// `starttls` (the default), `tls` (implicit, port 465) or `none` (loopback only).
    #[serde(default = "default_tls")]
    pub tls: String,
    /// Log in as this user; the password is the keel secret `notify-<password_secret>`,
    /// set with `keel notify password NAME` (never in keel.toml).
    #[serde(default)]
    pub username: String,
    #[serde(default = "default_secret")]
    pub password_secret: String,
    pub from: String,
    pub to: Vec<String>,
    /// A CA certificate (PEM) to trust besides the system's, for a private relay.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

fn default_port() -> u16 {
    587
}
fn default_tls() -> String {
    "starttls".into()
}
fn default_secret() -> String {
    "smtp".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CommandChannel {
    /// A program root runs with the notification as JSON on stdin (no shell).
    pub command: Vec<String>,
}

/// One way out.
#[derive(Debug, Clone, Copy)]
pub enum Channel<'a> {
    Webhook(&'a Webhook),
    Email(&'a Email),
    Command(&'a CommandChannel),
}

impl Notify {
    /// Every channel with its name (`webhook-1`, `email-1`, `command-1`): the outbox refers
    /// to channels by name, so a changed config delivers through what it now says.
    pub fn channels(&self) -> Vec<(String, Channel<'_>)> {
        let mut v = vec![];
        for (i, w) in self.webhook.iter().enumerate() {
            v.push((format!("webhook-{}", i + 1), Channel::Webhook(w)));
        }
        for (i, e) in self.email.iter().enumerate() {
            v.push((format!("email-{}", i + 1), Channel::Email(e)));
        }
        for (i, c) in self.command.iter().enumerate() {
            v.push((format!("command-{}", i + 1), Channel::Command(c)));
        }
        v
    }

    pub fn wants(&self, event: &str) -> bool {
        event == "test" || self.events.iter().any(|e| e == event)
    }

    /// Anything to do at all (channels, or a heartbeat).
    pub fn on(&self) -> bool {
        !self.channels().is_empty() || !self.heartbeat_url.is_empty()
    }

    /// The parts of the URLs that are secrets (a path or query): masked in every log.
    pub fn secret_parts(&self) -> Vec<String> {
        self.webhook
            .iter()
            .map(|w| w.url.as_str())
            .chain([self.heartbeat_url.as_str()])
            .filter_map(|u| {
                let rest = u.split_once("://")?.1;
                let i = rest.find(['/', '?'])?;
                Some(rest[i..].to_string()).filter(|p| p.len() >= 8)
            })
            .collect()
    }
}

type Problem = (String, String, String);

fn http_url(s: &str) -> bool {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or("");
    let host = rest.split(['/', '?', ':']).next().unwrap_or("");
    s.len() <= 1000
        && !host.is_empty()
        && !rest.split(['/', '?']).next().unwrap_or("").contains('@')
        && (crate::system::valid_hostname(host) || host.parse::<std::net::Ipv4Addr>().is_ok())
        && s.chars().all(|c| c.is_ascii_graphic())
        && !s.contains(['"', '\'', '\\', '<', '>', '`'])
}

fn loopback_host(h: &str) -> bool {
    h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

/// `[notify]` checked as the config is loaded: (key, message, hint) for the first problem.
pub fn check(n: &Notify) -> Result<(), Problem> {
    let p = |k: &str, m: String, h: &str| Err((format!("notify.{k}"), m, h.to_string()));
    for (i, e) in n.events.iter().enumerate() {
        if !EVENTS.iter().any(|x| x.0 == e) {
            let names: Vec<&str> = EVENTS.iter().map(|x| x.0).collect();
            return p(
                &format!("events[{i}]"),
                format!("{e:?} is not an event keel sends"),
                &format!("one of: {}", names.join(", ")),
            );
        }
    }
    if !(50..=99).contains(&n.disk_percent) {
        return p(
            "disk_percent",
            format!("{} is out of range", n.disk_percent),
            "50 to 99 (percent of the disk in use)",
        );
    }
    if !(1..=120).contains(&n.timeout_secs) {
        return p(
            "timeout_secs",
            format!("{} is out of range", n.timeout_secs),
            "1 to 120 seconds",
        );
    }
    if !n.heartbeat_url.is_empty() && !http_url(&n.heartbeat_url) {
        return p(
            "heartbeat_url",
            format!("{:?} is not an http(s) URL", n.heartbeat_url),
            "the ping URL your monitor gives, e.g. \"https://hc-ping.com/<uuid>\"",
        );
    }
    for (i, w) in n.webhook.iter().enumerate() {
        if !http_url(&w.url) {
            return p(
                &format!("webhook[{i}].url"),
                format!("{:?} is not an http(s) URL", w.url),
                "the webhook's URL, e.g. \"https://hooks.slack.com/services/...\" (no spaces or quotes)",
            );
        }
        if w.format != "json" && w.format != "slack" {
            return p(
                &format!("webhook[{i}].format"),
                format!("{:?} is not a format keel writes", w.format),
                "json (keel's object) or slack ({\"text\": ...})",
            );
        }
    }
    for (i, e) in n.email.iter().enumerate() {
        check_email(i, e)?;
    }
    for (i, c) in n.command.iter().enumerate() {
        crate::schedule::check_entry(
            "command",
            "notify",
            &c.command,
            "[\"/usr/local/bin/page-ops\"]",
        )
        .map_err(|(_, m, h)| (format!("notify.command[{i}].command"), m, h))?;
        crate::validate::abs_path(Path::new(&c.command[0]))
            .map_err(|(m, h)| (format!("notify.command[{i}].command[0]"), m, h))?;
    }
    Ok(())
}

fn check_email(i: usize, e: &Email) -> Result<(), Problem> {
    let k = |f: &str| format!("notify.email[{i}].{f}");
    let p = |f: &str, m: String, h: &str| Err((k(f), m, h.to_string()));
    if !crate::system::valid_hostname(&e.host) && e.host.parse::<std::net::IpAddr>().is_err() {
        return p(
            "host",
            format!("{:?} is not a host name", e.host),
            "the SMTP relay's name, e.g. \"smtp.example.com\"",
        );
    }
    if e.port == 0 {
        return p("port", "port 0".into(), "587 (STARTTLS), 465 (tls) or 25");
    }
    match e.tls.as_str() {
        "starttls" | "tls" => {}
        "none" if loopback_host(&e.host) => {}
        "none" => {
            return p(
                "tls",
                format!(
                    "\"none\" to {}: mail and login would cross the network in clear",
                    e.host
                ),
                "starttls or tls (\"none\" is for a relay on loopback only)",
            );
        }
        t => {
            return p(
                "tls",
                format!("{t:?} is not starttls, tls or none"),
                "starttls (the default), tls or none",
            );
        }
    }
    if e.username.len() > 200 || e.username.chars().any(char::is_whitespace) {
        return p(
            "username",
            "is not a user name".into(),
            "the SMTP login, without spaces",
        );
    }
    let ok_secret = !e.password_secret.is_empty()
        && e.password_secret.len() <= 40
        && e.password_secret
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !ok_secret {
        return p(
            "password_secret",
            format!("{:?} is not a secret name", e.password_secret),
            "lowercase letters, digits and '-' (set it with keel notify password NAME)",
        );
    }
    crate::validate::email(mailbox(&e.from)).map_err(|(m, h)| (k("from"), m, h))?;
    if e.to.is_empty() || e.to.len() > 20 {
        return p(
            "to",
            "needs 1 to 20 addresses".into(),
            "to = [\"ops@example.com\"]",
        );
    }
    for (j, t) in e.to.iter().enumerate() {
        crate::validate::email(t).map_err(|(m, h)| (k(&format!("to[{j}]")), m, h))?;
    }
    if let Some(f) = &e.ca_file {
        crate::validate::abs_path(f).map_err(|(m, h)| (k("ca_file"), m, h))?;
    }
    Ok(())
}

/// The address of `Name <addr>` or `addr`.
fn mailbox(s: &str) -> &str {
    match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(_)) => &s[i + 1..s.len() - 1],
        _ => s,
    }
}

/// What root runs or reads for notifications, on this host: `command[0]` and `ca_file` must
/// be root's all the way up (as backup.upload_command's are).
pub fn check_host(n: &Notify, root: &Path) -> Result<(), Problem> {
    for (i, c) in n.command.iter().enumerate() {
        if let Some(why) = crate::fsx::untrusted(root, Path::new(&c.command[0]), true) {
            return Err((
                format!("notify.command[{i}].command[0]"),
                format!("root runs it for every notification, and {why}"),
                "install the program as root: chown root:root, chmod go-w, in directories only root can write".into(),
            ));
        }
    }
    for (i, e) in n.email.iter().enumerate() {
        if let Some(f) = &e.ca_file
            && let Some(why) = crate::fsx::untrusted(root, f, false)
        {
            return Err((
                format!("notify.email[{i}].ca_file"),
                format!("keel trusts it for the relay's certificate, and {why}"),
                "keep it root's and writable by root alone".into(),
            ));
        }
    }
    Ok(())
}

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
            text: ctx.exec.redactor.redact(text),
            details,
        }
    }

    fn json_body(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["source"] = json!("keel");
        v.to_string()
    }

    fn slack_body(&self) -> String {
        json!({"text": format!("*{}*\n{}", self.subject, self.text)}).to_string()
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

fn write_json(p: &Path, v: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(v).map_err(std::io::Error::other)?;
    crate::fsx::write_atomic(p, text.as_bytes(), 0o600, Some((0, 0))).map_err(std::io::Error::other)
}

/// Report `event` about the problem `key`: queued for every channel unless the same open
/// problem was sent less than a day ago, then delivered at once where it can be. Never
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
    // One-off keys (a release's failure) are forgotten after a week.
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
    open.insert(
        key.into(),
        Open {
            sent: t,
            repeats: 0,
        },
    );
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

/// After the verify timer's checks: a change of health, the problems the checks measured
/// (backup age, certificate, disk), and the heartbeat. Never fails.
pub fn after_verify(ctx: &Ctx, r: &crate::checks::health::Report) {
    use crate::checks::health::Verdict;
    let n = &ctx.cfg.notify;
    if !n.on() {
        return;
    }
    let unhealthy = r.verdict == Verdict::Unhealthy;
    let failing: Vec<String> = r
        .checks
        .iter()
        .filter(|(c, _)| !c.level.fine())
        .map(|(c, _)| format!("{}: {}", c.name, c.message))
        .collect();
    let d = dir(ctx);
    let health_file = d.join("health");
    let before = crate::fsx::read_text_nofollow(&health_file, 64)
        .ok()
        .flatten()
        .unwrap_or_default();
    let now_state = if unhealthy { "unhealthy" } else { "ok" };
    if before.trim() != now_state {
        if unhealthy {
            raise(
                ctx,
                "host-unhealthy",
                "host-unhealthy",
                &failing.join("\n"),
                json!({"failing": failing}),
            );
        } else if before.trim() == "unhealthy" {
            resolve(ctx, "host-unhealthy");
            let key = format!("host-recovered-{}", now());
            raise(
                ctx,
                "host-recovered",
                &key,
                "keel verify is no longer unhealthy",
                json!({}),
            );
        }
        if crate::fsx::mkdir(&d, 0o700, Some((0, 0))).is_ok() {
            let _ =
                crate::fsx::write_atomic(&health_file, now_state.as_bytes(), 0o600, Some((0, 0)));
        }
    }
    problems(ctx, r);
    if !n.heartbeat_url.is_empty() && !unhealthy {
        heartbeat(ctx, &d);
    }
}

/// The problems the checks measured, each raised while it lasts and resolved after.
fn problems(ctx: &Ctx, r: &crate::checks::health::Report) {
    let gauge = |name: &str| r.gauges.iter().find(|g| g.0 == name).map(|g| g.2);
    let check = |name: &str| {
        r.checks
            .iter()
            .find(|(c, _)| c.name == name)
            .map(|(c, _)| c)
    };
    let max = ctx.cfg.backup_max_age_hours() as f64;
    let stale = match gauge("keel_backup_age_seconds") {
        Some(age) => (age > max * 3600.0).then(|| {
            format!(
                "the newest backup is {:.1} h old (backup.max_age_hours = {max})",
                age / 3600.0
            )
        }),
        None => check("backup")
            .filter(|c| !c.level.fine())
            .map(|c| c.message.clone()),
    };
    set(ctx, "backup-stale", stale);
    let expiring = gauge("keel_tls_certificate_days_left")
        .filter(|d| *d < crate::certs::SHORT_DAYS as f64)
        .map(|d| format!("the served certificate has {d:.0} days left"));
    set(ctx, "certificate-expiring", expiring);
    if ctx.cfg.tls_on() && ctx.cfg.tls_mode() == crate::config::TlsMode::Acme {
        let failed = ctx
            .exec
            .probe(
                "notify",
                &crate::exec::Cmd::new("systemctl").args([
                    "is-failed",
                    "--quiet",
                    "certbot.service",
                ]),
            )
            .is_ok_and(|o| o.code == 0);
        set(
            ctx,
            "certificate-renewal-failed",
            failed.then(|| "certbot.service failed: journalctl -u certbot.service".to_string()),
        );
    }
    let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
    if let Some((_, free)) = crate::system::disk_free(&base) {
        let used = 100.0 - free;
        let limit = ctx.cfg.notify.disk_percent as f64;
        set(
            ctx,
            "disk-full",
            (used >= limit).then(|| {
                format!(
                    "the disk holding {} is {used:.0}% full (notify.disk_percent = {limit})",
                    ctx.cfg.base_dir().display()
                )
            }),
        );
    }
}

/// Raise `event` (its own key) with `text` while it holds, resolve it when it does not.
fn set(ctx: &Ctx, event: &str, text: Option<String>) {
    match text {
        Some(t) => raise(ctx, event, event, &t, json!({})),
        None => resolve(ctx, event),
    }
}

fn heartbeat(ctx: &Ctx, d: &Path) {
    let t = Duration::from_secs(ctx.cfg.notify.timeout_secs);
    let r = ctx
        .exec
        .http_send("notify", "GET", &ctx.cfg.notify.heartbeat_url, None, t);
    let (ok, error) = match r {
        Ok(c) if (200..300).contains(&c) => (true, String::new()),
        Ok(c) => (false, format!("answered {c}")),
        Err(e) => (false, e.to_string()),
    };
    if !ok {
        ctx.ui.line(&format!("[notify] heartbeat: {error}"));
    }
    let _ = write_json(
        &d.join("heartbeat.json"),
        &json!({"at": crate::paths::now(), "ok": ok, "error": error}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_an_hour() {
        assert_eq!(backoff(1), 60);
        assert_eq!(backoff(2), 120);
        assert_eq!(backoff(3), 240);
        assert_eq!(backoff(20), 3600);
    }

    #[test]
    fn secret_parts_are_paths_and_queries() {
        let n = Notify {
            webhook: vec![Webhook {
                url: "https://hooks.slack.com/services/T0/B0/abcdef".into(),
                format: "slack".into(),
            }],
            heartbeat_url: "https://hc-ping.com/0f2c9a".into(),
            ..Notify::default()
        };
        assert_eq!(n.secret_parts(), vec!["/services/T0/B0/abcdef".to_string()]);
    }

    #[test]
    fn urls_with_userinfo_or_quotes_are_refused() {
        assert!(http_url("https://example.com/hook?x=1"));
        assert!(http_url("http://127.0.0.1:9099/hook"));
        assert!(!http_url("https://user:pw@example.com/"));
        assert!(!http_url("https://example.com/a b"));
        assert!(!http_url("ftp://example.com/"));
        assert!(!http_url("https://exa\"mple.com/"));
    }

    #[test]
    fn mailbox_takes_the_address() {
        assert_eq!(mailbox("keel <alerts@example.com>"), "alerts@example.com");
        assert_eq!(mailbox("alerts@example.com"), "alerts@example.com");
    }
}
