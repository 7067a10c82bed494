//! Secrets: generated once from the OS random source, one 0600 file each under
//! /etc/keel/secrets (0700), reused on every later run, registered with the redactor.
use crate::redact::Redactor;
use base64::Engine;
use rand::TryRngCore;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

pub struct Secrets {
    pub dir: PathBuf,
    pub redactor: Redactor,
    /// One host of several (`app.roles`): every host must hold the same values, so keel
    /// makes none; a missing one is an error naming its file.
    pub pre_shared: bool,
}

/// The error for a secret a host of several lacks.
pub fn missing(path: &std::path::Path) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::NotFound,
        format!(
            "{} is missing: on a host of several (app.roles) keel generates no secret, since every host must hold the same value; write it (0600 root) from where you keep the fleet's secrets (Terraform, Ansible), the same on every host",
            path.display()
        ),
    )
}

/// `n` random bytes from the OS random source.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    rand::rngs::OsRng
        .try_fill_bytes(&mut buf)
        .expect("OS random source");
    buf
}

/// `n` random bytes from the OS, url-safe base64 without padding (safe inside URLs).
pub fn random_token(n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes(n))
}

impl Secrets {
    /// Register every stored secret with the redactor, so even steps that don't use a
    /// secret can't leak it into a log.
    pub fn load_all(&self) {
        if let Ok(d) = std::fs::read_dir(&self.dir) {
            for e in d.flatten() {
                if let Ok(v) = std::fs::read_to_string(e.path()) {
                    self.redactor.add(v.trim());
                }
            }
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn get(&self, name: &str) -> Option<String> {
        let v = std::fs::read_to_string(self.path(name)).ok()?;
        let v = v.trim().to_string();
        (!v.is_empty()).then(|| {
            self.redactor.add(&v);
            v
        })
    }

    /// The stored secret, or a new one (32 random bytes) stored 0600 first.
    pub fn get_or_create(&self, name: &str) -> std::io::Result<String> {
        self.get_or_create_with(name, || random_token(32))
    }

    /// The stored secret, or `make()` stored 0600 first.
    pub fn get_or_create_with(
        &self,
        name: &str,
        make: impl FnOnce() -> String,
    ) -> std::io::Result<String> {
        self.ensure_dir()?;
        if let Some(v) = self.get(name) {
            // Tighten permissions a hand-edit may have loosened.
            std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o600))?;
            return Ok(v);
        }
        if self.pre_shared {
            return Err(missing(&self.path(name)));
        }
        let v = make();
        self.redactor.add(&v);
        crate::fsx::write_atomic(&self.path(name), format!("{v}\n").as_bytes(), 0o600, None)?;
        Ok(v)
    }

    /// Store `value` as `name` (0600), replacing what was there: a value the admin gave.
    pub fn set(&self, name: &str, value: &str) -> std::io::Result<()> {
        self.ensure_dir()?;
        self.redactor.add(value);
        crate::fsx::write_atomic(
            &self.path(name),
            format!("{value}\n").as_bytes(),
            0o600,
            None,
        )
    }

    pub fn ensure_dir(&self) -> std::io::Result<()> {
        // Every directory made on the way is root's alone: a named app's secrets sit inside
        // the host's /etc/keel/secrets.
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(parent) = self.dir.parent() {
            let mode = std::fs::metadata(parent)?.permissions().mode() & 0o777;
            // /etc/keel holds the config; keep it from being world-writable.
            if mode & 0o022 != 0 {
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn generated_once_stored_0600_and_reused() {
        let d = tempfile::tempdir().unwrap();
        let s = Secrets {
            pre_shared: false,
            dir: d.path().join("secrets"),
            redactor: Redactor::default(),
        };
        let a = s.get_or_create("postgres_password").unwrap();
        assert!(a.len() >= 40);
        assert_eq!(s.get_or_create("postgres_password").unwrap(), a);
        assert_eq!(
            std::fs::metadata(s.path("postgres_password"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(std::fs::metadata(&s.dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(s.redactor.redact(&a), crate::redact::MASK);
        assert_ne!(s.get_or_create("redis_password").unwrap(), a);
    }

    #[test]
    fn tokens_are_url_safe_and_distinct() {
        let a = random_token(32);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, random_token(32));
    }
}
