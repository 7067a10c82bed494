//! HTTPS: a certificate for the site's names (ACME through certbot and the running nginx,
//! the admin's own files, or self-signed), then the site switched to 443 in one checked
//! reload. Until a certificate is in place nothing changes: a failed issuance leaves the
//! site serving HTTP exactly as before.
use crate::certs::{CertInfo, now};
use crate::config::TlsMode;
use crate::exec::Cmd;
use crate::probe::config_test;
use crate::site::{self, cert_paths, installed, paths};
use crate::step::{Ctx, Deps, Inputs, Managed, Step, StepError, StepResult, io_err};
use crate::systemd::apply;
use crate::txn::Txn;
use std::time::Duration;

pub struct Tls;
const ID: &str = "tls";
/// certbot runs every script here after a renewal: nginx reloads (a restart would drop
/// connections), after `nginx -t`.
/// Another app on the host renews through certbot: the reload hook is its too.
fn acme_elsewhere(ctx: &Ctx) -> bool {
    crate::apps::another_wants(&ctx.paths, &ctx.cfg, |c| c.tls_mode() == TlsMode::Acme)
}

use crate::site::RENEWAL_HOOK as HOOK;
const HOOK_SCRIPT: &str = "#!/bin/sh\n# Managed by keel: after a certificate renewal, reload nginx (never restart: no dropped\n# connections), and only into a configuration that passes nginx -t.\nset -e\n/usr/sbin/nginx -t -q\nexec /usr/bin/systemctl reload nginx\n";
/// A certificate with fewer days left is replaced (certbot's own renewal threshold).
const RENEW_DAYS: i64 = 30;

/// Why a new certificate is needed, or None when the one in place will do.
pub fn needs_new(cert: Option<&CertInfo>, names: &[String]) -> Option<String> {
    let Some(c) = cert else {
        return Some("no certificate yet".into());
    };
    let missing = c.missing(names);
    if !missing.is_empty() {
        return Some(format!("the certificate lacks {}", missing.join(", ")));
    }
    let left = c.days_left(now());
    if left < RENEW_DAYS {
        return Some(format!("the certificate has {left} days left"));
    }
    None
}

/// The ACME directory the current lineage came from (certbot's renewal config).
fn lineage_server(ctx: &Ctx) -> Option<String> {
    let conf = ctx.host(&format!(
        "/etc/letsencrypt/renewal/{}.conf",
        site::cert_name(&ctx.cfg)
    ));
    std::fs::read_to_string(conf).ok()?.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "server").then(|| v.trim().to_string())
    })
}

const CERTBOT_LOG: &str = "/var/log/letsencrypt/letsencrypt.log";

fn log_position(ctx: &Ctx) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(ctx.host(CERTBOT_LOG)).ok()?;
    Some((m.ino(), m.len()))
}

/// The CA's own error lines from certbot's log of its last run: Debian 12's certbot hides
/// them behind "AttributeError: can't set attribute" on the terminal (a josepy/Python 3.11
/// clash), so the cause is read where certbot wrote it.
/// Only what this run wrote counts: `before` is the log's (inode, length) before certbot
/// started (certbot rotates the log at start, but not when it fails early).
fn acme_errors(ctx: &Ctx, before: Option<(u64, u64)>) -> String {
    let log = ctx.host(CERTBOT_LOG);
    let bytes = crate::fsx::read_regular(&log, crate::fsx::MAX_INPUT).unwrap_or_default();
    let skip = match (before, log_position(ctx)) {
        (Some((ino, len)), Some((ino2, _))) if ino == ino2 => len as usize,
        _ => 0,
    };
    let text = String::from_utf8_lossy(bytes.get(skip..).unwrap_or_default()).into_owned();
    let mut v: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once("acme.messages.Error: ").map(|(_, e)| e.trim()))
        .collect();
    v.dedup();
    v.join("\n")
}

