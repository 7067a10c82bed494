//! `keel beat-guard`: the beat unit's ExecStart on a host of several. Beat runs only while
//! this host holds the beat lock (a PostgreSQL advisory lock, tied to this session): a
//! second beat host waits, so no periodic task is sent twice. It runs as the app's user in
//! the unit's sandbox; the database password comes from systemd's credential (LoadCredential),
//! never from a command line or the environment.
use crate::error::{Error, Result};
use crate::system::pgwire::{Conn, Target};
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub struct Args {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
    pub ca: Option<PathBuf>,
    pub command: Vec<String>,
}

fn say(msg: &str) {
    eprintln!("keel beat-guard: {msg}");
}

// The guard is a supervisor of one child in a systemd unit: it waits and spawns directly
// (there is no Exec here: no keel run, no logs of keel's, the unit's sandbox around it).
#[allow(clippy::disallowed_methods)]
fn pause(d: Duration) {
    std::thread::sleep(d)
}

#[allow(clippy::disallowed_methods)]
fn credential() -> Result<String> {
    let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
        Error::usage(
            "no CREDENTIALS_DIRECTORY: beat-guard runs from the beat unit (LoadCredential=pg:...)",
            "keel install writes the unit; this is not a command to run by hand",
        )
    })?;
    let p = PathBuf::from(dir).join("pg");
    std::fs::read_to_string(&p)
        .map(|s| s.trim().to_string())
        .map_err(|e| Error::io(&p, e))
}

pub fn run(a: &Args) -> Result<()> {
    if a.command.is_empty() {
        return Err(Error::usage(
            "beat-guard: no command after --",
            "-- celery -A APP beat ...",
        ));
    }
    let password = credential()?;
    let ca = match &a.ca {
        Some(p) => Some(std::fs::read(p).map_err(|e| Error::io(p, e))?),
        None => None,
    };
    let label = format!("keel-beat@{}", crate::remote::host_name());
    let t = Target {
        host: &a.host,
        port: a.port,
        user: &a.user,
        password: &password,
        database: &a.database,
        ca_pem: ca.as_deref(),
        application_name: &label,
    };
    let mut last_said = None::<Instant>;
    let mut say_every = |msg: &str| {
        if last_said.is_none_or(|t| t.elapsed() > Duration::from_secs(300)) {
            say(msg);
            last_said = Some(Instant::now());
        }
    };
    loop {
        let mut c = match Conn::connect(&t, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => {
                say_every(&format!(
                    "the database: {e}; beat waits, trying again every 5 s"
                ));
                pause(Duration::from_secs(5));
                continue;
            }
        };
        let got = c.scalar(&format!(
            "SELECT pg_try_advisory_lock({})",
            crate::remote::LOCK_BEAT
        ));
        match got {
            Ok(Some(v)) if v == "t" => return supervise(c, &a.command),
            Ok(_) => {
                let mut s = crate::exec::PgSession::Real(c);
                let who = crate::remote::holder(&mut s, crate::remote::LOCK_BEAT)
                    .unwrap_or_else(|| "another host".into());
                say_every(&format!(
                    "beat runs on {}: this host's beat does not start while it holds the lock (checked every 10 s)",
                    who.strip_prefix("keel-beat@").unwrap_or(&who)
                ));
                drop(s);
                pause(Duration::from_secs(10));
            }
            Err(e) => {
                say_every(&format!("the beat lock: {e}; trying again every 5 s"));
                pause(Duration::from_secs(5));
            }
        }
    }
}

/// Beat runs while the session holding the lock lives; if the session is lost, beat is
/// stopped (another host may take the lock) and the unit restarts this guard.
fn supervise(mut c: Conn, command: &[String]) -> Result<()> {
    say("this host holds the beat lock: starting beat");
    let mut child = crate::exec::spawn_supervised(command)
        .map_err(|e| Error::io(std::path::Path::new(&command[0]), e))?;
    loop {
        pause(Duration::from_secs(5));
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Error::io(std::path::Path::new(&command[0]), e))?
        {
            say(&format!("beat exited ({st})"));
            return match st.code() {
                Some(0) => Ok(()),
                Some(n) => Err(Error::Passed(n)),
                None => Err(Error::Passed(1)),
            };
        }
        if let Err(e) = c.scalar("SELECT 1") {
            say(&format!(
                "lost the database session holding the beat lock ({e}): stopping beat, since another host may now run it"
            ));
            let pid = rustix::process::Pid::from_raw(child.id() as i32);
            if let Some(pid) = pid {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            for _ in 0..20 {
                if child.try_wait().ok().flatten().is_some() {
                    break;
                }
                pause(Duration::from_millis(500));
            }
            let _ = child.kill();
            return Err(Error::Passed(1));
        }
    }
}
