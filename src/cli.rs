//! Command-line interface: subcommands and flags only.
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "keel",
    version,
    about = "Turn a fresh Debian/Ubuntu VPS into a production Django + Celery stack, step by resumable step"
)]
pub struct Cli {
    /// keel.toml to use.
    #[arg(
        long,
        global = true,
        default_value = "/etc/keel/keel.toml",
        env = "KEEL_CONFIG"
    )]
    pub config: PathBuf,
    /// Installation-state file.
    #[arg(
        long,
        global = true,
        default_value = "/var/lib/keel/state.json",
        env = "KEEL_STATE_FILE"
    )]
    pub state_file: PathBuf,
    /// The app to act on, when the host has several: its config is
    /// /etc/keel/apps/NAME.toml and its state /var/lib/keel/apps/NAME/state.json (unless
    /// --config or --state-file say otherwise). Without it: the host's app, /etc/keel/keel.toml.
    #[arg(long, global = true, value_name = "NAME", env = "KEEL_APP")]
    pub app: Option<String>,
    /// Answer yes to confirmations; never prompt (unattended use).
    #[arg(long, short = 'y', global = true, alias = "non-interactive")]
    pub yes: bool,
    /// Say only what failed (the result still goes to stdout).
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also print every command keel runs, as it starts.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
    /// Output format (json for machines; dot for `plan`).
    #[arg(long, global = true, value_enum, default_value = "human")]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Subcommand)]
pub enum EnvAction {
    /// Set KEY=VALUE (KEY=- reads the value from stdin: a secret stays off the command line).
    Set {
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
    },
    /// Remove values set with `keel env set`.
    Unset {
        #[arg(value_name = "KEY", required = true)]
        keys: Vec<String>,
    },
    /// The app's .env as the app gets it, secrets masked, with where each value comes from.
    List,
}

