//! HTTPS on the fake host: when keel asks the CA (and when it must not), what a refusal
//! leaves behind, and how the site is switched.
use crate::fakehost::{Host, config};

const CERT: &str = include_str!("data/demo-cert.pem");
const SITE: &str = "root/etc/nginx/sites-available/keel-demo.conf";

fn acme_host() -> Host {
    let h = Host::new();
    let cfg = config("[tls]\nemail = \"admin@demo.example.com\"\n").replace(
        "domain = \"demo.localhost\"",
        "domain = \"demo.example.com\"",
    );
    h.write("keel.toml", &cfg);
    h
}

fn certbot_runs(h: &Host) -> usize {
    h.commands().matches("certbot certonly").count()
}

#[test]
fn a_rate_limit_is_permanent_named_and_leaves_plain_http() {
    let h = acme_host();
    h.rule("certbot certonly\t1\t0\tAn unexpected error occurred:\\nError creating new order :: too many certificates (5) already issued for this exact set of domains in the last 168h0m0s, retry after 2026-11-30T10:00:00Z: see the rate-limit documentation");
    let out = h.install(&["--rollback", "step"]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("rate limit") && err.contains("too many certificates"),
        "{err}"
    );
    assert!(err.contains("retry after 2026-11-30T10:00:00Z"), "{err}");
    // Permanent: asked once, never retried (each request counts against the limit).
    assert_eq!(certbot_runs(&h), 1, "{}", h.commands());
    let site = h.read(SITE);
    assert!(
        !site.contains("ssl_certificate") && !site.contains("return 301"),
        "{site}"
    );
    assert!(
        site.contains("proxy_pass"),
        "HTTP must keep serving the app: {site}"
    );
    assert_eq!(h.status_of("tls"), "failed");
    // The .env's HTTPS settings never reached Django (app-env runs after tls).
    assert_ne!(h.status_of("app-env"), "completed");
}

#[test]
fn an_unreachable_ca_is_retried_then_named() {
    let h = acme_host();
    h.rule("certbot certonly\t1\t0\tAn unexpected error occurred:\\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='acme-v02.api.letsencrypt.org', port=443): Max retries exceeded with url: /directory");
    let out = h.install(&[]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains(
            "cannot reach the ACME directory https://acme-v02.api.letsencrypt.org/directory"
        ),
        "{err}"
    );
    assert_eq!(certbot_runs(&h), 3, "attempts = 3: {}", h.commands());
}

