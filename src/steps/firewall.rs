use crate::config::FirewallMode;
use crate::exec::Cmd;
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult, io_err};
use crate::systemd::systemctl;
use crate::txn::Txn;
use std::collections::BTreeSet;

/// nftables, one table of keel's (`inet keel`: IPv4 and IPv6), input dropped but for
/// established traffic, loopback, ICMP, SSH, HTTP, HTTPS and the configured ports. Never
/// applied when it would not allow the port sshd really listens on.
pub struct FirewallStep;
const ID: &str = "firewall";
pub const FILE: &str = "/etc/keel/firewall.nft";
pub const UNIT: &str = "keel-firewall.service";

/// Whether keel manages the firewall here, or why not.
pub fn wanted(ctx: &Ctx) -> Result<(), String> {
    match ctx.cfg.firewall.mode {
        FirewallMode::Off => Err("firewall.mode = \"off\"".into()),
        FirewallMode::On => Ok(()),
        FirewallMode::Auto => match super::baseline::in_container(ctx) {
            Some(kind) => Err(format!(
                "inside a container ({kind}): its netfilter is the host's or shared with it, so keel leaves the firewall alone; set firewall.mode = \"on\" for a container with its own network"
            )),
            None => Ok(()),
        },
    }
}

/// The TCP ports sshd listens on: its effective config (`sshd -T`) and its listening
/// sockets (`ss`). Empty when there is no sshd.
fn sshd_ports(ctx: &Ctx) -> BTreeSet<u16> {
    let mut ports = BTreeSet::new();
    if let Ok(o) = ctx.exec.probe(ID, &Cmd::new("sshd").arg("-T"))
        && o.code == 0
    {
        ports.extend(
            o.stdout
                .lines()
                .filter_map(|l| l.strip_prefix("port "))
                .filter_map(|p| p.trim().parse::<u16>().ok()),
        );
    }
    if let Ok(o) = ctx.exec.probe(ID, &Cmd::new("ss").args(["-Htlnp"])) {
        // A process name is anyone's to choose (prctl): only root's /usr/sbin/sshd counts.
        for l in o.stdout.lines().filter(|l| root_sshd_pid(ctx, l)) {
            // State Recv-Q Send-Q Local:Port Peer:Port Process
            if let Some(port) = l
                .split_whitespace()
                .nth(3)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                ports.insert(port);
            }
        }
    }
    ports
}

/// Whether an `ss -p` line names a process that is root's sshd: a pid in the line's
/// `users:((...))` whose executable is /usr/sbin/sshd and whose every uid is 0.
fn root_sshd_pid(ctx: &Ctx, line: &str) -> bool {
    line.split("pid=")
        .skip(1)
        .filter_map(|r| {
            r.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u32>()
                .ok()
        })
        .any(|pid| {
            let exe = std::fs::read_link(ctx.host(&format!("/proc/{pid}/exe")));
            let status = std::fs::read_to_string(ctx.host(&format!("/proc/{pid}/status")));
            let root = status.is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .is_some_and(|u| u.split_whitespace().all(|x| x == "0"))
            });
            root && exe.is_ok_and(|e| e == std::path::Path::new("/usr/sbin/sshd"))
        })
}

/// The ports to allow, refused when sshd listens on one of them that is not allowed.
fn ports(ctx: &Ctx) -> StepResult<(BTreeSet<u16>, BTreeSet<u16>)> {
    let fw = &ctx.cfg.firewall;
    let listening = sshd_ports(ctx);
    let ssh: BTreeSet<u16> = match fw.ssh_port {
        Some(p) => [p].into(),
        None => listening.clone(),
    };
    let mut tcp: BTreeSet<u16> = ssh.clone();
    tcp.insert(ctx.cfg.nginx.port);
    tcp.insert(443);
    if ctx.cfg.tls_on() {
        tcp.insert(ctx.cfg.tls.port);
    }
    tcp.extend(fw.allow_tcp.iter().copied());
    if let Some(p) = listening.iter().find(|p| !tcp.contains(p)) {
        return Err(StepError::permanent(
            format!(
                "sshd listens on port {p}, which this firewall would not allow (firewall.ssh_port = {}): applying it would lock you out; nothing was applied",
                fw.ssh_port.map(|p| p.to_string()).unwrap_or_default()
            ),
            format!(
                "set firewall.ssh_port = {p} in {} (or leave it out: keel then allows the port sshd listens on), or add {p} to firewall.allow_tcp",
                ctx.cfg.source.display()
            ),
        ));
    }
    if ssh.is_empty() {
        ctx.ui.step_note(
            ID,
            "no sshd found listening: the firewall allows no SSH port (set firewall.ssh_port if you use one)",
        );
    }
    Ok((tcp, fw.allow_udp.iter().copied().collect()))
}

