use super::python_env::{as_app, venv_bin};
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;
use std::time::Duration;

pub struct Django;
const ID: &str = "django";

fn manage(ctx: &Ctx, args: &[&str]) -> crate::exec::Cmd {
    as_app(ctx, &venv_bin(ctx, "python"))
        .arg("manage.py")
        .args(args.iter().copied())
        .timeout(Duration::from_secs(ctx.cfg.timeouts.command_secs))
}

fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

impl Step for Django {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[
            &super::python_env::PythonEnv,
            &super::app_env::AppEnv,
            &super::postgres::Postgres,
            &super::redis::Redis,
        ]
    }
    fn about(&self) -> &'static str {
        "migrate, collectstatic, admin user"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("app tree", super::app_code::tree_hash(ctx))
            .value("admin_user", &ctx.cfg.django.admin_user)
            .value("admin_email", ctx.cfg.admin_email())
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        ctx.ui.step_note(ID, "manage.py migrate, collectstatic");
        // collectstatic needs no database: it runs beside migrate (off the critical path).
        let (migrated, collected) = std::thread::scope(|s| {
            let c = s.spawn(|| ctx.run(ID, &manage(ctx, &["collectstatic", "--noinput"])));
            let m = ctx.run(ID, &manage(ctx, &["migrate", "--noinput"]));
            (
                m,
                c.join()
                    .unwrap_or_else(|_| Err(StepError::permanent("collectstatic panicked", ""))),
            )
        });
        migrated.map_err(|e| {
            e.hint("see /var/log/keel/steps/django.log; the database settings come from .env")
        })?;
        collected?;
        ctx.ui.step_note(ID, "admin user");
        let password = ctx.secrets.get_or_create("admin_password")?;
        // Through stdin: the password never reaches a command line.
        let script = format!(
            "from django.contrib.auth import get_user_model\n\
             U = get_user_model()\n\
             u, _ = U.objects.get_or_create(**{{U.USERNAME_FIELD: {user}}})\n\
             u.email = {email}\n\
             u.is_staff = True\n\
             u.is_superuser = True\n\
             u.set_password({pw})\n\
             u.save()\n",
            user = py_str(&ctx.cfg.django.admin_user),
            email = py_str(&ctx.cfg.admin_email()),
            pw = py_str(&password),
        );
        ctx.run(ID, &manage(ctx, &["shell", "--no-startup"]).stdin(script))
            .map_err(|e| e.hint("creating the admin user failed; see the django step log"))?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        ctx.run(ID, &manage(ctx, &["migrate", "--check"]))
            .map_err(|e| {
                StepError::permanent(
                    format!("unapplied migrations remain: {}", e.msg),
                    "keel install --retry-step django",
                )
            })?;
        Ok(())
    }
}
