//! The one place that runs processes: timeouts that kill the whole process group, output
//! captured (redacted) into per-step logs, stderr tail carried in the error. A fake mode
//! records commands instead of running them, for fast tests of the logic above.
// The door to the machine (processes, probes, pauses): what clippy.toml keeps out of every
// other module is this one's job.
#![allow(clippy::disallowed_methods)]
use crate::redact::Redactor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    /// Bytes fed on stdin: the way secrets reach a child (never argv).
    pub stdin: Option<Vec<u8>>,
    /// Run as this user (through runuser, present on every Debian).
    pub user: Option<String>,
    pub env: Vec<(String, String)>,
    pub timeout: Option<Duration>,
    pub dir: Option<std::path::PathBuf>,
    /// A new file (0600, created here, never through a link) that gets the child's stdout:
    /// binary output too large to hold (pg_dump).
    pub stdout_file: Option<PathBuf>,
    /// A file (opened here, never through a link) on the child's stdin (pg_restore).
    pub stdin_file: Option<PathBuf>,
    /// A file the caller opened and checked, read from its start on the child's stdin: the
    /// same open file for every command (a restore's checksum, listing and load), so a swap
    /// of the path between them changes nothing.
    pub stdin_open: Option<std::sync::Arc<std::fs::File>>,
    /// The output is the caller's to show (`keel logs`): the command log records the
    /// command and its status, not what it printed.
    pub unlogged_output: bool,
    /// Run at this niceness (through nice(1)): builds yield the CPU to dpkg during an
    /// install and to the live app during a deploy.
    pub nice: Option<u8>,
    /// Run in a transient systemd unit under the app's sandbox (see `Sandbox`).
    pub sandbox: Option<Sandbox>,
}

/// A command of the app user's (migrate, collectstatic, checks, the import check) runs in a
/// transient unit with the sandbox of the app's own units, started by systemd: it has no
/// controlling terminal and is no descendant of the admin's shell. Its primary group is
/// `nogroup` (the app's group only as a supplementary one), so the running app, which is the
/// same uid but another gid, cannot open its /proc/PID/mem or environ (the kernel's ptrace
/// check wants uid *and* gid to match) and, under ProtectProc=invisible, does not even see it.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// The transient unit's name (unique per command): what a timeout or a reaped
    /// leftover stops.
    pub unit: String,
    /// The app's group, kept as a supplementary group (the release and .env are its).
    pub group: String,
    /// The app's .env, given as the units get it (never on a command line).
    pub env_file: Option<PathBuf>,
    /// What the command may write (media, the release's static files); all else read-only.
    pub read_write: Vec<PathBuf>,
    /// A build command (Node's V8 compiles code at run time): W^X memory is not enforced.
    pub jit: bool,
}

/// The sandbox of the app's units (templates/systemd/web.service.j2), as unit properties.
/// UMask differs: collectstatic's files must stay readable by nginx.
pub const SANDBOX_PROPERTIES: &[&str] = &[
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "PrivateMounts=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "ProcSubset=pid",
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged",
    "SystemCallErrorNumber=EPERM",
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "UMask=0022",
    "KeyringMode=private",
    "DevicePolicy=closed",
];

/// A unique name for a transient unit: keel's pid and a counter.
pub fn transient_unit(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let what: String = what
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!(
        "keel-run-{what}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Cmd {
    pub fn new(program: &str) -> Cmd {
        Cmd {
            program: program.into(),
            args: vec![],
            stdin: None,
            user: None,
            env: vec![],
            timeout: None,
            dir: None,
            stdout_file: None,
            stdin_file: None,
            stdin_open: None,
            nice: None,
            sandbox: None,
            unlogged_output: false,
        }
    }
    pub fn unlogged_output(mut self) -> Cmd {
        self.unlogged_output = true;
        self
    }
    pub fn sandbox(mut self, s: Sandbox) -> Cmd {
        self.sandbox = Some(s);
        self
    }
    pub fn nice(mut self, n: u8) -> Cmd {
        self.nice = Some(n);
        self
    }
    pub fn stdout_file(mut self, p: impl Into<PathBuf>) -> Cmd {
        self.stdout_file = Some(p.into());
        self
    }
    pub fn stdin_open(mut self, f: std::sync::Arc<std::fs::File>) -> Cmd {
        self.stdin_open = Some(f);
        self
    }
    pub fn stdin_file(mut self, p: impl Into<PathBuf>) -> Cmd {
        self.stdin_file = Some(p.into());
        self
    }
    pub fn dir(mut self, d: impl Into<std::path::PathBuf>) -> Cmd {
        self.dir = Some(d.into());
        self
    }
    pub fn arg(mut self, a: impl Into<String>) -> Cmd {
        self.args.push(a.into());
        self
    }
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, a: I) -> Cmd {
        self.args.extend(a.into_iter().map(Into::into));
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(bytes.into());
        self
    }
    pub fn user(mut self, u: &str) -> Cmd {
        self.user = Some(u.into());
        self
    }
    pub fn env(mut self, k: &str, v: &str) -> Cmd {
        self.env.push((k.into(), v.into()));
        self
    }
    pub fn timeout(mut self, d: Duration) -> Cmd {
        self.timeout = Some(d);
        self
    }
    /// argv as actually spawned (runuser or systemd-run prefix included).
    pub fn argv(&self) -> Vec<String> {
        let mut v = vec![];
        if let (Some(sb), Some(u)) = (&self.sandbox, &self.user) {
            return self.sandboxed_argv(sb, u);
        }
        if let Some(n) = self.nice {
            v.extend(["nice".to_string(), "-n".into(), n.to_string()]);
        }
        if let Some(u) = &self.user {
            v.extend(["runuser".to_string(), "-u".into(), u.clone(), "--".into()]);
        }
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }
    pub fn display(&self) -> String {
        self.argv().join(" ")
    }

    fn sandboxed_argv(&self, sb: &Sandbox, user: &str) -> Vec<String> {
        let mut v: Vec<String> = [
            "systemd-run",
            "--quiet",
            "--collect",
            "--wait",
            "--pipe",
            "--service-type=exec",
        ]
        .map(String::from)
        .to_vec();
        v.push(format!("--unit={}", sb.unit));
        let mut p = |s: String| v.extend(["-p".to_string(), s]);
        p(format!("User={user}"));
        p("Group=nogroup".into());
        p(format!("SupplementaryGroups={}", sb.group));
        p(format!(
            "WorkingDirectory={}",
            self.dir.as_deref().unwrap_or(Path::new("/")).display()
        ));
        if let Some(f) = &sb.env_file {
            p(format!("EnvironmentFile=-{}", f.display()));
        }
        for d in &sb.read_write {
            p(format!("ReadWritePaths=-{}", d.display()));
        }
        if let Some(n) = self.nice {
            p(format!("Nice={n}"));
        }
        if let Some(t) = self.timeout {
            // systemd ends it too, should keel itself be killed meanwhile.
            p(format!("RuntimeMaxSec={}", t.as_secs() + 30));
        }
        for prop in SANDBOX_PROPERTIES {
            if !(sb.jit && prop.starts_with("MemoryDenyWriteExecute")) {
                p(prop.to_string());
            }
        }
        // Only keel's own settings for the command (HOME, Python flags): never a secret,
        // since these reach systemd-run's command line. The app's values come from its .env.
        for (k, val) in [("LANG", "C.UTF-8")]
            .into_iter()
            .chain(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        {
            v.push(format!("--setenv={k}={val}"));
        }
        v.push("--".into());
        v.push(self.program.clone());
        v.extend(self.args.iter().cloned());
        v
    }
}

/// A shared `duct` reader as `Read` (so it can be killed while lines are read).
struct ArcReader(std::sync::Arc<duct::ReaderHandle>);
impl std::io::Read for ArcReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        (&*self.0).read(buf)
    }
}

