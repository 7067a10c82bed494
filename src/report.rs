//! The diagnostics report: everything a ticket needs, with a verdict per section so the
//! problem is found in seconds, and nothing secret in it (known secret values, secret-looking
//! keys and URL passwords are masked before anything is written).
use crate::checks::{CheckResult, Level};
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::step::Ctx;

/// Reports kept; older ones are pruned.
const KEEP: usize = 20;
use crate::state::{State, Status};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize)]
pub struct Section {
    pub title: String,
    pub verdict: Level,
    pub summary: String,
    pub body: String,
}

fn section(
    title: &str,
    verdict: Level,
    summary: impl Into<String>,
    body: impl Into<String>,
) -> Section {
    Section {
        title: title.into(),
        verdict,
        summary: summary.into(),
        body: body.into(),
    }
}

fn sh(ctx: &Ctx, program: &str, args: &[&str]) -> (i32, String) {
    match ctx.exec.probe(
        "diagnose",
        &Cmd::new(program)
            .args(args.iter().copied())
            .timeout(std::time::Duration::from_secs(10)),
    ) {
        Ok(o) => (o.code, format!("{}{}", o.stdout, o.stderr)),
        Err(e) => (-1, e.to_string()),
    }
}

fn system(root: &Path) -> Section {
    let os = crate::system::os_release(root);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let up: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let disk = crate::system::disk_free_mb(root).unwrap_or(0);
    let body = format!(
        "os: {}\nkernel: {}\nuptime: {:.0} min\ncpus: {}\nmemory: {} MB total, {} MB available\ndisk: {} MB free on /\nload: {}",
        os.get("PRETTY_NAME").cloned().unwrap_or_default(),
        kernel.trim(),
        up / 60.0,
        crate::system::cpus(),
        crate::system::mem_total_mb(),
        crate::system::mem_available_mb(),
        disk,
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    section(
        "system",
        if disk < 1000 { Level::Warn } else { Level::Ok },
        format!("{} MB free disk", disk),
        body,
    )
}

fn steps_table(state: &State) -> Section {
    let mut body = String::new();
    if let Some(r) = &state.last_run {
        body.push_str(&format!(
            "last run {} {:?} started {} ({})\n",
            r.id, r.outcome, r.started_at, r.command
        ));
    }
    let mut bad = vec![];
    for id in crate::steps::graph().ids() {
        let r = state.step(id);
        if matches!(r.status, Status::Failed | Status::Running) {
            bad.push(id);
        }
        let err = r
            .last_error
            .map(|e| format!("  error: {} (hint: {})", e.message, e.hint))
            .unwrap_or_default();
        body.push_str(&format!(
            "{:<15} {:<12} attempts {:>2} duration {:>8}{err}\n",
            id,
            r.status.as_str(),
            r.attempts,
            r.duration_ms
                .map(|d| format!("{d}ms"))
                .unwrap_or("-".into())
        ));
    }
    let v = if bad.is_empty() {
        Level::Ok
    } else {
        Level::Error
    };
    section(
        "keel steps",
        v,
        if bad.is_empty() {
            "no failed step".to_string()
        } else {
            format!("failed/interrupted: {}", bad.join(", "))
        },
        body,
    )
}

fn events(text: &str) -> Section {
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(25)..].join("\n");
    section(
        "recent events",
        Level::Ok,
        format!("{} events in the log", lines.len()),
        tail,
    )
}

fn services(ctx: &Ctx) -> Section {
    let mut body = String::new();
    let mut down = vec![];
    for u in crate::checks::health::units(&ctx.cfg) {
        let (_, state) = sh(ctx, "systemctl", &["is-active", &u]);
        let state = state.trim().to_string();
        if state != "active" {
            down.push(format!("{u} {state}"));
        }
        let (_, journal) = sh(
            ctx,
            "journalctl",
            &["-u", &u, "-n", "10", "--no-pager", "-o", "short-iso"],
        );
        body.push_str(&format!("== {u}: {state}\n{journal}\n"));
    }
    section(
        "services",
        if down.is_empty() {
            Level::Ok
        } else {
            Level::Error
        },
        if down.is_empty() {
            "all keel units active".to_string()
        } else {
            format!("not active: {}", down.join(", "))
        },
        body,
    )
}

