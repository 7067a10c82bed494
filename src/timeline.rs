//! The last run's timeline, rebuilt from the event log: one bar per step that ran (start,
//! end, outcome), its retries, whether its changes were undone, and its rollback if the run
//! rolled back. The HTML report draws it; nothing here touches the host.
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    /// Started and never finished (a killed run).
    Cut,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Cut => "cut",
        }
    }
}

/// One step's span in the run; times in ms since the run started.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    pub step: String,
    pub start: u64,
    pub end: u64,
    pub outcome: Outcome,
    pub attempts: u32,
    /// When each retry was decided, with the error that caused it.
    pub retries: Vec<(u64, String)>,
    /// The failed step's own changes were undone at this time.
    pub undone: Option<u64>,
    /// The step rolled back later in the same run: (start, end, succeeded).
    pub rollback: Option<(u64, u64, bool)>,
    pub error: String,
    /// The step ran in this run (false: only its undo did, in a `keel rollback`).
    pub ran: bool,
}

impl Bar {
    pub fn new(step: &str, start: u64, end: u64, outcome: Outcome) -> Bar {
        Bar {
            step: step.into(),
            start,
            end,
            outcome,
            attempts: 0,
            retries: vec![],
            undone: None,
            rollback: None,
            error: String::new(),
            ran: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    pub run_id: String,
    pub command: String,
    /// Epoch ms of the run's first event.
    pub started_ms: u64,
    pub span_ms: u64,
    pub outcome: String,
    pub bars: Vec<Bar>,
}

fn time_ms(e: &Value) -> Option<u64> {
    if let Some(t) = e.get("t_ms").and_then(Value::as_u64) {
        return Some(t);
    }
    // Events written before keel logged milliseconds: the second-precision stamp.
    let ts = e.get("ts")?.as_str()?;
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    let t = time::PrimitiveDateTime::parse(ts, &f).ok()?.assume_utc();
    Some((t.unix_timestamp_nanos() / 1_000_000) as u64)
}

fn str_of<'a>(e: &'a Value, k: &str) -> &'a str {
    e.get(k).and_then(Value::as_str).unwrap_or("")
}

