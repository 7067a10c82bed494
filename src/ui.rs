//! Progress on a TTY (indicatif), plain timestamped lines otherwise (cloud-init logs, CI).
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// How much keel says on stderr while it works (`-q`, default, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// Failures only (the result still goes to stdout, errors to stderr).
    Quiet,
    #[default]
    Normal,
    /// Also every command keel runs, as plain lines.
    Verbose,
}

pub struct Ui {
    multi: Option<MultiProgress>,
    overall: std::sync::OnceLock<ProgressBar>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    verbosity: Verbosity,
}

impl Ui {
    /// `plain` when stdout carries JSON: progress still goes to stderr, as plain lines. No
    /// colours are ever used (so NO_COLOR holds); `-q` and `-v` print plain lines too.
    /// `stderr_tty`: whether stderr is a terminal (the invocation detected it once).
    pub fn new(plain: bool, verbosity: Verbosity, stderr_tty: bool) -> Ui {
        // Read once, as the UI is made: plain lines even on a terminal.
        #[allow(clippy::disallowed_methods)]
        let plain_env = std::env::var_os("KEEL_PLAIN").is_some();
        let tty = stderr_tty && !plain_env;
        Ui {
            multi: (tty && !plain && verbosity == Verbosity::Normal).then(MultiProgress::new),
            overall: std::sync::OnceLock::new(),
            bars: Mutex::new(HashMap::new()),
            verbosity,
        }
    }

    fn quiet(&self) -> bool {
        self.verbosity == Verbosity::Quiet
    }

    pub fn is_tty(&self) -> bool {
        self.multi.is_some()
    }

    /// The overall "LABEL [done/total]" line (TTY only). Called again for a new phase (the
    /// run's rollback), it restarts the count, so undos are not counted as steps done.
    pub fn start_overall(&self, label: &str, total: u64) {
        let Some(m) = &self.multi else { return };
        let style =
            ProgressStyle::with_template(&format!("keel {label} [{{pos}}/{{len}}] {{elapsed}}"))
                .expect("template");
        if let Some(pb) = self.overall.get() {
            pb.set_style(style);
            pb.set_position(0);
            pb.reset_elapsed();
            // Last: it redraws, and the count must already be reset by then.
            pb.set_length(total);
            return;
        }
        let pb = m.add(ProgressBar::new(total));
        pb.set_style(style);
        pb.enable_steady_tick(Duration::from_millis(500));
        let _ = self.overall.set(pb);
    }

    pub fn line(&self, msg: &str) {
        if self.quiet() {
            return;
        }
        self.say(msg);
    }

    /// A line even under `-q` (a failure).
    fn say(&self, msg: &str) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg);
            }
            None => eprintln!("{} keel: {msg}", crate::paths::now()),
        }
    }

    pub fn step_started(&self, id: &str, what: &str) {
        match &self.multi {
            Some(m) => {
                let pb = m.insert_from_back(1, ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("  {spinner} {prefix:<12} {elapsed:>4} {msg}")
                        .expect("template"),
                );
                pb.set_prefix(id.to_string());
                pb.set_message(what.to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                self.bars.lock().expect("ui").insert(id.into(), pb);
            }
            None => self.line(&format!("[{id}] started: {what}")),
        }
    }

    pub fn step_note(&self, id: &str, msg: &str) {
        match self.bars.lock().expect("ui").get(id) {
            Some(pb) => pb.set_message(msg.to_string()),
            None => self.line(&format!("[{id}] {msg}")),
        }
    }

    pub fn step_done(&self, id: &str, ok: bool, msg: &str) {
        let bar = self.bars.lock().expect("ui").remove(id);
        match bar {
            Some(pb) => {
                let mark = if ok { "✓" } else { "✗" };
                pb.set_style(
                    ProgressStyle::with_template("  {prefix:<14} {msg}").expect("template"),
                );
                pb.set_prefix(format!("{mark} {id}"));
                pb.finish_with_message(msg.to_string());
                if let Some(o) = self.overall.get() {
                    o.inc(1);
                }
            }
            None if !ok => self.say(&format!("[{id}] {msg}")),
            None => self.line(&format!("[{id}] {msg}")),
        }
    }

    /// Hide progress bars while `f` talks to the terminal (prompts).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }

    pub fn finish(&self) {
        if let Some(o) = self.overall.get() {
            o.finish_and_clear();
        }
    }
}