fn ports(root: &std::path::Path) -> Section {
    let mut body = String::new();
    let mut seen = vec![];
    for l in crate::system::listeners(root) {
        let owner = crate::system::socket_owner(l.inode)
            .map(|(p, c)| format!("{c} (pid {p})"))
            .unwrap_or("?".into());
        body.push_str(&format!("{}:{} {owner}\n", l.addr, l.port));
        seen.push(l.port);
    }
    section(
        "listening ports",
        Level::Ok,
        format!("{} listening sockets", seen.len()),
        body,
    )
}

fn permissions(ctx: &Ctx) -> Section {
    use std::os::unix::fs::MetadataExt;
    let mut body = String::new();
    let mut problems = vec![];
    let uname = |uid: u32| {
        crate::system::user_name(&ctx.paths.root, uid).unwrap_or_else(|| uid.to_string())
    };
    let secrets = std::path::PathBuf::from(ctx.cfg.secrets_dir());
    let env = ctx.cfg.env_file();
    let items: Vec<(PathBuf, Option<u32>)> = vec![
        (ctx.cfg.base_dir(), None),
        (ctx.cfg.app_dir(), None),
        (env, Some(0o640)),
        (ctx.cfg.app_dir().join("staticfiles"), None),
        (ctx.cfg.shared_dir().join("media"), None),
        (ctx.cfg.venv_dir(), None),
        (secrets.clone(), Some(0o700)),
    ];
    for (p, want) in items {
        let hp = ctx.host(&p.display().to_string());
        match std::fs::metadata(&hp) {
            Ok(md) => {
                let mode = md.mode() & 0o7777;
                body.push_str(&format!(
                    "{:o} {}:{} {}\n",
                    mode,
                    uname(md.uid()),
                    md.gid(),
                    p.display()
                ));
                if let Some(w) = want
                    && mode != w
                {
                    problems.push(format!("{} is {:o}, expected {:o}", p.display(), mode, w));
                }
            }
            Err(e) => body.push_str(&format!("missing {} ({e})\n", p.display())),
        }
    }
    if let Ok(d) = std::fs::read_dir(&ctx.secrets.dir) {
        for e in d.flatten() {
            if let Ok(md) = e.metadata() {
                let mode = md.mode() & 0o777;
                // Names only: a secret's value never enters the report.
                body.push_str(&format!(
                    "{:o} {} {}\n",
                    mode,
                    uname(md.uid()),
                    secrets.join(e.file_name()).display()
                ));
                if mode != 0o600 {
                    problems.push(format!(
                        "secret {} is {:o}",
                        e.file_name().to_string_lossy(),
                        mode
                    ));
                }
            }
        }
    }
    section(
        "permissions",
        if problems.is_empty() {
            Level::Ok
        } else {
            Level::Error
        },
        if problems.is_empty() {
            "as expected".to_string()
        } else {
            problems.join("; ")
        },
        body,
    )
}

fn backups(ctx: &Ctx) -> Section {
    let dir = crate::backup::dir(ctx);
    let list = crate::backup::list(&ctx.cfg.app.name, &dir);
    let body: String = list
        .iter()
        .map(|e| format!("{}  {} bytes\n", e.name, e.size))
        .collect();
    let last = match crate::backup::last_run(ctx) {
        Some((true, _)) => "last run ok".to_string(),
        Some((false, e)) => format!("last run FAILED: {e}"),
        None => "no run recorded".to_string(),
    };
    section(
        "backups",
        if list.is_empty() || last.contains("FAILED") {
            Level::Warn
        } else {
            Level::Ok
        },
        format!(
            "{} in {}; {last}",
            list.len(),
            ctx.paths.unhost(&dir).display()
        ),
        body,
    )
}