#[derive(Debug, Clone, Subcommand)]
pub enum NotifyAction {
    /// Send a test notification through every channel now, and say how each went.
    Test,
    /// What is waiting in the outbox, the open problems, the last heartbeat.
    Status,
    /// Deliver what is due in the outbox now (keel-notify.timer does it every minute).
    Flush,
    /// Set an SMTP password (the keel secret notify-NAME), read from stdin or asked for.
    Password {
        /// The email channel's password_secret (default "smtp").
        #[arg(default_value = "smtp")]
        name: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub enum MaintenanceAction {
    /// Turn it on (again, to change the message or the addresses).
    On {
        /// The page's message (plain text, at most 500 characters).
        #[arg(long, value_name = "TEXT")]
        message: Option<String>,
        /// An address or network that still gets the app (repeatable).
        #[arg(long, value_name = "CIDR")]
        allow: Vec<String>,
        /// Retry-After, in seconds.
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        retry_after: u64,
    },
    /// Turn it off: the app for everyone again.
    Off,
    /// Whether it is on, since when, for whom.
    Status,
}

/// What to undo when a step fails (`install --rollback`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RollbackMode {
    /// Undo the failed step and every step completed in this run (data kept).
    Run,
    /// Undo only the failed step's own changes.
    Step,
    /// Leave everything as it is (for debugging).
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
    Dot,
    /// Prometheus textfile-collector format (`verify`).
    Prometheus,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the named steps and their dependencies (all steps when none is named).
    #[command(
        after_help = "Examples:\n  keel install --yes\n  keel install --retry-step nginx\n  keel install --dry-run --output json"
    )]
    Install {
        /// Steps to run (with their dependencies).
        steps: Vec<String>,
        /// Re-run STEP and everything downstream of it, even if completed.
        #[arg(long = "retry-step", value_name = "STEP")]
        retry_step: Vec<String>,
        /// Do not run STEP.
        #[arg(long, value_name = "STEP")]
        skip: Vec<String>,
        /// Print what would run and why; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Preflight errors to ignore, by name (comma-separated), or `all`.
        #[arg(long, value_name = "NAME,...|all", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
        /// What to undo when a step fails.
        #[arg(long, value_enum, default_value = "run")]
        rollback: RollbackMode,
        /// Resume the last run if it was cut short (killed, or a reboot: keel-resume.service
        /// runs this at boot), with its step selection; otherwise do nothing.
        #[arg(long, conflicts_with_all = ["steps", "retry_step", "skip", "dry_run"])]
        resume: bool,
    },
    /// Show each step's status, duration and last error.
    #[command(
        after_help = "Examples:\n  keel status\n  keel status --wait --timeout 1800   # in cloud-init, after keel install"
    )]
    Status {
        /// Block until the current (or next) run finishes: exit 0 when every step
        /// completed, 1 on failure.
        #[arg(long)]
        wait: bool,
        /// Give up waiting after SECS (exit 1).
        #[arg(long, value_name = "SECS", requires = "wait")]
        timeout: Option<u64>,
    },
    /// Health checks, in parallel: exit 0 healthy (or degraded), 1 unhealthy.
    #[command(
        after_help = "Examples:\n  keel verify\n  keel verify --heal\n  keel verify --output prometheus > /var/lib/node_exporter/keel.prom"
    )]
    Verify {
        /// Restart failed or inactive keel-managed units (bounded, with backoff), then re-check.
        #[arg(long)]
        heal: bool,
        /// Repeat every SECS seconds.
        #[arg(long, value_name = "SECS")]
        watch: Option<u64>,
        /// Exit 1 when degraded too (default: degraded exits 0, like a readiness probe that still serves).
        #[arg(long)]
        fail_on_degraded: bool,
        /// Run the checks one after another (for benchmarks).
        #[arg(long, hide = true)]
        sequential: bool,
        /// Then send what changed ([notify]) and ping the heartbeat (the verify timer does).
        #[arg(long, hide = true)]
        notify: bool,
    },
    /// Write a diagnostics report (secrets masked) under /var/log/keel/.
    #[command(
        after_help = "Example:\n  keel diagnose && less /var/log/keel/diagnostics-latest.txt"
    )]
    Diagnose,
    /// The app's environment: set or unset values (the app restarts with no downtime),
    /// list them (secrets masked); or render a .env from a .env.example (--example, --out).
    #[command(
        after_help = "Examples:\n  keel env set FOO=bar DEBUG_TOOLBAR=0\n  printf '%s' \"$TOKEN\" | keel env set API_TOKEN=-   # a secret from stdin, not argv\n  keel env unset FOO\n  keel env list\n  keel env --example ./shop/.env.example --out ./shop/.env",
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true
    )]
    Env {
        #[command(subcommand)]
        action: Option<EnvAction>,
        #[arg(long, value_name = "FILE", required = true)]
        example: Option<std::path::PathBuf>,
        #[arg(long, value_name = "FILE", required = true)]
        out: Option<std::path::PathBuf>,
    },
    /// Interactive wizard that writes a keel.toml (needs a terminal).
    #[command(after_help = "Example:\n  keel --config /etc/keel/keel.toml init")]
    Init,
    /// Print the step graph in order with dependencies (and what an install would do).
    #[command(
        after_help = "Examples:\n  keel plan\n  keel plan --output dot | dot -Tsvg > keel.svg"
    )]
    Plan,
    /// Run the preflight checks alone.
    #[command(
        after_help = "Examples:\n  keel preflight\n  keel preflight --ignore-preflight-errors memory"
    )]
    Preflight {
        #[arg(long, value_name = "NAME,...|all", value_delimiter = ',')]
        ignore_preflight_errors: Vec<String>,
    },
    /// Ship a new release with no downtime: build it beside the running one, migrate, switch,
    /// verify; switch back by itself if the checks fail (exit 1).
    #[command(
        after_help = "Examples:\n  keel deploy                       # the config's source (or git ref) again\n  keel deploy --ref v1.4.2          # a git tag, branch or commit\n  keel deploy --source ./shop       # a directory\n  keel deploy --rollback            # back to the previous healthy release\n  keel deploy --rollback 20261124-101500"
    )]
    Deploy {
        /// Deploy this directory instead of the config's source.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["git_ref", "rollback"])]
        source: Option<std::path::PathBuf>,
        /// Deploy this git ref of the config's django.git.
        #[arg(long = "ref", value_name = "REF", conflicts_with = "rollback")]
        git_ref: Option<String>,
        /// Switch back to release ID (default: the newest healthy one before the current).
        #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
        rollback: Option<String>,
        /// Behind a load balancer: answer 503 on /keel-health/lb, wait SECS for the balancer
        /// to take this host out, deploy, answer 200 again and wait SECS for it to come back.
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=600))]
        drain: Option<u64>,
    },
    /// Back up the app's database now (pg_dump, custom format), with retention and upload.
    #[command(after_help = "Examples:\n  keel backup\n  keel backup --output json")]
    Backup,
    /// Restore a backup into the app's database: the file is checked first, the app's units
    /// stopped, a safety backup taken; if the restored app fails its checks, that goes back.
    #[command(
        after_help = "Examples:\n  keel restore /var/backups/keel/demo/demo-20261124-030000.dump\n  keel restore --yes FILE   # unattended"
    )]
    Restore {
        /// A backup made by keel (its .sha256 beside it is checked), or any pg_dump archive.
        file: std::path::PathBuf,
    },
    /// List the app's releases: id, status, when, source revision, and which is current.
    #[command(after_help = "Examples:\n  keel releases\n  keel releases --output json")]
    Releases,
    /// Undo everything keel set up, keeping data (databases, secrets, app directory).
    #[command(after_help = "Example:\n  keel rollback --yes")]
    Rollback,
    /// The app's processes, nginx and keel's own runs, interleaved by time with the process
    /// named; the output of the last failed install, deploy or backup with --failed.
    #[command(
        after_help = "Examples:\n  keel logs                      # web, worker and beat\n  keel logs -f worker\n  keel logs -n 50 --since '1h ago' web nginx\n  keel logs --failed\n  keel logs --output json keel"
    )]
    Logs {
        /// Some of: web, worker, beat, nginx, keel (default: web worker beat).
        #[arg(value_name = "PROCESS")]
        processes: Vec<String>,
        /// Then print new lines as they come, until stopped (Ctrl-C).
        #[arg(short, long)]
        follow: bool,
        /// How many of the last lines.
        #[arg(short = 'n', long, default_value_t = 100, value_name = "N")]
        lines: u32,
        /// Only lines since WHEN, as systemd reads a time ("1h ago", "today", "2026-12-03 10:00").
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
        /// The output of the last failed install step, deploy or backup.
        #[arg(long)]
        failed: bool,
    },
    /// Notifications ([notify]): test the channels, see the outbox, set the SMTP password.
    #[command(
        after_help = "Examples:\n  keel notify test\n  keel notify status --output json\n  printf '%s' \"$SMTP_PASSWORD\" | keel notify password smtp"
    )]
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// The [[schedule]] commands: calendar, last run and its result, next run.
    #[command(after_help = "Examples:\n  keel schedules\n  keel schedules --output json")]
    Schedules,
    /// Every app on this host: its config, state, domain and current release.
    #[command(after_help = "Example:\n  keel apps\n  keel --app shop deploy")]
    Apps,
    /// Record a failed [[schedule]] run (called by systemd's OnFailure= unit).
    #[command(
        hide = true,
        after_help = "Example:\n  keel schedule-failed demo-schedule-clearsessions.service"
    )]
    ScheduleFailed { unit: String },
    /// Maintenance mode: nginx answers 503 with Retry-After and a message to everyone but
    /// loopback and the allowed addresses (a reload; the app keeps running).
    #[command(
        after_help = "Examples:\n  keel maintenance on --message 'Back at 14:00 UTC' --allow 203.0.113.7\n  keel maintenance status\n  keel maintenance off"
    )]
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
    },
    /// Run a command in the current release, as the app: its user, .env, settings, venv
    /// and sandbox (only uploads are writable). Its exit status is keel's.
    #[command(
        after_help = "Examples:\n  keel run -- python manage.py createsuperuser\n  keel run -- python manage.py showmigrations\n  keel run -- celery -A demo inspect active"
    )]
    Run {
        /// The command and its arguments (after --); a name in the venv runs from it.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Django's shell (manage.py shell), as `keel run` runs commands.
    #[command(
        after_help = "Examples:\n  keel shell\n  keel shell -c 'from django.conf import settings; print(settings.DEBUG)'"
    )]
    Shell {
        /// Passed on to manage.py shell.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// psql logged in as the app's database role (the password on no command line).
    #[command(
        after_help = "Examples:\n  keel dbshell\n  echo 'select count(*) from auth_user' | keel dbshell"
    )]
    Dbshell {
        /// Passed on to psql (e.g. -c 'select 1', -At).
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  keel completions bash > /etc/bash_completion.d/keel")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from these definitions.
    #[command(
        hide = true,
        after_help = "Example:\n  keel manpage > keel.1 && man ./keel.1"
    )]
    Manpage,
    /// Beat on one host of several: run COMMAND only while this host holds the beat lock
    /// (the beat unit's ExecStart; the password from systemd's credential "pg").
    #[command(
        hide = true,
        after_help = "Example (the beat unit's ExecStart on a host of several):\n  keel beat-guard --host 10.0.0.10 --port 5432 --user demo --database demo --ca /etc/keel/db-ca.pem -- celery -A demo beat"
    )]
    BeatGuard {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        user: String,
        #[arg(long)]
        database: String,
        #[arg(long)]
        ca: Option<std::path::PathBuf>,
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "COMMAND"
        )]
        command: Vec<String>,
    },
    /// Print the JSON Schema of the state file.
    #[command(
        hide = true,
        after_help = "Example:\n  keel state-schema > state.schema.json"
    )]
    StateSchema,
}