/// Child output with its control characters taken out (kept: newline, tab, and a carriage
/// return that ends a line, as HTTP and Windows text have it): a child must not drive the
/// admin's terminal with escape sequences or overwrite a line, nor smuggle them into the
/// state file, the events or a report.
pub fn strip_controls(s: &str) -> String {
    let kept = |c: char, next: Option<char>| {
        !c.is_control() || c == '\n' || c == '\t' || (c == '\r' && next == Some('\n'))
    };
    let mut it = s.chars().peekable();
    let mut out = String::with_capacity(s.len());
    while let Some(c) = it.next() {
        if kept(c, it.peek().copied()) {
            out.push(c);
        }
    }
    out
}

#[derive(Debug, Clone, Default)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("`{cmd}` {}{}", match (.timed_out, .code) {
    (true, _) => format!("timed out after {}s (process group killed)", .elapsed.as_secs()),
    (false, Some(c)) => format!("exited with status {c}"),
    (false, None) => "was killed by a signal".to_string(),
}, if .stderr_tail.is_empty() { String::new() } else { format!(": {}", .stderr_tail) })]
pub struct ExecError {
    pub cmd: String,
    pub code: Option<i32>,
    pub timed_out: bool,
    pub elapsed: Duration,
    /// Last lines of stderr (or stdout when stderr is empty), redacted.
    pub stderr_tail: String,
    pub stdout: String,
}

/// The beat guard's one child (beat), inheriting its stdout and stderr (the unit's
/// journal): supervised by the guard itself, which is why it is not an `Exec` command.
pub fn spawn_supervised(argv: &[String]) -> std::io::Result<std::process::Child> {
    let (first, rest) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    std::process::Command::new(first).args(rest).spawn()
}

/// A PostgreSQL session from `Exec::pg`.
pub enum PgSession {
    Real(crate::system::pgwire::Conn),
    #[cfg(feature = "fake-host")]
    Fake,
}

