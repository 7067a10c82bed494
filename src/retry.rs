//! Retry with exponential backoff and jitter (backon, blocking), and the transient/permanent
//! classification that decides whether a failure is worth another attempt.
use crate::config::Retry;
use backon::{BlockingRetryable, ExponentialBuilder};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Transient,
    Permanent,
}

/// Classify a failure from its text (stderr tail, error message). Unknown failures are
/// permanent: retrying a real error only delays the report.
pub fn classify(text: &str) -> Kind {
    let t = text.to_ascii_lowercase();
    const PERMANENT: &[&str] = &[
        "unable to locate package",
        "has no installation candidate",
        "no such file or directory",
        "permission denied",
        "syntax error",
        "invalid",
    ];
    const TRANSIENT: &[&str] = &[
        "could not get lock",
        "unable to acquire the dpkg frontend lock",
        "unable to lock directory",
        "is another process using it",
        "temporary failure resolving",
        "temporary failure in name resolution",
        "failed to fetch",
        "connection timed out",
        "connection refused",
        "connection reset",
        "unable to connect",
        "could not connect",
        "network is unreachable",
        "hash sum mismatch",
        "timed out",
        "503 service unavailable",
        "502 bad gateway",
        "the database system is starting up",
        "loading the dataset in memory",
        "read timed out",
        "readtimeouterror",
        "newconnectionerror",
        "max retries exceeded",
        "remote end closed connection",
    ];
    if PERMANENT.iter().any(|p| t.contains(p)) {
        return Kind::Permanent;
    }
    if TRANSIENT.iter().any(|p| t.contains(p)) {
        return Kind::Transient;
    }
    Kind::Permanent
}

pub fn policy(cfg: &Retry) -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(cfg.initial_delay_ms))
        .with_max_delay(Duration::from_millis(cfg.max_delay_ms))
        .with_max_times(cfg.attempts.saturating_sub(1) as usize)
        .with_total_delay(Some(Duration::from_millis(cfg.max_total_delay_ms)))
        .with_jitter()
}

/// Run `op`, retrying while `is_transient` says so, calling `notify` before each sleep.
pub fn retry<T, E>(
    cfg: &Retry,
    op: impl FnMut() -> Result<T, E>,
    is_transient: impl Fn(&E) -> bool,
    notify: impl FnMut(&E, Duration),
) -> Result<T, E> {
    op.retry(policy(cfg))
        // Blocking retries wait in real time (no runner here to ask).
        .sleep(
            #[allow(clippy::disallowed_methods)]
            std::thread::sleep,
        )
        .when(is_transient)
        .notify(notify)
        .call()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn classification() {
        assert_eq!(
            classify(
                "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 12 (apt-get)"
            ),
            Kind::Transient
        );
        assert_eq!(
            classify("Temporary failure resolving 'deb.example'"),
            Kind::Transient
        );
        assert_eq!(
            classify("E: Failed to fetch http://x/y 503"),
            Kind::Transient
        );
        assert_eq!(
            classify("E: Unable to locate package nginxx"),
            Kind::Permanent
        );
        assert_eq!(
            classify("nginx: [emerg] unknown directive"),
            Kind::Permanent
        );
        assert_eq!(classify("something odd"), Kind::Permanent);
    }

    fn fast(attempts: u32) -> Retry {
        Retry {
            attempts,
            initial_delay_ms: 1,
            max_delay_ms: 2,
            max_total_delay_ms: 1000,
        }
    }

    #[test]
    fn retries_transient_until_success() {
        let calls = Cell::new(0);
        let notes = Cell::new(0);
        let r: Result<u32, &str> = retry(
            &fast(5),
            || {
                calls.set(calls.get() + 1);
                if calls.get() < 3 {
                    Err("connection timed out")
                } else {
                    Ok(7)
                }
            },
            |e| classify(e) == Kind::Transient,
            |_, _| notes.set(notes.get() + 1),
        );
        assert_eq!(r, Ok(7));
        assert_eq!(calls.get(), 3);
        assert_eq!(notes.get(), 2);
    }

    #[test]
    fn permanent_fails_at_once_and_attempts_are_bounded() {
        let calls = Cell::new(0);
        let r: Result<(), &str> = retry(
            &fast(5),
            || {
                calls.set(calls.get() + 1);
                Err("unable to locate package x")
            },
            |e| classify(e) == Kind::Transient,
            |_, _| {},
        );
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
        calls.set(0);
        let r: Result<(), &str> = retry(
            &fast(3),
            || {
                calls.set(calls.get() + 1);
                Err("connection refused")
            },
            |e| classify(e) == Kind::Transient,
            |_, _| {},
        );
        assert!(r.is_err());
        assert_eq!(calls.get(), 3);
    }
}