fn python(ctx: &Ctx) -> Section {
    let venv = ctx.host(&ctx.cfg.venv_dir().display().to_string());
    match crate::app::venv::packages(&venv) {
        Ok(p) if !p.is_empty() => section(
            "python packages",
            Level::Ok,
            format!("{} packages in {}", p.len(), venv.display()),
            p.join("\n"),
        ),
        Ok(_) => section(
            "python packages",
            Level::Warn,
            "no packages in the virtualenv",
            "",
        ),
        Err(_) => section("python packages", Level::Warn, "no virtualenv yet", ""),
    }
}

fn connectivity(ctx: &Ctx) -> Section {
    let pg = crate::pg::app_sql(ctx, "diagnose", "SELECT version();");
    let rd = crate::probe::redis(ctx, "diagnose");
    let mut body = String::new();
    body.push_str(&match &pg {
        Ok(v) => format!("postgres: ok, {}\n", v.trim()),
        Err(e) => format!("postgres: ERROR {} (hint: {})\n", e.msg, e.hint),
    });
    body.push_str(&match &rd {
        Ok(()) => "redis: ok (auth required and working)\n".to_string(),
        Err(e) => format!("redis: ERROR {} (hint: {})\n", e.msg, e.hint),
    });
    let ok = pg.is_ok() && rd.is_ok();
    section(
        "postgres and redis",
        if ok { Level::Ok } else { Level::Error },
        if ok { "both answer" } else { "see below" },
        body,
    )
}

fn nginx(ctx: &Ctx) -> Section {
    let (code, out) = sh(ctx, "nginx", &["-t"]);
    section(
        "nginx -t",
        if code == 0 { Level::Ok } else { Level::Error },
        if code == 0 {
            "configuration ok"
        } else {
            "configuration broken"
        },
        out,
    )
}

/// The certificate in place, its issuer and expiry, and the renewal timer's last result.
fn tls(ctx: &Ctx) -> Section {
    use crate::site;
    let cfg = &ctx.cfg;
    let mode = cfg.tls_mode();
    if !cfg.tls_on() {
        return section(
            "tls",
            Level::Ok,
            "off (plain HTTP)",
            "set [tls] in keel.toml for HTTPS",
        );
    }
    let (cert, key) = site::cert_paths(cfg).expect("TLS is on");
    let mut body = format!(
        "mode: {}\nnames: {}\ncertificate: {cert}\nkey: {key}",
        mode.as_str(),
        cfg.tls_names().join(", ")
    );
    if let Some(st) = crate::fsx::lstat(&ctx.host(&key)).ok().flatten() {
        body.push_str(&format!(
            " (mode {:o}, uid {})",
            st.st_mode & 0o7777,
            st.st_uid
        ));
    }
    let now = crate::certs::now();
    let (mut level, summary) = match site::installed(ctx) {
        Some(c) => {
            body.push_str(&format!(
                "\nsubject: {}\nissuer: {}\nserial: {}\nnames in it: {}\nexpires: {} ({} days left)",
                c.subject,
                c.issuer,
                c.serial,
                c.names.join(", "),
                time::OffsetDateTime::from_unix_timestamp(c.not_after).map(|t| t.to_string()).unwrap_or_default(),
                c.days_left(now)
            ));
            let l = if c.expired(now) {
                Level::Error
            } else if c.days_left(now) < crate::certs::SHORT_DAYS {
                Level::Warn
            } else {
                Level::Ok
            };
            (
                l,
                format!("{} days left, issuer {}", c.days_left(now), c.issuer),
            )
        }
        None => (Level::Error, "no certificate in place".to_string()),
    };
    if mode == crate::config::TlsMode::Acme {
        let (_, timer) = sh(
            ctx,
            "systemctl",
            &[
                "show",
                crate::certs::RENEWAL_TIMER,
                "-p",
                "ActiveState",
                "-p",
                "LastTriggerUSec",
                "-p",
                "NextElapseUSecRealtime",
            ],
        );
        let (_, svc) = sh(
            ctx,
            "systemctl",
            &[
                "show",
                "certbot.service",
                "-p",
                "Result",
                "-p",
                "ExecMainStatus",
                "-p",
                "ExecMainExitTimestamp",
            ],
        );
        body.push_str(&format!(
            "\nrenewal timer ({}):\n{}\nlast renewal run (certbot.service):\n{}",
            crate::certs::RENEWAL_TIMER,
            timer.trim(),
            svc.trim()
        ));
        if !timer.contains("ActiveState=active") {
            level = Level::Warn;
        }
        if svc.contains("Result=") && !svc.contains("Result=success") {
            level = Level::Warn;
        }
        body.push_str(&format!(
            "\nrenewal hook: {} ({})",
            site::RENEWAL_HOOK,
            if ctx.host(site::RENEWAL_HOOK).exists() {
                "present"
            } else {
                "missing"
            }
        ));
    }
    section("tls", level, summary, body)
}