impl PgSession {
    /// The first column of the first row (the fake host's: "t").
    pub fn scalar(&mut self, sql: &str) -> Result<Option<String>, crate::system::pgwire::PgError> {
        match self {
            PgSession::Real(c) => c.scalar(sql),
            #[cfg(feature = "fake-host")]
            PgSession::Fake => Ok(Some("t".into())),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Mode {
    Real,
    /// Record commands in DIR/commands.log; answer from DIR/rules (see tests/README). Only
    /// in a build with the `fake-host` feature (the tests'): never in the release binary.
    #[cfg(feature = "fake-host")]
    Fake(PathBuf),
}

#[derive(Clone)]
pub struct Exec {
    pub mode: Mode,
    pub log_dir: PathBuf,
    pub redactor: Redactor,
    pub default_timeout: Duration,
    /// Every running child's process group is registered here (a tmpfs, cleared by a
    /// reboot) until it ends, so the next run can deal with what a killed run left running.
    pub children_dir: PathBuf,
    /// `-v`: print each command (redacted) on stderr as it starts.
    pub echo: bool,
    /// One of keel's standard streams is a terminal (as the invocation found them).
    pub terminal: bool,
}

/// A child process group that a killed keel left running.
#[derive(Debug, Clone, PartialEq)]
pub struct Leftover {
    pub pgid: i32,
    pub cmd: String,
    /// What was done: stopped, or left alone to finish (apt/dpkg).
    pub action: LeftoverAction,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LeftoverAction {
    Stopped,
    LeftRunning,
}

/// apt and dpkg are never killed: an interrupted dpkg is worse than a slow one, and the
/// dpkg-lock wait already serialises the next run behind them.
fn must_not_kill(program: &str) -> bool {
    let base = program.rsplit('/').next().unwrap_or(program);
    matches!(base, "apt-get" | "apt" | "dpkg" | "aptitude")
}

/// The fields of a /proc/PID/stat file after the command name, which may contain spaces and
/// parentheses (so: after the last ')'). Index 0 is field 3 (state), 2 is the process group,
/// 19 the start time.
fn stat_fields(stat_file: &Path) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(stat_file).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

/// Start time of a process (clock ticks since boot): with the pid it names the process
/// uniquely, so a recycled pid is never mistaken for our child.
fn start_time(pid: i32) -> Option<u64> {
    stat_fields(Path::new(&format!("/proc/{pid}/stat")))?
        .get(19)?
        .parse()
        .ok()
}

/// Whether any live (non-zombie) process is in the group: a zombie still answers kill(0)
/// until its parent reaps it, and it no longer matters.
fn group_alive(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    let pgid = pgid.to_string();
    dir.flatten().any(|e| {
        stat_fields(&e.path().join("stat"))
            .is_some_and(|f| f.len() > 2 && f[0] != "Z" && f[2] == pgid)
    })
}

/// A new descriptor of the same open file, at its start (a dup shares the offset, and
/// whoever read it before left it at the end).
pub fn rewound(f: &std::fs::File) -> std::io::Result<std::fs::File> {
    use std::io::Seek;
    let mut d = f.try_clone()?;
    d.seek(std::io::SeekFrom::Start(0))?;
    Ok(d)
}

/// Kill a transient unit keel started (a timeout, or a leftover of a killed run): killing
/// systemd-run alone would leave the command running under systemd.
fn stop_unit(unit: &str) {
    let _ = std::process::Command::new("systemctl")
        .args(["kill", "--signal=SIGKILL", unit])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .current_dir("/")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .status();
}

fn kill_group(pgid: i32, signal: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(p, signal);
    }
}

/// Send `signal` to the group and wait up to `patience` for it to be gone; true if it is.
fn signal_and_wait(pgid: i32, signal: rustix::process::Signal, patience: Duration) -> bool {
    kill_group(pgid, signal);
    let deadline = Instant::now() + patience;
    while group_alive(pgid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// Variables a child may inherit from keel: the search path is fixed, the locale is
/// C.UTF-8, and only an admin's proxy settings pass through (apt and pip need them behind a
/// proxy). Everything else a command needs is set on the `Cmd` itself.
pub const PASSED_THROUGH: &[&str] = &[
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

pub fn child_env(extra: &[(String, String)]) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        ),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for k in PASSED_THROUGH {
        if let Ok(v) = std::env::var(k) {
            env.push((k.to_string(), v));
        }
    }
    for (k, v) in extra {
        env.retain(|(x, _)| x != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// `systemctl ARGS`; a start or restart first clears systemd's start rate limit (re-runs and
/// rollbacks restart units in quick succession and would trip "start request repeated too
/// quickly"), so a restart keel asks for really happens.
pub fn systemctl(exec: &Exec, log: &str, args: &[&str]) -> Result<Output, ExecError> {
    if let [action, unit] = args
        && matches!(*action, "restart" | "start")
    {
        let _ = exec.probe(log, &Cmd::new("systemctl").args(["reset-failed", unit]));
        // A unit that will not start says why in its journal, not in systemctl's answer
        // ("the control process exited with error code"): its last lines join the error.
        return exec
            .run(log, &Cmd::new("systemctl").args(args.iter().copied()))
            .map_err(|mut e| {
                let j = exec.journal_tail(log, unit, 4);
                if !j.is_empty() {
                    e.stderr_tail = format!("{}; its journal: {j}", e.stderr_tail);
                }
                e
            });
    }
    exec.run(log, &Cmd::new("systemctl").args(args.iter().copied()))
}

fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    v[v.len().saturating_sub(lines)..].join(" | ")
}

impl Exec {
    /// Run; a non-zero exit is an error carrying the stderr tail.
    pub fn run(&self, log: &str, cmd: &Cmd) -> Result<Output, ExecError> {
        let (out, elapsed, timed_out) = self.spawn(log, cmd)?;
        if timed_out || out.code != 0 {
            let src = if out.stderr.trim().is_empty() {
                &out.stdout
            } else {
                &out.stderr
            };
            return Err(ExecError {
                cmd: self.redactor.redact(&cmd.display()),
                code: (!timed_out && out.code >= 0).then_some(out.code),
                timed_out,
                elapsed,
                stderr_tail: self.redactor.redact(&tail(src, 4)),
                stdout: self.redactor.redact(&out.stdout),
            });
        }
        Ok(out)
    }

    /// Run and return the output whatever the exit status (for probes).
    pub fn probe(&self, log: &str, cmd: &Cmd) -> Result<Output, ExecError> {
        let (out, elapsed, timed_out) = self.spawn(log, cmd)?;
        if timed_out {
            return Err(ExecError {
                cmd: self.redactor.redact(&cmd.display()),
                code: None,
                timed_out,
                elapsed,
                stderr_tail: String::new(),
                stdout: String::new(),
            });
        }
        Ok(out)
    }

    /// GET `path` from 127.0.0.1:`port` as `host`: (status, body). The fake host answers
    /// from its rules (`net:http GET http://127.0.0.1:PORT/PATH Host: HOST`, EXIT = status,
    /// STDOUT = body; no rule = connection refused).
    pub fn http_get(
        &self,
        log: &str,
        port: u16,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        match &self.mode {
            Mode::Real => {
                let t = std::time::Instant::now();
                let r = crate::system::net::http_get(port, host, path, timeout);
                let what = format!("GET http://127.0.0.1:{port}{path} Host: {host}");
                self.log_probe(log, &what, &r, |(code, _)| format!("HTTP {code}"), t);
                r
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => fake_get(dir, log, "http", port, host, path, &self.redactor),
        }
    }

    /// GET `path` over TLS from 127.0.0.1:`port`, SNI and Host `host`: (status, body).
    /// Spoken by `openssl s_client` (the certificate is judged apart, by `tls_cert`). The
    /// fake host answers from `net:https GET https://127.0.0.1:PORT/PATH Host: HOST` rules.
    pub fn https_get(
        &self,
        log: &str,
        port: u16,
        host: &str,
        path: &str,
        timeout: Duration,
    ) -> std::io::Result<(u16, String)> {
        match &self.mode {
            Mode::Real => {
                let cmd = s_client(port, host, timeout)
                    .arg("-quiet")
                    .stdin(crate::system::net::request(host, path));
                let o = self.probe(log, &cmd).map_err(std::io::Error::other)?;
                crate::system::net::parse_http(&o.stdout).map_err(|e| {
                    std::io::Error::other(format!("{e}; openssl: {}", tail(&o.stderr, 2)))
                })
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => fake_get(dir, log, "https", port, host, path, &self.redactor),
        }
    }

    /// An HTTP request to an outside URL (a notification's webhook, the heartbeat): the
    /// status. The fake host answers from `net:http METHOD URL` rules (EXIT = the status; no
    /// rule = connection refused) and appends what was sent to DIR/sent.log.
    pub fn http_send(
        &self,
        log: &str,
        method: &str,
        url: &str,
        body: Option<&str>,
        timeout: Duration,
    ) -> std::io::Result<u16> {
        match &self.mode {
            Mode::Real => {
                let t = std::time::Instant::now();
                let r = crate::system::send::http(method, url, body, timeout);
                let what = format!("{method} {}", crate::validate::redact_userinfo(url));
                self.log_probe(log, &what, &r, |code| format!("HTTP {code}"), t);
                r
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let line = format!("{method} {url}");
                let o = fake_net(dir, log, "net:http", &line, &self.redactor)
                    .ok_or(std::io::ErrorKind::ConnectionRefused)?;
                // What a receiver accepted (a 2xx) is what it got.
                if (200..300).contains(&o.code) {
                    fake_sent(dir, &line, body.unwrap_or(""));
                }
                Ok(o.code as u16)
            }
        }
    }

    /// A mail over SMTP. The fake host answers from a `net:smtp SMTP HOST:PORT` rule (EXIT 0
    /// = accepted) and appends the mail to DIR/sent.log.
    pub fn send_mail(
        &self,
        log: &str,
        m: &crate::system::send::Mail,
        timeout: Duration,
    ) -> std::io::Result<()> {
        match &self.mode {
            Mode::Real => {
                let t = std::time::Instant::now();
                let r = crate::system::send::smtp(m, timeout);
                let what = format!("SMTP {}:{} to {}", m.host, m.port, m.to.join(","));
                self.log_probe(log, &what, &r, |()| "accepted".into(), t);
                r
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let line = format!(
                    "SMTP {}:{} tls={} login={} to={}",
                    m.host,
                    m.port,
                    m.tls,
                    m.login.as_ref().map_or("-", |l| l.0.as_str()),
                    m.to.join(",")
                );
                let o = fake_net(dir, log, "net:smtp", &line, &self.redactor)
                    .ok_or(std::io::ErrorKind::ConnectionRefused)?;
                if o.code != 0 {
                    return Err(std::io::Error::other(o.stderr));
                }
                fake_sent(dir, &line, &format!("Subject: {}\n{}", m.subject, m.body));
                Ok(())
            }
        }
    }

    /// The certificate 127.0.0.1:`port` serves for SNI `host`: (leaf PEM, the verify result
    /// against the system trust store, e.g. "0 (ok)"). The fake host answers from a
    /// `net:tls 127.0.0.1:PORT SNI HOST` rule (STDOUT = the PEM, STDERR = the verify result).
    pub fn tls_cert(
        &self,
        log: &str,
        port: u16,
        host: &str,
        timeout: Duration,
    ) -> std::io::Result<(String, String)> {
        match &self.mode {
            Mode::Real => {
                let cmd = s_client(port, host, timeout).stdin(Vec::new());
                let o = self.probe(log, &cmd).map_err(std::io::Error::other)?;
                let pem = crate::certs::first_pem(&o.stdout).ok_or_else(|| {
                    std::io::Error::other(format!(
                        "no certificate from port {port}: {}",
                        tail(&format!("{}{}", o.stderr, o.stdout), 2)
                    ))
                })?;
                let verify = o
                    .stdout
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("Verify return code: "))
                    .unwrap_or("?")
                    .to_string();
                Ok((pem.to_string(), verify))
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let line = format!("127.0.0.1:{port} SNI {host}");
                match fake_net(dir, log, "net:tls", &line, &self.redactor) {
                    Some(o) if o.code == 0 => Ok((o.stdout, o.stderr)),
                    Some(o) => Err(std::io::Error::other(o.stderr)),
                    None => Err(std::io::ErrorKind::ConnectionRefused.into()),
                }
            }
        }
    }

    /// One Redis connection to 127.0.0.1:`port`, the commands sent in order; each reply as
    /// text ("+OK", "-ERR ...", ":1", a bulk string). The fake host answers each from its rules
    /// (`net:redis PORT [anon] CMD ARGS`, STDOUT = reply; `anon` before AUTH was sent).
    pub fn redis(
        &self,
        log: &str,
        port: u16,
        cmds: &[&[&str]],
        timeout: Duration,
    ) -> std::io::Result<Vec<String>> {
        match &self.mode {
            Mode::Real => {
                let t = std::time::Instant::now();
                let r = crate::system::net::Resp::connect(port, timeout)
                    .and_then(|mut c| cmds.iter().map(|a| c.cmd(a)).collect());
                // Names only: arguments may be a password (AUTH) or the app's data.
                let names: Vec<&str> = cmds.iter().filter_map(|a| a.first().copied()).collect();
                let what = format!("redis 127.0.0.1:{port} {}", names.join(" "));
                let replies = |v: &Vec<String>| {
                    v.iter()
                        .map(|s| s.chars().take(40).collect::<String>())
                        .collect::<Vec<_>>()
                        .join(" | ")
                };
                self.log_probe(log, &what, &r, replies, t);
                r
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let mut authed = false;
                let mut out = vec![];
                for a in cmds {
                    let who = if authed { "" } else { "anon " };
                    let line = format!("{port} {who}{}", a.join(" "));
                    let o = fake_net(dir, log, "net:redis", &line, &self.redactor)
                        .ok_or(std::io::ErrorKind::ConnectionRefused)?;
                    authed |= a.first() == Some(&"AUTH") && o.stdout == "+OK";
                    out.push(o.stdout);
                }
                Ok(out)
            }
        }
    }

    /// A PostgreSQL session to `t` (keel's own wire client: TLS checked against the CA,
    /// SCRAM). The fake host answers from `net:pg USER@HOST:PORT/DB` (EXIT 0 or no rule: a
    /// session whose every query answers "t"; else STDOUT's first word is the kind, tls,
    /// auth or unreachable, and STDERR the reason).
    pub fn pg(
        &self,
        log: &str,
        t: &crate::system::pgwire::Target,
        timeout: Duration,
    ) -> Result<PgSession, crate::system::pgwire::PgError> {
        use crate::system::pgwire::Conn;
        let what = format!(
            "postgres {}@{}:{}/{}{}",
            t.user,
            t.host,
            t.port,
            t.database,
            if t.ca_pem.is_some() {
                " (TLS, verify-full)"
            } else {
                ""
            }
        );
        match &self.mode {
            Mode::Real => {
                let start = std::time::Instant::now();
                let r = Conn::connect(t, timeout);
                let shown: std::io::Result<()> = match &r {
                    Ok(_) => Ok(()),
                    Err(e) => Err(std::io::Error::other(e.to_string())),
                };
                self.log_probe(log, &what, &shown, |_| "connected".into(), start);
                r.map(PgSession::Real)
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let line = format!("{}@{}:{}/{}", t.user, t.host, t.port, t.database);
                match fake_net(dir, log, "net:pg", &line, &self.redactor) {
                    Some(o) if o.code != 0 => {
                        use crate::system::pgwire::PgError;
                        let msg = o.stderr.trim().to_string();
                        Err(match o.stdout.split_whitespace().next() {
                            Some("tls") => PgError::Tls(msg),
                            Some("auth") => PgError::Auth(msg),
                            Some("unreachable") => PgError::Unreachable(msg),
                            _ => PgError::Other(msg),
                        })
                    }
                    _ => Ok(PgSession::Fake),
                }
            }
        }
    }

    /// AUTH and PING to a Redis server on another host (TLS against `ca_pem` when given).
    /// The fake host answers from `net:redis-remote HOST:PORT` (EXIT 0 or no rule: ok).
    pub fn redis_remote(
        &self,
        log: &str,
        host: &str,
        port: u16,
        ca_pem: Option<&[u8]>,
        password: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        use crate::system::tlsconn;
        let what = format!(
            "redis {host}:{port} AUTH PING{}",
            if ca_pem.is_some() { " (TLS)" } else { "" }
        );
        match &self.mode {
            Mode::Real => {
                let start = std::time::Instant::now();
                let r = tlsconn::tcp(host, port, timeout)
                    .map_err(|e| format!("unreachable: {e}"))
                    .and_then(|tcp| match ca_pem {
                        Some(ca) => tlsconn::wrap(tcp, ca, host).map_err(|e| format!("TLS: {e}")),
                        None => Ok(tlsconn::Stream::Plain(tcp)),
                    })
                    .and_then(|mut s| tlsconn::redis_check(&mut s, password));
                let shown: std::io::Result<()> = r.clone().map_err(std::io::Error::other);
                self.log_probe(log, &what, &shown, |_| "PONG".into(), start);
                r
            }
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let line = format!("{host}:{port}");
                match fake_net(dir, log, "net:redis-remote", &line, &self.redactor) {
                    Some(o) if o.code != 0 => Err(o.stderr.trim().to_string()),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The last `n` lines `unit` logged (`journalctl -o cat`), as they are; None when the
    /// journal cannot be read.
    pub fn journal(&self, log: &str, unit: &str, n: u32) -> Option<String> {
        let n = n.to_string();
        self.probe(
            log,
            &Cmd::new("journalctl").args(["-u", unit, "-n", &n, "--no-pager", "-o", "cat"]),
        )
        .ok()
        .map(|o| o.stdout)
    }

    /// What `unit` logged since `since` (seconds since the epoch), its last `n` lines at most,
    /// as they are; None when the journal cannot be read.
    pub fn journal_since(&self, log: &str, unit: &str, since: u64, n: u32) -> Option<String> {
        let (since, n) = (format!("@{since}"), n.to_string());
        self.probe(
            log,
            &Cmd::new("journalctl").args([
                "-u",
                unit,
                "--since",
                &since,
                "-n",
                &n,
                "--no-pager",
                "-q",
                "-o",
                "cat",
            ]),
        )
        .ok()
        .map(|o| o.stdout)
    }

    /// The unit's last `n` journal lines on one line (" | "-joined, redacted): its own last
    /// words, for an error that says more than "inactive" or "failed"; "" when it has none.
    pub fn journal_tail(&self, log: &str, unit: &str, n: u32) -> String {
        let text = self.journal(log, unit, n).unwrap_or_default();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        self.redactor.redact(&lines.join(" | "))
    }

    /// A sandboxed command attached to keel's own stdin, stdout and stderr (`keel run`,
    /// `keel shell`, `keel dbshell`): its exit status is returned. When any of the three is
    /// a terminal, systemd gives the command a terminal of its own (`systemd-run --pty`,
    /// which relays): the command never holds the admin's, so it cannot push input into it
    /// (TIOCSTI) or read what is typed after it ends. Otherwise the pipes and files are
    /// passed on (`--pipe`). Logged as other commands are, without the output.
    pub fn attached(&self, log: &str, cmd: &Cmd) -> Result<i32, ExecError> {
        let tty = self.terminal;
        let mut argv = cmd.argv();
        if cmd.sandbox.is_some() && tty {
            for a in argv.iter_mut() {
                if a == "--pipe" {
                    *a = "--pty".into();
                }
            }
        }
        let start = Instant::now();
        let code = match &self.mode {
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => {
                let out = fake_run(dir, log, cmd, &self.redactor);
                print!("{}", strip_controls(&out.stdout));
                eprint!("{}", strip_controls(&out.stderr));
                Ok(out.code)
            }
            Mode::Real => {
                let mut c = std::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                if !tty {
                    crate::system::fcntl::new_session(&mut c);
                }
                c.status().map(|s| s.code().unwrap_or(128))
            }
        };
        let elapsed = start.elapsed();
        let (code, stderr) = match code {
            Ok(c) => (c, String::new()),
            Err(e) => (127, format!("could not start: {e}")),
        };
        let out = Output {
            code,
            stdout: "(attached to keel's terminal or pipes: not logged)".into(),
            stderr: stderr.clone(),
        };
        self.write_log(log, cmd, &out, elapsed, false);
        if stderr.is_empty() {
            Ok(code)
        } else {
            Err(ExecError {
                cmd: self.redactor.redact(&cmd.display()),
                code: None,
                timed_out: false,
                elapsed,
                stderr_tail: stderr,
                stdout: String::new(),
            })
        }
    }

    /// Each line `cmd` prints on stdout, as it prints it (`journalctl -f`), until the
    /// command ends or `on_line` returns false (the command is then killed). Control
    /// characters are taken out. The fake host answers once, from its rules.
    #[cfg_attr(not(feature = "fake-host"), allow(unused_variables))]
    pub fn follow(
        &self,
        log: &str,
        cmd: &Cmd,
        on_line: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), ExecError> {
        #[cfg(feature = "fake-host")]
        if let Mode::Fake(dir) = &self.mode {
            let out = fake_run(dir, log, cmd, &self.redactor);
            for l in out.stdout.lines() {
                if !on_line(&strip_controls(l)) {
                    break;
                }
            }
            return Ok(());
        }
        let argv = cmd.argv();
        let reader = duct::cmd(&argv[0], &argv[1..])
            .stderr_null()
            .before_spawn(|c| {
                crate::system::fcntl::new_session(c);
                Ok(())
            })
            .reader()
            .map_err(|e| ExecError {
                cmd: self.redactor.redact(&cmd.display()),
                code: None,
                timed_out: false,
                elapsed: Duration::ZERO,
                stderr_tail: format!("could not start: {e}"),
                stdout: String::new(),
            })?;
        let reader = std::sync::Arc::new(reader);
        let r2 = reader.clone();
        let it =
            std::io::BufRead::lines(std::io::BufReader::new(ArcReader(r2))).map_while(Result::ok);
        let mut stopped = false;
        for l in it {
            if !on_line(&strip_controls(&l)) {
                stopped = true;
                break;
            }
        }
        if stopped {
            let _ = reader.kill();
        }
        Ok(())
    }

    /// A read-only check run while the config is validated, before anything is written:
    /// nothing goes to keel's logs. None when it could not run.
    pub fn check(&self, cmd: &Cmd) -> Option<Output> {
        match &self.mode {
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => Some(fake_run(dir, "check", cmd, &self.redactor)),
            Mode::Real => self.real_run(cmd).ok().map(|(o, _)| o),
        }
    }

    /// A real host (not the fake one of the tests).
    pub fn is_real(&self) -> bool {
        matches!(self.mode, Mode::Real)
    }

    /// Wait, on a real host (services take time); at once on the fake one.
    pub fn pause(&self, d: Duration) {
        if matches!(self.mode, Mode::Real) {
            std::thread::sleep(d);
        }
    }

    fn spawn(&self, log: &str, cmd: &Cmd) -> Result<(Output, Duration, bool), ExecError> {
        if self.echo {
            eprintln!(
                "{} keel: [{log}] $ {}",
                crate::paths::now(),
                self.redactor.redact(&cmd.display())
            );
        }
        let start = Instant::now();
        let res = match &self.mode {
            #[cfg(feature = "fake-host")]
            Mode::Fake(dir) => Ok((fake_run(dir, log, cmd, &self.redactor), false)),
            Mode::Real => self.real_run_sandbox_retried(cmd),
        };
        let elapsed = start.elapsed();
        match res {
            Ok((mut out, timed_out)) => {
                out.stdout = strip_controls(&out.stdout);
                out.stderr = strip_controls(&out.stderr);
                self.write_log(log, cmd, &out, elapsed, timed_out);
                Ok((out, elapsed, timed_out))
            }
            Err(e) => {
                let err = ExecError {
                    cmd: self.redactor.redact(&cmd.display()),
                    code: None,
                    timed_out: false,
                    elapsed,
                    stderr_tail: format!("could not start: {e}"),
                    stdout: String::new(),
                };
                self.write_log(
                    log,
                    cmd,
                    &Output {
                        code: 127,
                        stdout: String::new(),
                        stderr: err.stderr_tail.clone(),
                    },
                    elapsed,
                    false,
                );
                Err(err)
            }
        }
    }

    /// `real_run`, and for a sandboxed command that systemd could not start (exit 200-243,
    /// systemd's own codes for a unit whose process never ran: a cgroup it could not make
    /// under load), up to two more tries under new unit names: the command had not run.
    fn real_run_sandbox_retried(&self, cmd: &Cmd) -> std::io::Result<(Output, bool)> {
        let mut r = self.real_run(cmd);
        let Some(sb) = &cmd.sandbox else {
            return r;
        };
        for _ in 0..2 {
            match &r {
                Ok((out, false))
                    if (200..=243).contains(&out.code) && out.stdout.trim().is_empty() =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                    let mut again = cmd.clone();
                    again.sandbox = Some(Sandbox {
                        unit: transient_unit(&sb.group),
                        ..sb.clone()
                    });
                    r = self.real_run(&again);
                }
                _ => break,
            }
        }
        r
    }

    fn real_run(&self, cmd: &Cmd) -> std::io::Result<(Output, bool)> {
        let argv = cmd.argv();
        let mut expr = duct::cmd(&argv[0], &argv[1..])
            .stderr_capture()
            .unchecked()
            // A new session (so a new process group too: a timeout kills apt's children, dpkg
            // and maintainer scripts, with it), and no controlling terminal: a child can never
            // open the admin's /dev/tty to push input (TIOCSTI) or escapes into it.
            .before_spawn(|c| {
                crate::system::fcntl::new_session(c);
                Ok(())
            });
        use std::os::unix::fs::OpenOptionsExt;
        expr = match &cmd.stdout_file {
            Some(p) => expr.stdout_file(
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(p)?,
            ),
            None => expr.stdout_capture(),
        };
        expr = match (&cmd.stdin, &cmd.stdin_file) {
            (Some(b), _) => expr.stdin_bytes(b.clone()),
            (None, _) if cmd.stdin_open.is_some() => {
                expr.stdin_file(rewound(cmd.stdin_open.as_deref().expect("checked"))?)
            }
            (None, Some(p)) => expr.stdin_file(
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
                    .open(p)?,
            ),
            (None, None) => expr.stdin_null(),
        };
        // An explicit environment, never keel's own: children that run app or third-party
        // code (pip, manage.py, celery) must not inherit whatever keel was started with.
        expr = expr.full_env(child_env(&cmd.env));
        // Never keel's own working directory: Python puts it first on sys.path, and a
        // `venv.py` that someone left in /tmp must not run as root.
        expr = expr.dir(cmd.dir.as_deref().unwrap_or(Path::new("/")));
        let handle = expr.start()?;
        let registered: Vec<PathBuf> = handle
            .pids()
            .into_iter()
            .filter_map(|pid| self.register(pid as i32, cmd))
            .collect();
        let timeout = cmd.timeout.unwrap_or(self.default_timeout);
        let deadline = Instant::now() + timeout;
        let mut nap = Duration::from_millis(1);
        let mut timed_out = false;
        loop {
            if handle.try_wait()?.is_some() {
                break;
            }
            if Instant::now() >= deadline {
                timed_out = true;
                for pid in handle.pids() {
                    // Our child leads its own process group: kill all of it.
                    kill_group(pid as i32, rustix::process::Signal::KILL);
                }
                if let Some(sb) = &cmd.sandbox {
                    stop_unit(&sb.unit);
                }
                break;
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(50));
        }
        let out = handle.wait();
        for p in registered {
            let _ = std::fs::remove_file(p);
        }
        let out = out?;
        Ok((
            Output {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            },
            timed_out,
        ))
    }

    /// Record a running child group: `START_TIME KIND` then the (redacted) command line.
    fn register(&self, pid: i32, cmd: &Cmd) -> Option<PathBuf> {
        crate::paths::private_dir(&self.children_dir);
        let path = self.children_dir.join(pid.to_string());
        let kind = if must_not_kill(&cmd.program) {
            "wait"
        } else {
            "stop"
        };
        let unit = cmd.sandbox.as_ref().map(|s| s.unit.as_str()).unwrap_or("");
        let text = format!(
            "{} {kind} {unit}\n{}\n",
            start_time(pid)?,
            self.redactor.redact(&cmd.display())
        );
        std::fs::write(&path, text).ok()?;
        Some(path)
    }

    /// Deal with the children a killed run left behind (call with the run lock held): stop
    /// each one still running, except apt/dpkg, which are left to finish. Without this the
    /// re-run races them: a half-made virtualenv being rebuilt while the old `python3 -m
    /// venv` still writes into it, or two `migrate`s at once.
    pub fn reap_leftovers(&self) -> Vec<Leftover> {
        let mut found = vec![];
        let Ok(dir) = std::fs::read_dir(&self.children_dir) else {
            return found;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            let Some(pgid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let mut lines = text.lines();
            let mut head = lines.next().unwrap_or("").split_whitespace();
            let started: Option<u64> = head.next().and_then(|t| t.parse().ok());
            let kind = head.next().unwrap_or("stop");
            let unit = head.next().map(str::to_string);
            let cmd = lines.next().unwrap_or("?").to_string();
            let same = started.is_some() && start_time(pgid) == started;
            if !same {
                // Ended (or the pid was recycled by something that is not ours).
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if kind == "wait" {
                found.push(Leftover {
                    pgid,
                    cmd,
                    action: LeftoverAction::LeftRunning,
                });
                continue;
            }
            if !signal_and_wait(pgid, rustix::process::Signal::TERM, Duration::from_secs(5)) {
                signal_and_wait(pgid, rustix::process::Signal::KILL, Duration::from_secs(2));
            }
            if let Some(u) = unit.filter(|u| u.starts_with("keel-run-")) {
                stop_unit(&u);
            }
            let _ = std::fs::remove_file(&path);
            found.push(Leftover {
                pgid,
                cmd,
                action: LeftoverAction::Stopped,
            });
        }
        found.sort_by_key(|l| l.pgid);
        found
    }

    /// Append `text` (already redacted) to the step log `log`. Best effort: logging never
    /// fails a run.
    fn append_log(&self, log: &str, text: &str) {
        let dir = self.log_dir.join("steps");
        crate::paths::private_dir(&dir);
        let path = dir.join(format!("{log}.log"));
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            let _ = f.write_all(text.as_bytes());
        }
    }

    /// A network probe in the step log, as a command is: what was asked, what came back.
    fn log_probe<T>(
        &self,
        log: &str,
        what: &str,
        r: &std::io::Result<T>,
        answer: impl Fn(&T) -> String,
        t: std::time::Instant,
    ) {
        let outcome = match r {
            Ok(v) => answer(v),
            Err(e) => format!("error: {e}"),
        };
        let text = format!(
            "--- {} probe {}\n--- {} in {:.2}s\n",
            crate::paths::now(),
            self.redactor.redact(what),
            self.redactor.redact(&outcome),
            t.elapsed().as_secs_f64()
        );
        self.append_log(log, &text);
    }

    fn write_log(&self, log: &str, cmd: &Cmd, out: &Output, elapsed: Duration, timed_out: bool) {
        let r = &self.redactor;
        let mut text = format!(
            "--- {} $ {}\n",
            crate::paths::now(),
            r.redact(&cmd.display())
        );
        if cmd.stdin.is_some() {
            text.push_str("(stdin supplied, not logged)\n");
        }
        for (label, s) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
            if !s.is_empty() && !cmd.unlogged_output {
                text.push_str(&format!("[{label}]\n{}", r.redact(s)));
                if !s.ends_with('\n') {
                    text.push('\n');
                }
            }
        }
        let status = if timed_out {
            "timed out".to_string()
        } else {
            format!("exit {}", out.code)
        };
        text.push_str(&format!("--- {status} in {:.2}s\n", elapsed.as_secs_f64()));
        self.append_log(log, &text);
    }
}

#[cfg(feature = "fake-host")]
/// Fake host: each command line is appended to DIR/commands.log; DIR/rules holds lines
/// `SUBSTRING<TAB>EXIT<TAB>TIMES<TAB>STDERR[<TAB>STDOUT]`: the first rule whose substring is
/// in the command line (or its stdin) answers, TIMES times (0 = always); `\n` in fields is a
/// newline. No rule: exit 0, no output. Network probes go through the same rules (see
/// `Exec::http_get` and `Exec::redis`).
/// EXIT `panic` makes the calling step panic (to prove the engine survives a panicking step).
/// A command's stdout_file gets the rule's STDOUT; a stdin_file is matched like stdin.
fn fake_run(dir: &Path, log: &str, cmd: &Cmd, redactor: &Redactor) -> Output {
    let from_file = match &cmd.stdin_open {
        Some(f) => rewound(f).ok().and_then(|mut f| {
            let mut v = vec![];
            std::io::Read::read_to_end(&mut f, &mut v).ok().map(|_| v)
        }),
        None => cmd.stdin_file.as_ref().and_then(|p| std::fs::read(p).ok()),
    };
    let stdin = cmd
        .stdin
        .as_deref()
        .or(from_file.as_deref())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let mut out = fake_answer(dir, log, &cmd.display(), &stdin, redactor).unwrap_or_default();
    // The environment keel gives each command, apart (tests check what reaches a tool).
    if !cmd.env.is_empty()
        && let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("env.log"))
    {
        let env: Vec<String> = cmd.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let line = format!("{}\t{}\n", cmd.display(), env.join(" "));
        let _ = f.write_all(redactor.redact(&line).as_bytes());
    }
    if let Some(p) = &cmd.stdout_file {
        use std::os::unix::fs::OpenOptionsExt;
        // Created as the real run creates it: new, 0600.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
        {
            let _ = f.write_all(std::mem::take(&mut out.stdout).as_bytes());
        }
    }
    out
}

#[cfg(feature = "fake-host")]
/// A network probe on the fake host: logged as `[log] KIND LINE`, answered by a rule.
fn fake_net(dir: &Path, log: &str, kind: &str, line: &str, redactor: &Redactor) -> Option<Output> {
    fake_answer(dir, log, &format!("{kind} {line}"), "", redactor)
}

#[cfg(feature = "fake-host")]
/// What the fake host "sent" (a webhook's body, a mail), one record per delivery.
fn fake_sent(dir: &Path, line: &str, body: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("sent.log"))
    {
        let _ = f.write_all(format!("=== {line}\n{body}\n").as_bytes());
    }
}

/// `openssl s_client` to 127.0.0.1:`port` with SNI `host`: the TLS probes' transport.
fn s_client(port: u16, host: &str, timeout: Duration) -> Cmd {
    Cmd::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", host])
        .timeout(timeout)
}

#[cfg(feature = "fake-host")]
/// An HTTP(S) GET on the fake host: `net:SCHEME GET SCHEME://127.0.0.1:PORT/PATH Host: HOST`
/// (EXIT = status, STDOUT = body; no rule = connection refused).
fn fake_get(
    dir: &Path,
    log: &str,
    scheme: &str,
    port: u16,
    host: &str,
    path: &str,
    redactor: &Redactor,
) -> std::io::Result<(u16, String)> {
    let line = format!("GET {scheme}://127.0.0.1:{port}{path} Host: {host}");
    match fake_net(dir, log, &format!("net:{scheme}"), &line, redactor) {
        Some(o) => Ok((o.code as u16, o.stdout)),
        None => Err(std::io::ErrorKind::ConnectionRefused.into()),
    }
}

#[cfg(feature = "fake-host")]
/// Log `line` (redacted: it may hold a password) and answer from the first matching rule,
/// matched against the line or the command's stdin (never logged).
fn fake_answer(
    dir: &Path,
    log: &str,
    line: &str,
    stdin: &str,
    redactor: &Redactor,
) -> Option<Output> {
    let _ = std::fs::create_dir_all(dir);
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("commands.log"))
    {
        // One write per line: parallel steps append to the same log (O_APPEND keeps a
        // single write whole; writeln! would split it into pieces that interleave).
        let _ = f.write_all(format!("[{log}] {}\n", redactor.redact(line)).as_bytes());
    }
    let rules = std::fs::read_to_string(dir.join("rules")).unwrap_or_default();
    for (i, rule) in rules.lines().enumerate() {
        let f: Vec<&str> = rule.split('\t').collect();
        if f.len() < 4 || !(line.contains(f[0]) || (!stdin.is_empty() && stdin.contains(f[0]))) {
            continue;
        }
        let times: u32 = f[2].parse().unwrap_or(0);
        let counter = dir.join(format!("rule{i}.count"));
        let used: u32 = std::fs::read_to_string(&counter)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if times != 0 && used >= times {
            continue;
        }
        let _ = std::fs::write(&counter, (used + 1).to_string());
        if f[1] == "panic" {
            panic!("fake host rule: {}", f[3]);
        }
        return Some(Output {
            code: f[1].parse().unwrap_or(1),
            stderr: f[3].replace("\\n", "\n"),
            stdout: f.get(4).map(|s| s.replace("\\n", "\n")).unwrap_or_default(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn exec(dir: &Path) -> Exec {
        Exec {
            mode: Mode::Real,
            log_dir: dir.to_path_buf(),
            redactor: Redactor::default(),
            default_timeout: Duration::from_secs(10),
            children_dir: dir.join("children"),
            echo: false,
            terminal: false,
        }
    }

    #[test]
    fn a_finished_child_leaves_no_registration() {
        let d = tempfile::tempdir().unwrap();
        let ex = exec(d.path());
        ex.run("t", &Cmd::new("true")).unwrap();
        let left: Vec<_> = std::fs::read_dir(d.path().join("children"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// What a killed keel leaves: registered groups still running. The ordinary one is
    /// stopped (TERM ignored, so KILL it takes), apt's kind is left alone, stale entries go.
    #[test]
    fn leftovers_of_a_killed_run_are_stopped_but_apt_is_left_to_finish() {
        let d = tempfile::tempdir().unwrap();
        let ex = exec(d.path());
        let spawn = |script: &str| {
            std::process::Command::new("sh")
                .args(["-c", script])
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let mut stubborn = spawn("trap '' TERM; sleep 30 & wait");
        let mut apt = spawn("sleep 30");
        // Let the shells install their traps before they are signalled.
        std::thread::sleep(Duration::from_millis(200));
        std::fs::create_dir_all(&ex.children_dir).unwrap();
        for (child, kind, cmd) in [
            (&stubborn, "stop", "pip install"),
            (&apt, "wait", "apt-get install"),
        ] {
            let pid = child.id() as i32;
            let line = format!("{} {kind}\n{cmd}\n", start_time(pid).unwrap());
            std::fs::write(ex.children_dir.join(pid.to_string()), line).unwrap();
        }
        // An entry whose process is long gone (or whose pid now belongs to someone else).
        std::fs::write(ex.children_dir.join("999999"), "1 stop\nold\n").unwrap();

        let found = ex.reap_leftovers();
        let spid = stubborn.id() as i32;
        let apid = apt.id() as i32;
        assert_eq!(found, {
            let mut v = vec![
                Leftover {
                    pgid: spid,
                    cmd: "pip install".into(),
                    action: LeftoverAction::Stopped,
                },
                Leftover {
                    pgid: apid,
                    cmd: "apt-get install".into(),
                    action: LeftoverAction::LeftRunning,
                },
            ];
            v.sort_by_key(|l| l.pgid);
            v
        });
        // The stopped one is dead (reaped here, since this test is its parent) with its child.
        let st = stubborn.wait().unwrap();
        assert!(st.code().is_none(), "killed by a signal: {st:?}");
        assert!(!group_alive(spid));
        assert!(
            apt.try_wait().unwrap().is_none(),
            "apt must be left running"
        );
        assert!(!ex.children_dir.join(spid.to_string()).exists());
        assert!(!ex.children_dir.join("999999").exists());
        assert!(ex.children_dir.join(apid.to_string()).exists());
        apt.kill().unwrap();
        apt.wait().unwrap();
    }

    /// The admin's terminal is out of every child's reach: a new session with no controlling
    /// terminal (pid = process group = session, tty_nr 0), and `/` as the working directory
    /// whatever keel's own was.
    #[test]
    fn a_child_leads_its_own_session_without_a_terminal_in_root() {
        let d = tempfile::tempdir().unwrap();
        let out = exec(d.path())
            .run(
                "t",
                &Cmd::new("sh").args(["-c", "pwd; echo $$; exec cat /proc/self/stat"]),
            )
            .unwrap()
            .stdout;
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("/"));
        let pid = lines.next().unwrap().to_string();
        let stat = lines.next().unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
            .split_whitespace()
            .collect();
        // After the name: state, ppid, pgrp, session, tty_nr.
        assert_eq!(
            (f[2], f[3], f[4]),
            (pid.as_str(), pid.as_str(), "0"),
            "{stat}"
        );
    }

    /// A real probe is in the step log like a command: what was asked, what came back
    /// (here: nothing listens, so the error), secrets masked.
    #[test]
    fn a_probe_is_logged_in_its_step_log() {
        let d = tempfile::tempdir().unwrap();
        let ex = exec(d.path());
        ex.redactor.add("s3cret-token");
        // A port nothing listens on: bind one, then let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = ex.http_get(
            "t",
            port,
            "s3cret-token.example",
            "/x",
            Duration::from_secs(2),
        );
        assert!(r.is_err());
        let log = std::fs::read_to_string(d.path().join("steps/t.log")).unwrap();
        assert!(
            log.contains(&format!("probe GET http://127.0.0.1:{port}/x Host: ")),
            "{log}"
        );
        assert!(log.contains("error: "), "{log}");
        assert!(!log.contains("s3cret-token"), "{log}");
    }

    #[test]
    fn control_characters_of_child_output_are_stripped() {
        let d = tempfile::tempdir().unwrap();
        let o = exec(d.path())
            .run(
                "t",
                &Cmd::new("printf").arg("\\033[2J\\033]0;title\\007ok\\r\\tend\\r\\n"),
            )
            .unwrap();
        // A lone carriage return (a line overwritten) goes; one that ends a line stays (HTTP
        // through openssl s_client is framed by them).
        assert_eq!(o.stdout, "[2J]0;titleok\tend\r\n");
        let log = std::fs::read_to_string(d.path().join("steps/t.log")).unwrap();
        assert!(!log.contains('\u{1b}'), "{log:?}");
    }

    /// What openssl s_client relays (HTTPS probes) keeps its HTTP framing once stripped.
    #[test]
    fn stripped_https_answers_still_parse() {
        let raw = "HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\npong\x1b[2J";
        let (code, body) = crate::system::net::parse_http(&strip_controls(raw)).unwrap();
        assert_eq!((code, body.as_str()), (200, "pong[2J"));
    }

    #[test]
    fn apt_and_dpkg_are_never_killed() {
        assert!(must_not_kill("apt-get"));
        assert!(must_not_kill("/usr/bin/dpkg"));
        assert!(!must_not_kill("python3"));
        assert!(!must_not_kill("runuser"));
    }

    #[test]
    fn failure_carries_status_and_stderr_tail() {
        let d = tempfile::tempdir().unwrap();
        let e = exec(d.path())
            .run(
                "t",
                &Cmd::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]),
            )
            .unwrap_err();
        assert_eq!(e.code, Some(3));
        assert!(e.to_string().contains("exited with status 3"), "{e}");
        assert!(e.stderr_tail.contains("two"), "{e}");
    }

    #[test]
    fn timeout_kills_the_process_group() {
        let d = tempfile::tempdir().unwrap();
        let marker = d.path().join("child.pid");
        let script = format!("sleep 30 & echo $! > {}; wait", marker.display());
        let t = Instant::now();
        let e = exec(d.path())
            .run(
                "t",
                &Cmd::new("sh")
                    .args(["-c", &script])
                    .timeout(Duration::from_millis(300)),
            )
            .unwrap_err();
        assert!(e.timed_out, "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // The grandchild (sleep) must be gone too, not just sh.
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z");
        assert!(!alive, "grandchild {pid} survived the timeout");
    }

    #[test]
    fn secrets_are_redacted_from_logs_and_errors() {
        let d = tempfile::tempdir().unwrap();
        let ex = exec(d.path());
        ex.redactor.add("s3cr3t-value-123");
        let e = ex
            .run(
                "t",
                &Cmd::new("sh")
                    .args(["-c", "read x; echo \"bad $x\" >&2; exit 1"])
                    .stdin("s3cr3t-value-123\n"),
            )
            .unwrap_err();
        assert!(!e.to_string().contains("s3cr3t-value-123"));
        let log = std::fs::read_to_string(d.path().join("steps/t.log")).unwrap();
        assert!(!log.contains("s3cr3t-value-123"), "{log}");
        assert!(log.contains("bad ********"), "{log}");
    }

    #[cfg(feature = "fake-host")]
    #[test]
    fn fake_rules_answer_then_expire() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("rules"),
            "apt-get update\t100\t2\tE: Could not get lock\n",
        )
        .unwrap();
        let ex = Exec {
            mode: Mode::Fake(d.path().into()),
            ..exec(d.path())
        };
        let c = Cmd::new("apt-get").arg("update");
        assert_eq!(ex.run("t", &c).unwrap_err().code, Some(100));
        assert!(ex.run("t", &c).is_err());
        assert!(ex.run("t", &c).is_ok());
        let log = std::fs::read_to_string(d.path().join("commands.log")).unwrap();
        assert_eq!(log.lines().count(), 3);
    }
}
