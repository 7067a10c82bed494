//! Host facts read straight from the kernel and /etc, so a minimal Debian (no ss, no fuser,
//! no python) can answer them.
use std::collections::HashMap;
pub mod fcntl;
pub mod net;
pub mod pgwire;
pub mod send;
pub mod tlsconn;

use std::path::Path;

pub fn valid_hostname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

pub fn os_release(root: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

/// A /proc/meminfo field, in MB (0 if unreadable).
fn meminfo_mb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

pub fn mem_total_mb() -> u64 {
    meminfo_mb("MemTotal")
}

pub fn mem_available_mb() -> u64 {
    meminfo_mb("MemAvailable")
}

pub fn cpus() -> u32 {
    std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1)
}

/// Free space for unprivileged use of the filesystem holding `path` (or its nearest existing
/// ancestor): (MB, percent of the filesystem).
pub fn disk_free(path: &Path) -> Option<(u64, f64)> {
    let mut p = path;
    while !p.exists() {
        p = p.parent()?;
    }
    let st = rustix::fs::statvfs(p).ok()?;
    if st.f_blocks == 0 {
        return None;
    }
    let mb = st.f_bavail * st.f_frsize / (1024 * 1024);
    Some((mb, st.f_bavail as f64 * 100.0 / st.f_blocks as f64))
}

pub fn disk_free_mb(path: &Path) -> Option<u64> {
    disk_free(path).map(|(mb, _)| mb)
}

#[derive(Debug, Clone)]
pub struct Listener {
    pub port: u16,
    pub addr: String,
    pub inode: u64,
}

/// TCP sockets in LISTEN state, from ROOT/proc/net/tcp and tcp6 (the fake host's root
/// holds its own).
pub fn listeners(root: &Path) -> Vec<Listener> {
    let mut out = vec![];
    for (file, v6) in [("proc/net/tcp", false), ("proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let Some((addr_hex, port_hex)) = f[1].split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port_hex, 16) else {
                continue;
            };
            out.push(Listener {
                port,
                addr: decode_addr(addr_hex, v6),
                inode: f[9].parse().unwrap_or(0),
            });
        }
    }
    out
}

fn decode_addr(hex: &str, v6: bool) -> String {
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect();
    if !v6 && bytes.len() == 4 {
        // /proc prints the address as a host-order (little-endian) u32.
        return std::net::Ipv4Addr::new(bytes[3], bytes[2], bytes[1], bytes[0]).to_string();
    }
    if v6 && bytes.len() == 16 {
        let mut b = [0u8; 16];
        for w in 0..4 {
            for i in 0..4 {
                b[w * 4 + i] = bytes[w * 4 + 3 - i];
            }
        }
        return std::net::Ipv6Addr::from(b).to_string();
    }
    hex.to_string()
}

pub fn is_loopback(addr: &str) -> bool {
    addr.parse::<std::net::IpAddr>()
        .map(|a| a.is_loopback())
        .unwrap_or(false)
}

/// The process owning a socket inode: (pid, comm).
pub fn socket_owner(inode: u64) -> Option<(u32, String)> {
    let needle = format!("socket:[{inode}]");
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path())
                .map(|l| l.to_string_lossy() == needle)
                .unwrap_or(false)
            {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                return Some((pid, comm.trim().to_string()));
            }
        }
    }
    None
}

/// Who listens on `port`: addresses and the owning process name.
pub fn port_users(root: &Path, port: u16) -> Vec<(Listener, Option<(u32, String)>)> {
    listeners(root)
        .into_iter()
        .filter(|l| l.port == port)
        .map(|l| {
            let owner = socket_owner(l.inode);
            (l, owner)
        })
        .collect()
}

pub fn process_cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The process holding dpkg's lock, if any. apt and dpkg take fcntl locks on these files;
/// F_GETLK names the holder without taking the lock ourselves.
pub fn dpkg_lock_holder(root: &Path) -> Option<(u32, String)> {
    for name in ["var/lib/dpkg/lock-frontend", "var/lib/dpkg/lock"] {
        let path = root.join(name);
        let Ok(f) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        else {
            continue;
        };
        if let Some(pid) = fcntl::lock_holder(&f) {
            let cmd = process_cmdline(pid);
            return Some((
                pid,
                if cmd.is_empty() {
                    "unknown".into()
                } else {
                    cmd
                },
            ));
        }
    }
    None
}

/// dpkg was interrupted (a package half-configured): `dpkg --configure -a` is needed.
pub fn dpkg_interrupted(root: &Path) -> bool {
    std::fs::read_dir(root.join("var/lib/dpkg/updates"))
        .map(|d| {
            d.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .chars()
                    .all(|c| c.is_ascii_digit())
            })
        })
        .unwrap_or(false)
}

