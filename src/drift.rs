//! Drift: what a completed step left on the host (its files' content and mode, the units
//! that must run), recorded when it completes and checked on every install. A step whose
//! files were changed by hand or whose units are down is planned as drifted and re-runs;
//! the edited files are backed up first.
use crate::exec::Cmd;
use crate::state::{FileMark, State, Status};
use crate::step::{Ctx, Step};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The marks of what `step` manages, as the host holds them now.
pub fn marks(ctx: &Ctx, step: &dyn Step) -> (Vec<FileMark>, Vec<String>) {
    let m = step.manages(ctx);
    let files = m.files.iter().filter_map(|p| mark(p)).collect();
    (files, m.active)
}

fn mark(p: &Path) -> Option<FileMark> {
    let st = crate::fsx::lstat(p).ok()??;
    let (kind, sum) = match crate::fsx::kind(&st) {
        rustix::fs::FileType::Symlink => {
            ("link", std::fs::read_link(p).ok()?.display().to_string())
        }
        rustix::fs::FileType::RegularFile => {
            let bytes = crate::fsx::read_nofollow(p, 1 << 24).ok()??;
            ("file", crate::step::sha256_hex(&bytes))
        }
        _ => return None,
    };
    Some(FileMark {
        path: p.display().to_string(),
        kind: kind.into(),
        sum,
        mode: st.st_mode & 0o7777,
    })
}

/// One drifted file or unit: what is wrong, and the file (to back up and diff) if any.
#[derive(Debug, Clone)]
pub struct Finding {
    pub what: String,
    pub file: Option<PathBuf>,
}

/// The files the operator keeps as edited ([drift] keep), as paths under the host's root:
/// never drift, never overwritten (the engine hands them to each step's transaction).
pub fn kept_paths(ctx: &Ctx) -> Vec<PathBuf> {
    ctx.cfg
        .drift
        .keep
        .iter()
        .map(|k| ctx.host(&k.display().to_string()))
        .collect()
}

/// The drift of every completed, unchanged step: (step id -> findings). Units are asked
/// in one `systemctl is-active` call.
pub fn scan(
    ctx: &Ctx,
    state: &State,
    steps: &[&dyn Step],
    fingerprint: &dyn Fn(&dyn Step) -> String,
) -> BTreeMap<&'static str, Vec<Finding>> {
    let mut out: BTreeMap<&'static str, Vec<Finding>> = BTreeMap::new();
    let mut unit_owner: Vec<(String, &'static str)> = vec![];
    let kept = kept_paths(ctx);
    for s in steps {
        let rec = state.step(s.id());
        if rec.status != Status::Completed
            || rec.fingerprint.as_deref() != Some(fingerprint(*s).as_str())
        {
            continue;
        }
        for f in &rec.files {
            let p = PathBuf::from(&f.path);
            if kept.contains(&p) {
                continue;
            }
            let what = match mark(&p) {
                None => Some(format!("{} is missing", f.path)),
                Some(now) if now.kind != f.kind => Some(format!("{} was replaced", f.path)),
                Some(now) if now.kind == "link" && now.sum != f.sum => {
                    Some(format!("{} points elsewhere ({})", f.path, now.sum))
                }
                Some(now) if now.sum != f.sum => Some(format!("{} was changed by hand", f.path)),
                Some(now) if now.mode != f.mode => Some(format!(
                    "{} has mode {:o} (keel wrote {:o})",
                    f.path, now.mode, f.mode
                )),
                Some(_) => None,
            };
            if let Some(what) = what {
                out.entry(s.id()).or_default().push(Finding {
                    what,
                    file: Some(p),
                });
            }
        }
        unit_owner.extend(rec.units.iter().map(|u| (u.clone(), s.id())));
    }
    if !unit_owner.is_empty() {
        let mut cmd = Cmd::new("systemctl").arg("is-active");
        for (u, _) in &unit_owner {
            cmd = cmd.arg(u.clone());
        }
        if let Ok(o) = ctx.exec.probe("drift", &cmd) {
            let states: Vec<&str> = o.stdout.lines().collect();
            for (i, (u, id)) in unit_owner.iter().enumerate() {
                let st = states.get(i).copied().unwrap_or("unknown");
                if st != "active" && st != "activating" && st != "reloading" {
                    out.entry(id).or_default().push(Finding {
                        what: format!("{u} is {st}"),
                        file: None,
                    });
                }
            }
        }
    }
    out
}

/// Copy the drifted files aside before a step overwrites them: under
/// /var/lib/keel/backups/<run id>/ (root-only), at their own path. Returns where.
pub fn backup(ctx: &Ctx, run_id: &str, findings: &[Finding]) -> Vec<(PathBuf, PathBuf)> {
    let base = ctx.host(&format!("/var/lib/keel/backups/{run_id}"));
    if findings.iter().any(|f| f.file.is_some()) {
        crate::paths::private_dir(&ctx.host("/var/lib/keel/backups"));
    }
    let mut done = vec![];
    for f in findings {
        let Some(src) = &f.file else { continue };
        let Ok(Some(bytes)) = crate::fsx::read_nofollow(src, 1 << 24) else {
            continue;
        };
        let rel = ctx.paths.unhost(src);
        let dst = base.join(rel.strip_prefix("/").unwrap_or(&rel));
        if let Some(dir) = dst.parent()
            && std::fs::create_dir_all(dir).is_ok()
            && crate::fsx::write_atomic(&dst, &bytes, 0o600, Some((0, 0))).is_ok()
        {
            done.push((src.clone(), dst));
        }
    }
    done
}

/// A unified diff of what is on the host against what keel would write, secrets masked.
pub fn diffs(ctx: &Ctx, step: &dyn Step, findings: &[Finding]) -> Vec<String> {
    let desired = step.desired(ctx);
    let mut out = vec![];
    for f in findings {
        let Some(p) = &f.file else { continue };
        let Some((_, want)) = desired.iter().find(|(d, _)| d == p) else {
            continue;
        };
        let have = crate::fsx::read_text_nofollow(p, 1 << 24)
            .ok()
            .flatten()
            .unwrap_or_default();
        let name = ctx.paths.unhost(p).display().to_string();
        let d = similar::TextDiff::from_lines(&have, want)
            .unified_diff()
            .context_radius(3)
            .header(&format!("{name} (on the host)"), &format!("{name} (keel)"))
            .to_string();
        out.push(ctx.exec.redactor.redact(&d));
    }
    out
}
