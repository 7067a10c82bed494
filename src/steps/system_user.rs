use crate::exec::Cmd;
use crate::step::{Ctx, Deps, Inputs, Step, StepError, StepResult};
use crate::txn::Txn;

pub struct SystemUser;
const ID: &str = "system-user";

impl Step for SystemUser {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::preflight::Preflight]
    }
    fn about(&self) -> &'static str {
        "create the app's system user and base directory"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("user", ctx.cfg.app_user())
            .value("build_user", ctx.cfg.build_user())
            .value("base_dir", ctx.cfg.base_dir().display())
            // The base directory is root's (older keels gave it to the app user): a host
            // set up that way is taken back on the next run.
            .value("layout", "root-owned")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let root = &ctx.paths.root;
        let base = ctx.cfg.base_dir();
        // The app's runtime user, and the build user that owns its virtualenv.
        for user in [ctx.cfg.app_user(), ctx.cfg.build_user()] {
            if crate::system::user_ids(root, &user).is_none() {
                let mut c = Cmd::new("useradd")
                    .args(["--system", "--home-dir"])
                    .arg(base.display().to_string())
                    .args(["--no-create-home", "--shell", "/usr/sbin/nologin"]);
                c = if crate::system::group_exists(root, &user) {
                    c.args(["--gid", &user])
                } else {
                    c.arg("--user-group")
                };
                ctx.run(ID, &c.arg("--").arg(&user))?;
                tx.on_rollback(Cmd::new("userdel").arg("--").arg(&user));
            }
            crate::system::user_ids(root, &user).ok_or_else(|| {
                StepError::permanent(
                    format!("user {user} does not exist after useradd"),
                    "check /etc/passwd and the useradd output in the step log",
                )
            })?;
        }
        // root's, 0755: the app cannot replace what lies under it (its code, venv, .env);
        // nginx traverses it to the static files.
        let dir = ctx.host(&base.display().to_string());
        tx.ensure_dir_owned(&dir, 0o755, Some((0, 0)))
            .map_err(crate::step::io_err(&dir))?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        for user in [ctx.cfg.app_user(), ctx.cfg.build_user()] {
            crate::system::user_ids(&ctx.paths.root, &user).ok_or_else(|| {
                StepError::permanent(
                    format!("user {user} missing"),
                    "re-run keel install --retry-step system-user",
                )
            })?;
        }
        let dir = ctx.host(&ctx.cfg.base_dir().display().to_string());
        let st = crate::fsx::lstat(&dir)?
            .ok_or_else(|| StepError::permanent(format!("{} is missing", dir.display()), ""))?;
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            return Err(StepError::permanent(
                format!("{} must be root's and writable by root only", dir.display()),
                "keel install --retry-step system-user",
            ));
        }
        Ok(())
    }
    // Undo keeps the user and the base directory: they own the app's data.
}
