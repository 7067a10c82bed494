//! The diagnostics report as one self-contained HTML page: inline CSS and SVG, no script,
//! no external asset, so it opens from a `file://` URL on a laptop with no network. Every
//! text goes through the caller's redaction first and is escaped after (a secret holding
//! `&` or `<` would no longer match its mask once escaped).
use crate::checks::{CheckResult, Level};
use crate::timeline::{Outcome, Timeline};
use std::fmt::Write;

/// One section of the text report, as the page shows it.
pub struct SectionView<'a> {
    pub title: &'a str,
    pub verdict: Level,
    pub summary: &'a str,
    pub body: &'a str,
}

pub struct Page<'a> {
    pub app: &'a str,
    pub generated_at: &'a str,
    /// "healthy", "degraded" or "unhealthy" (or a section verdict when no check ran).
    pub verdict: &'a str,
    pub sections: &'a [SectionView<'a>],
    /// (check, critical), and where the results came from.
    pub checks: &'a [(CheckResult, bool)],
    pub checks_from: &'a str,
    pub timeline: Option<&'a Timeline>,
}

pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1040px;padding:16px;color:#1b1b1b}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:24px 0 8px}
.verdict{padding:14px 18px;border-radius:6px;color:#fff;margin-bottom:8px}
.v-healthy,.v-ok{background:#2e7d32}.v-degraded,.v-warn{background:#b26a00}.v-unhealthy,.v-error,.v-failed{background:#c62828}
.meta{color:#555}table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}.l-ok{color:#2e7d32}.l-warn{color:#b26a00}.l-error{color:#c62828;font-weight:600}
pre{background:#f6f6f6;padding:8px;overflow-x:auto;white-space:pre-wrap;font-size:12px}
details{margin:6px 0}summary{cursor:pointer}
svg text{font:12px system-ui,sans-serif}.legend span{display:inline-block;margin-right:14px}
.sw{display:inline-block;width:12px;height:12px;vertical-align:middle;margin-right:4px}";

const ROW: u64 = 24;
const LEFT: u64 = 130;
const WIDTH: u64 = 1000;
const RIGHT: u64 = 70;

fn colour(o: Outcome) -> &'static str {
    match o {
        Outcome::Ok => "#2e7d32",
        Outcome::Failed => "#c62828",
        Outcome::Cut => "#f9a825",
    }
}

fn secs(ms: u64) -> String {
    if ms < 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{:.0} s", ms as f64 / 1000.0)
    }
}

/// A tick every 1, 2 or 5 × 10^k ms: at most about ten on the axis.
fn tick(span: u64) -> u64 {
    let mut t = 100;
    loop {
        for m in [1, 2, 5] {
            if span / (t * m) <= 10 {
                return t * m;
            }
        }
        t *= 10;
    }
}

/// The timeline as inline SVG: a row per step, x = time since the run started. Each run bar
/// is a `rect.bar` with `data-step`, so a test can count them in the rendered DOM.
pub fn timeline_svg(tl: &Timeline, red: &dyn Fn(&str) -> String) -> String {
    let plot = WIDTH - LEFT - RIGHT;
    let x = |ms: u64| LEFT + ms * plot / tl.span_ms.max(1);
    let height = 30 + ROW * tl.bars.len() as u64 + 10;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"timeline\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"timeline of run {}\">",
        esc(&tl.run_id)
    );
    let step = tick(tl.span_ms);
    let mut t = 0;
    while t <= tl.span_ms {
        let _ = write!(
            s,
            "<line x1=\"{0}\" x2=\"{0}\" y1=\"18\" y2=\"{1}\" stroke=\"#e3e3e3\"/><text x=\"{0}\" y=\"12\" text-anchor=\"middle\" fill=\"#666\">{2}</text>",
            x(t),
            height - 8,
            secs(t)
        );
        t += step;
    }
    for (i, b) in tl.bars.iter().enumerate() {
        let y = 24 + ROW * i as u64;
        let (x0, x1) = (x(b.start), x(b.end).max(x(b.start) + 2));
        let tip = format!(
            "{}: {} in {}{}{}",
            b.step,
            b.outcome.as_str(),
            secs(b.end - b.start),
            if b.attempts > 1 {
                format!(", {} attempts", b.attempts)
            } else {
                String::new()
            },
            if b.error.is_empty() {
                String::new()
            } else {
                format!(": {}", b.error)
            }
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            LEFT - 8,
            y + 13,
            esc(&b.step)
        );
        // A step that ran has its bar even when it took under a millisecond.
        if b.ran {
            let _ = write!(
                s,
                "<rect class=\"bar {}\" data-step=\"{}\" x=\"{x0}\" y=\"{y}\" width=\"{}\" height=\"16\" rx=\"2\" fill=\"{}\"><title>{}</title></rect>",
                b.outcome.as_str(),
                esc(&b.step),
                x1 - x0,
                colour(b.outcome),
                esc(&red(&tip))
            );
        }
        for (t, why) in &b.retries {
            let _ = write!(
                s,
                "<path class=\"retry\" d=\"M{0} {1} l-5 -7 h10 z\" fill=\"#f57c00\"><title>retried: {2}</title></path>",
                x(*t),
                y + 2,
                esc(&red(why))
            );
        }
        if let Some((r0, r1, ok)) = b.rollback {
            let (a, z) = (x(r0), x(r1).max(x(r0) + 3));
            let _ = write!(
                s,
                "<rect class=\"rollback\" data-step=\"{}\" x=\"{a}\" y=\"{}\" width=\"{}\" height=\"12\" fill=\"{}\" stroke=\"#4a148c\"><title>{} rolled back{}</title></rect>",
                esc(&b.step),
                y + 2,
                z - a,
                if ok { "#b39ddb" } else { "#c62828" },
                esc(&b.step),
                if ok { "" } else { " (failed)" }
            );
        }
        let label_end = b.rollback.map(|r| x(r.1)).unwrap_or(x1).max(x1);
        let _ = write!(
            s,
            "<text class=\"dur\" x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>",
            label_end + 4,
            y + 13,
            secs(b.end - b.start)
        );
        if b.undone.is_some() {
            let _ = write!(
                s,
                "<text class=\"undone\" x=\"{}\" y=\"{}\" fill=\"#6a1b9a\">&#8634; undone</text>",
                label_end + 48,
                y + 13
            );
        }
    }
    s.push_str("</svg>");
    s
}

pub fn render(p: &Page, red: &dyn Fn(&str) -> String) -> String {
    let e = |s: &str| esc(&red(s));
    let mut h = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>keel diagnostics: {} ({})</title><style>{STYLE}</style></head><body>\n",
        e(p.app),
        e(p.verdict)
    );
    let _ = writeln!(
        h,
        "<div class=\"verdict v-{0}\" id=\"verdict\"><h1>{1}: {0}</h1></div><p class=\"meta\">keel {2} diagnostics, generated {3}</p>",
        esc(p.verdict),
        e(p.app),
        env!("CARGO_PKG_VERSION"),
        e(p.generated_at)
    );
    h.push_str("<h2>The last run</h2>\n");
    match p.timeline {
        Some(tl) => {
            let _ = writeln!(
                h,
                "<p>{} {}: {}, {} step(s) in {}.</p>\n{}\n<p class=\"legend\"><span><i class=\"sw\" style=\"background:#2e7d32\"></i>done</span><span><i class=\"sw\" style=\"background:#c62828\"></i>failed</span><span><i class=\"sw\" style=\"background:#f9a825\"></i>cut (killed)</span><span><i class=\"sw\" style=\"background:#b39ddb\"></i>rolled back</span><span style=\"color:#f57c00\">&#9660; retry</span><span style=\"color:#6a1b9a\">&#8634; the failed step's changes undone</span></p>",
                e(&tl.command),
                e(&tl.run_id),
                e(&tl.outcome),
                tl.bars.len(),
                secs(tl.span_ms),
                timeline_svg(tl, red)
            );
        }
        None => h.push_str("<p>No run in the event log.</p>\n"),
    }
    let _ = writeln!(
        h,
        "<h2>Health checks</h2>\n<p class=\"meta\">{}</p>\n<table id=\"checks\"><tr><th>check</th><th>result</th><th>ms</th><th>message</th></tr>",
        e(p.checks_from)
    );
    for (c, critical) in p.checks {
        let _ = writeln!(
            h,
            "<tr><td>{}{}</td><td class=\"l-{2}\">{2}</td><td class=\"n\">{3}</td><td>{4}{5}</td></tr>",
            e(&c.name),
            if *critical {
                ""
            } else {
                " <small>(non-critical)</small>"
            },
            c.level.as_str(),
            c.duration_ms,
            e(&c.message),
            if c.hint.is_empty() {
                String::new()
            } else {
                format!("<br><small>hint: {}</small>", e(&c.hint))
            }
        );
    }
    h.push_str("</table>\n<h2>Sections</h2>\n<table id=\"summary\">\n");
    for s in p.sections {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"l-{1}\">{1}</td><td>{2}</td></tr>",
            e(s.title),
            s.verdict.as_str(),
            e(s.summary)
        );
    }
    h.push_str("</table>\n");
    for s in p.sections {
        let _ = writeln!(
            h,
            "<details{}><summary><b>{}</b> <span class=\"l-{2}\">{2}</span> {3}</summary><pre>{4}</pre></details>",
            if s.verdict == Level::Ok { "" } else { " open" },
            e(s.title),
            s.verdict.as_str(),
            e(s.summary),
            e(s.body.trim_end())
        );
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Bar;

    fn bar(step: &str, start: u64, end: u64, outcome: Outcome) -> Bar {
        Bar::new(step, start, end, outcome)
    }

    #[test]
    fn bars_escaping_and_redaction() {
        let mut b2 = bar("django", 500, 900, Outcome::Failed);
        b2.error = "password hunter2 & <x>".into();
        b2.retries = vec![(600, "hunter2 again".into())];
        b2.undone = Some(950);
        let tl = Timeline {
            run_id: "r1".into(),
            command: "install".into(),
            started_ms: 0,
            span_ms: 1000,
            outcome: "failed".into(),
            bars: vec![
                bar("packages", 0, 400, Outcome::Ok),
                b2,
                // Under a millisecond, then rolled back: still its own run bar.
                Bar {
                    rollback: Some((960, 990, true)),
                    ..bar("firewall", 401, 401, Outcome::Ok)
                },
            ],
        };
        let red = |s: &str| s.replace("hunter2", "********");
        let sections = vec![SectionView {
            title: "env <b>",
            verdict: Level::Warn,
            summary: "s",
            body: "SECRET=hunter2",
        }];
        let page = Page {
            app: "demo",
            generated_at: "now",
            verdict: "degraded",
            sections: &sections,
            checks: &[],
            checks_from: "none",
            timeline: Some(&tl),
        };
        let html = render(&page, &red);
        assert_eq!(html.matches("<rect class=\"bar ").count(), 3);
        assert!(html.contains("<rect class=\"rollback\" data-step=\"firewall\""));
        assert!(html.contains("data-step=\"django\""));
        assert!(html.contains("class=\"retry\""));
        assert!(html.contains("undone"));
        assert!(!html.contains("hunter2"));
        assert!(html.contains("env &lt;b&gt;"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") || html.matches("http://").count() == 1); // the SVG namespace only
    }

    #[test]
    fn ticks_stay_few() {
        for span in [50, 999, 4_000, 45_000, 600_000, 7_200_000] {
            assert!(span / tick(span) <= 10, "span {span}");
        }
    }
}
