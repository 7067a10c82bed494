//! Checks of the config against this host (users, the source, files root runs or reads):
//! run by the commands that will write, before the first write.
use super::{Config, TlsMode};
use crate::error::{Error, Result};
use std::path::Path;

impl Config {
    /// The app's users must be ones keel made (a system user with the base directory as home
    /// and no login shell) or not exist yet: an existing account is never taken over.
    pub fn check_users(&self, root: &Path) -> Result<()> {
        let user_key = if self.app.user.is_some() {
            "app.user"
        } else {
            "app.name"
        };
        for name in [self.app_user(), self.build_user()] {
            let Some(e) = crate::system::passwd_find(root, |e| e.name == name) else {
                continue;
            };
            let ours = e.home == self.base_dir().to_string_lossy() && e.shell.ends_with("nologin");
            if !ours {
                return Err(self.err(
                    user_key,
                    format!(
                        "user {name} already exists and was not created by keel for this app (home {}, shell {})",
                        e.home, e.shell
                    ),
                    "choose another app.user; keel creates its own system user and never takes over an existing account",
                ));
            }
        }
        Ok(())
    }

    /// The parts of the config that live outside it, checked before anything is written:
    /// a local app source must exist and look like a Django project (manage.py and
    /// requirements.txt at its top), and its .env.example, if any, must parse.
    pub fn check_source(&self) -> Result<()> {
        // A database or Redis host of several runs no app: it needs no source.
        if !self.runs_app() {
            return Ok(());
        }
        let Some(src) = self.app_source() else {
            if self.django.git.is_none() {
                return Err(self.err(
                    "django.source",
                    "no app source is configured",
                    "set django.source (the app's directory) or django.git (a git URL)",
                ));
            }
            return Ok(());
        };
        let md = std::fs::metadata(&src).map_err(|e| {
            self.err(
                "django.source",
                format!("{}: {e}", src.display()),
                "point it at the Django project's directory (relative paths are relative to the config file)",
            )
        })?;
        if !md.is_dir() {
            return Err(self.err(
                "django.source",
                format!("{} is not a directory", src.display()),
                "point it at the Django project's directory",
            ));
        }
        if !std::fs::symlink_metadata(src.join("manage.py")).is_ok_and(|m| m.is_file()) {
            return Err(self.err(
                "django.source",
                format!(
                    "{} has no manage.py: it does not look like a Django project",
                    src.display()
                ),
                "the app source must have manage.py at its top",
            ));
        }
        // An example file that is there must be readable: unreadable is not "absent".
        for e in crate::envsource::EXAMPLES {
            let example = src.join(e);
            if std::fs::symlink_metadata(&example).is_ok() {
                crate::fsx::read_text_nofollow(&example, crate::fsx::MAX_INPUT).map_err(|err| {
                    Error::Config {
                        file: example.clone(),
                        key: "-".into(),
                        msg: format!("cannot read the file: {err}"),
                        hint: "the app's env example must be a regular UTF-8 file of at most 1 MiB"
                            .into(),
                    }
                })?;
                break;
            }
        }
        // The environment the app declares (.env.example, .envs/.production/*, or its
        // settings code) must parse.
        let read = crate::tree::reader(&src);
        let files = crate::tree::walk(&src).unwrap_or_default();
        if let Some(found) = crate::envsource::find(&read, &files) {
            let file = src.join(&found.from);
            crate::dotenv::parse_example(&found.text).map_err(|e| Error::Config {
                file,
                key: e.split(':').next().unwrap_or("-").to_string(),
                msg: e.clone(),
                hint: "fix the app's env file: KEY=value lines, comments starting with '#'".into(),
            })?;
        }
        Ok(())
    }

