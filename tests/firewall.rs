//! The firewall step on the fake host: left alone in a container, the ruleset keel renders
//! on a VM, the lock-out refused before anything is written, and a failed apply that puts
//! the previous ruleset back.
use crate::fakehost::{Host, config};
use predicates::str::contains;

const FILE: &str = "root/etc/keel/firewall.nft";

/// A VM (not a container) whose sshd listens on 22.
fn vm(extra: &str) -> Host {
    let h = Host::new();
    h.write("keel.toml", &config(extra));
    h.rule("systemd-detect-virt\t1\t0\t\tnone");
    h.rule("sshd -T\t0\t0\t\tport 22\\naddressfamily any");
    h.rule("ss -Htlnp\t0\t0\t\tLISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=1,fd=3))\\nLISTEN 0 128 [::]:22 [::]:* users:((\"sshd\",pid=1,fd=4))");
    h
}

#[test]
fn in_a_container_the_firewall_is_left_alone() {
    let h = Host::new();
    h.install(&[])
        .success()
        .stderr(contains("[firewall] skipped: inside a container"));
    assert!(!h.path(FILE).exists());
    assert!(!h.commands().contains("nft "), "{}", h.commands());
}

#[test]
fn on_a_vm_ssh_http_https_and_extra_ports_are_allowed_and_the_rest_dropped() {
    let h = vm("[firewall]\nallow_tcp = [8443]\nallow_udp = [51820]\n");
    h.install(&[]).success();
    let nft = h.read(FILE);
    assert!(nft.contains("policy drop;"), "{nft}");
    assert!(
        nft.contains("tcp dport { 22, 80, 443, 8443 } accept"),
        "{nft}"
    );
    assert!(nft.contains("udp dport { 51820 } accept"), "{nft}");
    assert!(nft.contains("ct state established,related accept"), "{nft}");
    assert!(nft.contains("meta l4proto ipv6-icmp accept"), "{nft}");
    assert!(nft.starts_with("# Managed by keel") && nft.contains("delete table inet keel"));
    let cmds = h.commands();
    let pos = |s: &str| cmds.find(s).unwrap_or_else(|| panic!("no {s:?} in {cmds}"));
    assert!(
        pos("nft -c -f /etc/keel/firewall.nft") < pos("systemctl restart keel-firewall.service")
    );
    assert!(
        h.read("root/etc/systemd/system/keel-firewall.service")
            .contains("ExecStop=/usr/sbin/nft delete table inet keel")
    );
    // Converged: a re-run changes nothing.
    h.install(&[]).success().stdout(contains("0 step(s) run"));
}

#[test]
fn a_config_that_would_lock_ssh_out_is_refused_before_anything_is_written() {
    let h = vm("[firewall]\nssh_port = 2200\n");
    h.install(&[])
        .code(1)
        .stderr(contains("sshd listens on port 22"))
        .stderr(contains("firewall.ssh_port"));
    assert!(!h.path(FILE).exists());
    assert!(!h.commands().contains("nft "), "{}", h.commands());
}

#[test]
fn a_failed_apply_puts_the_previous_ruleset_back() {
    let h = vm("[firewall]\nallow_tcp = [8080]\n");
    h.install(&[]).success();
    let before = h.read(FILE);
    assert!(before.contains("8080"));
    h.write("keel.toml", &config("[firewall]\nallow_tcp = [9000]\n"));
    // Loading the new ruleset fails (once: a failed load is not retried); the rollback's
    // reload of the previous file works.
    h.rule("systemctl restart keel-firewall.service\t1\t1\tnft: Error: Could not process rule");
    let n = h.commands().len();
    h.install(&[]).code(1).stderr(contains("firewall"));
    assert_eq!(h.read(FILE), before, "the previous ruleset is not back");
    let after = &h.commands()[n..];
    assert_eq!(
        after
            .matches("systemctl restart keel-firewall.service")
            .count(),
        2,
        "{after}"
    );
}

/// A process name is anyone's (prctl): the firewall opens only the ports of root's
/// /usr/sbin/sshd. The app user's "sshd" on 4444 gets nothing and blocks nothing; root's
/// sshd on 2222 (not in its config's `sshd -T` output) is allowed.
#[test]
fn only_roots_sshd_opens_a_port() {
    let h = vm("");
    let ps = |pid: u32, uid: u32| {
        h.write(
            &format!("root/proc/{pid}/status"),
            &format!("Name:\tsshd\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n"),
        );
        std::os::unix::fs::symlink("/usr/sbin/sshd", h.path(&format!("root/proc/{pid}/exe")))
            .unwrap();
    };
    ps(700, 0);
    ps(900, 998);
    h.rule("ss -Htlnp\t0\t0\t\tLISTEN 0 128 0.0.0.0:2222 0.0.0.0:* users:((\"sshd\",pid=700,fd=3))\\nLISTEN 0 128 0.0.0.0:4444 0.0.0.0:* users:((\"sshd\",pid=900,fd=3))\\nLISTEN 0 128 0.0.0.0:5555 0.0.0.0:* users:((\"sshd\",pid=901,fd=3))");
    h.install(&[]).success();
    let nft = h.read(FILE);
    assert!(
        nft.contains("tcp dport { 22, 80, 443, 2222 } accept"),
        "{nft}"
    );
    // With ssh_port set, the fake sshd's port does not block the update either.
    h.write("keel.toml", &config("[firewall]\nssh_port = 2222\n"));
    h.rule("sshd -T\t0\t0\t\tport 2222");
    h.install(&[]).success();
    let nft = h.read(FILE);
    assert!(
        nft.contains("tcp dport { 2222, 80, 443 } accept")
            || nft.contains("tcp dport { 80, 443, 2222 } accept"),
        "{nft}"
    );
    assert!(!nft.contains("4444") && !nft.contains("5555"), "{nft}");
}
