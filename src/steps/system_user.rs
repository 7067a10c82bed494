use crate::exec::Cmd;
use crate::graph::{Ctx, Step, StepError, StepResult};
use crate::txn::Txn;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

pub struct SystemUser;
const ID: &str = "system-user";

impl Step for SystemUser {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> &'static [&'static str] {
        &["preflight"]
    }
    fn about(&self) -> &'static str {
        "create the app's system user and base directory"
    }
    fn fingerprint(&self, ctx: &Ctx) -> String {
        format!("{} {}", ctx.cfg.app_user(), ctx.cfg.base_dir().display())
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let user = ctx.cfg.app_user();
        let root = &ctx.paths.root;
        let base = ctx.cfg.base_dir();
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
            ctx.run(ID, &c.arg(&user))?;
            tx.on_rollback(Cmd::new("userdel").arg(&user));
        }
        let (uid, gid) = crate::system::user_ids(root, &user).ok_or_else(|| {
            StepError::permanent(
                format!("user {user} does not exist after useradd"),
                "check /etc/passwd and the useradd output in the step log",
            )
        })?;
        let dir = ctx.host(&base.display().to_string());
        tx.ensure_dir(&dir)?;
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        // nginx must be able to traverse to static files; secrets inside are 0600 on their own.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        let user = ctx.cfg.app_user();
        let (uid, _) = crate::system::user_ids(&ctx.paths.root, &user).ok_or_else(|| {
            StepError::permanent(
                format!("user {user} missing"),
                "re-run keel install --retry-step system-user",
            )
        })?;
        let dir = ctx.host(&ctx.cfg.base_dir().display().to_string());
        let md = std::fs::metadata(&dir)
            .map_err(|e| StepError::permanent(format!("{}: {e}", dir.display()), ""))?;
        if md.uid() != uid {
            return Err(StepError::permanent(
                format!("{} is not owned by {user}", dir.display()),
                "chown it or re-run the step",
            ));
        }
        Ok(())
    }
    // Undo keeps the user and the base directory: they own the app's data.
}
