//! `[[process]]`: more long-running processes of the app (a Celery worker for other queues,
//! Flower), each a unit `<app>-<name>` as hardened as the worker, restarted by deploys the
//! way the worker is (warm shutdown), checked by `keel verify`.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Process {
    /// Lowercase letters, digits and '-': the unit is `<app>-<name>`.
    pub name: String,
    /// The command and its arguments (no shell), run in the current release; a first word
    /// the venv has (`celery`, `python`) is the venv's.
    pub command: Vec<String>,
}

/// Names keel's own units already take.
const RESERVED: &[&str] = &["web", "worker", "beat"];

/// The unit of process `name` (without `.service`).
pub fn unit(app: &str, name: &str) -> String {
    format!("{app}-{name}")
}

/// The queues a Celery worker's command line consumes (`-Q a,b`, `--queues=a,b`).
pub fn queues(command: &[String]) -> Vec<String> {
    let mut out = vec![];
    let mut it = command.iter().peekable();
    while let Some(a) = it.next() {
        let v = if a == "-Q" || a == "--queues" {
            it.next().cloned()
        } else {
            a.strip_prefix("--queues=")
                .or(a.strip_prefix("-Q"))
                .filter(|v| !v.is_empty())
                .map(String::from)
        };
        if let Some(v) = v {
            out.extend(v.split(',').filter(|q| !q.is_empty()).map(String::from));
        }
    }
    out
}

/// Checked as the config is loaded: (key, message, hint) for the first problem.
pub fn check(list: &[Process]) -> Result<(), (String, String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in list.iter().enumerate() {
        let key = |f: &str| format!("process[{i}].{f}");
        crate::schedule::check_entry(
            "process",
            &p.name,
            &p.command,
            "[\"celery\", \"-A\", \"proj\", \"worker\", \"-Q\", \"slow\"]",
        )
        .map_err(|(f, m, h)| (key(f), m, h))?;
        if RESERVED.contains(&p.name.as_str()) || p.name.starts_with("schedule-") {
            return Err((
                key("name"),
                format!("{:?} is taken by keel's own units", p.name),
                "pick another name (web, worker, beat and schedule-* are keel's)".into(),
            ));
        }
        if !seen.insert(p.name.clone()) {
            return Err((
                key("name"),
                format!("{:?} is named twice", p.name),
                "give each [[process]] its own name".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_workers_queues_are_read_from_its_command() {
        let c = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            super::queues(&c("celery -A p worker -Q slow,bulk -c 1")),
            ["slow", "bulk"]
        );
        assert_eq!(
            super::queues(&c("celery -A p worker --queues=slow")),
            ["slow"]
        );
        assert_eq!(super::queues(&c("celery -A p worker -Qslow")), ["slow"]);
        assert!(super::queues(&c("celery -A p flower")).is_empty());
    }
}
