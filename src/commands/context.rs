//! What every command needs before it can run steps or checks: the context, built once.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::paths::Paths;
use crate::step::Ctx;
use crate::{events, exec, redact, secrets, ui};
use serde_json::json;
use std::io::IsTerminal;
use std::time::Duration;

/// The state file, refused (exit 2, left as it is) when it is not keel's to trust or names
/// a step this keel does not have.
pub fn load_state(path: &std::path::Path) -> Result<crate::state::State> {
    let lock = crate::state::lock_path(path);
    if let Ok(Some(l)) = crate::fsx::lstat(&lock)
        && crate::fsx::kind(&l) != rustix::fs::FileType::RegularFile
    {
        return Err(Error::usage(
            format!(
                "{}: the run lock beside the state file is not a regular file",
                lock.display()
            ),
            format!(
                "remove it (keel makes a new one), or pass --state-file elsewhere: rm -r {}",
                lock.display()
            ),
        ));
    }
    let st = crate::state::State::load(path)?;
    let unknown = st.unknown_steps(&crate::steps::graph().ids());
    if !unknown.is_empty() {
        return Err(Error::State {
            file: path.into(),
            msg: format!("records steps this keel does not have: {}", unknown.join(", ")),
            hint: "it was written by another keel version or edited by hand; use that version, or move the file aside to start over (completed steps then run again)".into(),
        });
    }
    Ok(st)
}

/// Which of the standard streams are terminals: detected once, when the command starts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

impl Terminal {
    pub fn detect() -> Terminal {
        let is = |t: &dyn IsTerminal| t.is_terminal();
        Terminal {
            stdin: is(&std::io::stdin()),
            stdout: is(&std::io::stdout()),
            stderr: is(&std::io::stderr()),
        }
    }
    /// A question can be asked (stderr) and answered (stdin).
    pub fn can_ask(&self) -> bool {
        self.stdin && self.stderr
    }
}

/// One command's inputs, resolved once: the command line, the terminal, and the config
/// (read on first use, then the same value for the whole command).
pub struct Invocation {
    pub cli: crate::cli::Cli,
    pub terminal: Terminal,
    config: std::cell::OnceCell<Config>,
}

/// `--app NAME` as files: the app's config under /etc/keel/apps/ and its own state file
/// (each unless given). A config given from /etc/keel/apps/ names its app the same way, so
/// it can never run with the host app's state file.
fn resolve_app(cli: &mut crate::cli::Cli, paths: &Paths) -> Result<()> {
    let apps = paths.host(crate::apps::APPS_DIR);
    // Compared as real paths: `--config shop.toml` from inside /etc/keel/apps counts too.
    let real = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let parent = cli.config.parent().map(|p| {
        if p.as_os_str().is_empty() {
            std::path::Path::new(".")
        } else {
            p
        }
    });
    if cli.app.is_none() && parent.is_some_and(|p| real(p) == real(&apps)) {
        cli.app = cli
            .config
            .file_stem()
            .and_then(|s| s.to_str())
            .map(String::from);
    }
    let Some(name) = cli.app.clone() else {
        return Ok(());
    };
    if !crate::validate::ident(&name, 32) {
        return Err(Error::usage(
            format!("--app {name:?} is not an app name"),
            "an app's name as in its keel.toml's app.name: a lowercase letter, then lowercase letters, digits, '_' or '-' (at most 32)",
        ));
    }
    if cli.config == std::path::Path::new(crate::apps::HOST_CONFIG) {
        cli.config = apps.join(format!("{name}.toml"));
    }
    if cli.state_file == std::path::Path::new(crate::apps::HOST_STATE) {
        cli.state_file = crate::apps::state_file(paths, &name);
    }
    Ok(())
}

impl Invocation {
    pub fn new(mut cli: crate::cli::Cli) -> Result<Invocation> {
        resolve_app(&mut cli, &Paths::from_env())?;
        Ok(Invocation {
            cli,
            terminal: Terminal::detect(),
            config: Default::default(),
        })
    }

    /// keel.toml, loaded and checked once (the one `Config::load` of a command).
    pub fn config(&self) -> Result<Config> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let mut c = Config::load(&self.cli.config)?;
        if let Some(name) = &self.cli.app {
            if c.app.name != *name {
                return Err(c.err(
                    "app.name",
                    format!(
                        "is {:?}, but this is app {name:?}'s config (--app {name})",
                        c.app.name
                    ),
                    format!("set app.name = \"{name}\", or name the file after its app"),
                ));
            }
            c.named = true;
        }
        Ok(self.config.get_or_init(|| c).clone())
    }

    /// Another command line in the same invocation (a command that runs an install on its
    /// behalf): the same terminal, the same config.
    pub fn with_cli(&self, cli: crate::cli::Cli) -> Invocation {
        Invocation {
            cli,
            terminal: self.terminal,
            config: self.config.clone(),
        }
    }

    /// Questions may be asked: a terminal to ask on, and no --yes.
    pub fn interactive(&self) -> bool {
        !self.cli.yes && self.terminal.can_ask()
    }
}

/// How a command wants its context: named fields instead of positional bools.
#[derive(Debug, Clone)]
pub struct CtxOptions {
    /// Plain lines only (JSON output or a non-interactive command).
    pub quiet: bool,
    /// `-q`, default, `-v`.
    pub verbosity: ui::Verbosity,
    pub ignore_preflight: Vec<String>,
    pub run_id: String,
    /// May prompt (a TTY on stdin and stderr, and no --yes).
    pub interactive: bool,
    pub state_file: std::path::PathBuf,
    pub terminal: Terminal,
}