/// Health check results for the report: the verify step's (after an install) or the full
/// set `keel verify` runs (`keel diagnose`).
pub struct Health {
    /// "healthy", "degraded" or "unhealthy".
    pub verdict: String,
    pub checks: Vec<(CheckResult, bool)>,
    pub from: String,
}

impl Health {
    /// The verify step's end-to-end checks from this run, if it ran them.
    pub fn from_run(checks: &[CheckResult]) -> Option<Health> {
        let checks = checks.to_vec();
        (!checks.is_empty()).then(|| Health {
            verdict: if checks.iter().all(|c| c.level.fine()) {
                "healthy"
            } else {
                "unhealthy"
            }
            .into(),
            checks: checks.into_iter().map(|c| (c, true)).collect(),
            from:
                "the verify step's end-to-end checks in this run (keel diagnose runs every check)"
                    .into(),
        })
    }
}

fn health_section(h: &Health) -> Section {
    let mut body = String::new();
    for (c, critical) in &h.checks {
        body.push_str(&format!(
            "{:<28} {:<5} {:>6} ms  {}{}\n",
            c.name,
            c.level.as_str(),
            c.duration_ms,
            c.message,
            if *critical { "" } else { " (non-critical)" }
        ));
    }
    let worst = h
        .checks
        .iter()
        .map(|(c, _)| c.level)
        .max()
        .unwrap_or(Level::Ok);
    section("health checks", worst, h.verdict.clone(), body)
}

/// Build the report. `full`: probe services too (skipped after a run where nothing ran, to
/// keep a no-op fast).
pub fn build(
    ctx: &Ctx,
    state: &State,
    full: bool,
    health: Option<&Health>,
    events_log: &str,
) -> Vec<Section> {
    let mut v = vec![system(&ctx.paths.root), steps_table(state)];
    v.extend(health.map(health_section));
    if full {
        v.extend([
            services(ctx),
            ports(&ctx.paths.root),
            permissions(ctx),
            connectivity(ctx),
            nginx(ctx),
            tls(ctx),
            python(ctx),
            backups(ctx),
        ]);
    }
    v.push(events(events_log));
    v
}

pub fn redact(ctx: &Ctx, text: &str) -> String {
    crate::redact::mask_secret_assignments(&ctx.exec.redactor.redact(text))
}

pub fn render_text(sections: &[Section]) -> String {
    let mark = |l: Level| match l {
        Level::NotChecked => "n/c  ",
        Level::Ok => "ok   ",
        Level::Warn => "WARN ",
        Level::Error => "ERROR",
    };
    let mut s = format!("keel diagnostics — {}\n\nSUMMARY\n", crate::paths::now());
    for x in sections {
        s.push_str(&format!(
            "  {} {:<20} {}\n",
            mark(x.verdict),
            x.title,
            x.summary
        ));
    }
    for x in sections {
        s.push_str(&format!(
            "\n===== {} [{}] {}\n{}\n",
            x.title,
            mark(x.verdict).trim(),
            x.summary,
            x.body.trim_end()
        ));
    }
    s
}

