//! `keel plan`: the step graph in order, with what the next install would do; and the
//! dry-run table of `install --dry-run`.
use super::context::{CtxOptions, Invocation, build_ctx};
use crate::cli::{Cli, Output};
use crate::engine::{self, InstallOpts};
use crate::error::Result;
use crate::graph::{Graph, Reason};
use crate::state::State;
use crate::step::{Ctx, Step};
use crate::steps;
use serde_json::json;

pub fn print_plan(
    cli: &Cli,
    ctx: &Ctx,
    graph: &Graph,
    st: &State,
    opts: &InstallOpts,
) -> Result<()> {
    let fp = |s: &dyn Step| engine::fingerprint(ctx, s);
    let drift = crate::drift::scan(ctx, st, &graph.all(), &fp);
    let plan = graph.plan(
        st,
        &opts.targets,
        &opts.retry,
        &opts.skip,
        &crate::graph::Judge {
            fingerprints: &fp,
            drifted: &|id| drift.contains_key(id),
            unneeded: &|s| s.not_for(&ctx.cfg).is_some(),
        },
    )?;
    // For a drifted step: what drifted, and a diff of each changed file against what keel
    // would write back (secrets masked).
    let detail = |id: &str| -> (Vec<String>, Vec<String>) {
        match drift.get(id) {
            Some(found) => (
                found.iter().map(|f| f.what.clone()).collect(),
                crate::drift::diffs(ctx, graph.get(id).expect("step"), found),
            ),
            None => (vec![], vec![]),
        }
    };
    if cli.output == Output::Json {
        let v: Vec<_> = plan
            .iter()
            .map(|(id, r)| {
                let (what, diffs) = detail(id);
                let mut o = json!({"id": id, "runs": r.runs(), "reason": r.explain(graph.get(id), &ctx.cfg), "deps": graph.get(id).map(|s| s.dep_ids())});
                if !what.is_empty() {
                    o["drift"] = json!(what);
                    o["diff"] = json!(diffs);
                }
                o
            })
            .collect();
        let app: serde_json::Map<String, serde_json::Value> = app_summary(ctx)
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        println!("{}", json!({"dry_run": true, "steps": v, "app": app}));
    } else {
        for (id, r) in &plan {
            println!("{:<15} {}", id, r.explain(graph.get(id), &ctx.cfg));
            let (what, diffs) = detail(id);
            for w in what {
                println!("{:<15}   drifted: {w}", "");
            }
            for d in diffs {
                print!("{d}");
            }
        }
        let app = app_summary(ctx);
        if !app.is_empty() {
            println!("\nthe app, as keel reads it:");
            for (k, v) in app {
                println!("  {k:<14} {v}");
            }
        }
    }
    Ok(())
}

/// What keel read of a local app source: the dependencies and how they go in, the Python,
/// the build packages it found, the build and release commands.
fn app_summary(ctx: &Ctx) -> Vec<(&'static str, String)> {
    let Some(src) = ctx.cfg.app_source() else {
        return vec![];
    };
    let read = crate::tree::reader(&src);
    let mut out = vec![];
    let project = match crate::project::read(&ctx.cfg, &read) {
        Ok(p) => p,
        Err((key, msg, _)) => return vec![("dependencies", format!("{key}: {msg}"))],
    };
    out.push((
        "dependencies",
        format!("{} ({})", project.file, project.form.describe()),
    ));
    let sel = &project.selection;
    if !sel.groups.is_empty() || !sel.extras.is_empty() {
        out.push((
            "selection",
            format!("groups {:?}, extras {:?}", sel.groups, sel.extras),
        ));
    }
    let python = match crate::project::choose(&ctx.cfg, &ctx.paths.root, &project.wants) {
        Ok(crate::project::Interp::Os) => "the OS's python3".to_string(),
        Ok(crate::project::Interp::Managed(r)) => format!("a uv-managed CPython {r}"),
        Err((msg, _)) => format!("refused: {msg}"),
    };
    let asked: Vec<String> = project
        .wants
        .iter()
        .map(|w| format!("{} ({})", w.spec, w.from))
        .collect();
    out.push((
        "python",
        if asked.is_empty() {
            python
        } else {
            format!("{python}; asked: {}", asked.join(", "))
        },
    ));
    let detected = crate::apt::detected_build(ctx);
    if !detected.is_empty() {
        let list: Vec<String> = detected
            .iter()
            .map(|(p, why)| format!("{p} ({why})"))
            .collect();
        out.push(("build packages", list.join(", ")));
    }
    let files = crate::tree::walk(&src).unwrap_or_default();
    for c in crate::app::build::commands(&ctx.cfg, &read, &files) {
        out.push(("build", format!("{} ({})", c.line, c.what)));
    }
    for c in &ctx.cfg.release.commands {
        out.push(("release", c.clone()));
    }
    out
}

pub fn run(inv: &Invocation) -> Result<()> {
    let cli = &inv.cli;
    let graph = steps::graph();
    if cli.output == Output::Dot {
        print!("{}", graph.dot());
        return Ok(());
    }
    // The plan reads the config only to tell what an install would do; without one it still
    // prints the graph.
    let st = super::context::load_state(&cli.state_file)?;
    let cfg = inv.config();
    let reasons: Vec<(&str, Option<Reason>)> = match cfg {
        Ok(cfg) => {
            let mut o = CtxOptions::new(inv, &crate::paths::run_id());
            o.quiet = true;
            let ctx = build_ctx(cfg, o);
            let fp = |s: &dyn Step| engine::fingerprint(&ctx, s);
            let drift = crate::drift::scan(&ctx, &st, &graph.all(), &fp);
            graph
                .plan(
                    &st,
                    &[],
                    &[],
                    &[],
                    &crate::graph::Judge {
                        fingerprints: &fp,
                        drifted: &|id| drift.contains_key(id),
                        unneeded: &|s| s.not_for(&ctx.cfg).is_some(),
                    },
                )?
                .into_iter()
                .map(|(i, r)| (i, Some(r)))
                .collect()
        }
        // No config yet: the graph alone. A config that is there but invalid is an error
        // (exit 2), so `keel plan` also checks a config before an install.
        Err(_) if std::fs::symlink_metadata(&cli.config).is_err() => {
            graph.ids().into_iter().map(|i| (i, None)).collect()
        }
        Err(e) => return Err(e),
    };
    if cli.output == Output::Json {
        let v: Vec<_> = reasons
            .iter()
            .map(|(id, r)| {
                let s = graph.get(id).expect("step");
                json!({"id": id, "about": s.about(), "deps": s.dep_ids(), "next_install": r.map(|r| r.describe())})
            })
            .collect();
        println!("{}", json!({"steps": v}));
        return Ok(());
    }
    for (i, (id, r)) in reasons.iter().enumerate() {
        let s = graph.get(id).expect("step");
        let deps = if s.dep_ids().is_empty() {
            "-".to_string()
        } else {
            s.dep_ids().join(", ")
        };
        println!("{:>2}. {:<15} {:<60} after: {}", i + 1, id, s.about(), deps);
        if let Some(r) = r {
            println!("    {:<12} next install: {}", "", r.describe());
        }
    }
    Ok(())
}
