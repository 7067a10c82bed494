//! `keel logs [PROCESS...] [-f] [-n N] [--since WHEN] [--failed]`: the app's processes,
//! nginx and keel's own runs, interleaved by time with the process named.
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::cli::Output;
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::step::Ctx;
use serde_json::{Value, json};
use std::path::PathBuf;

const LOG: &str = "logs";
/// What `keel logs` can show, in this order when none is named.
pub const PROCESSES: &[&str] = &["web", "worker", "beat", "nginx", "keel"];
const DEFAULT: &[&str] = &["web", "worker", "beat"];

pub struct Opts<'a> {
    pub processes: &'a [String],
    pub follow: bool,
    pub lines: u32,
    pub since: Option<&'a str>,
    pub failed: bool,
}

/// One line of one process.
#[derive(Debug, Clone)]
struct Entry {
    /// Microseconds since the epoch (0: unknown, sorts first).
    t_us: i64,
    process: String,
    message: String,
}

pub fn run(inv: &Invocation, o: Opts) -> Result<()> {
    let cli = &inv.cli;
    let names: Vec<String> = if o.processes.is_empty() {
        DEFAULT.iter().map(|s| s.to_string()).collect()
    } else {
        o.processes.to_vec()
    };
    if let Some(bad) = names.iter().find(|n| !PROCESSES.contains(&n.as_str())) {
        return Err(Error::usage(
            format!("keel logs {bad}: no such process"),
            format!("name some of: {}", PROCESSES.join(", ")),
        ));
    }
    if o.failed && (o.follow || !o.processes.is_empty()) {
        return Err(Error::usage(
            "keel logs --failed takes no process and no --follow",
            "run keel logs --failed alone",
        ));
    }
    let cfg = inv.config()?;
    let mut co = CtxOptions::new(inv, "logs");
    co.quiet = true;
    let ctx = build_ctx(cfg, co);
    let json = cli.output == Output::Json;
    if o.failed {
        return failed(&ctx, json);
    }
    let since = o.since.map(|w| since_us(&ctx, w)).transpose()?;
    let mut all = vec![];
    for n in &names {
        all.extend(read(&ctx, n, o.lines, since));
    }
    all.sort_by_key(|e| e.t_us);
    let skip = all.len().saturating_sub(o.lines as usize);
    for e in &all[skip..] {
        print(&ctx, e, json);
    }
    if o.follow {
        follow(&ctx, &names, json);
    }
    Ok(())
}

fn unit(ctx: &Ctx, process: &str) -> String {
    format!("{}-{process}.service", ctx.cfg.app.name)
}

fn nginx_files(ctx: &Ctx) -> [(PathBuf, &'static str); 2] {
    let app = &ctx.cfg.app.name;
    [
        (
            ctx.host(&format!("/var/log/nginx/{app}.access.log")),
            "nginx",
        ),
        (
            ctx.host(&format!("/var/log/nginx/{app}.error.log")),
            "nginx-error",
        ),
    ]
}

/// The last `n` lines of one process (since `since`, in microseconds).
fn read(ctx: &Ctx, process: &str, n: u32, since: Option<i64>) -> Vec<Entry> {
    let keep = |e: &Entry| since.is_none_or(|s| e.t_us >= s);
    match process {
        "nginx" => nginx_files(ctx)
            .iter()
            .flat_map(|(f, name)| {
                tail_file(f, n)
                    .into_iter()
                    .map(move |l| nginx_entry(name, &l))
            })
            .filter(keep)
            .collect(),
        "keel" => tail_file(&ctx.paths.events_file(), n.max(1) * 4)
            .iter()
            .filter_map(|l| keel_entry(l))
            .filter(keep)
            .collect(),
        p => {
            let mut args = vec![
                "-u".to_string(),
                unit(ctx, p),
                "-n".into(),
                n.to_string(),
                "-o".into(),
                "json".into(),
                "--no-pager".into(),
                "-q".into(),
            ];
            if let Some(s) = since {
                args.extend(["--since".into(), format!("@{}", s / 1_000_000)]);
            }
            let cmd = Cmd::new("journalctl").args(args).unlogged_output();
            match ctx.exec.probe(LOG, &cmd) {
                Ok(o) => o
                    .stdout
                    .lines()
                    .filter_map(|l| journal_entry(ctx, l))
                    .filter(keep)
                    .collect(),
                Err(e) => vec![Entry {
                    t_us: 0,
                    process: p.into(),
                    message: format!("(its journal could not be read: {e})"),
                }],
            }
        }
    }
}

/// The last `n` lines of a file, read without following a link; none when it is absent.
fn tail_file(path: &std::path::Path, n: u32) -> Vec<String> {
    let Ok(Some(text)) = crate::fsx::read_text_nofollow(path, 64 * 1024 * 1024) else {
        return vec![];
    };
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n as usize);
    lines[skip..].iter().map(|s| s.to_string()).collect()
}

