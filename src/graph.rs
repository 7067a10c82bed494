//! Steps, the DAG they form, and which of them a run selects and why.
use crate::Paths;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::exec::{Cmd, Exec, ExecError, Output};
use crate::retry::{Kind, classify};
use crate::secrets::Secrets;
use crate::state::{State, Status};
use crate::txn::Txn;
use crate::ui::Ui;
use std::collections::{BTreeSet, HashMap};
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
    /// Test-only switch (KEEL_TEST_FAIL_AFTER=STEP): fail STEP after its run, to prove rollback.
    pub fail_after: Option<String>,
    pub ignore_preflight: Vec<String>,
    /// The state file of this run (the health timer passes it on).
    pub state_file: std::path::PathBuf,
    /// May prompt (a TTY on stdin and stderr, and no --yes).
    pub interactive: bool,
    /// Hash of the app source tree, computed once per run (several fingerprints use it).
    pub app_tree: std::sync::OnceLock<String>,
}

impl Ctx {
    /// Run a command for `step`, turning a failure into a classified step error.
    pub fn run(&self, step: &str, cmd: &Cmd) -> StepResult<Output> {
        self.exec.run(step, cmd).map_err(StepError::from)
    }

    pub fn host(&self, p: &str) -> std::path::PathBuf {
        self.paths.host(p)
    }

    /// Fake host (tests): commands are recorded, and probes that would talk to a real
    /// service over the network are skipped. The e2e tests run them for real.
    pub fn is_fake(&self) -> bool {
        matches!(self.exec.mode, crate::exec::Mode::Fake(_))
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

pub trait Step: Send + Sync {
    /// Stable kebab-case id: a CLI argument and a state-file key.
    fn id(&self) -> &'static str;
    fn deps(&self) -> &'static [&'static str];
    fn about(&self) -> &'static str;
    /// Hash input of everything the step's result depends on (config values, templates).
    fn fingerprint(&self, ctx: &Ctx) -> String;
    /// Idempotent: safe on a half-done host. File changes go through `tx`.
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult;
    /// Postcondition, checked after run (with retries: services take time to come up).
    fn verify(&self, _ctx: &Ctx) -> StepResult {
        Ok(())
    }
    /// Remove what the step set up, keeping data (databases, secrets, app directory).
    fn undo(&self, _ctx: &Ctx) -> StepResult {
        Ok(())
    }
    /// Uses apt/dpkg: never run beside another such step.
    fn uses_apt(&self) -> bool {
        false
    }
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

pub struct Graph {
    pub steps: Vec<Box<dyn Step>>,
    index: HashMap<&'static str, usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Pending,
    Stale,
    Forced,
    Interrupted,
    FailedBefore,
    RolledBack,
    Completed,
    SkippedByFlag,
}

impl Reason {
    pub fn runs(self) -> bool {
        !matches!(self, Reason::Completed | Reason::SkippedByFlag)
    }
    pub fn describe(self) -> &'static str {
        match self {
            Reason::Pending => "run: pending (never completed)",
            Reason::Stale => "run: stale (its inputs changed since it completed)",
            Reason::Forced => "run: forced by --retry-step",
            Reason::Interrupted => "run: interrupted last time (found running)",
            Reason::FailedBefore => "run: failed last time",
            Reason::RolledBack => "run: rolled back last time",
            Reason::Completed => "skip: completed, inputs unchanged",
            Reason::SkippedByFlag => "skip: --skip",
        }
    }
}

impl Graph {
    /// Steps must be given in an order where dependencies come first; checked here.
    pub fn new(steps: Vec<Box<dyn Step>>) -> Graph {
        let mut index = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for d in s.deps() {
                assert!(
                    index.contains_key(d),
                    "step {} depends on {d}, which is not before it",
                    s.id()
                );
            }
            assert!(
                index.insert(s.id(), i).is_none(),
                "duplicate step {}",
                s.id()
            );
        }
        Graph { steps, index }
    }

