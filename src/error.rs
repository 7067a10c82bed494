//! One error type for the whole tool, each variant mapped to a documented exit code.
use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or arguments (exit 2).
    #[error("{msg}")]
    Usage { msg: String, hint: String },
    /// keel.toml is unreadable or invalid (exit 2).
    #[error("{file}: {key}: {msg}")]
    Config {
        file: PathBuf,
        key: String,
        msg: String,
        hint: String,
    },
    /// The state file is unreadable, corrupt or from a newer keel (exit 2); it is left untouched.
    #[error("state file {file}: {msg}")]
    State {
        file: PathBuf,
        msg: String,
        hint: String,
    },
    /// Preflight found errors that were not ignored (exit 3).
    #[error("preflight refused: {failed}")]
    Preflight { failed: String },
    /// Another keel run holds the lock (exit 4).
    #[error("another keel run (pid {pid}) holds the lock {file}")]
    Locked { file: PathBuf, pid: String },
    /// A step failed (exit 1).
    #[error("step {step} failed: {msg}")]
    StepFailed {
        step: String,
        msg: String,
        hint: String,
    },
    /// Health checks found the host unhealthy (exit 1).
    #[error("{0}")]
    Unhealthy(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
    /// A command `keel run` ran ended with this status: keel exits with it, adding nothing.
    #[error("the command exited with status {0}")]
    Passed(i32),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage { .. } | Error::Config { .. } | Error::State { .. } => 2,
            Error::Preflight { .. } => 3,
            Error::Locked { .. } => 4,
            Error::Passed(c) => *c,
            Error::StepFailed { .. } | Error::Unhealthy(_) | Error::Io { .. } | Error::Other(_) => {
                1
            }
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Usage { hint, .. }
            | Error::Config { hint, .. }
            | Error::State { hint, .. }
            | Error::StepFailed { hint, .. } => Some(hint.clone()).filter(|h| !h.is_empty()),
            Error::Preflight { .. } => Some(
                "fix the errors above, or pass --ignore-preflight-errors NAME,... (or all)".into(),
            ),
            Error::Locked { pid, .. } => Some(format!(
                "wait for it (keel status --wait) or, if pid {pid} is not keel, remove the stale lock file"
            )),
            _ => None,
        }
    }

    pub fn usage(msg: impl Into<String>, hint: impl Into<String>) -> Self {
        Error::Usage {
            msg: msg.into(),
            hint: hint.into(),
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        // Callers that know the path use Error::io; this is the fallback.
        Error::Other(anyhow::Error::new(e))
    }
}