/// The page's verdict: the checks' when there are any, else the worst section's.
fn verdict(state: &State, sections: &[Section], health: Option<&Health>) -> String {
    if let Some(h) = health {
        return h.verdict.clone();
    }
    if state
        .last_run
        .as_ref()
        .is_some_and(|r| r.outcome == crate::state::RunOutcome::Failed)
    {
        return "failed".into();
    }
    sections
        .iter()
        .map(|s| s.verdict)
        .max()
        .unwrap_or(Level::Ok)
        .as_str()
        .into()
}

/// Write diagnostics-<ts>.txt/.json/.html (0600) and point diagnostics-latest.* at them.
pub fn write_with(
    ctx: &Ctx,
    state: &State,
    full: bool,
    health: Option<&Health>,
) -> Result<(PathBuf, PathBuf)> {
    // The event log, read once: its tail is a section, its last run the timeline.
    let events = std::fs::read_to_string(ctx.paths.events_file()).unwrap_or_default();
    let sections = build(ctx, state, full, health, &events);
    let dir = ctx.paths.log_dir();
    crate::paths::private_dir(&dir);
    let now = crate::paths::now();
    let ts = now.replace([':', '-'], "");
    let txt = dir.join(format!("diagnostics-{ts}.txt"));
    let json = dir.join(format!("diagnostics-{ts}.json"));
    let html = dir.join(format!("diagnostics-{ts}.html"));
    let text = redact(ctx, &render_text(&sections));
    let j = redact(
        ctx,
        &serde_json::to_string_pretty(
            &serde_json::json!({"generated_at": now, "sections": sections}),
        )
        .map_err(anyhow::Error::from)?,
    );
    let timeline = crate::timeline::last_run(&events);
    let views: Vec<crate::html::SectionView> = sections
        .iter()
        .map(|s| crate::html::SectionView {
            title: &s.title,
            verdict: s.verdict,
            summary: &s.summary,
            body: &s.body,
        })
        .collect();
    let page = crate::html::Page {
        app: &ctx.cfg.app.name,
        generated_at: &now,
        verdict: &verdict(state, &sections, health),
        sections: &views,
        checks: health.map(|h| h.checks.as_slice()).unwrap_or(&[]),
        checks_from: health
            .map(|h| h.from.as_str())
            .unwrap_or("no checks ran in this run: keel diagnose or keel verify runs them"),
        timeline: timeline.as_ref(),
    };
    // Each text is masked before it is escaped; the page once more as a whole.
    let page = redact(ctx, &crate::html::render(&page, &|s| redact(ctx, s)));
    for (p, body) in [(&txt, text), (&json, j), (&html, page)] {
        crate::txn::write_atomic(p, body.as_bytes(), 0o600, None)
            .map_err(|e| Error::io(p.as_path(), e))?;
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("txt");
        let link = dir.join(format!("diagnostics-latest.{ext}"));
        let tmp = dir.join(format!(".diagnostics-latest.{ext}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(p.file_name().expect("file name"), &tmp)
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &link).map_err(|e| Error::io(&link, e))?;
    }
    prune(&dir);
    Ok((txt, html))
}

fn prune(dir: &Path) {
    let mut reports: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("diagnostics-2") && n.ends_with(".txt"))
        })
        .collect();
    reports.sort();
    for old in reports.iter().rev().skip(KEEP) {
        let _ = std::fs::remove_file(old);
        let _ = std::fs::remove_file(old.with_extension("json"));
        let _ = std::fs::remove_file(old.with_extension("html"));
    }
}

pub fn write(ctx: &Ctx, state_file: &Path, health: Option<&Health>) -> Result<(PathBuf, PathBuf)> {
    let st = State::load(state_file)?;
    write_with(ctx, &st, true, health)
}