    /// What root runs and reads for backups, on this host: `upload_command[0]` and every
    /// argument that names an existing file must be root's all the way up (`fsx::untrusted`);
    /// an existing backup directory must be root's with mode 0700 (keel never takes one over).
    pub fn check_backup_host(&self, root: &Path) -> Result<()> {
        let b = &self.backup;
        let host = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        for (i, a) in b.upload_command.iter().enumerate() {
            let p = Path::new(a);
            if i > 0 && !(p.is_absolute() && crate::fsx::lstat(&host(p)).ok().flatten().is_some()) {
                continue;
            }
            if let Some(why) = crate::fsx::untrusted(root, p, i == 0) {
                return Err(self.err(
                    &format!("backup.upload_command[{i}]"),
                    format!("root runs the upload on every backup, and {why}"),
                    "install the program (and any script it reads) as root: chown root:root, chmod go-w, in directories only root can write",
                ));
            }
        }
        let d = self.backup_dir();
        if let Ok(Some(st)) = crate::fsx::lstat(&host(&d))
            && !crate::fsx::root_private_dir(&st)
        {
            return Err(self.err(
                "backup.dir",
                format!(
                    "{} exists and is not a directory of root's with mode 0700 (uid {}, mode {:o}); keel never takes over a directory it did not make",
                    d.display(),
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
                format!("pick a new directory, or if this one is meant for backups only: chown root:root {0} && chmod 700 {0}", d.display()),
            ));
        }
        Ok(())
    }

    /// What root runs or reads for notifications, on this host (see `notify::check_host`).
    pub fn check_notify_host(&self, root: &Path) -> Result<()> {
        crate::notify::check_host(&self.notify, root).map_err(|(k, m, h)| self.err(&k, m, h))
    }

    /// mode = "files": the certificate and key must be root's regular files that no other
    /// user can change (keel copies them as root), the key readable by root alone.
    pub fn check_tls_files(&self, root: &Path) -> Result<()> {
        let t = &self.tls;
        if self.tls_mode() != TlsMode::Files {
            return Ok(());
        }
        for (key, p, private) in [
            ("tls.cert_file", &t.cert_file, false),
            ("tls.key_file", &t.key_file, true),
        ] {
            let Some(p) = p else { continue };
            self.root_file(root, key, p, private)?;
        }
        // Its content, before any step writes: a PEM certificate, for every name, current.
        // (Whether the key is the certificate's is asked of openssl by the tls step.)
        if let Some(cf) = &t.cert_file {
            let host = root.join(cf.strip_prefix("/").unwrap_or(cf));
            let bytes = crate::fsx::read_regular(&host, crate::fsx::MAX_INPUT).map_err(|e| {
                self.err(
                    "tls.cert_file",
                    format!("{}: {e}", cf.display()),
                    "check the path",
                )
            })?;
            let info = crate::certs::parse_pem(&String::from_utf8_lossy(&bytes)).map_err(|e| {
                self.err(
                    "tls.cert_file",
                    format!("{}: {e}", cf.display()),
                    "tls.cert_file must be a PEM certificate (with its chain)",
                )
            })?;
            let shown = cf.display().to_string();
            if let Some((msg, hint)) = info.unfit(&shown, &self.tls_names(), crate::certs::now()) {
                return Err(self.err("tls.cert_file", msg, hint));
            }
        }
        Ok(())
    }

    /// A file keel reads as root from a path the admin gave: root's regular file (not a
    /// link) that no other user can change, in directories only root can write; a private
    /// key readable by root alone. Its content.
    pub(super) fn root_file(
        &self,
        root: &Path,
        key: &str,
        p: &Path,
        private: bool,
    ) -> Result<Vec<u8>> {
        let host = root.join(p.strip_prefix("/").unwrap_or(p));
        let st = crate::fsx::lstat(&host)
            .map_err(|e| self.err(key, format!("{}: {e}", p.display()), "check the path"))?
            .ok_or_else(|| {
                self.err(
                    key,
                    format!("{} does not exist", p.display()),
                    "give the path of the file",
                )
            })?;
        if crate::fsx::kind(&st) != rustix::fs::FileType::RegularFile {
            return Err(self.err(
                key,
                format!("{} is not a regular file (a link or other)", p.display()),
                "point at the file itself: keel does not follow links as root",
            ));
        }
        if st.st_uid != 0 || st.st_mode & 0o022 != 0 {
            return Err(self.err(
                key,
                format!("{} can be changed by a user other than root", p.display()),
                format!("chown root:root {0} && chmod go-w {0}", p.display()),
            ));
        }
        if private && st.st_mode & 0o077 != 0 {
            return Err(self.err(
                key,
                format!("the private key {} is readable by other users", p.display()),
                format!("chmod 600 {}", p.display()),
            ));
        }
        // The directories above too: one another user can write lets them swap the file
        // between this check and the copy.
        if let Some(why) = crate::fsx::untrusted(root, p, false) {
            return Err(self.err(
                key,
                why,
                "keep it where only root can write (such as /etc/keel or /etc/ssl/private)",
            ));
        }
        crate::fsx::read_regular(&host, crate::fsx::MAX_INPUT)
            .map_err(|e| self.err(key, format!("{}: {e}", p.display()), "check the path"))
    }
}