/// A journal record (`journalctl -o json`) as an entry named after the app's unit.
fn journal_entry(ctx: &Ctx, line: &str) -> Option<Entry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let t_us = v["__REALTIME_TIMESTAMP"].as_str()?.parse().ok()?;
    // systemd's own lines about the unit (Started, Stopped) carry it as UNIT.
    let u = v["_SYSTEMD_UNIT"]
        .as_str()
        .filter(|u| u.starts_with(&format!("{}-", ctx.cfg.app.name)))
        .or(v["UNIT"].as_str())
        .unwrap_or("");
    let process = u
        .strip_suffix(".service")
        .and_then(|u| u.strip_prefix(&format!("{}-", ctx.cfg.app.name)))
        .unwrap_or(u)
        .to_string();
    // MESSAGE is an array of bytes when it is not valid UTF-8.
    let message = match &v["MESSAGE"] {
        Value::String(s) => s.clone(),
        Value::Array(b) => {
            let bytes: Vec<u8> = b
                .iter()
                .filter_map(|x| x.as_u64().map(|x| x as u8))
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => String::new(),
    };
    Some(Entry {
        t_us,
        process,
        message,
    })
}

/// nginx's access log (`[03/Dec/2026:13:07:06 +0000]`) and error log (`2026/12/03
/// 13:07:06`, the server's local time, taken as UTC) lines.
fn nginx_entry(process: &str, line: &str) -> Entry {
    use time::macros::format_description;
    let access = line
        .split_once('[')
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(t, _)| {
            time::OffsetDateTime::parse(
                t,
                format_description!(
                    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] [offset_hour][offset_minute]"
                ),
            )
            .ok()
        });
    let error = || {
        line.get(..19).and_then(|t| {
            time::PrimitiveDateTime::parse(
                t,
                format_description!("[year]/[month]/[day] [hour]:[minute]:[second]"),
            )
            .ok()
            .map(|p| p.assume_utc())
        })
    };
    let t = access.or_else(error);
    Entry {
        t_us: t
            .map(|t| (t.unix_timestamp_nanos() / 1000) as i64)
            .unwrap_or(0),
        process: process.into(),
        message: line.to_string(),
    }
}

/// A line of keel's events as keel's own log line.
fn keel_entry(line: &str) -> Option<Entry> {
    let v: Value = serde_json::from_str(line).ok()?;
    let t_us = v["t_ms"].as_i64()? * 1000;
    let mut message = v["event"].as_str()?.to_string();
    for k in ["step", "release", "error", "outcome", "file"] {
        if let Some(s) = v[k].as_str() {
            message.push_str(&format!(" {k}={s}"));
        }
    }
    Some(Entry {
        t_us,
        process: "keel".into(),
        message,
    })
}

fn print(ctx: &Ctx, e: &Entry, json: bool) {
    let message = ctx
        .exec
        .redactor
        .redact(&crate::exec::strip_controls(&e.message));
    let ts = time::OffsetDateTime::from_unix_timestamp_nanos(e.t_us as i128 * 1000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_else(|| "-".into());
    if json {
        println!(
            "{}",
            json!({"ts": ts, "process": e.process, "message": message})
        );
    } else {
        println!("{ts} {:<11} {message}", e.process);
    }
}

/// `--since WHEN` as systemd reads a time (`1h ago`, `-30min`, `today`, `2026-12-03
/// 10:00`), in microseconds; refused (exit 2) when systemd cannot read it.
fn since_us(ctx: &Ctx, when: &str) -> Result<i64> {
    let bad = |why: String| {
        Error::usage(
            format!("--since {when}: {why}"),
            "give a time as systemd reads it: \"1h ago\", \"-30min\", \"today\", \"2026-12-03 10:00\"",
        )
    };
    let out = ctx
        .exec
        .probe(LOG, &Cmd::new("systemd-analyze").args(["timestamp", when]))
        .map_err(|e| bad(e.to_string()))?;
    if out.code != 0 {
        return Err(bad(out.stderr.trim().to_string()));
    }
    out.stdout
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("From epoch:")
                .or(l.trim().strip_prefix("UNIX seconds:"))
        })
        .and_then(|v| v.trim().trim_start_matches('@').parse::<f64>().ok())
        .map(|s| (s * 1e6) as i64)
        .ok_or_else(|| bad("systemd-analyze printed no time".into()))
}

