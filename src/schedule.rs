//! `[[schedule]]`: the app's management commands (or any command) on a systemd calendar,
//! each a timer and a oneshot service in the current release, as the app, sandboxed as its
//! units are. Overlapping runs are skipped by systemd itself (a started unit is not started
//! again); a failure runs `keel schedule-failed`, which records an event.
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Lowercase letters, digits and '-': part of the unit names.
    pub name: String,
    /// The command and its arguments (no shell), run in the current release; a first word
    /// the venv has (`python`, `celery`) is the venv's.
    pub command: Vec<String>,
    /// A systemd OnCalendar expression (`daily`, `*-*-* 03:00`, `*:0/15`).
    pub on_calendar: String,
    /// The run is stopped after this long (seconds).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_timeout() -> u64 {
    3600
}

/// One argument as systemd's ExecStart= reads it back unchanged: specifiers (`%`) and
/// variables (`$`) doubled, and anything with a space, a quote, a backslash or a `;` in
/// double quotes with C escapes.
pub fn exec_arg(a: &str) -> String {
    let a = a.replace('%', "%%").replace('$', "$$");
    if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'\\;".contains(c)) {
        format!("\"{}\"", a.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        a
    }
}

/// The service and timer of schedule `name` of `app`.
pub fn units(app: &str, name: &str) -> (String, String) {
    (
        format!("{app}-schedule-{name}.service"),
        format!("{app}-schedule-{name}.timer"),
    )
}

/// A name that becomes part of unit names (`[[schedule]]`, `[[process]]`) and a command
/// given as an argument list: (field, message, hint) for the first problem.
pub fn check_entry(
    what: &str,
    name: &str,
    command: &[String],
    example: &str,
) -> Result<(), (&'static str, String, String)> {
    let ok_name = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok_name {
        return Err((
            "name",
            format!("{name:?} is not a {what} name"),
            "lowercase letters, digits and '-', at most 32 (it names the units)".into(),
        ));
    }
    if command.is_empty() || command[0].is_empty() {
        return Err((
            "command",
            "is empty".into(),
            format!("the command and its arguments, e.g. {example}"),
        ));
    }
    if let Some(a) = command.iter().find(|a| a.chars().any(|c| c.is_control())) {
        return Err((
            "command",
            format!("{a:?} has a control character"),
            "plain arguments only".into(),
        ));
    }
    Ok(())
}

/// Every schedule checked as the config is loaded: (key, message, hint) for the first
/// problem.
pub fn check(list: &[Schedule]) -> Result<(), (String, String, String)> {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in list.iter().enumerate() {
        let key = |f: &str| format!("schedule[{i}].{f}");
        check_entry(
            "schedule",
            &s.name,
            &s.command,
            "[\"python\", \"manage.py\", \"clearsessions\"]",
        )
        .map_err(|(f, m, h)| (key(f), m, h))?;
        if !seen.insert(s.name.clone()) {
            return Err((
                key("name"),
                format!("{:?} is named twice", s.name),
                "give each [[schedule]] its own name".into(),
            ));
        }
        if let Err(e) = crate::validate::calendar(&s.on_calendar) {
            return Err((key("on_calendar"), e.0, e.1));
        }
        if !(1..=7 * 86_400).contains(&s.timeout_secs) {
            return Err((
                key("timeout_secs"),
                format!("{} is out of range", s.timeout_secs),
                "1 to 604800 seconds".into(),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn arguments_reach_execstart_quoted() {
        assert_eq!(super::exec_arg("manage.py"), "manage.py");
        assert_eq!(super::exec_arg("a b"), "\"a b\"");
        assert_eq!(super::exec_arg("it's \"x\"\\"), "\"it's \\\"x\\\"\\\\\"");
        assert_eq!(super::exec_arg("%h $HOME"), "\"%%h $$HOME\"");
        assert_eq!(super::exec_arg(";"), "\";\"");
        assert_eq!(super::exec_arg(""), "\"\"");
    }
}