/// Turn certbot's failure into the cause an admin can act on. Rate limits and refusals are
/// permanent (asking again makes it worse); an unreachable or failing CA is transient.
pub fn certbot_error(out: &str, directory: &str) -> StepError {
    let lines: Vec<&str> = out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let low = out.to_ascii_lowercase();
    let find = |pat: &str| {
        lines
            .iter()
            .find(|l| l.to_ascii_lowercase().contains(pat))
            .map(|l| l.to_string())
    };
    if low.contains("ratelimited") || low.contains("too many") || low.contains("rate limit") {
        let msg = find("too many")
            .or_else(|| find("rate"))
            .unwrap_or_default();
        let after = low
            .find("retry after")
            .map(|i| out[i..].lines().next().unwrap_or("").trim().to_string())
            .unwrap_or_else(|| "see the CA's rate-limit documentation".into());
        return StepError::permanent(
            format!("the CA refused: rate limit: {msg}"),
            format!(
                "{after}; keel does not ask again until then (each request counts against the limit); the staging directory has far higher limits"
            ),
        );
    }
    if low.contains("certbot failed to authenticate") || low.contains("challenge failed") {
        let detail: Vec<String> = lines
            .iter()
            .filter(|l| {
                l.starts_with("Domain:") || l.starts_with("Type:") || l.starts_with("Detail:")
            })
            .map(|l| l.to_string())
            .collect();
        return StepError::permanent(
            format!(
                "the CA could not validate the name over HTTP: {}",
                detail.join(" ")
            ),
            "the name's DNS must point at this host and port 80 must be open to the internet; the site keeps serving HTTP meanwhile",
        );
    }
    if low.contains("certificate_verify_failed") || low.contains("certificate verify failed") {
        return StepError::permanent(
            format!(
                "the ACME directory {directory} presents a certificate this host does not trust"
            ),
            "for a private CA: put its root in /usr/local/share/ca-certificates/ and run update-ca-certificates",
        );
    }
    if low.contains("rejectedidentifier")
        || low.contains("policy forbids")
        || low.contains("cannot issue for")
        || low.contains("forbidden by policy")
    {
        let msg = find("rejected")
            .or_else(|| find("forbid"))
            .or_else(|| find("cannot issue"))
            .unwrap_or_default();
        return StepError::permanent(
            format!("the CA refuses to certify the name: {msg}"),
            "check app.domain and tls.domains: the CA will not issue for them",
        );
    }
    if low.contains("another instance of certbot") {
        return StepError::transient(
            "certbot is already running (its renewal timer?)",
            "keel retries; or run keel install again in a minute",
        );
    }
    let transient = [
        "connection refused",
        "max retries exceeded",
        "timed out",
        "temporary failure in name resolution",
        "name or service not known",
        "servererror",
        "serverinternal",
        "badnonce",
        "service unavailable",
        "bad gateway",
    ];
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    if transient.iter().any(|t| low.contains(t)) {
        return StepError::transient(
            format!("cannot reach the ACME directory {directory}: {tail}"),
            "check the host's outbound HTTPS and tls.acme_directory; the site keeps serving HTTP meanwhile",
        );
    }
    StepError::permanent(
        format!("certbot failed: {tail}"),
        "see /var/log/letsencrypt/letsencrypt.log; the site keeps serving HTTP meanwhile",
    )
}

/// ACME: certbot through the running nginx (http-01 in keel's webroot). Never asks when a
/// valid certificate for the same names, from the same directory, is in place.
fn acme(ctx: &Ctx) -> StepResult<bool> {
    let cfg = &ctx.cfg;
    let names = cfg.tls_names();
    let dir = &cfg.tls.acme_directory;
    let mut why = needs_new(installed(ctx).as_ref(), &names);
    if why.is_none() && lineage_server(ctx).as_deref() != Some(dir.as_str()) {
        why = Some(format!("the certificate is not from {dir}"));
    }
    let Some(why) = why else {
        ctx.ui
            .line("tls: the certificate in place is valid for every name: no ACME request");
        return Ok(false);
    };
    ctx.ui
        .line(&format!("tls: requesting a certificate from {dir} ({why})"));
    let mut cmd = Cmd::new("certbot")
        .args(["certonly", "--non-interactive", "--agree-tos", "--webroot"])
        .args(["--webroot-path", &site::webroot(cfg)])
        .args(["--cert-name", &site::cert_name(cfg)])
        .args(["--server", dir])
        // keel decided a certificate is needed (above): certbot must not second-guess it.
        .args(["--force-renewal", "--no-random-sleep-on-renew"])
        // Debian's certbot trusts the system store; say so, for a private CA added there.
        .env("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
        .timeout(Duration::from_secs(cfg.timeouts.command_secs.min(600)));
    cmd = match &cfg.tls.email {
        Some(e) => cmd.args(["--email", e, "--no-eff-email"]),
        None => cmd.arg("--register-unsafely-without-email"),
    };
    for n in &names {
        cmd = cmd.args(["-d", n]);
    }
    let before = log_position(ctx);
    let o = ctx
        .exec
        .probe(ID, &cmd)
        .map_err(|e| StepError::transient(format!("certbot: {e}"), ""))?;
    if o.code != 0 {
        let text = format!("{}\n{}\n{}", o.stdout, o.stderr, acme_errors(ctx, before));
        return Err(certbot_error(&text, dir));
    }
    match installed(ctx) {
        Some(c) if c.missing(&names).is_empty() => Ok(true),
        _ => Err(StepError::permanent(
            "certbot reported success but no certificate for every name is in place",
            "see certbot certificates and /var/log/letsencrypt/letsencrypt.log",
        )),
    }
}

/// A key file's public key, DER, from `openssl pkey` (the key goes over stdin).
fn public_key_of(ctx: &Ctx, key_pem: &[u8]) -> StepResult<Vec<u8>> {
    let o = ctx.run(
        ID,
        &Cmd::new("openssl")
            .args(["pkey", "-pubout", "-outform", "PEM"])
            .stdin(key_pem.to_vec()),
    )?;
    let b64: String = o
        .stdout
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| StepError::permanent("openssl pkey printed no public key", ""))
}

