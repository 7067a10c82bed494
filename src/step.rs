//! What a step is and what it may use: the context (config, host paths, the command runner,
//! secrets, progress, events), its error type, and the trait every step implements.
use crate::config::Config;
use crate::events::Events;
use crate::exec::{Cmd, Exec, ExecError, Output};
use crate::paths::Paths;
use crate::retry::{Kind, classify};
use crate::secrets::Secrets;
use crate::txn::Txn;
use crate::ui::Ui;
use std::sync::Mutex;

/// Everything a step may use.
pub struct Ctx {
    pub cfg: Config,
    pub paths: Paths,
    pub exec: Exec,
    pub secrets: Secrets,
    pub ui: Ui,
    pub events: Events,
    /// Held around every apt/dpkg operation: parallel steps never run two at once.
    pub apt: Mutex<()>,
    pub ignore_preflight: Vec<String>,
    /// The state file of this run (the health timer passes it on).
    pub state_file: std::path::PathBuf,
    /// May prompt (a TTY on stdin and stderr, and no --yes).
    pub interactive: bool,
    /// Hash of the app source tree, computed once per run (several fingerprints use it).
    pub app_tree: std::sync::OnceLock<String>,
    /// The build packages a local source shows it needs, found once per run (both apt steps
    /// read them in their inputs, run and verify).
    pub build_packages: std::sync::OnceLock<Vec<(String, String)>>,
}

impl Ctx {
    /// Run a command for `step`, turning a failure into a classified step error.
    pub fn run(&self, step: &str, cmd: &Cmd) -> StepResult<Output> {
        self.exec.run(step, cmd).map_err(StepError::from)
    }

    pub fn host(&self, p: &str) -> std::path::PathBuf {
        self.paths.host(p)
    }
}

#[derive(Debug, Clone)]
pub struct StepError {
    pub msg: String,
    pub hint: String,
    pub kind: Kind,
}

pub type StepResult<T = ()> = std::result::Result<T, StepError>;

impl StepError {
    pub fn permanent(msg: impl Into<String>, hint: impl Into<String>) -> StepError {
        StepError {
            msg: msg.into(),
            hint: hint.into(),
            kind: Kind::Permanent,
        }
    }
    pub fn transient(msg: impl Into<String>, hint: impl Into<String>) -> StepError {
        StepError {
            msg: msg.into(),
            hint: hint.into(),
            kind: Kind::Transient,
        }
    }
    pub fn hint(mut self, hint: impl Into<String>) -> StepError {
        self.hint = hint.into();
        self
    }
}

impl From<ExecError> for StepError {
    fn from(e: ExecError) -> StepError {
        let kind = if e.timed_out {
            Kind::Transient
        } else {
            classify(&e.stderr_tail)
        };
        StepError {
            msg: e.to_string(),
            hint: String::new(),
            kind,
        }
    }
}

impl From<std::io::Error> for StepError {
    fn from(e: std::io::Error) -> StepError {
        StepError::permanent(e.to_string(), "")
    }
}

/// What a step owns on the host, for its generic undo.
#[derive(Debug, Clone, Default)]
pub struct Managed {
    /// Units keel created: stopped and disabled first, in this order.
    pub units: Vec<String>,
    /// Files (and links) keel writes and owns whole: removed.
    pub files: Vec<std::path::PathBuf>,
    /// Then, if the unit is active: `systemctl ACTION UNIT` (a daemon-reload comes first
    /// when unit files went).
    pub after: Vec<(&'static str, String)>,
    /// Units that must be running once the step completed: one that is not is drift.
    pub active: Vec<String>,
}

/// A step's dependencies.
pub type Deps = &'static [&'static dyn Step];