impl CtxOptions {
    pub fn new(inv: &Invocation, run_id: &str) -> CtxOptions {
        let cli = &inv.cli;
        CtxOptions {
            terminal: inv.terminal,
            quiet: cli.output != crate::cli::Output::Human,
            verbosity: match (cli.quiet, cli.verbose) {
                (true, _) => ui::Verbosity::Quiet,
                (_, true) => ui::Verbosity::Verbose,
                _ => ui::Verbosity::Normal,
            },
            ignore_preflight: vec![],
            run_id: run_id.into(),
            interactive: false,
            state_file: cli.state_file.clone(),
        }
    }
}

/// The one command runner: the real host; in a test build (the `fake-host` feature), the
/// fake one when KEEL_FAKE_HOST names its directory. The release binary has no fake: a stray
/// variable cannot turn a production run into one that changes nothing.
pub fn runner(paths: &Paths, redactor: redact::Redactor, timeout: Duration) -> exec::Exec {
    #[cfg(feature = "fake-host")]
    #[allow(clippy::disallowed_methods)] // the tests' door: which fake host
    let mode = match std::env::var_os("KEEL_FAKE_HOST") {
        Some(d) => exec::Mode::Fake(d.into()),
        None => exec::Mode::Real,
    };
    #[cfg(not(feature = "fake-host"))]
    let mode = exec::Mode::Real;
    exec::Exec {
        mode,
        log_dir: paths.log_dir(),
        redactor,
        default_timeout: timeout,
        children_dir: paths.host("/run/keel/children"),
        echo: false,
        terminal: false,
    }
}

pub fn build_ctx(cfg: Config, o: CtxOptions) -> Ctx {
    let paths = Paths::from_env().for_app(cfg.named.then_some(cfg.app.name.as_str()));
    let redactor = redact::Redactor::default();
    let secrets = secrets::Secrets {
        pre_shared: cfg.in_fleet(),
        dir: paths.host(&cfg.secrets_dir()),
        redactor: redactor.clone(),
    };
    secrets.load_all();
    // Every secret keel knows is masked, for every command: the admin's own too. keel.toml's
    // [env] and the live .env (root's; read without following a link): the values of
    // secret-looking keys and the passwords inside URLs.
    for v in redact::secret_values(&cfg.env) {
        redactor.add(&v);
    }
    for v in redact::secret_values(&crate::envset::read(&paths, &cfg.app.name)) {
        redactor.add(&v);
    }
    for v in cfg.notify.secret_parts() {
        redactor.add(&v);
    }
    let env_file = paths.host(&cfg.env_file().display().to_string());
    if let Ok(Some(text)) = crate::fsx::read_text_nofollow(&env_file, crate::fsx::MAX_INPUT) {
        for v in redact::secret_values(&crate::dotenv::values(&text)) {
            redactor.add(&v);
        }
    }
    let mut exec = runner(
        &paths,
        redactor.clone(),
        Duration::from_secs(cfg.timeouts.command_secs),
    );
    exec.echo = o.verbosity == ui::Verbosity::Verbose;
    exec.terminal = o.terminal.stdin || o.terminal.stdout || o.terminal.stderr;
    let events = events::Events::new(paths.events_file(), o.run_id.clone(), redactor);
    Ctx {
        cfg,
        exec,
        secrets,
        ui: ui::Ui::new(o.quiet, o.verbosity, o.terminal.stderr),
        events,
        apt: Default::default(),
        ignore_preflight: o.ignore_preflight,
        interactive: o.interactive,
        state_file: o.state_file,
        app_tree: Default::default(),
        build_packages: Default::default(),

        paths,
    }
}

/// Before a run changes anything: stop what a killed run left running (apt excepted), and
/// say so, since it explains a step the previous run never finished.
pub fn reap_leftovers(ctx: &Ctx) {
    for l in ctx.exec.reap_leftovers() {
        let (what, event) = match l.action {
            exec::LeftoverAction::Stopped => ("stopped", "leftover_stopped"),
            exec::LeftoverAction::LeftRunning => (
                "left running (apt/dpkg is never interrupted; the dpkg lock serialises it)",
                "leftover_running",
            ),
        };
        ctx.ui.line(&format!(
            "a previous keel run was killed while `{}` (pid {}) ran: {what}",
            l.cmd, l.pgid
        ));
        ctx.events
            .emit(event, None, json!({"pid": l.pgid, "command": l.cmd}));
    }
}

/// Refused at once when a question will have to be asked and there is no terminal to ask
/// on: before any check runs or any file (a lock, a log) is made.
pub fn can_confirm(inv: &Invocation, question: &str) -> Result<()> {
    if inv.cli.yes || inv.terminal.can_ask() {
        return Ok(());
    }
    Err(Error::usage(
        format!("{question}: no terminal to ask on"),
        "pass --yes to confirm in unattended use",
    ))
}

pub fn confirm(inv: &Invocation, question: &str) -> Result<bool> {
    if inv.cli.yes {
        return Ok(true);
    }
    can_confirm(inv, question)?;
    dialoguer::Confirm::new()
        .with_prompt(question)
        .default(false)
        .interact()
        .map_err(|e| Error::Other(e.into()))
}

/// One value piped in on stdin (a secret kept off the command line): the whole input, at
/// most `max` bytes read, one trailing newline taken off. `what` names the command in an
/// error, `hint` says what to pipe.
pub fn read_stdin_value(what: &str, max: u64, hint: &str) -> Result<String> {
    use std::io::Read;
    let mut s = String::new();
    std::io::stdin()
        .take(max)
        .read_to_string(&mut s)
        .map_err(|e| Error::usage(format!("{what}: stdin: {e}"), hint))?;
    Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
}