    pub fn get(&self, id: &str) -> Option<&dyn Step> {
        self.index.get(id).map(|&i| self.steps[i].as_ref())
    }

    pub fn ids(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.id()).collect()
    }

    fn check_ids(&self, ids: &[String], flag: &str) -> Result<()> {
        for id in ids {
            if !self.index.contains_key(id.as_str()) {
                return Err(Error::usage(
                    format!("{flag}: unknown step {id:?}"),
                    format!("steps are: {}", self.ids().join(", ")),
                ));
            }
        }
        Ok(())
    }

    /// Targets plus everything they depend on, in graph order. No target = every step.
    pub fn closure(&self, targets: &[String]) -> Result<Vec<&'static str>> {
        self.check_ids(targets, "install")?;
        if targets.is_empty() {
            return Ok(self.ids());
        }
        let want = self.ancestors(targets);
        Ok(self
            .ids()
            .into_iter()
            .filter(|id| want.contains(id) || targets.iter().any(|t| t == id))
            .collect())
    }

    /// Every step the `roots` depend on, directly or through others (roots not included
    /// unless one depends on another).
    pub fn ancestors<S: AsRef<str>>(&self, roots: &[S]) -> BTreeSet<&'static str> {
        let mut want: BTreeSet<&'static str> = BTreeSet::new();
        // Steps are in dependency order, so one backward pass collects the whole closure.
        for s in self.steps.iter().rev() {
            if roots.iter().any(|r| r.as_ref() == s.id()) || want.contains(s.id()) {
                want.extend(s.deps().iter().copied());
            }
        }
        want
    }

    /// The steps downstream of `roots` (roots included).
    pub fn downstream(&self, roots: &[String]) -> BTreeSet<&'static str> {
        let mut out: BTreeSet<&'static str> = BTreeSet::new();
        for s in &self.steps {
            if roots.iter().any(|r| r == s.id()) || s.deps().iter().any(|d| out.contains(d)) {
                out.insert(s.id());
            }
        }
        out
    }

    /// Decide, for each selected step, whether it runs and why.
    pub fn plan(
        &self,
        state: &State,
        targets: &[String],
        retry: &[String],
        skip: &[String],
        fingerprints: &dyn Fn(&dyn Step) -> String,
    ) -> Result<Vec<(&'static str, Reason)>> {
        self.check_ids(retry, "--retry-step")?;
        self.check_ids(skip, "--skip")?;
        let mut selected = self.closure(targets)?;
        // --retry-step S also selects S (and its deps) when it was not a target.
        if !targets.is_empty() {
            let extra = self.closure(retry)?;
            let mut all: BTreeSet<&str> = selected.iter().copied().collect();
            if !retry.is_empty() {
                all.extend(extra);
            }
            selected = self
                .ids()
                .into_iter()
                .filter(|id| all.contains(id))
                .collect();
        }
        let forced = self.downstream(retry);
        Ok(selected
            .into_iter()
            .map(|id| {
                let step = self.get(id).expect("known");
                let rec = state.step(id);
                let reason = if skip.iter().any(|s| s == id) {
                    Reason::SkippedByFlag
                } else if forced.contains(id) {
                    Reason::Forced
                } else {
                    match rec.status {
                        Status::Pending => Reason::Pending,
                        Status::Running => Reason::Interrupted,
                        Status::Failed => Reason::FailedBefore,
                        Status::RolledBack => Reason::RolledBack,
                        Status::Completed => {
                            if rec.fingerprint.as_deref() == Some(fingerprints(step).as_str()) {
                                Reason::Completed
                            } else {
                                Reason::Stale
                            }
                        }
                    }
                };
                (id, reason)
            })
            .collect())
    }

    /// Graphviz rendering for `keel plan --output dot`.
    pub fn dot(&self) -> String {
        let mut s = String::from("digraph keel {\n  rankdir=LR;\n");
        for st in &self.steps {
            s.push_str(&format!(
                "  \"{}\" [tooltip=\"{}\"];\n",
                st.id(),
                st.about()
            ));
            for d in st.deps() {
                s.push_str(&format!("  \"{d}\" -> \"{}\";\n", st.id()));
            }
        }
        s.push_str("}\n");
        s
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A step with no effects, for graph tests.
    pub struct Fake(pub &'static str, pub &'static [&'static str]);
    impl Step for Fake {
        fn id(&self) -> &'static str {
            self.0
        }
        fn deps(&self) -> &'static [&'static str] {
            self.1
        }
        fn about(&self) -> &'static str {
            "fake"
        }
        fn fingerprint(&self, _: &Ctx) -> String {
            String::new()
        }
        fn run(&self, _: &Ctx, _: &mut Txn) -> StepResult {
            Ok(())
        }
    }

    fn g() -> Graph {
        Graph::new(vec![
            Box::new(Fake("a", &[])),
            Box::new(Fake("b", &["a"])),
            Box::new(Fake("c", &["a"])),
            Box::new(Fake("d", &["b", "c"])),
            Box::new(Fake("e", &["a"])),
        ])
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn plan(st: &State, t: &[&str], r: &[&str], k: &[&str]) -> Vec<(&'static str, Reason)> {
        g().plan(st, &s(t), &s(r), &s(k), &|_| "fp".into()).unwrap()
    }

    fn done(ids: &[&str]) -> State {
        let mut st = State::default();
        for id in ids {
            st.step_mut(id).status = Status::Completed;
            st.step_mut(id).fingerprint = Some("fp".into());
        }
        st
    }

    #[test]
    fn targets_pull_in_dependencies_in_order() {
        assert_eq!(g().closure(&s(&["d"])).unwrap(), vec!["a", "b", "c", "d"]);
        assert_eq!(g().closure(&s(&["e"])).unwrap(), vec!["a", "e"]);
        assert_eq!(g().closure(&[]).unwrap().len(), 5);
        let e = g().closure(&s(&["zz"])).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.hint().unwrap().contains("a, b, c, d, e"));
    }

    #[test]
    fn completed_are_skipped_and_retry_invalidates_downstream() {
        let st = done(&["a", "b", "c", "d", "e"]);
        assert!(
            plan(&st, &[], &[], &[])
                .iter()
                .all(|(_, r)| *r == Reason::Completed)
        );
        let p = plan(&st, &[], &["b"], &[]);
        let forced: Vec<_> = p
            .iter()
            .filter(|(_, r)| *r == Reason::Forced)
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(forced, vec!["b", "d"]);
        // retrying a step that was not among the targets selects it
        let p = plan(&st, &["e"], &["b"], &[]);
        assert!(p.contains(&("b", Reason::Forced)));
        assert!(p.contains(&("e", Reason::Completed)));
    }

    #[test]
    fn stale_interrupted_failed_and_skipped() {
        let mut st = done(&["a", "b", "c"]);
        st.step_mut("b").fingerprint = Some("old".into());
        st.step_mut("c").status = Status::Running;
        st.step_mut("d").status = Status::Failed;
        st.step_mut("e").status = Status::RolledBack;
        let p: HashMap<_, _> = plan(&st, &[], &[], &["a"]).into_iter().collect();
        assert_eq!(p["a"], Reason::SkippedByFlag);
        assert_eq!(p["b"], Reason::Stale);
        assert_eq!(p["c"], Reason::Interrupted);
        assert_eq!(p["d"], Reason::FailedBefore);
        assert_eq!(p["e"], Reason::RolledBack);
    }

    #[test]
    fn dot_has_every_edge() {
        let d = g().dot();
        assert!(d.contains("\"b\" -> \"d\""));
        assert!(d.contains("\"c\" -> \"d\""));
        assert_eq!(d.matches("->").count(), 5);
    }
}