/// One line of ROOT/etc/passwd.
#[derive(Debug, Clone, PartialEq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// The first entry of ROOT/etc/passwd that `pick` accepts: the one reader of that file.
pub fn passwd_find(root: &Path, pick: impl Fn(&PasswdEntry) -> bool) -> Option<PasswdEntry> {
    std::fs::read_to_string(root.join("etc/passwd"))
        .ok()?
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
                shell: f.get(6).unwrap_or(&"").to_string(),
            })
        })
        .find(|e| pick(e))
}

/// uid and gid of a user, from ROOT/etc/passwd.
pub fn user_ids(root: &Path, name: &str) -> Option<(u32, u32)> {
    passwd_find(root, |e| e.name == name).map(|e| (e.uid, e.gid))
}

/// The name of the user with `uid`, from ROOT/etc/passwd.
pub fn user_name(root: &Path, uid: u32) -> Option<String> {
    passwd_find(root, |e| e.uid == uid).map(|e| e.name)
}

pub fn group_exists(root: &Path, name: &str) -> bool {
    std::fs::read_to_string(root.join("etc/group"))
        .map(|t| t.lines().any(|l| l.split(':').next() == Some(name)))
        .unwrap_or(false)
}

pub fn hostname() -> String {
    // uname(2), not /proc/sys/kernel/hostname: a unit with ProcSubset=pid (the beat guard's)
    // cannot read /proc/sys, and would name every host alike.
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .trim()
        .to_string()
}

/// apt mirrors configured on the host: (scheme, host, port).
pub fn apt_mirrors(root: &Path) -> Vec<(String, String, u16)> {
    let mut text = String::new();
    text.push_str(&std::fs::read_to_string(root.join("etc/apt/sources.list")).unwrap_or_default());
    if let Ok(d) = std::fs::read_dir(root.join("etc/apt/sources.list.d")) {
        for e in d.flatten() {
            text.push('\n');
            text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
        }
    }
    let mut out: Vec<(String, String, u16)> = vec![];
    let uncommented: Vec<&str> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect();
    for word in uncommented.iter().flat_map(|l| l.split_whitespace()) {
        for (scheme, port) in [("http://", 80u16), ("https://", 443)] {
            if let Some(rest) = word.strip_prefix(scheme) {
                let hostport = rest.split('/').next().unwrap_or("");
                let (h, p) = match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, p.parse().unwrap_or(port)),
                    None => (hostport, port),
                };
                let m = (scheme.trim_end_matches("://").to_string(), h.to_string(), p);
                if !h.is_empty() && !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostnames() {
        assert!(valid_hostname("demo.example.com"));
        assert!(valid_hostname("localhost"));
        assert!(!valid_hostname("-bad.com"));
        assert!(!valid_hostname("a b"));
        assert!(!valid_hostname(""));
    }

    #[test]
    fn proc_addresses_decode() {
        assert_eq!(decode_addr("0100007F", false), "127.0.0.1");
        assert_eq!(decode_addr("00000000000000000000000001000000", true), "::1");
    }

    #[test]
    fn finds_our_own_listener_and_owner() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let users = port_users(Path::new("/"), port);
        assert_eq!(users.len(), 1);
        assert_eq!(users[0].0.addr, "127.0.0.1");
        assert_eq!(users[0].1.as_ref().map(|o| o.0), Some(std::process::id()));
    }

    #[test]
    fn dpkg_lock_holder_is_named() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("var/lib/dpkg")).unwrap();
        let p = d.path().join("var/lib/dpkg/lock-frontend");
        std::fs::write(&p, "").unwrap();
        assert!(dpkg_lock_holder(d.path()).is_none());
        // A child holds an fcntl lock like apt does (F_GETLK does not see our own locks).
        #[allow(clippy::disallowed_methods)] // a real lock holder, as apt is
        let mut child = std::process::Command::new("python3")
            .args(["-c", &format!("import fcntl,time;f=open('{}','w');fcntl.lockf(f,fcntl.LOCK_EX);print('x',flush=True);time.sleep(5)", p.display())])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut b = [0u8; 1];
        use std::io::Read;
        child.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
        let h = dpkg_lock_holder(d.path());
        child.kill().unwrap();
        child.wait().unwrap();
        let (pid, cmd) = h.expect("holder found");
        assert_eq!(pid, child.id());
        assert!(cmd.contains("python3"), "{cmd}");
    }

    #[test]
    fn mirrors_from_sources() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("etc/apt/sources.list.d")).unwrap();
        std::fs::write(
            d.path().join("etc/apt/sources.list.d/x.sources"),
            "Types: deb\n# http://ignored.example/x\nURIs: http://mirror.test/debian\n",
        )
        .unwrap();
        assert_eq!(
            apt_mirrors(d.path()),
            vec![("http".into(), "mirror.test".into(), 80)]
        );
    }
}
