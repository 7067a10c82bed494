//! The host baseline on the fake host: swap made only where it should be (and activated
//! only outside a container), security updates only, bounded logs; undo takes back only
//! what keel added.
use crate::fakehost::{Host, config};

/// RAM below the threshold whatever this machine has (the threshold is the config's).
fn small_host() -> Host {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("[host]\nswap_when_ram_below_mb = 16777216\n"),
    );
    h.write("root/etc/fstab", "UUID=abc / ext4 errors=remount-ro 0 1\n");
    h.write("root/proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
    h
}

fn count(h: &Host, pat: &str) -> usize {
    h.commands().lines().filter(|l| l.contains(pat)).count()
}

#[test]
fn a_small_machine_without_swap_gets_keels_file_once_and_rollback_removes_it() {
    let h = small_host();
    h.rule("systemd-detect-virt\t1\t0\t\tnone");
    h.install(&[]).success();
    assert_eq!(
        count(&h, "fallocate -l 1024M /swapfile.keel"),
        1,
        "{}",
        h.commands()
    );
    assert_eq!(count(&h, "mkswap /swapfile.keel"), 1);
    assert_eq!(count(&h, "swapon /swapfile.keel"), 1);
    assert_eq!(count(&h, "sysctl -p /etc/sysctl.d/60-keel-swap.conf"), 1);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(h.path("root/swapfile.keel"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        h.read("root/etc/fstab"),
        "UUID=abc / ext4 errors=remount-ro 0 1\n/swapfile.keel none swap sw 0 0\n"
    );
    assert!(
        h.read("root/etc/sysctl.d/60-keel-swap.conf")
            .contains("vm.swappiness = 10")
    );
    // Active now; a re-run changes nothing.
    h.write(
        "root/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/swapfile.keel file 1048572 0 -2\n",
    );
    h.install(&["--retry-step", "baseline"]).success();
    assert_eq!(count(&h, "fallocate"), 1);
    assert_eq!(count(&h, "swapon"), 1);
    assert_eq!(
        h.read("root/etc/fstab").matches("/swapfile.keel").count(),
        1
    );
    // Rollback: off, out of fstab, gone; the rest of fstab as it was.
    h.keel().args(["rollback", "--yes"]).assert().success();
    assert_eq!(count(&h, "swapoff /swapfile.keel"), 1);
    assert!(!h.path("root/swapfile.keel").exists());
    assert_eq!(
        h.read("root/etc/fstab"),
        "UUID=abc / ext4 errors=remount-ro 0 1\n"
    );
}

#[test]
fn in_a_container_the_file_is_made_but_never_activated() {
    let h = small_host();
    h.rule("systemd-detect-virt\t0\t0\t\tsystemd-nspawn");
    let out = h.install(&[]).success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("in a container (systemd-nspawn): swap file made, activation skipped"),
        "{err}"
    );
    assert_eq!(count(&h, "mkswap /swapfile.keel"), 1);
    assert_eq!(count(&h, "swapon"), 0, "{}", h.commands());
    assert_eq!(count(&h, "sysctl -p"), 0);
}

#[test]
fn existing_swap_is_never_touched_or_added_to() {
    let h = small_host();
    h.write(
        "root/proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/dev/vda2 partition 2097148 0 -2\n",
    );
    let out = h.install(&[]).success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("no swap file: the host has swap already (/dev/vda2)"),
        "{err}"
    );
    assert_eq!(count(&h, "fallocate"), 0);
    assert!(!h.path("root/swapfile.keel").exists());
}

#[test]
fn security_updates_only_and_bounded_logs() {
    let h = Host::new();
    h.install(&[]).success();
    let origins = h.read("root/etc/apt/apt.conf.d/52keel-unattended-upgrades");
    assert!(
        origins.contains("#clear Unattended-Upgrade::Origins-Pattern;"),
        "{origins}"
    );
    assert!(
        origins.contains("codename=${distro_codename}-security,label=Debian-Security"),
        "{origins}"
    );
    assert!(!origins.contains("label=Debian\""), "{origins}");
    assert!(
        h.read("root/etc/apt/apt.conf.d/21keel-auto-upgrades")
            .contains("APT::Periodic::Unattended-Upgrade \"1\";")
    );
    assert!(
        h.read("root/etc/systemd/journald.conf.d/60-keel.conf")
            .contains("SystemMaxUse=500M")
    );
    assert!(
        h.read("root/etc/logrotate.d/keel")
            .contains("/var/log/keel/*.jsonl")
    );
    assert!(
        h.commands()
            .contains("systemctl enable --now apt-daily.timer apt-daily-upgrade.timer")
    );
    // Turned off: keel's files go.
    h.write("keel.toml", &config("[host]\nsecurity_updates = false\n"));
    h.install(&[]).success();
    assert!(
        !h.path("root/etc/apt/apt.conf.d/52keel-unattended-upgrades")
            .exists()
    );
}

/// Yama: the app may not ptrace (or open /proc/PID/mem of) what it did not start. Set to 1
/// where the kernel has Yama and it is 0; a higher value is the admin's and stays; no Yama
/// is said, never claimed done.
#[test]
fn ptrace_scope_is_raised_where_yama_exists() {
    let h = small_host();
    h.rule("systemd-detect-virt\t1\t0\t\tnone");
    h.write("root/proc/sys/kernel/yama/ptrace_scope", "0\n");
    h.install(&[]).success();
    assert!(
        h.read("root/etc/sysctl.d/60-keel-ptrace.conf")
            .contains("kernel.yama.ptrace_scope = 1")
    );
    assert_eq!(count(&h, "sysctl -p /etc/sysctl.d/60-keel-ptrace.conf"), 1);

    let h = small_host();
    h.write("root/proc/sys/kernel/yama/ptrace_scope", "2\n");
    h.install(&[]).success();
    assert!(!h.path("root/etc/sysctl.d/60-keel-ptrace.conf").exists());

    let h = small_host();
    let out = h.install(&[]).success();
    let err = String::from_utf8_lossy(&out.get_output().stdout).to_string()
        + &String::from_utf8_lossy(&out.get_output().stderr);
    assert!(
        err.contains("kernel.yama.ptrace_scope not set: this kernel has no Yama"),
        "{err}"
    );
    assert!(!h.path("root/etc/sysctl.d/60-keel-ptrace.conf").exists());
}
