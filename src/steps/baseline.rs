//! The host baseline: a swap file on a small machine that has none, security updates by
//! unattended-upgrades, a cap on the journal, rotation of keel's own logs. Each piece is a
//! file keel owns (or a line it adds), so undo takes exactly that back.
use crate::exec::Cmd;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult, io_err};
use crate::systemd::systemctl;
use crate::txn::Txn;

pub struct Baseline;
const ID: &str = "baseline";
pub const SWAPFILE: &str = "/swapfile.keel";
const FSTAB_LINE: &str = "/swapfile.keel none swap sw 0 0";
const SYSCTL: &str = "/etc/sysctl.d/60-keel-swap.conf";
const PTRACE: &str = "/etc/sysctl.d/60-keel-ptrace.conf";
const YAMA: &str = "/proc/sys/kernel/yama/ptrace_scope";
const PTRACE_CONF: &str = "# Managed by keel: a process may ptrace (or open /proc/PID/mem of) its own\n# descendants only, so the app cannot reach commands that keel runs as its user.\nkernel.yama.ptrace_scope = 1\n";
const JOURNALD: &str = "/etc/systemd/journald.conf.d/60-keel.conf";
const LOGROTATE: &str = "/etc/logrotate.d/keel";
const AUTO: &str = "/etc/apt/apt.conf.d/21keel-auto-upgrades";
const ORIGINS: &str = "/etc/apt/apt.conf.d/52keel-unattended-upgrades";

const LOGROTATE_CONF: &str = "# Managed by keel: its own logs (reports are pruned by keel: 20 kept).\n/var/log/keel/*.jsonl /var/log/keel/steps/*.log /var/log/keel/apps/*/*.jsonl /var/log/keel/apps/*/steps/*.log {\n    weekly\n    maxsize 10M\n    rotate 8\n    compress\n    delaycompress\n    missingok\n    notifempty\n    copytruncate\n    su root root\n}\n";
const AUTO_CONF: &str = "// Managed by keel: refresh the lists and run unattended-upgrades daily.\nAPT::Periodic::Update-Package-Lists \"1\";\nAPT::Periodic::Unattended-Upgrade \"1\";\n";
/// Security origins only: the distribution's lists are cleared first (apt.conf lists
/// append), then Debian's and Ubuntu's security suites are named.
const ORIGINS_CONF: &str = "// Managed by keel: security updates only.\n#clear Unattended-Upgrade::Origins-Pattern;\n#clear Unattended-Upgrade::Allowed-Origins;\nUnattended-Upgrade::Origins-Pattern {\n        \"origin=Debian,codename=${distro_codename}-security,label=Debian-Security\";\n        \"origin=Ubuntu,archive=${distro_codename}-security\";\n};\n";

/// In a container (`systemd-detect-virt --container` says so): swap is the host kernel's,
/// and nspawn's syscall filter blocks swapon anyway.
pub fn in_container(ctx: &Ctx) -> Option<String> {
    let o = ctx
        .exec
        .probe(ID, &Cmd::new("systemd-detect-virt").arg("--container"))
        .ok()?;
    (o.code == 0).then(|| o.stdout.trim().to_string())
}

/// The devices and files of active swap, from /proc/swaps (its first line is a header).
fn active_swap(ctx: &Ctx) -> Vec<String> {
    std::fs::read_to_string(ctx.host("/proc/swaps"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect()
}

fn keels_swap_active(ctx: &Ctx) -> bool {
    active_swap(ctx).iter().any(|d| d == SWAPFILE)
}

/// Active swap (other than keel's): never touched, never added to.
fn other_swap(ctx: &Ctx) -> Vec<String> {
    active_swap(ctx)
        .into_iter()
        .filter(|d| d != SWAPFILE)
        .collect()
}

fn fstab_has_other_swap(text: &str) -> bool {
    text.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        !l.trim_start().starts_with('#') && f.len() >= 3 && f[2] == "swap" && f[0] != SWAPFILE
    })
}

