//! The one place with `unsafe`: fcntl(F_GETLK), which neither std nor rustix wraps (it names
//! the process holding a write lock on a file without taking the lock), and setsid in a
//! forked child (pre_exec).
use std::os::fd::AsRawFd;

/// The pid holding a conflicting (write) lock on `f`, if any.
pub fn lock_holder(f: &std::fs::File) -> Option<u32> {
    // SAFETY: flock is a plain C struct of integers; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: F_GETLK on a descriptor `f` owns for the whole call, with a valid, exclusively
    // borrowed flock out-pointer.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (r == 0 && fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid as u32)
}

/// Make the child a session leader before it runs (setsid in the forked child): no
/// controlling terminal, so it can never open the admin's /dev/tty.
pub fn new_session<C: std::os::unix::process::CommandExt>(c: &mut C) {
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent, as pre_exec
    // requires between fork and exec.
    unsafe {
        c.pre_exec(|| {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
}
