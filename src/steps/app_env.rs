use crate::app::app_user_ids;
use crate::app::env::{app_env_source, build, derived, env_source_in, extra_values};
use crate::step::{self, Ctx, Deps, Step, StepError, StepResult};
use crate::txn::Txn;

pub struct AppEnv;
const ID: &str = "app-env";

impl Step for AppEnv {
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
        // After tls: the .env's HTTPS settings (SSL redirect, secure cookies) must never
        // reach Django before nginx serves HTTPS, or a failed issuance breaks the HTTP site.
        &[
            &super::app_code::AppCode,
            &super::secrets::SecretsStep,
            &super::tls::Tls,
        ]
    }
    fn about(&self) -> &'static str {
        "the app's .env from its .env.example (secrets generated once)"
    }
    fn inputs(&self, ctx: &Ctx) -> step::Inputs {
        step::Inputs::new()
            .value(
                "app env source",
                app_env_source(ctx)
                    .map(|s| format!("{}\n{}", s.from, s.text))
                    .unwrap_or_default(),
            )
            .value("env", format!("{:?}", extra_values(&ctx.cfg)))
            .value(
                "derived",
                format!("{:?}", derived(&ctx.cfg, None).unwrap_or_default()),
            )
            .value("mode", "0640 root:app")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let path = ctx.host(&ctx.cfg.env_file().display().to_string());
        let dir = ctx.host(&crate::app::live_dir(ctx).display().to_string());
        // With no declaration at all, the .env holds what keel.toml and keel give it.
        let source = env_source_in(&dir).unwrap_or(crate::envsource::Source {
            from: "no .env.example, .envs/.production or env reads in the settings".into(),
            text: String::new(),
        });
        ctx.ui
            .step_note(ID, &format!("variables from {}", source.from));
        let (example, example_path) = (source.text, dir.join(&source.from));
        // Never follow a link here: a .env pointing at a root-only file would copy its
        // values into the app's settings.
        let existing = crate::fsx::read_text_nofollow(&path, crate::fsx::MAX_INPUT).map_err(|e| {
            StepError::permanent(
                format!("refusing to read the existing .env: {e}"),
                format!("remove {} (keel writes a new one; values from keel.toml [env] and secrets are kept)", path.display()),
            )
        })?;
        let d = derived(&ctx.cfg, Some(&ctx.secrets))?;
        let interactive = ctx.interactive;
        let r = ctx.ui.suspend(|| {
            build(
                &example,
                &example_path.display().to_string(),
                existing.as_deref(),
                &extra_values(&ctx.cfg),
                &d,
                Some(&ctx.secrets),
                interactive,
            )
        })?;
        // Root's file, readable by the app's group: the app reads its settings but cannot
        // change them.
        let (_, gid) = app_user_ids(ctx)?;
        tx.write(&path, r.text.as_bytes(), 0o640, Some((0, gid)))?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        crate::app::env::verify(ctx)
    }
    // Undo keeps .env: it holds values the user supplied.
}