/// The newest run in an events.jsonl text (an install, a resume or a `keel rollback`).
pub fn last_run(events: &str) -> Option<Timeline> {
    let parsed: Vec<Value> = events
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let start = parsed
        .iter()
        .rposition(|e| matches!(str_of(e, "event"), "run-started" | "rollback-started"))?;
    let run_id = str_of(&parsed[start], "run_id").to_string();
    let evs: Vec<&Value> = parsed[start..]
        .iter()
        .filter(|e| str_of(e, "run_id") == run_id)
        .collect();
    let t0 = time_ms(evs[0])?;
    let rel = |e: &Value| time_ms(e).unwrap_or(t0).saturating_sub(t0);
    let mut tl = Timeline {
        run_id,
        command: match str_of(evs[0], "event") {
            "rollback-started" => "rollback".into(),
            _ => str_of(evs[0], "command").to_string(),
        },
        started_ms: t0,
        span_ms: 0,
        outcome: "running (or cut)".into(),
        bars: vec![],
    };
    let mut last = 0;
    for e in evs {
        let t = rel(e);
        last = last.max(t);
        let step = str_of(e, "step");
        let dur = e.get("duration_ms").and_then(Value::as_u64).unwrap_or(0);
        let bar = tl.bars.iter_mut().rev().find(|b| b.step == step);
        match (str_of(e, "event"), bar) {
            ("step-started", _) => tl.bars.push(Bar::new(step, t, t, Outcome::Cut)),
            ("step-finished" | "step-failed", Some(b)) => {
                b.end = t.max(b.start);
                b.outcome = if str_of(e, "event") == "step-finished" {
                    Outcome::Ok
                } else {
                    Outcome::Failed
                };
                b.attempts = e.get("attempts").and_then(Value::as_u64).unwrap_or(1) as u32;
                b.error = str_of(e, "error").to_string();
            }
            ("step-retried", Some(b)) => b.retries.push((t, str_of(e, "error").to_string())),
            ("step-changes-undone", Some(b)) => b.undone = Some(t),
            ("step-rolled-back" | "step-rollback-failed", b) => {
                let ok = str_of(e, "event") == "step-rolled-back";
                let span = (t.saturating_sub(dur), t);
                match b {
                    Some(b) => b.rollback = Some((span.0, span.1, ok)),
                    // `keel rollback`: the step did not run in this run, only its undo.
                    None => tl.bars.push(Bar {
                        attempts: 1,
                        ran: false,
                        rollback: Some((span.0, span.1, ok)),
                        ..Bar::new(
                            step,
                            span.0,
                            span.1,
                            if ok { Outcome::Ok } else { Outcome::Failed },
                        )
                    }),
                }
            }
            ("run-finished", _) => {
                let rolled = e
                    .get("rolled_back")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty());
                tl.outcome = format!(
                    "{}{}",
                    str_of(e, "outcome"),
                    if rolled { ", rolled back" } else { "" }
                );
            }
            ("rollback-finished", _) => tl.outcome = "rolled back".into(),
            _ => {}
        }
    }
    tl.span_ms = last.max(1);
    tl.bars.sort_by_key(|b| b.start);
    Some(tl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(t: u64, run: &str, event: &str, step: &str, extra: &str) -> String {
        let step = if step.is_empty() {
            String::new()
        } else {
            format!(",\"step\":\"{step}\"")
        };
        format!(
            "{{\"t_ms\":{t},\"ts\":\"2026-01-01T00:00:00Z\",\"run_id\":\"{run}\",\"event\":\"{event}\"{step}{extra}}}"
        )
    }

    #[test]
    fn parallel_failed_retried_and_rolled_back() {
        let log = [
            ev(1000, "old", "run-started", "", ",\"command\":\"install\""),
            ev(1500, "old", "step-started", "a", ""),
            ev(10_000, "r2", "run-started", "", ",\"command\":\"install\""),
            ev(10_010, "r2", "step-started", "packages", ""),
            ev(10_020, "r2", "step-started", "python-env", ""),
            ev(
                12_000,
                "r2",
                "step-retried",
                "python-env",
                ",\"error\":\"net\"",
            ),
            ev(
                15_000,
                "r2",
                "step-finished",
                "python-env",
                ",\"attempts\":2,\"duration_ms\":4980",
            ),
            ev(20_000, "r2", "step-finished", "packages", ",\"attempts\":1"),
            ev(20_100, "r2", "step-started", "django", ""),
            ev(
                21_000,
                "r2",
                "step-failed",
                "django",
                ",\"attempts\":1,\"error\":\"migrate\"",
            ),
            ev(21_200, "r2", "step-changes-undone", "django", ""),
            ev(
                22_000,
                "r2",
                "step-rolled-back",
                "python-env",
                ",\"duration_ms\":300",
            ),
            ev(
                22_100,
                "r2",
                "run-finished",
                "",
                ",\"outcome\":\"failed\",\"rolled_back\":[\"python-env\"]",
            ),
        ]
        .join("\n");
        let tl = last_run(&log).expect("a run");
        assert_eq!(tl.run_id, "r2");
        assert_eq!(tl.command, "install");
        assert_eq!(tl.span_ms, 12_100);
        assert_eq!(tl.outcome, "failed, rolled back");
        let ids: Vec<&str> = tl.bars.iter().map(|b| b.step.as_str()).collect();
        assert_eq!(ids, ["packages", "python-env", "django"]);
        // Side by side: python-env starts before packages ends.
        assert!(tl.bars[1].start < tl.bars[0].end);
        assert_eq!(tl.bars[1].retries, vec![(2000, "net".to_string())]);
        assert_eq!(tl.bars[1].attempts, 2);
        assert_eq!(tl.bars[1].rollback, Some((11_700, 12_000, true)));
        assert_eq!(tl.bars[2].outcome, Outcome::Failed);
        assert_eq!(tl.bars[2].undone, Some(11_200));
        assert_eq!(tl.bars[2].error, "migrate");
    }

    #[test]
    fn keel_rollback_run_and_old_events_without_ms() {
        let log = [
            r#"{"ts":"2026-01-01T00:00:00Z","run_id":"x","event":"rollback-started"}"#,
            r#"{"ts":"2026-01-01T00:00:03Z","run_id":"x","event":"step-rolled-back","step":"nginx","duration_ms":1000}"#,
            r#"{"ts":"2026-01-01T00:00:04Z","run_id":"x","event":"rollback-finished"}"#,
        ]
        .join("\n");
        let tl = last_run(&log).expect("a run");
        assert_eq!(tl.command, "rollback");
        assert_eq!(tl.bars.len(), 1);
        assert!(!tl.bars[0].ran);
        assert_eq!((tl.bars[0].start, tl.bars[0].end), (2000, 3000));
        assert_eq!(tl.outcome, "rolled back");
        assert!(last_run("not json\n").is_none());
    }
}
