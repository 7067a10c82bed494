//! The installation-state file: per-step records, written atomically, guarded by a lock.
use crate::error::{Error, Result};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    #[default]
    Pending,
    Running,
    Completed,
    Failed,
    RolledBack,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::RolledBack => "rolled-back",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ErrorRecord {
    /// Redacted: never holds a secret value.
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StepRecord {
    pub status: Status,
    /// Runs of this step over its life (retries within a run count too).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Hash of the step's inputs when it last completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorRecord>,
    /// The run that last touched this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// What the step left on the host when it completed, checked for drift on every install.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileMark>,
    /// Units the step needs running (drift when they are not).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub units: Vec<String>,
}

/// A file as a step left it: its content's SHA-256 (a link: its target) and mode.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
pub struct FileMark {
    pub path: String,
    /// "file" or "link".
    pub kind: String,
    pub sum: String,
    pub mode: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    Running,
    Succeeded,
    Failed,
    RolledBack,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    pub id: String,
    pub command: String,
    pub pid: u32,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub outcome: RunOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_step: Option<String>,
    /// The run's step selection, so `install --resume` (after a reboot) runs the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skip: Vec<String>,
    /// The kernel's boot id when the run started: a different one now means a reboot cut it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub schema_version: u32,
    pub keel_version: String,
    /// Hash of the config file that last ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<RunRecord>,
    /// The app's releases under <base_dir>/releases, oldest first, and which one is live.
    #[serde(default, skip_serializing_if = "Releases::is_empty")]
    pub releases: Releases,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Releases {
    /// The id `<base_dir>/current` points to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub list: Vec<Release>,
}

impl Releases {
    pub fn is_empty(&self) -> bool {
        self.current.is_none() && self.list.is_empty()
    }
    pub fn get(&self, id: &str) -> Option<&Release> {
        self.list.iter().find(|r| r.id == id)
    }
    pub fn get_mut(&mut self, id: &str) -> Option<&mut Release> {
        self.list.iter_mut().find(|r| r.id == id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Being built (a deploy cut short leaves this).
    Building,
    /// Built, and healthy whenever it went live.
    Ok,
    /// Its build, migrations or checks failed: kept for inspection, never switched back to
    /// by `deploy --rollback` without its id.
    Failed,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Release {
    pub id: String,
    /// Where the code came from: a directory, or a git URL and ref.
    pub source: String,
    /// The git commit, or a hash of the directory's files.
    pub revision: String,
    pub created_at: String,
    pub status: ReleaseStatus,
    /// "install" or "deploy".
    pub by: String,
    /// Why it failed (the failing step or check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Default for State {
    fn default() -> Self {
        State {
            schema_version: SCHEMA_VERSION,
            keel_version: env!("CARGO_PKG_VERSION").into(),
            config_hash: None,
            steps: BTreeMap::new(),
            last_run: None,
            releases: Releases::default(),
        }
    }
}

impl State {
    /// Load the state file; a missing file is a fresh state. Corrupt or newer files are errors
    /// and are never touched.
    pub fn load(path: &Path) -> Result<State> {
        // What keel believes it did is read only from a file no other user could write.
        if let Ok(Some(st)) = crate::fsx::lstat(path)
            && (st.st_mode & 0o022 != 0 || st.st_uid != rustix::process::geteuid().as_raw())
        {
            return Err(Error::State {
                file: path.into(),
                msg: format!(
                    "is writable by a user other than keel's (owner uid {}, mode {:o}): its records cannot be trusted",
                    st.st_uid,
                    st.st_mode & 0o7777
                ),
                hint: format!(
                    "if its content is yours: chown root:root {0} && chmod 600 {0}; otherwise move it aside to start over",
                    path.display()
                ),
            });
        }
        // A regular file of bounded size: a FIFO or device there must not hang keel.
        let bytes = match crate::fsx::read_regular(path, 16 * crate::fsx::MAX_INPUT) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::default()),
            Err(e) => {
                return Err(Error::State {
                    file: path.into(),
                    msg: format!("cannot read it: {e}"),
                    hint: "check the path and permissions (keel runs as root)".into(),
                });
            }
        };
        // Look at the version first so a newer schema is reported as such, not as "corrupt".
        let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::State {
            file: path.into(),
            msg: format!("not valid JSON ({e})"),
            hint: "the file was left as it is; restore it from a backup or move it aside to start over (completed steps will then run again)".into(),
        })?;
        let version = v.get("schema_version").and_then(|x| x.as_u64());
        match version {
            Some(n) if n < 1 => {
                return Err(Error::State {
                    file: path.into(),
                    msg: format!("schema_version {n} is older than any keel wrote (the first is 1)"),
                    hint: "the file was left as it is; check --state-file, or move it aside to start over".into(),
                });
            }
            Some(n) if n > SCHEMA_VERSION as u64 => {
                return Err(Error::State {
                    file: path.into(),
                    msg: format!(
                        "schema_version {n} is newer than this keel understands ({SCHEMA_VERSION})"
                    ),
                    hint: "use the keel version that wrote it, or a newer one".into(),
                });
            }
            Some(_) => {}
            None => {
                return Err(Error::State {
                    file: path.into(),
                    msg: "no schema_version: this is not a keel state file".into(),
                    hint: "the file was left as it is; check --state-file".into(),
                });
            }
        }
        serde_json::from_value(v).map_err(|e| Error::State {
            file: path.into(),
            msg: format!("does not match the state schema ({e})"),
            hint:
                "the file was left as it is; see state/schema.json, or move it aside to start over"
                    .into(),
        })
    }

    /// Step ids in the file that `known` lacks (a newer keel's, or a hand edit).
    pub fn unknown_steps(&self, known: &[&str]) -> Vec<String> {
        self.steps
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .cloned()
            .collect()
    }

    /// Atomic save: temp file in the same directory, fsync, rename, fsync the directory.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".state.")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        let mut json = serde_json::to_vec_pretty(self).map_err(anyhow::Error::from)?;
        json.push(b'\n');
        tmp.write_all(&json).map_err(|e| Error::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(tmp.path(), e))?;
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(dir, e))?;
        Ok(())
    }

    pub fn step(&self, id: &str) -> StepRecord {
        self.steps.get(id).cloned().unwrap_or_default()
    }

    pub fn step_mut(&mut self, id: &str) -> &mut StepRecord {
        self.steps.entry(id.to_string()).or_default()
    }
}

