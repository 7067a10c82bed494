//! One file per subcommand, as cargo and just do; `run` only dispatches. Commands sit at the
//! top of the crate: nothing below imports them.
pub mod apps;
pub mod backup;
pub mod beat_guard;
pub mod context;
pub mod deploy;
pub mod diagnose;
pub mod env;
pub mod init;
pub mod install;
pub mod logs;
pub mod maintenance;
pub mod notify;
pub mod plan;
pub mod preflight;
pub mod releases;
pub mod rollback;
pub mod run;
pub mod schedules;
pub mod status;
pub mod verify;

use crate::cli::{Cli, Command, Output};
use crate::error::Result;

/// The `--output` formats a command writes; any other is refused (exit 2) before it runs,
/// never silently replaced by the human one.
fn outputs(c: &Command) -> &'static [Output] {
    use Output::*;
    match c {
        Command::Plan => &[Human, Json, Dot],
        Command::Verify { .. } => &[Human, Json, Prometheus],
        Command::Status { .. }
        | Command::Env { .. }
        | Command::Preflight { .. }
        | Command::Install { .. }
        | Command::Rollback
        | Command::Deploy { .. }
        | Command::Releases
        | Command::Backup
        | Command::Restore { .. }
        | Command::Logs { .. }
        | Command::Maintenance { .. }
        | Command::Notify { .. }
        | Command::Schedules
        | Command::Apps => &[Human, Json],
        _ => &[Human],
    }
}

fn check_output(cli: &Cli) -> Result<()> {
    let ok = outputs(&cli.command);
    if ok.contains(&cli.output) {
        return Ok(());
    }
    let name = |o: &Output| {
        clap::ValueEnum::to_possible_value(o)
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    Err(crate::error::Error::usage(
        format!(
            "--output {}: this command does not write that format",
            name(&cli.output)
        ),
        format!(
            "it writes: {}",
            ok.iter().map(name).collect::<Vec<_>>().join(", ")
        ),
    ))
}

/// A one-off command's exit status as keel's own.
fn passed(r: Result<i32>) -> Result<()> {
    match r? {
        0 => Ok(()),
        c => Err(crate::error::Error::Passed(c)),
    }
}

pub fn run(cli: Cli) -> Result<()> {
    // The beat unit's guard runs as the app's user, before anything of a keel run.
    if let Command::BeatGuard {
        host,
        port,
        user,
        database,
        ca,
        command,
    } = &cli.command
    {
        return beat_guard::run(&beat_guard::Args {
            host: host.clone(),
            port: *port,
            user: user.clone(),
            database: database.clone(),
            ca: ca.clone(),
            command: command.clone(),
        });
    }
    check_output(&cli)?;
    let inv = context::Invocation::new(cli)?;
    let (cli, inv) = (&inv.cli, &inv);
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "keel", &mut std::io::stdout());
            Ok(())
        }
        Command::Manpage => {
            use clap::CommandFactory;
            match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                // `keel manpage | head` is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(crate::error::Error::Other(e.into()))
                }
                _ => Ok(()),
            }
        }
        Command::StateSchema => {
            print!("{}", crate::state::schema_json());
            Ok(())
        }
        Command::BeatGuard { .. } => unreachable!("handled before the invocation"),
        Command::Status {
            wait: true,
            timeout,
        } => status::wait(inv, *timeout),
        Command::Status { .. } => status::run(inv),
        Command::Env {
            action: Some(a), ..
        } => env::action(inv, a),
        Command::Env {
            example: Some(example),
            out: Some(out),
            ..
        } => env::run(inv, example, out),
        Command::Env { .. } => Err(crate::error::Error::usage(
            "keel env: --example and --out go together",
            "keel env --example FILE --out FILE, or keel env set|unset|list",
        )),
        Command::Init => init::run(inv),
        Command::Verify {
            heal,
            watch,
            fail_on_degraded,
            sequential,
            notify,
        } => verify::run(
            inv,
            verify::Opts {
                heal: *heal,
                watch: *watch,
                fail_on_degraded: *fail_on_degraded,
                sequential: *sequential,
                notify: *notify,
            },
        ),
        Command::Diagnose => diagnose::run(inv),
        Command::Plan => plan::run(inv),
        Command::Preflight {
            ignore_preflight_errors,
        } => preflight::run(inv, ignore_preflight_errors),
        Command::Install { .. } => install::run(inv),
        Command::Rollback => rollback::run(inv),
        Command::Deploy { .. } => deploy::run(inv),
        Command::Releases => releases::run(inv),
        Command::Backup => backup::run(inv),
        Command::Restore { file } => backup::restore(inv, file),
        Command::Run { command } => passed(run::run(inv, run::What::Command(command))),
        Command::Logs {
            processes,
            follow,
            lines,
            since,
            failed,
        } => logs::run(
            inv,
            logs::Opts {
                processes,
                follow: *follow,
                lines: *lines,
                since: since.as_deref(),
                failed: *failed,
            },
        ),
        Command::Maintenance { action } => maintenance::run(inv, action),
        Command::Notify { action } => notify::run(inv, action),
        Command::Schedules => schedules::run(inv),
        Command::Apps => apps::run(inv),
        Command::ScheduleFailed { unit } => schedules::failed(inv, unit),
        Command::Shell { args } => passed(run::run(inv, run::What::Shell(args))),
        Command::Dbshell { args } => passed(run::run(inv, run::What::DbShell(args))),
    }
}
