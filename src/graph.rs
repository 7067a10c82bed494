//! The DAG the steps form, and which of them a run selects and why.
use crate::error::{Error, Result};
use crate::state::{State, Status};
use crate::step::Step;
use std::collections::{BTreeSet, HashMap};

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
    Drifted,
    /// The host's roles do not need it (`Step::not_for` says why).
    NotForRoles,
}

impl Reason {
    /// `describe`, with the step's own reason when the host's roles leave it out.
    pub fn explain(self, step: Option<&dyn Step>, cfg: &crate::config::Config) -> String {
        match (self, step.and_then(|s| s.not_for(cfg))) {
            (Reason::NotForRoles, Some(why)) => format!("skip: {why}"),
            _ => self.describe().to_string(),
        }
    }
    pub fn runs(self) -> bool {
        !matches!(
            self,
            Reason::Completed | Reason::SkippedByFlag | Reason::NotForRoles
        )
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
            Reason::Drifted => "run: drifted (the host no longer holds what it set up)",
            Reason::NotForRoles => "skip: not for this host's roles",
        }
    }
}

/// What the plan asks of each step: its fingerprint now, whether the host drifted from it,
/// whether this host's roles leave it out.
pub struct Judge<'a> {
    pub fingerprints: &'a dyn Fn(&dyn Step) -> String,
    pub drifted: &'a dyn Fn(&'static str) -> bool,
    pub unneeded: &'a dyn Fn(&dyn Step) -> bool,
}

impl Graph {
    /// Steps must be given in an order where dependencies come first, with distinct ids.
    /// The registry is checked by a unit test (steps::tests), so this never fails at run time.
    pub fn new(steps: Vec<Box<dyn Step>>) -> std::result::Result<Graph, String> {
        let mut index = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for d in s.dep_ids() {
                if !index.contains_key(d) {
                    return Err(format!(
                        "step {} depends on {d}, which is not before it",
                        s.id()
                    ));
                }
            }
            if index.insert(s.id(), i).is_some() {
                return Err(format!("duplicate step {}", s.id()));
            }
        }
        Ok(Graph { steps, index })
    }

    /// Every step, in order.
    pub fn all(&self) -> Vec<&dyn Step> {
        self.steps.iter().map(|s| s.as_ref()).collect()
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
                want.extend(s.dep_ids().iter().copied());
            }
        }
        want
    }

    /// The steps downstream of `roots` (roots included).
    pub fn downstream(&self, roots: &[String]) -> BTreeSet<&'static str> {
        let mut out: BTreeSet<&'static str> = BTreeSet::new();
        for s in &self.steps {
            if roots.iter().any(|r| r == s.id()) || s.dep_ids().iter().any(|d| out.contains(d)) {
                out.insert(s.id());
            }
        }
        out
    }

    /// Every step named by the targets, `--retry-step` and `--skip` exists (exit 2 naming
    /// the flag otherwise): checked before keel writes anything.
    pub fn check_selection(
        &self,
        targets: &[String],
        retry: &[String],
        skip: &[String],
    ) -> Result<()> {
        self.check_ids(targets, "install")?;
        self.check_ids(retry, "--retry-step")?;
        self.check_ids(skip, "--skip")
    }

    /// Decide, for each selected step, whether it runs and why.
    pub fn plan(
        &self,
        state: &State,
        targets: &[String],
        retry: &[String],
        skip: &[String],
        judge: &Judge,
    ) -> Result<Vec<(&'static str, Reason)>> {
        let Judge {
            fingerprints,
            drifted,
            unneeded,
        } = judge;
        self.check_selection(&[], retry, skip)?;
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
                let reason = if unneeded(step) {
                    Reason::NotForRoles
                } else if skip.iter().any(|s| s == id) {
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
                            if rec.fingerprint.as_deref() != Some(fingerprints(step).as_str()) {
                                Reason::Stale
                            } else if drifted(id) {
                                Reason::Drifted
                            } else {
                                Reason::Completed
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
            for d in st.dep_ids() {
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
    use crate::step::{Ctx, StepResult};
    use crate::txn::Txn;

    /// A step with no effects, for graph tests.
    pub struct Fake(pub &'static str, pub &'static [&'static str]);
    impl Step for Fake {
        fn id(&self) -> &'static str {
            self.0
        }
        fn deps(&self) -> crate::step::Deps {
            &[]
        }
        fn dep_ids(&self) -> Vec<&'static str> {
            self.1.to_vec()
        }
        fn about(&self) -> &'static str {
            "fake"
        }
        fn inputs(&self, _: &Ctx) -> crate::step::Inputs {
            crate::step::Inputs::new()
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
        .unwrap()
    }

    #[test]
    fn misordered_or_duplicate_steps_are_refused() {
        let e = Graph::new(vec![Box::new(Fake("b", &["a"])), Box::new(Fake("a", &[]))]);
        assert!(
            e.err()
                .unwrap()
                .contains("depends on a, which is not before it")
        );
        let e = Graph::new(vec![Box::new(Fake("a", &[])), Box::new(Fake("a", &[]))]);
        assert!(e.err().unwrap().contains("duplicate step a"));
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn plan(st: &State, t: &[&str], r: &[&str], k: &[&str]) -> Vec<(&'static str, Reason)> {
        g().plan(
            st,
            &s(t),
            &s(r),
            &s(k),
            &Judge {
                fingerprints: &|_| "fp".into(),
                drifted: &|_| false,
                unneeded: &|_| false,
            },
        )
        .unwrap()
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