/// The admin's certificate and key, checked (names, expiry, key pair) and copied into
/// keel's directory: a later change to the originals needs a `keel install`.
fn files(ctx: &Ctx, tx: &mut Txn) -> StepResult<bool> {
    let t = &ctx.cfg.tls;
    let (Some(cf), Some(kf)) = (&t.cert_file, &t.key_file) else {
        return Err(StepError::permanent(
            "tls.cert_file and tls.key_file are required",
            "",
        ));
    };
    let read = |p: &std::path::Path| {
        crate::fsx::read_regular(&ctx.host(&p.display().to_string()), crate::fsx::MAX_INPUT)
            .map_err(|e| {
                StepError::permanent(
                    format!("{}: {e}", p.display()),
                    "check tls.cert_file / tls.key_file",
                )
            })
    };
    let cert = read(cf)?;
    let key = read(kf)?;
    let info = crate::certs::parse_pem(&String::from_utf8_lossy(&cert)).map_err(|e| {
        StepError::permanent(
            format!("{}: {e}", cf.display()),
            "tls.cert_file must be a PEM certificate (with its chain)",
        )
    })?;
    let shown = cf.display().to_string();
    if let Some((msg, hint)) = info.unfit(&shown, &ctx.cfg.tls_names(), now()) {
        return Err(StepError::permanent(msg, hint));
    }
    if public_key_of(ctx, &key)? != info.spki_der {
        return Err(StepError::permanent(
            format!("{} is not the key of {}", kf.display(), cf.display()),
            "give the key the certificate was issued for",
        ));
    }
    put_pair(ctx, tx, &cert, &key)
}

/// Write the certificate (0644) and key (0600) into keel's root-only directory: changed?
fn put_pair(ctx: &Ctx, tx: &mut Txn, cert: &[u8], key: &[u8]) -> StepResult<bool> {
    let (c, k) = cert_paths(&ctx.cfg).expect("TLS is on");
    let (c, k) = (ctx.host(&c), ctx.host(&k));
    let dir = c.parent().expect("a directory");
    tx.ensure_dir_owned(dir, 0o700, Some((0, 0)))
        .map_err(io_err(dir))?;
    let changed = tx.write(&k, key, 0o600, Some((0, 0))).map_err(io_err(&k))?;
    Ok(tx
        .write(&c, cert, 0o644, Some((0, 0)))
        .map_err(io_err(&c))?
        || changed)
}

/// A self-signed certificate for the site's names (EC P-256, 825 days), made once and
/// reused until it nears expiry or the names change. openssl writes into a private
/// directory of keel's; the key never passes through a log.
fn self_signed(ctx: &Ctx, tx: &mut Txn) -> StepResult<bool> {
    let names = ctx.cfg.tls_names();
    if needs_new(installed(ctx).as_ref(), &names).is_none() {
        return Ok(false);
    }
    let base = ctx.host(&format!("/etc/keel/tls/{}", ctx.cfg.app.name));
    tx.ensure_dir_owned(&base, 0o700, Some((0, 0)))
        .map_err(io_err(&base))?;
    let tmp = tempfile::Builder::new()
        .prefix(".new-")
        .tempdir_in(&base)
        .map_err(io_err(&base))?;
    let (kp, cp) = (tmp.path().join("key.pem"), tmp.path().join("cert.pem"));
    let san: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    ctx.run(
        ID,
        &Cmd::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "825", "-subj"])
            .arg(format!("/CN={}", names[0]))
            .arg("-addext")
            .arg(format!("subjectAltName={}", san.join(",")))
            .arg("-keyout")
            .arg(kp.display().to_string())
            .arg("-out")
            .arg(cp.display().to_string()),
    )?;
    let read =
        |p: &std::path::Path| crate::fsx::read_regular(p, crate::fsx::MAX_INPUT).map_err(io_err(p));
    let (cert, key) = (read(&cp)?, read(&kp)?);
    put_pair(ctx, tx, &cert, &key)
}