fn join(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A database host's services, each open to its allow_from networks only (one rule per
/// address family: nftables' `ip` and `ip6` match one each).
fn private_rules(cfg: &crate::config::Config) -> Vec<serde_json::Value> {
    let mut out = vec![];
    for (what, listen, allow, port) in [
        (
            "PostgreSQL",
            &cfg.postgres.listen,
            &cfg.postgres.allow_from,
            cfg.postgres.port,
        ),
        (
            "Redis",
            &cfg.redis.listen,
            &cfg.redis.allow_from,
            cfg.redis.port,
        ),
    ] {
        if listen.is_none() {
            continue;
        }
        let nets = crate::config::Config::networks(allow);
        for (family, v6) in [("ip", false), ("ip6", true)] {
            let these: Vec<&String> = nets.iter().filter(|n| n.contains(':') == v6).collect();
            if !these.is_empty() {
                let nets = these
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                out.push(
                    serde_json::json!({"what": what, "family": family, "nets": nets, "port": port}),
                );
            }
        }
    }
    out
}

fn rendered(ctx: &Ctx) -> StepResult<Vec<(std::path::PathBuf, String)>> {
    let (tcp, udp) = ports(ctx)?;
    let ssh = match ctx.cfg.firewall.ssh_port {
        Some(p) => p.to_string(),
        None => join(&sshd_ports(ctx)),
    };
    let v = serde_json::json!({
        "tcp": join(&tcp),
        "udp": join(&udp),
        "ssh": ssh,
        "extra_tcp": !ctx.cfg.firewall.allow_tcp.is_empty(),
        "private": private_rules(&ctx.cfg),
        "file": FILE,
    });
    let r = |t: &str| crate::render::render(t, &v).map_err(|e| StepError::permanent(e, ""));
    Ok(vec![
        (ctx.host(FILE), r("firewall.nft")?),
        (
            ctx.host(&format!("/etc/systemd/system/{UNIT}")),
            r("keel-firewall.service")?,
        ),
    ])
}

impl Step for FirewallStep {
    fn id(&self) -> &'static str {
        ID
    }
    fn deps(&self) -> Deps {
        &[&super::packages::Apt::SYSTEM]
    }
    fn about(&self) -> &'static str {
        "firewall: nftables, input dropped but for SSH, HTTP, HTTPS and configured ports"
    }
    fn host_wide(&self) -> bool {
        true
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        Inputs::new()
            .value(
                "firewall",
                serde_json::to_string(&ctx.cfg.firewall).unwrap_or_default(),
            )
            .value("http", ctx.cfg.nginx.port)
            .value(
                "private",
                serde_json::to_string(&private_rules(&ctx.cfg)).unwrap_or_default(),
            )
            .value(
                "https",
                if ctx.cfg.tls_on() {
                    ctx.cfg.tls.port
                } else {
                    443
                },
            )
            .template("firewall.nft")
            .template("keel-firewall.service")
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        if let Err(why) = wanted(ctx) {
            ctx.ui.step_note(ID, &format!("skipped: {why}"));
            // One keel applied before (mode changed to off): taken down.
            let unit_file = ctx.host(&format!("/etc/systemd/system/{UNIT}"));
            if ctx.cfg.firewall.mode == FirewallMode::Off && unit_file.exists() {
                let _ = systemctl(ctx, ID, &["disable", "--now", UNIT]);
                tx.remove(&unit_file).map_err(io_err(&unit_file))?;
                let f = ctx.host(FILE);
                tx.remove(&f).map_err(io_err(&f))?;
            }
            return Ok(());
        }
        // Everything is worked out (and the lock-out refused) before the first write.
        let files = rendered(ctx)?;
        let had = ctx.host(FILE).exists();
        let mut changed = false;
        for (path, text) in &files {
            changed |= tx
                .write(path, text.as_bytes(), 0o644, None)
                .map_err(io_err(path))?;
        }
        // The whole file is checked before anything is applied.
        ctx.run(ID, &Cmd::new("nft").args(["-c", "-f", FILE]))
            .map_err(|e| e.hint("keel's ruleset did not pass `nft -c`; nothing was applied"))?;
        if changed {
            tx.reapply("daemon-reload", "");
            systemctl(ctx, ID, &["daemon-reload"])?;
        }
        if had {
            // On a failure later in this step, the old file is back and reloaded.
            tx.reapply("restart", UNIT);
        } else {
            tx.on_rollback(Cmd::new("systemctl").args(["disable", "--now", UNIT]));
        }
        systemctl(ctx, ID, &["enable", UNIT])?;
        systemctl(ctx, ID, &["restart", UNIT])?;
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        if wanted(ctx).is_err() {
            return Ok(());
        }
        let o = ctx.run(ID, &Cmd::new("nft").args(["list", "table", "inet", "keel"]))?;
        if !o.stdout.contains("policy drop") {
            return Err(StepError::permanent(
                "keel's firewall table is not loaded",
                format!("systemctl status {UNIT}"),
            ));
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        // Without running anything (the drift scan asks on every install): keel's unit is
        // there exactly when keel applied the firewall.
        let on = ctx.host(&format!("/etc/systemd/system/{UNIT}")).exists();
        Managed {
            units: vec![UNIT.into()],
            files: vec![
                ctx.host(FILE),
                ctx.host(&format!("/etc/systemd/system/{UNIT}")),
            ],
            after: vec![],
            active: if on { vec![UNIT.into()] } else { vec![] },
        }
    }
    fn desired(&self, ctx: &Ctx) -> Vec<(std::path::PathBuf, String)> {
        rendered(ctx).unwrap_or_default()
    }
    // Undo: the unit is stopped (its ExecStop deletes keel's table) and its files removed;
    // other tables, and the admin's nftables.conf, were never touched.
}