pub trait Step: Send + Sync {
    /// Stable kebab-case id: a CLI argument and a state-file key.
    fn id(&self) -> &'static str;
    /// The steps this one runs after: the step values themselves, so a misspelt or
    /// removed dependency does not compile.
    fn deps(&self) -> Deps;
    /// The ids of `deps()`, for the graph and for output.
    fn dep_ids(&self) -> Vec<&'static str> {
        self.deps().iter().map(|d| d.id()).collect()
    }
    fn about(&self) -> &'static str;
    /// The step serves every app on the host (packages, baseline, firewall, the PostgreSQL
    /// server): a rollback of one app leaves its work in place while another is installed.
    fn host_wide(&self) -> bool {
        false
    }
    /// It builds or serves the release: a deploy, which does its work for a new release,
    /// records its fingerprint as current so the next install keeps the deployed release.
    fn of_release(&self) -> bool {
        false
    }
    /// Why this host does not need the step (its roles), or None: a step not needed is not
    /// planned, and the plan says why.
    fn not_for(&self, _cfg: &crate::config::Config) -> Option<String> {
        None
    }
    /// Its failure means the host is not fit for keel (exit 3), not that a step broke.
    fn checks_the_host(&self) -> bool {
        false
    }
    /// Everything the step's result depends on (config values, templates, app files, other
    /// steps' inputs), declared by name: when it changes, a completed step runs again.
    fn inputs(&self, ctx: &Ctx) -> Inputs;
    /// Idempotent: safe on a half-done host. File changes go through `tx`.
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult;
    /// Postcondition, checked after run (with retries: services take time to come up).
    fn verify(&self, _ctx: &Ctx) -> StepResult {
        Ok(())
    }
    /// What the step owns on the host: undone generically (units stopped and disabled,
    /// files removed, services reloaded) when the step is rolled back.
    fn manages(&self, _ctx: &Ctx) -> Managed {
        Managed::default()
    }
    /// Anything undo needs beyond `manages` (an edit in a file keel does not own, a default
    /// put back); runs after the files are gone and before the reloads. Data (databases,
    /// secrets, the app directory) is kept.
    fn undo(&self, _ctx: &Ctx) -> StepResult {
        Ok(())
    }
    /// The content the step writes to its managed files, for the diff of a drifted file
    /// (`install --dry-run`). Files it does not list are reported without a diff.
    fn desired(&self, _ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        vec![]
    }
    /// Uses apt/dpkg: never run beside another such step.
    fn uses_apt(&self) -> bool {
        false
    }
}

/// A step's declared inputs: named values whose hash is the step's fingerprint.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inputs(Vec<(String, String)>);

impl Inputs {
    pub fn new() -> Inputs {
        Inputs::default()
    }
    /// A config value (or anything displayable).
    pub fn value(mut self, name: &str, v: impl std::fmt::Display) -> Inputs {
        self.0.push((name.to_string(), v.to_string()));
        self
    }
    /// A template's source (the operator's override if there is one).
    pub fn template(self, name: &str) -> Inputs {
        let src = crate::render::source(name);
        self.value(&format!("template {name}"), src)
    }
    /// Another step's inputs: this step's result depends on what that one produced.
    pub fn step(self, ctx: &Ctx, other: &dyn Step) -> Inputs {
        let h = other.inputs(ctx).hash();
        self.value(&format!("step {}", other.id()), h)
    }
    pub fn hash(&self) -> String {
        let parts: Vec<&str> = self
            .0
            .iter()
            .flat_map(|(n, v)| [n.as_str(), v.as_str()])
            .collect();
        hash(&parts)
    }
}

/// The full SHA-256 of `b`, hex.
pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

pub fn hash(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    let d = h.finalize();
    d.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Owner ids for a system user, if it exists (packages create postgres, redis, www-data).
pub fn owner(ctx: &Ctx, user: &str) -> Option<(u32, u32)> {
    crate::system::user_ids(&ctx.paths.root, user)
}

pub fn io_err(path: &std::path::Path) -> impl Fn(std::io::Error) -> StepError + '_ {
    move |e| StepError::permanent(format!("{}: {e}", path.display()), "")
}

/// For `Step::not_for`: why a host whose roles include none of `roles` skips the step.
pub fn unless_role(
    cfg: &crate::config::Config,
    roles: &[crate::config::Role],
    elsewhere: &str,
) -> Option<String> {
    if roles.iter().any(|r| cfg.has(*r)) {
        return None;
    }
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    let have: Vec<&str> = cfg.roles().iter().map(|r| r.name()).collect();
    Some(format!(
        "not this host's role: needs {}, this host is {} ({elsewhere})",
        names.join(" or "),
        have.join(", ")
    ))
}
