//! Checks (preflight now, health later): each yields ok/warn/error with a message, a hint and
//! its duration. They run in parallel, each bounded by a timeout.
use serde::Serialize;
use std::time::{Duration, Instant};

pub mod audit;
pub mod celery;
pub mod fleet;
pub mod health;
pub mod preflight;

/// Ordered by weight: a verdict is the heaviest level among its checks. `NotChecked` weighs
/// least: a check keel could not make changes no verdict, and never reads as "ok".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[serde(rename = "not-checked")]
    NotChecked,
    Ok,
    Warn,
    Error,
}

impl Level {
    /// As serialized: "not-checked", "ok", "warn", "error".
    pub fn as_str(self) -> &'static str {
        match self {
            Level::NotChecked => "not-checked",
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
    /// Nothing wrong was found (ok, or not checked: the message says why).
    pub fn fine(self) -> bool {
        self <= Level::Ok
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub level: Level,
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub hint: String,
    pub duration_ms: u64,
    /// An error the user chose to ignore (--ignore-preflight-errors).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ignored: bool,
}

pub fn ok(msg: impl Into<String>) -> (Level, String, String) {
    (Level::Ok, msg.into(), String::new())
}
/// A check that could not be made: the message says what and why (never "ok").
pub fn not_checked(msg: impl Into<String>, hint: impl Into<String>) -> (Level, String, String) {
    (Level::NotChecked, msg.into(), hint.into())
}
pub fn warn(msg: impl Into<String>, hint: impl Into<String>) -> (Level, String, String) {
    (Level::Warn, msg.into(), hint.into())
}
pub fn error(msg: impl Into<String>, hint: impl Into<String>) -> (Level, String, String) {
    (Level::Error, msg.into(), hint.into())
}

pub type CheckFn<'a> = Box<dyn FnOnce() -> (Level, String, String) + Send + 'a>;

/// Run checks in parallel; a check that does not answer within `timeout` is reported as an
/// error ("timed out") and the others still report. The hung thread is left behind (detached)
/// because it may be blocked in a syscall we cannot cancel.
pub fn run_parallel(
    checks: Vec<(String, CheckFn<'static>)>,
    timeout: Duration,
) -> Vec<CheckResult> {
    let (tx, rx) = std::sync::mpsc::channel();
    let names: Vec<String> = checks.iter().map(|(n, _)| n.clone()).collect();
    let start = Instant::now();
    for (i, (_, f)) in checks.into_iter().enumerate() {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = f();
            let _ = tx.send((i, r, t.elapsed()));
        });
    }
    drop(tx);
    let mut results: Vec<Option<CheckResult>> = vec![None; names.len()];
    while results.iter().any(|r| r.is_none()) {
        let left = timeout.saturating_sub(start.elapsed());
        match rx.recv_timeout(left) {
            Ok((i, (level, message, hint), d)) => {
                results[i] = Some(CheckResult {
                    name: names[i].clone(),
                    level,
                    message,
                    hint,
                    duration_ms: d.as_millis() as u64,
                    ignored: false,
                });
            }
            Err(_) => break,
        }
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| CheckResult {
                name: names[i].clone(),
                level: Level::Error,
                message: format!("timed out after {:.1}s", timeout.as_secs_f64()),
                hint: "the check hung; see keel diagnose".into(),
                duration_ms: timeout.as_millis() as u64,
                ignored: false,
            })
        })
        .collect()
}

pub fn render_table(results: &[CheckResult]) -> String {
    let w = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(4)
        .max(5);
    let mut s = String::new();
    for r in results {
        let lvl = match (r.level, r.ignored) {
            (Level::NotChecked, _) => "unchecked",
            (Level::Ok, _) => "ok",
            (Level::Warn, _) => "WARN",
            (Level::Error, true) => "ignored",
            (Level::Error, false) => "ERROR",
        };
        s.push_str(&format!(
            "{:<w$}  {:<9}  {:>6}ms  {}\n",
            r.name, lvl, r.duration_ms, r.message
        ));
        if !r.hint.is_empty() && r.level != Level::Ok {
            s.push_str(&format!(
                "{:<w$}  {:<9}  {:>6}    hint: {}\n",
                "", "", "", r.hint
            ));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hung_check_is_cut_and_others_report() {
        let checks: Vec<(String, CheckFn<'static>)> = vec![
            ("fast".into(), Box::new(|| ok("fine"))),
            (
                "hangs".into(),
                Box::new(|| {
                    #[allow(clippy::disallowed_methods)] // a check that hangs, on purpose
                    std::thread::sleep(Duration::from_secs(30));
                    ok("never")
                }),
            ),
            ("bad".into(), Box::new(|| error("broken", "fix it"))),
        ];
        let t = Instant::now();
        let r = run_parallel(checks, Duration::from_millis(300));
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(r[0].level, Level::Ok);
        assert_eq!(r[1].level, Level::Error);
        assert!(r[1].message.contains("timed out"));
        assert_eq!(r[2].message, "broken");
    }
}