/// Exclusive lock held for a whole run, on a file beside the state file.
pub struct RunLock {
    _file: File,
    pub path: PathBuf,
}

pub fn lock_path(state: &Path) -> PathBuf {
    let mut p = state.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

impl RunLock {
    pub fn acquire(state: &Path) -> Result<RunLock> {
        let path = lock_path(state);
        if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unknown".into());
                return Err(Error::Locked { file: path, pid });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        // The holder's pid, for the message a second run prints.
        file.set_len(0).map_err(|e| Error::io(&path, e))?;
        writeln!(file, "{}", std::process::id()).map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock, waiting for its holder to finish (`waiting` is told once who that is).
    pub fn acquire_waiting(state: &Path, waiting: impl FnOnce(&str)) -> Result<RunLock> {
        match Self::acquire(state) {
            Err(Error::Locked { file, pid }) => {
                waiting(&pid);
                let mut f = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&file)
                    .map_err(|e| Error::io(&file, e))?;
                f.lock().map_err(|e| Error::io(&file, e))?;
                f.set_len(0).map_err(|e| Error::io(&file, e))?;
                writeln!(f, "{}", std::process::id()).map_err(|e| Error::io(&file, e))?;
                Ok(RunLock {
                    _file: f,
                    path: file,
                })
            }
            other => other,
        }
    }

    /// Is a run holding the lock right now? (for `status --wait`)
    pub fn is_held(state: &Path) -> bool {
        let path = lock_path(state);
        match File::open(&path) {
            Ok(f) => matches!(f.try_lock_shared(), Err(std::fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }
}

pub fn schema_json() -> String {
    let schema = schemars::schema_for!(State);
    let mut s = serde_json::to_string_pretty(&schema).expect("schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_matches_types() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("state/schema.json");
        let generated = schema_json();
        #[allow(clippy::disallowed_methods)] // the test's own switch
        let update = std::env::var_os("KEEL_UPDATE_SCHEMA").is_some();
        if update {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "state/schema.json drifted from the State types; regenerate with KEEL_UPDATE_SCHEMA=1 cargo test committed_schema"
        );
    }

    #[test]
    fn examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("state/examples");
        let mut n = 0;
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let s = State::load(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(s.schema_version, SCHEMA_VERSION);
            assert!(!s.steps.is_empty());
            n += 1;
        }
        assert!(n >= 2);
    }

    #[test]
    fn save_then_load_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sub/state.json");
        let mut s = State::default();
        s.step_mut("packages").status = Status::Completed;
        s.step_mut("packages").fingerprint = Some("abc".into());
        s.save(&p).unwrap();
        assert_eq!(State::load(&p).unwrap(), s);
        // No temp files left behind.
        assert_eq!(std::fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_and_newer_files_are_errors() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        std::fs::write(&p, "{ not json").unwrap();
        let e = State::load(&p).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("state.json"));
        std::fs::write(&p, r#"{"schema_version": 99, "keel_version": "9"}"#).unwrap();
        let e = State::load(&p).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
    }

    #[test]
    fn second_lock_is_refused_with_pid() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        let _l = RunLock::acquire(&p).unwrap();
        assert!(RunLock::is_held(&p));
        match RunLock::acquire(&p) {
            Err(Error::Locked { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Locked, got {:?}", other.err()),
        }
    }
}
