//! `[notify]`: the channels (webhooks in JSON or Slack's format, e-mail over SMTP, a
//! command), the events sent, the heartbeat; checked as the config is loaded. Delivery is
//! `outbox.rs`'s.
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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

#[cfg(test)]
mod tests {
    use super::*;

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