/// Does this host get keel's swap file? (why not, when it does not)
pub fn wants_swap(ctx: &Ctx) -> Result<(), String> {
    let h = &ctx.cfg.host;
    if h.swap_mb == 0 {
        return Err("host.swap_mb = 0".into());
    }
    let ram = crate::system::mem_total_mb();
    if ram >= h.swap_when_ram_below_mb {
        return Err(format!(
            "{ram} MB of RAM (swap only below host.swap_when_ram_below_mb = {})",
            h.swap_when_ram_below_mb
        ));
    }
    let other = other_swap(ctx);
    if !other.is_empty() {
        return Err(format!("the host has swap already ({})", other.join(", ")));
    }
    let fstab = std::fs::read_to_string(ctx.host("/etc/fstab")).unwrap_or_default();
    if fstab_has_other_swap(&fstab) {
        return Err("/etc/fstab already has a swap entry".into());
    }
    Ok(())
}

fn swap(ctx: &Ctx, tx: &mut Txn) -> StepResult {
    let file = ctx.host(SWAPFILE);
    let fstab = ctx.host("/etc/fstab");
    let made = crate::fsx::lstat(&file).map_err(io_err(&file))?.is_some();
    if !made {
        let mb = ctx.cfg.host.swap_mb;
        // Root's 0600 file first (swapon refuses others), then its blocks.
        tx.write(&file, b"", 0o600, Some((0, 0)))
            .map_err(io_err(&file))?;
        tx.on_rollback(Cmd::new("rm").args(["-f", SWAPFILE]));
        ctx.run(
            ID,
            &Cmd::new("fallocate").args(["-l", &format!("{mb}M"), SWAPFILE]),
        )?;
        ctx.run(ID, &Cmd::new("mkswap").arg(SWAPFILE))?;
    }
    let text = std::fs::read_to_string(&fstab).unwrap_or_default();
    if !text.lines().any(|l| l.trim() == FSTAB_LINE) {
        let mut new = text.clone();
        if !new.is_empty() && !new.ends_with('\n') {
            new.push('\n');
        }
        new.push_str(FSTAB_LINE);
        new.push('\n');
        tx.write(&fstab, new.as_bytes(), 0o644, Some((0, 0)))
            .map_err(io_err(&fstab))?;
    }
    let sysctl = ctx.host(SYSCTL);
    let conf = format!(
        "# Managed by keel: use swap only under memory pressure.\nvm.swappiness = {}\n",
        ctx.cfg.host.swappiness
    );
    let changed = tx
        .write(&sysctl, conf.as_bytes(), 0o644, None)
        .map_err(io_err(&sysctl))?;
    match in_container(ctx) {
        Some(kind) => ctx.ui.line(&format!(
            "[{ID}] warning: in a container ({kind}): swap file made, activation skipped (swap is the host kernel's, and the container's syscall filter blocks swapon); it is used once the file is on a VM or machine"
        )),
        None => {
            if !keels_swap_active(ctx) {
                ctx.run(ID, &Cmd::new("swapon").arg(SWAPFILE))?;
                tx.on_rollback(Cmd::new("swapoff").arg(SWAPFILE));
            }
            if changed {
                ctx.run(ID, &Cmd::new("sysctl").args(["-p", SYSCTL]))?;
            }
        }
    }
    Ok(())
}

/// `kernel.yama.ptrace_scope = 1` where the kernel has Yama (a higher value set by the admin
/// is kept). Without Yama, or in a container (the sysctl is the host kernel's), it is said
/// why; keel's app commands are kept from the app by their group either way.
fn ptrace_scope(ctx: &Ctx, tx: &mut Txn) -> StepResult {
    let now = std::fs::read_to_string(ctx.host(YAMA)).ok();
    let Some(now) = now.map(|v| v.trim().to_string()) else {
        ctx.ui.line(&format!(
            "[{ID}] kernel.yama.ptrace_scope not set: this kernel has no Yama"
        ));
        return Ok(());
    };
    if now.parse::<u8>().is_ok_and(|v| v >= 1) {
        return Ok(());
    }
    let file = ctx.host(PTRACE);
    tx.write(&file, PTRACE_CONF.as_bytes(), 0o644, None)
        .map_err(io_err(&file))?;
    match in_container(ctx) {
        Some(kind) => ctx.ui.line(&format!(
            "[{ID}] warning: in a container ({kind}): {PTRACE} written, not applied (the sysctl is the host kernel's; ptrace_scope is {now} there)"
        )),
        None => {
            ctx.run(ID, &Cmd::new("sysctl").args(["-p", PTRACE]))?;
        }
    }
    Ok(())
}

