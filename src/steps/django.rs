use crate::app::{as_app, venv_bin};
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

/// Django's own `createsuperuser --noinput`, run in-process by `manage.py shell` from a
/// script on stdin (the password never reaches a command line or the environment of any
/// other process): it knows custom user models, an e-mail `USERNAME_FIELD` and their
/// validation. A user that exists already is left alone.
fn admin_script(cfg: &crate::config::Config, password: &str) -> String {
    format!(
        "import os\n\
         from django.contrib.auth import get_user_model\n\
         from django.core.management import call_command\n\
         U = get_user_model()\n\
         field = U.USERNAME_FIELD\n\
         email_field = U.get_email_field_name()\n\
         login = {email} if field == email_field else {user}\n\
         if U._default_manager.filter(**{{field: login}}).exists():\n\
         \x20   print('keel: admin user ' + login + ' exists: left as it is')\n\
         else:\n\
         \x20   os.environ['DJANGO_SUPERUSER_PASSWORD'] = {pw}\n\
         \x20   extra = {{email_field: {email}}} if email_field != field and email_field in U.REQUIRED_FIELDS else {{}}\n\
         \x20   call_command('createsuperuser', interactive=False, verbosity=0, **{{field: login}}, **extra)\n\
         \x20   print('keel: admin user ' + login + ' created')\n",
        user = py_str(&cfg.django.admin_user),
        email = py_str(&cfg.admin_email()),
        pw = py_str(password),
    )
}

fn py_str(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

impl Step for Django {
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
        &[
            &super::python_env::PythonEnv,
            &super::build::Build,
            &super::app_env::AppEnv,
            &super::postgres::Postgres,
            &super::redis::Redis,
        ]
    }
    fn about(&self) -> &'static str {
        "migrate, collectstatic, admin user"
    }
    fn of_release(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("app tree", crate::app::code::tree_hash(ctx))
            .value("admin_user", &ctx.cfg.django.admin_user)
            .value("admin_email", ctx.cfg.admin_email())
            .value("release commands", ctx.cfg.release.commands.join("\n"))
    }
    fn run(&self, ctx: &Ctx, _tx: &mut Txn) -> StepResult {
        ctx.ui.step_note(ID, "manage.py migrate, collectstatic");
        // Several app hosts: one migrates, the others wait for it and find nothing to do.
        let _lock = crate::remote::hold_migrations(ctx, ID)?;
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
        crate::app::build::run_release_commands(ctx, &crate::app::live_dir(ctx), ID)?;
        if ctx.cfg.django.admin_user.is_empty() {
            ctx.ui
                .step_note(ID, "no admin user (django.admin_user is empty)");
            return Ok(());
        }
        ctx.ui.step_note(ID, "admin user");
        let password = ctx.secrets.get_or_create("admin_password")?;
        let out = ctx
            .run(ID, &manage(ctx, &["shell", "--no-startup"]).stdin(admin_script(&ctx.cfg, &password)))
            .map_err(|e| {
                // Django's own last word (the ExecError carries stderr's tail, " | "-joined).
                let why = e
                    .msg
                    .rsplit(" | ")
                    .find(|l| l.contains("Error") || l.contains("must"))
                    .unwrap_or("")
                    .to_string();
                StepError::permanent(
                    format!("creating the admin user failed: {}", if why.is_empty() { e.msg.clone() } else { why }),
                    "Django's createsuperuser refused it (see /var/log/keel/steps/django.log); set django.admin_user = \"\" to make none",
                )
            })?;
        let said = out
            .stdout
            .lines()
            .rev()
            .find(|l| l.starts_with("keel: "))
            .unwrap_or("");
        if !said.is_empty() {
            ctx.ui.step_note(ID, said.trim_start_matches("keel: "));
        }
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

#[cfg(test)]
mod tests {
    /// The script is Python that parses (the e2e app scenario runs it against Django).
    #[test]
    fn the_admin_script_is_python() {
        let cfg = crate::config::Config::parse(
            "[app]\nname = \"demo\"\ndomain = \"demo.example.com\"\n",
            std::path::Path::new("keel.toml"),
        )
        .unwrap();
        let script = super::admin_script(&cfg, "pa'ss\"word");
        #[allow(clippy::disallowed_methods)] // the test runs the script it checks
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success(), "{script}");
        assert!(script.contains("call_command('createsuperuser', interactive=False"));
    }
}