#[test]
fn a_valid_certificate_in_place_is_never_requested_again() {
    let h = acme_host();
    h.write("root/etc/letsencrypt/live/keel-demo/fullchain.pem", CERT);
    h.write("root/etc/letsencrypt/live/keel-demo/privkey.pem", "key");
    h.write(
        "root/etc/letsencrypt/renewal/keel-demo.conf",
        "version = 2.1.0\n[renewalparams]\nserver = https://acme-v02.api.letsencrypt.org/directory\n",
    );
    h.rule(&format!(
        "net:tls 127.0.0.1:443 SNI demo.example.com\t0\t0\t0 (ok)\t{}",
        CERT.replace('\n', "\\n")
    ));
    h.install(&[]).success();
    assert_eq!(certbot_runs(&h), 0, "{}", h.commands());
    let site = h.read(SITE);
    assert!(
        site.contains("ssl_certificate /etc/letsencrypt/live/keel-demo/fullchain.pem;"),
        "{site}"
    );
    assert!(
        site.contains("return 301 https://$host$request_uri;"),
        "{site}"
    );
    assert!(
        h.read("root/etc/letsencrypt/renewal-hooks/deploy/keel-reload-nginx")
            .contains("systemctl reload nginx")
    );
    assert!(
        h.commands()
            .contains("systemctl enable --now certbot.timer"),
        "{}",
        h.commands()
    );
    let env = h.read("root/opt/demo/shared/.env");
    assert!(
        env.contains("CSRF_TRUSTED_ORIGINS=https://demo.example.com"),
        "{env}"
    );
    assert!(env.contains("SECURE_SSL_REDIRECT=True"), "{env}");
    // From another directory (staging -> production): a new certificate is due.
    h.write(
        "root/etc/letsencrypt/renewal/keel-demo.conf",
        "[renewalparams]\nserver = https://acme-staging-v02.api.letsencrypt.org/directory\n",
    );
    h.install(&["--retry-step", "tls"]).success();
    assert_eq!(certbot_runs(&h), 1, "{}", h.commands());
    // verify: the certificate check, the days-left gauge.
    let prom = h
        .keel()
        .args(["verify", "--output", "prometheus"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&prom.stdout).to_string();
    assert!(text.contains("keel_tls_certificate_days_left "), "{text}");
    assert!(
        text.contains("keel_check_status{check=\"certificate\",critical=\"true\"} 0"),
        "{text}"
    );
    // Rollback: the site goes back to HTTP, the certificate stays.
    h.keel().args(["rollback", "--yes"]).assert().success();
    assert!(
        h.path("root/etc/letsencrypt/live/keel-demo/fullchain.pem")
            .exists()
    );
    assert!(
        !h.path("root/etc/letsencrypt/renewal-hooks/deploy/keel-reload-nginx")
            .exists()
    );
}

#[test]
fn a_served_certificate_for_another_name_fails_the_step() {
    let h = acme_host();
    h.write("root/etc/letsencrypt/live/keel-demo/fullchain.pem", CERT);
    h.write("root/etc/letsencrypt/live/keel-demo/privkey.pem", "key");
    h.write(
        "root/etc/letsencrypt/renewal/keel-demo.conf",
        "server = https://acme-v02.api.letsencrypt.org/directory\n",
    );
    // Another server block (or a stale nginx) answers on 443 with someone else's certificate.
    let other = include_str!("data/other-cert.pem");
    h.rule(&format!(
        "net:tls 127.0.0.1:443\t0\t0\t18 (self-signed certificate)\t{}",
        other.replace('\n', "\\n")
    ));
    let out = h.install(&[]).code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert!(
        err.contains("port 443 serves a certificate for other.example.com (not demo.example.com)"),
        "{err}"
    );
}

/// The fingerprint of a completed tls step hashes the admin's files: a FIFO named there must
/// not hang `keel plan` (which never runs the install's file checks). It did, before the
/// fingerprint read through the same bounded, non-blocking reader as the step.
#[test]
fn a_fifo_as_the_certificate_does_not_hang_plan() {
    let h = Host::new();
    h.write(
        "keel.toml",
        &config("[tls]\nmode = \"files\"\ncert_file = \"/certs/site.pem\"\nkey_file = \"/certs/site.key\"\n"),
    );
    std::fs::create_dir_all(h.path("root/certs")).unwrap();
    for f in ["site.pem", "site.key"] {
        let ok = std::process::Command::new("mkfifo")
            .arg(h.path(&format!("root/certs/{f}")))
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/state/examples/fresh-completed.json"
    );
    let mut st: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example).unwrap()).unwrap();
    st["steps"]["tls"] = st["steps"]["packages"].clone();
    h.write("state.json", &st.to_string());
    let t = std::time::Instant::now();
    h.keel()
        .arg("plan")
        .timeout(std::time::Duration::from_secs(20))
        .assert()
        .success();
    assert!(
        t.elapsed().as_secs() < 10,
        "keel plan took {:?}",
        t.elapsed()
    );
}

/// mode = "files": the certificate's content and the directories above both files are
/// checked when the config is loaded: exit 2 and nothing written, not exit 1 after every
/// other step wrote (a file with no PEM, one for other names, a directory others can write).
#[test]
fn tls_files_are_checked_whole_before_any_write() {
    let cfg = "[tls]\nmode = \"files\"\ncert_file = \"/certs/site.pem\"\nkey_file = \"/certs/site.key\"\n";
    let setup = |h: &Host, cert: &str, domain: &str| {
        h.write("keel.toml", &config(cfg).replace("demo.localhost", domain));
        h.write("root/certs/site.pem", cert);
        h.write("root/certs/site.key", "-----BEGIN PRIVATE KEY-----\n");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            h.path("root/certs/site.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
    };
    let demo = include_str!("data/demo-cert.pem");
    for (cert, domain, dir_mode, want) in [
        ("not a certificate\n", "demo.example.com", 0o755, "no PEM"),
        (
            demo,
            "shop.example.com",
            0o755,
            "does not cover shop.example.com",
        ),
        (
            demo,
            "demo.example.com",
            0o777,
            "/certs (a directory above it) is writable by group or others",
        ),
    ] {
        let h = Host::new();
        setup(&h, cert, domain);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            h.path("root/certs"),
            std::fs::Permissions::from_mode(dir_mode),
        )
        .unwrap();
        h.install(&[])
            .code(2)
            .stderr(predicates::str::contains("tls.cert_file"))
            .stderr(predicates::str::contains(want));
        assert_eq!(h.commands(), "", "{want}: nothing may run");
        assert!(!h.path("root/var/lib/keel/state.json").exists());
    }
}