impl Step for Baseline {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM]
    }
    fn about(&self) -> &'static str {
        "host baseline: swap on a small host, security updates, bounded logs"
    }
    fn host_wide(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value("host", format!("{:?}", ctx.cfg.host))
            .value(
                "files",
                format!("{LOGROTATE_CONF}{AUTO_CONF}{ORIGINS_CONF}{PTRACE_CONF}"),
            )
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let h = &ctx.cfg.host;
        let journald = ctx.host(JOURNALD);
        let conf = format!(
            "# Managed by keel: the journal's disk use is capped.\n[Journal]\nSystemMaxUse={}M\n",
            h.journal_max_mb
        );
        if tx
            .write(&journald, conf.as_bytes(), 0o644, None)
            .map_err(io_err(&journald))?
        {
            tx.reapply("restart", "systemd-journald");
            systemctl(ctx, ID, &["restart", "systemd-journald"])?;
        }
        let lr = ctx.host(LOGROTATE);
        tx.write(&lr, LOGROTATE_CONF.as_bytes(), 0o644, None)
            .map_err(io_err(&lr))?;
        for (path, text) in [(AUTO, AUTO_CONF), (ORIGINS, ORIGINS_CONF)] {
            let p = ctx.host(path);
            if h.security_updates {
                tx.write(&p, text.as_bytes(), 0o644, None)
                    .map_err(io_err(&p))?;
            } else {
                tx.remove(&p).map_err(io_err(&p))?;
            }
        }
        if h.security_updates {
            systemctl(
                ctx,
                ID,
                &[
                    "enable",
                    "--now",
                    "apt-daily.timer",
                    "apt-daily-upgrade.timer",
                ],
            )?;
        }
        ptrace_scope(ctx, tx)?;
        match wants_swap(ctx) {
            Ok(()) => swap(ctx, tx)?,
            Err(why)
                if crate::fsx::lstat(&ctx.host(SWAPFILE))
                    .ok()
                    .flatten()
                    .is_some() =>
            {
                // keel's file from an earlier run stays (it may be in use); noted, not grown.
                ctx.ui.line(&format!("[{ID}] keeping {SWAPFILE} ({why})"));
            }
            Err(why) => ctx.ui.line(&format!("[{ID}] no swap file: {why}")),
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        if ctx.cfg.host.security_updates {
            let o = ctx.run(
                ID,
                &Cmd::new("apt-config").args(["dump", "Unattended-Upgrade::Origins-Pattern"]),
            )?;
            let bad: Vec<&str> = o
                .stdout
                .lines()
                .filter(|l| l.contains("::\"") && !l.contains("-security"))
                .collect();
            if !bad.is_empty() {
                return Err(StepError::permanent(
                    format!(
                        "unattended-upgrades would install more than security updates: {}",
                        bad.join(" ")
                    ),
                    format!("another file in /etc/apt/apt.conf.d adds origins after {ORIGINS}"),
                ));
            }
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        let mut active = vec![];
        if ctx.cfg.host.security_updates {
            active.push("apt-daily-upgrade.timer".into());
        }
        Managed {
            files: [JOURNALD, LOGROTATE, AUTO, ORIGINS, SYSCTL, PTRACE]
                .iter()
                .map(|p| ctx.host(p))
                .collect(),
            after: vec![("restart", "systemd-journald".into())],
            active,
            ..Managed::default()
        }
    }
    /// keel's swap file goes (off first); its fstab line too. Other swap is never touched.
    fn undo(&self, ctx: &Ctx) -> StepResult {
        let file = ctx.host(SWAPFILE);
        if crate::fsx::lstat(&file).ok().flatten().is_none() {
            return Ok(());
        }
        if keels_swap_active(ctx) && in_container(ctx).is_none() {
            ctx.run(ID, &Cmd::new("swapoff").arg(SWAPFILE))?;
        }
        let fstab = ctx.host("/etc/fstab");
        if let Ok(text) = std::fs::read_to_string(&fstab) {
            let kept: String = text
                .lines()
                .filter(|l| l.trim() != FSTAB_LINE)
                .map(|l| format!("{l}\n"))
                .collect();
            if kept != text {
                crate::fsx::write_atomic(&fstab, kept.as_bytes(), 0o644, Some((0, 0)))
                    .map_err(io_err(&fstab))?;
            }
        }
        crate::fsx::unlink(&file).map_err(io_err(&file))?;
        Ok(())
    }
}
