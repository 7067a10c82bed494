use crate::app::code::*;
use crate::app::live_dir;
use crate::state::ReleaseStatus;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;
use std::path::Path;

pub struct AppCode;
const ID: &str = "app-code";

impl Step for AppCode {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[
                crate::config::Role::Web,
                crate::config::Role::Worker,
                crate::config::Role::Beat,
            ],
            "no app code here",
        )
    }
    fn deps(&self) -> Deps {
        // python-packages installs git for a git source (a few seconds; python-env waits for
        // it anyway).
        &[
            &super::system_user::SystemUser,
            &super::packages::Apt::PYTHON,
        ]
    }
    fn about(&self) -> &'static str {
        "put the app's code under the base directory"
    }
    fn of_release(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("app tree", crate::app::code::tree_hash(ctx))
            .value("app_dir", ctx.cfg.app_dir().display())
            // The layout: releases/<id> (root's) behind `current` (older keels differ).
            .value("layout", "releases")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let source = Source::configured(&ctx.cfg).ok_or_else(|| {
            StepError::permanent(
                "no app source configured",
                "set django.source (a directory) or django.git in keel.toml",
            )
        })?;
        let base = ctx.host(&ctx.cfg.base_dir().display().to_string());
        let existing = existing_ids(&base);
        let refs: Vec<&str> = existing.iter().map(String::as_str).collect();
        let id = crate::release::new_id(&refs);
        let mut rel = build(ctx, tx, &source, &id, "install", ID)?;
        // Journaled: a later failure in this run points `current` back where it was.
        tx.symlink(
            &Path::new("releases").join(&id),
            &base.join(crate::release::CURRENT),
        )?;
        rel.status = ReleaseStatus::Ok;
        ctx.ui
            .step_note(ID, &format!("release {id} ({})", rel.revision));
        tx.produce(crate::txn::Produced::Release(rel));
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        let dest = ctx.host(&live_dir(ctx).display().to_string());
        if !dest.join("manage.py").is_file() {
            return Err(StepError::permanent(
                format!("{} has no manage.py", dest.display()),
                "the app source must be a Django project with manage.py at its top",
            ));
        }
        crate::project::read(&ctx.cfg, &|rel| {
            crate::fsx::read_text_nofollow(&dest.join(rel), crate::fsx::MAX_INPUT)
                .ok()
                .flatten()
        })
        .map(|_| ())
        .map_err(|(key, msg, hint)| StepError::permanent(format!("{key}: {msg}"), hint))
    }
    // Undo keeps the app directory: it is data.
}