/// New lines as they come, until keel is stopped: the units through `journalctl -f`,
/// nginx's files through `tail -F`, keel's events likewise.
fn follow(ctx: &Ctx, names: &[String], json: bool) {
    let (tx, rx) = std::sync::mpsc::channel::<Entry>();
    let mut sources: Vec<(String, Cmd)> = vec![];
    let units: Vec<String> = names
        .iter()
        .filter(|n| !["nginx", "keel"].contains(&n.as_str()))
        .map(|n| unit(ctx, n))
        .collect();
    if !units.is_empty() {
        let mut args = vec![];
        for u in &units {
            args.extend(["-u".to_string(), u.clone()]);
        }
        args.extend(["-f", "-n", "0", "-o", "json", "--no-pager", "-q"].map(String::from));
        sources.push(("journal".into(), Cmd::new("journalctl").args(args)));
    }
    if names.iter().any(|n| n == "nginx") {
        for (f, name) in nginx_files(ctx) {
            sources.push((name.into(), tail_f(&f)));
        }
    }
    if names.iter().any(|n| n == "keel") {
        sources.push(("keel".into(), tail_f(&ctx.paths.events_file())));
    }
    std::thread::scope(|s| {
        for (kind, cmd) in &sources {
            let tx = tx.clone();
            s.spawn(move || {
                let _ = ctx
                    .exec
                    .follow(LOG, &cmd.clone().unlogged_output(), &mut |l| {
                        let e = match kind.as_str() {
                            "journal" => journal_entry(ctx, l),
                            "keel" => keel_entry(l),
                            name => Some(nginx_entry(name, l)),
                        };
                        e.is_none_or(|e| tx.send(e).is_ok())
                    });
            });
        }
        drop(tx);
        for e in rx {
            print(ctx, &e, json);
        }
    });
}

/// `tail -F` from the end: a file rotated or made later is followed too.
fn tail_f(path: &std::path::Path) -> Cmd {
    Cmd::new("tail").args(["-n", "0", "-F", &path.display().to_string()])
}

/// The output of the last failed install step, deploy or backup, from keel's step logs.
fn failed(ctx: &Ctx, json: bool) -> Result<()> {
    let events = tail_file(&ctx.paths.events_file(), 100_000);
    let parsed: Vec<Value> = events
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let failure = parsed.iter().rev().find(|v| {
        matches!(
            v["event"].as_str(),
            Some(
                "step-failed"
                    | "deploy-failed"
                    | "deploy-rolled-back"
                    | "backup-failed"
                    | "schedule-failed"
            )
        )
    });
    let Some(f) = failure else {
        if json {
            println!("{}", json!({"failed": null}));
        } else {
            println!("no failed install, deploy or backup in keel's events");
        }
        return Ok(());
    };
    let event = f["event"].as_str().unwrap_or("");
    let log = match event {
        "step-failed" => f["step"].as_str().unwrap_or("").to_string(),
        "backup-failed" => "backup".into(),
        _ => "deploy".into(),
    };
    let run = f["run_id"].as_str().unwrap_or("");
    // The run's first event: the log's blocks from then on are the run's.
    let start = parsed
        .iter()
        .find(|v| v["run_id"].as_str() == Some(run))
        .and_then(|v| v["ts"].as_str())
        .unwrap_or("")
        .to_string();
    let error = f["error"].as_str().unwrap_or("");
    // A scheduled command's output is in its unit's journal.
    if event == "schedule-failed" {
        let unit = f["unit"].as_str().unwrap_or("");
        let cmd = Cmd::new("journalctl")
            .args([
                "-u",
                unit,
                "-n",
                "100",
                "--no-pager",
                "-q",
                "-o",
                "short-iso",
            ])
            .unlogged_output();
        let out = ctx
            .exec
            .probe(LOG, &cmd)
            .map(|o| o.stdout)
            .unwrap_or_default();
        let head = format!(
            "{} {event} ({unit}): {error}",
            f["ts"].as_str().unwrap_or("")
        );
        show_failure(
            ctx,
            json,
            f,
            unit,
            &head,
            &format!("--- journalctl -u {unit}:"),
            &out,
        );
        return Ok(());
    }
    let path = ctx.paths.log_dir().join("steps").join(format!("{log}.log"));
    let text = crate::fsx::read_text_nofollow(&path, 64 * 1024 * 1024)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut out = String::new();
    let mut on = false;
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("--- ") {
            let ts = rest.split(' ').next().unwrap_or("");
            on = ts >= start.as_str();
        }
        if on {
            out.push_str(l);
            out.push('\n');
        }
    }
    let head = format!(
        "{} {event} ({log}, run {run}): {error}",
        f["ts"].as_str().unwrap_or("")
    );
    let from = format!("--- {} from {start}:", ctx.paths.unhost(&path).display());
    show_failure(ctx, json, f, &log, &head, &from, &out);
    Ok(())
}

/// A failure's output, masked and without control characters: one JSON document, or a
/// head line, where the output comes from, and the output.
fn show_failure(ctx: &Ctx, json: bool, f: &Value, log: &str, head: &str, from: &str, out: &str) {
    let out = ctx.exec.redactor.redact(&crate::exec::strip_controls(out));
    if json {
        println!(
            "{}",
            json!({"failed": {"event": f["event"], "log": log, "run_id": f["run_id"], "at": f["ts"], "error": f["error"].as_str().unwrap_or(""), "output": out}})
        );
    } else {
        println!("{head}");
        println!("{from}");
        print!("{out}");
    }
}
