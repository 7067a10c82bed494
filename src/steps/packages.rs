use crate::apt::*;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;

const ID: &str = "packages";

/// An apt step: the system packages, or the Python ones that go first so that the app's
/// pip install can overlap the big apt run.
pub struct Apt {
    id: &'static str,
    deps: Deps,
    about: &'static str,
    list: fn(&Ctx) -> Vec<String>,
}

impl Apt {
    pub const PYTHON: Apt = Apt {
        id: "python-packages",
        deps: &[&super::preflight::Preflight],
        about: "install Python and venv (apt), first",
        // git too when the app comes from git: app-code needs it before the big apt run; the
        // build packages too: the venv is built right after this run, beside the big one.
        list: |ctx| {
            let c = &ctx.cfg;
            let mut v = c.packages.python.clone();
            let detected = detected_build(ctx);
            for p in c.packages.build.iter().chain(
                detected
                    .iter()
                    .map(|(p, _)| p)
                    .filter(|p| !AFTER_VENV.contains(&p.as_str())),
            ) {
                if !v.contains(p) {
                    v.push(p.clone());
                }
            }
            if c.django.git.is_some() && !v.iter().any(|p| p == "git") {
                v.push("git".into());
            }
            v
        },
    };
    pub const SYSTEM: Apt = Apt {
        id: ID,
        // After python-packages: apt runs one at a time, and the app's pip install overlaps this one.
        deps: &[&Apt::PYTHON],
        about: "install the system packages (apt)",
        // The build step's tools (Node, gettext) come in the big run: the venv does not
        // need them, and Debian's npm alone is hundreds of packages.
        list: |ctx| {
            let mut v = ctx.cfg.system_packages();
            for (p, _) in detected_build(ctx) {
                if AFTER_VENV.contains(&p.as_str()) && !v.contains(&p) {
                    v.push(p);
                }
            }
            v
        },
    };
}

impl Step for Apt {
    fn id(&self) -> &'static str {
        self.id
    }
    fn deps(&self) -> Deps {
        self.deps
    }
    fn about(&self) -> &'static str {
        self.about
    }
    fn host_wide(&self) -> bool {
        true
    }
    fn uses_apt(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        let mut p = (self.list)(ctx);
        p.sort();
        let i = Inputs::new().value("packages", p.join(" "));
        // Only when set: hosts installed before the key existed stay up to date.
        if ctx.cfg.packages.recommends {
            i.value("recommends", "yes")
        } else {
            i
        }
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        let pkgs = (self.list)(ctx);
        if pkgs.is_empty() {
            return Ok(());
        }
        install(ctx, self.id, &pkgs)
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        let m = missing(ctx, self.id, &(self.list)(ctx))?;
        if m.is_empty() {
            Ok(())
        } else {
            Err(StepError::permanent(
                format!("not installed after apt-get: {}", m.join(", ")),
                format!("see /var/log/keel/steps/{}.log", self.id),
            ))
        }
    }
    // Installed packages are kept on rollback: removing them could take other software with them.
}