impl Step for Tls {
    fn id(&self) -> &'static str {
        ID
    }
    fn not_for(&self, cfg: &crate::config::Config) -> Option<String> {
        crate::step::unless_role(
            cfg,
            &[crate::config::Role::Web],
            "the web hosts serve HTTPS",
        )
    }
    fn deps(&self) -> Deps {
        &[&super::nginx::Nginx]
    }
    fn about(&self) -> &'static str {
        "HTTPS: a certificate (ACME, the admin's files or self-signed), nginx on 443, renewal"
    }
    fn inputs(&self, ctx: &Ctx) -> Inputs {
        let t = &ctx.cfg.tls;
        let files = match (&t.cert_file, &t.key_file) {
            (Some(c), Some(k)) => {
                // The same bounded, non-blocking reader as the step: a FIFO named here must
                // not hang `keel plan` (which hashes inputs but never runs check_tls_files).
                let sum = |p: &std::path::Path| {
                    let host = ctx.host(&p.display().to_string());
                    let b =
                        crate::fsx::read_regular(&host, crate::fsx::MAX_INPUT).unwrap_or_default();
                    crate::step::hash(&[&String::from_utf8_lossy(&b)])
                };
                format!("{} {}", sum(c), sum(k))
            }
            _ => String::new(),
        };
        Inputs::new()
            .value("site", site::config_vars(&ctx.cfg))
            .value("email", t.email.clone().unwrap_or_default())
            .value("acme_directory", &t.acme_directory)
            .value("files", files)
            .value("hook", HOOK_SCRIPT)
            .template("nginx-site.conf")
            .template("nginx-lb-health.conf")
            .step(ctx, &super::nginx::Nginx)
    }
    fn run(&self, ctx: &Ctx, tx: &mut Txn) -> StepResult {
        let mode = ctx.cfg.tls_mode();
        // A new certificate under the same paths needs a reload too.
        let mut changed = match mode {
            TlsMode::Off => false,
            TlsMode::Acme => acme(ctx)?,
            TlsMode::Files => files(ctx, tx)?,
            TlsMode::SelfSigned => self_signed(ctx, tx)?,
        };
        let p = paths(ctx);
        let conf = site::render(ctx, ID).map_err(|e| StepError::permanent(e, ""))?;
        changed |= tx
            .write(&p.available, conf.as_bytes(), 0o644, None)
            .map_err(io_err(&p.available))?;
        let hook = ctx.host(HOOK);
        if mode == TlsMode::Acme {
            changed |= tx
                .write(&hook, HOOK_SCRIPT.as_bytes(), 0o755, Some((0, 0)))
                .map_err(io_err(&hook))?;
            // Debian's certbot package ships the timer: renewal twice a day.
            crate::systemd::systemctl(ctx, ID, &["enable", "--now", crate::certs::RENEWAL_TIMER])?;
        } else if !acme_elsewhere(ctx) {
            tx.remove(&hook).map_err(io_err(&hook))?;
        }
        if changed {
            // A failure here rolls the site back: nginx keeps serving HTTP as before.
            config_test(ctx, ID)?;
            apply(ctx, ID, "reload", "nginx", tx)?;
        }
        Ok(())
    }
    fn verify(&self, ctx: &Ctx) -> StepResult {
        if !ctx.cfg.tls_on() {
            return Ok(());
        }
        crate::stack::served(ctx, ID)?;
        let port = ctx.cfg.tls.port;
        let (code, _) = ctx
            .exec
            .https_get(
                ID,
                port,
                &ctx.cfg.app.domain,
                "/keel-health",
                Duration::from_secs(10),
            )
            .map_err(|e| {
                StepError::transient(
                    format!("HTTPS to 127.0.0.1:{port}: {e}"),
                    "see journalctl -u nginx",
                )
            })?;
        if code != 200 {
            return Err(StepError::transient(
                format!("GET /keel-health over HTTPS answered {code}"),
                format!("check /var/log/nginx/{}.error.log", ctx.cfg.app.name),
            ));
        }
        if ctx.cfg.tls_mode() == TlsMode::Acme {
            crate::systemd::require_active(ctx, ID, crate::certs::RENEWAL_TIMER).map_err(|e| {
                e.hint("systemctl enable --now certbot.timer: without it the certificate expires")
            })?;
        }
        Ok(())
    }
    fn manages(&self, ctx: &Ctx) -> Managed {
        Managed {
            files: if acme_elsewhere(ctx) {
                vec![]
            } else {
                vec![ctx.host(HOOK)]
            },
            after: vec![("reload", "nginx".into())],
            active: if ctx.cfg.tls_mode() == TlsMode::Acme {
                vec![crate::certs::RENEWAL_TIMER.into()]
            } else {
                vec![]
            },
            ..Managed::default()
        }
    }
    /// The site goes back to plain HTTP; certificates and keys are data and stay.
    fn undo(&self, ctx: &Ctx) -> StepResult {
        let p = paths(ctx);
        if crate::fsx::lstat(&p.available).ok().flatten().is_none() {
            return Ok(());
        }
        let conf = site::render_plain(&ctx.cfg).map_err(|e| StepError::permanent(e, ""))?;
        crate::fsx::write_atomic(&p.available, conf.as_bytes(), 0o644, None)
            .map_err(io_err(&p.available))?;
        if crate::systemd::is_active(ctx, ID, "nginx") {
            config_test(ctx, ID)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certbot_failures_are_named_and_classified() {
        use crate::retry::Kind;
        let rl = certbot_error(
            "An unexpected error occurred:\nError creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168h0m0s, retry after 2026-11-24T10:00:00Z: see https://letsencrypt.org/docs/rate-limits/\n",
            "https://ca/dir",
        );
        assert_eq!(rl.kind, Kind::Permanent);
        assert!(
            rl.msg.contains("rate limit") && rl.msg.contains("too many certificates"),
            "{}",
            rl.msg
        );
        assert!(
            rl.hint.contains("retry after 2026-11-24T10:00:00Z"),
            "{}",
            rl.hint
        );
        let auth = certbot_error(
            "Certbot failed to authenticate some domains (authenticator: webroot). The Certificate Authority reported these problems:\n  Domain: demo.example.com\n  Type:   connection\n  Detail: 192.0.2.1: Fetching http://demo.example.com/.well-known/acme-challenge/x: Connection refused\n\nHint: ...",
            "d",
        );
        assert_eq!(auth.kind, Kind::Permanent);
        assert!(
            auth.msg.contains("Domain: demo.example.com")
                && auth.msg.contains("Connection refused"),
            "{}",
            auth.msg
        );
        assert!(auth.hint.contains("DNS"), "{}", auth.hint);
        let down = certbot_error(
            "An unexpected error occurred:\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='127.0.0.1', port=14999): Max retries exceeded with url: /dir (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object>: Failed to establish a new connection: [Errno 111] Connection refused'))",
            "https://127.0.0.1:14999/dir",
        );
        assert_eq!(down.kind, Kind::Transient);
        assert!(
            down.msg
                .contains("cannot reach the ACME directory https://127.0.0.1:14999/dir"),
            "{}",
            down.msg
        );
        let trust = certbot_error(
            "requests.exceptions.SSLError: ... [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
            "https://ca/dir",
        );
        assert_eq!(trust.kind, Kind::Permanent);
        assert!(
            trust.hint.contains("update-ca-certificates"),
            "{}",
            trust.hint
        );
        let rej = certbot_error(
            "An unexpected error occurred:\nError creating new order :: Cannot issue for \"blocked.keel.test\": The ACME server refuses to issue a certificate for this domain name, because it is forbidden by policy",
            "d",
        );
        assert_eq!(rej.kind, Kind::Permanent);
        assert!(rej.msg.contains("refuses to certify"), "{}", rej.msg);
    }

    #[test]
    fn a_certificate_is_replaced_only_when_needed() {
        let c = crate::certs::parse_pem(crate::certs::tests::DEMO).unwrap();
        let names = vec!["demo.example.com".to_string()];
        assert_eq!(needs_new(Some(&c), &names), None);
        let more = vec!["demo.example.com".into(), "api.example.com".into()];
        assert!(
            needs_new(Some(&c), &more)
                .unwrap()
                .contains("api.example.com")
        );
        let old = CertInfo {
            not_after: now() + 86_400 * 10,
            ..c
        };
        assert!(needs_new(Some(&old), &names).unwrap().contains("days left"));
        assert!(needs_new(None, &names).is_some());
    }
}
