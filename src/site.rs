//! keel's nginx site, shared by the nginx step (which puts it up, plain HTTP until a
//! certificate exists) and the tls step (which switches it to HTTPS once one does): one
//! renderer, so both always write the same file for the same host.
use crate::certs::CertInfo;
use crate::config::{Config, TlsMode};
use crate::exec::Cmd;
use crate::step::Ctx;
use std::path::PathBuf;

/// certbot's deploy hook that keel installs: `nginx -t`, then a reload.
pub const RENEWAL_HOOK: &str = "/etc/letsencrypt/renewal-hooks/deploy/keel-reload-nginx";

pub struct SitePaths {
    pub available: PathBuf,
    pub enabled: PathBuf,
    /// keel's placeholder page and the ACME http-01 webroot.
    pub webroot: PathBuf,
}

pub fn paths(ctx: &Ctx) -> SitePaths {
    let name = format!("keel-{}.conf", ctx.cfg.app.name);
    SitePaths {
        available: ctx.host(&format!("/etc/nginx/sites-available/{name}")),
        enabled: ctx.host(&format!("/etc/nginx/sites-enabled/{name}")),
        webroot: ctx.host(&webroot(&ctx.cfg)),
    }
}

/// The host's default servers (one file per port, the same for every app that listens
/// there): unknown host names get no app. None while the distribution's default site is
/// kept (it stays the default server).
pub fn catch_alls(ctx: &Ctx) -> Vec<(PathBuf, String)> {
    let cfg = &ctx.cfg;
    if !cfg.nginx.disable_default_site {
        return vec![];
    }
    let mut ports = vec![(cfg.nginx.port, false)];
    if cfg.tls_on() {
        ports.push((cfg.tls.port, true));
    }
    ports
        .into_iter()
        .filter_map(|(port, ssl)| {
            let name = format!(
                "keel-catch-all-{port}{}.conf",
                if ssl { "-ssl" } else { "" }
            );
            // A host of several serves the balancers' probe by address too.
            let mut v = config_vars(cfg);
            v["port"] = port.into();
            v["ssl"] = ssl.into();
            v["lb"] = (!ssl && cfg.in_fleet() && cfg.has(crate::config::Role::Web)).into();
            let text = crate::render::render("nginx-catch-all.conf", &v).ok()?;
            Some((ctx.host(&format!("/etc/nginx/sites-enabled/{name}")), text))
        })
        .collect()
}

pub fn webroot(cfg: &Config) -> String {
    format!("/var/www/keel-{}", cfg.app.name)
}

/// certbot's name for the app's certificate lineage (`certbot certificates` lists it).
pub fn cert_name(cfg: &Config) -> String {
    format!("keel-{}", cfg.app.name)
}

/// Where the certificate (leaf + chain) and its key live, as host paths: certbot's live
/// directory for ACME, keel's own root-only directory for the other modes.
pub fn cert_paths(cfg: &Config) -> Option<(String, String)> {
    let dir = match cfg.tls_mode() {
        TlsMode::Off => return None,
        TlsMode::Acme => format!("/etc/letsencrypt/live/{}", cert_name(cfg)),
        TlsMode::Files | TlsMode::SelfSigned => format!("/etc/keel/tls/{}", cfg.app.name),
    };
    Some((format!("{dir}/fullchain.pem"), format!("{dir}/privkey.pem")))
}

/// The certificate in place for the configured mode, if there is one with its key. Both
/// directories are root's alone (certbot's live/ is 0700), so following certbot's own links
/// there crosses no trust boundary.
pub fn installed(ctx: &Ctx) -> Option<CertInfo> {
    let (cert, key) = cert_paths(&ctx.cfg)?;
    if !ctx.host(&key).is_file() {
        return None;
    }
    let text = std::fs::read_to_string(ctx.host(&cert)).ok()?;
    crate::certs::parse_pem(&text).ok()
}

/// The config's part of the site: what the step fingerprints hash. What the host adds at
/// render time (is there a certificate yet, nginx's version) is not in it, so a certificate
/// appearing does not make the nginx step stale.
pub fn config_vars(cfg: &Config) -> serde_json::Value {
    let t = &cfg.tls;
    let mut hsts = String::new();
    if t.hsts_max_age > 0 {
        hsts = format!("max-age={}", t.hsts_max_age);
        if t.hsts_include_subdomains {
            hsts.push_str("; includeSubDomains");
        }
        if t.hsts_preload {
            hsts.push_str("; preload");
        }
    }
    let mut v = serde_json::json!({
        "app": cfg.app.name,
        "domain": cfg.app.domain,
        "server_names": cfg.tls_names().join(" "),
        "port": cfg.nginx.port,
        "client_max_body_mb": cfg.nginx.client_max_body_mb,
        "root": webroot(cfg),
        "socket": cfg.web_socket_path(),
        "static_root": cfg.app_dir().join("staticfiles"),
        "media_url": cfg.django.media_url,
        "media_root": cfg.shared_dir().join("media"),
        "var": cfg.app.name.replace('-', "_"),
        "tls_mode": cfg.tls_mode().as_str(),
        "tls_port": t.port,
        "hsts": hsts,
    });
    lb_vars(cfg, &mut v);
    v
}

/// The values of the load balancers' health location (`/keel-health/lb`, in the site and,
/// on a host of several, the catch-all: a balancer probing by address).
fn lb_vars(cfg: &Config, v: &mut serde_json::Value) {
    const INTERCEPTED: [u16; 17] = [
        301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 410, 429, 500, 501, 502, 503, 504,
    ];
    let st = &cfg.health.statuses;
    let join = |v: Vec<u16>| v.iter().map(u16::to_string).collect::<Vec<_>>().join(" ");
    let ok: Vec<u16> = st.iter().copied().filter(|c| *c >= 300).collect();
    let bad: Vec<u16> = INTERCEPTED
        .into_iter()
        .filter(|c| !st.contains(c))
        .collect();
    v["lb"] = true.into();
    v["drain_file"] = cfg.drain_file().into();
    v["health_path"] = cfg.health.path.clone().into();
    v["health_proto"] = if cfg.tls_on() { "https" } else { "http" }.into();
    v["health_ok_codes"] = join(ok).into();
    v["health_bad_codes"] = join(bad).into();
}

/// nginx's version as (major, minor): `http2 on;` replaced `listen ... http2` in 1.25.1.
fn nginx_version(ctx: &Ctx, log: &str) -> (u32, u32) {
    let out = ctx
        .exec
        .probe(log, &Cmd::new("nginx").arg("-v"))
        .map(|o| format!("{}{}", o.stderr, o.stdout))
        .unwrap_or_default();
    let v = out
        .split("nginx/")
        .nth(1)
        .unwrap_or("")
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("");
    let mut it = v.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// The first nameserver of /etc/resolv.conf, for nginx's OCSP lookups.
fn resolver(ctx: &Ctx) -> Option<String> {
    let text = std::fs::read_to_string(ctx.host("/etc/resolv.conf")).ok()?;
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .map(str::trim)
        .find(|a| a.parse::<std::net::IpAddr>().is_ok())
        .map(|a| {
            if a.contains(':') {
                format!("[{a}]")
            } else {
                a.to_string()
            }
        })
}

/// The site as it should be now: HTTPS when TLS is on and a certificate is in place,
/// plain HTTP (with the ACME challenge path) otherwise.
pub fn render(ctx: &Ctx, log: &str) -> Result<String, String> {
    let tls = match (cert_paths(&ctx.cfg), installed(ctx)) {
        (Some((cert, key)), Some(info)) => {
            let new_http2 = nginx_version(ctx, log) >= (1, 25);
            // OCSP stapling only where the certificate names a responder (Let's Encrypt
            // stopped doing so in 2025) and nginx has a resolver to reach it.
            let resolver = if info.ocsp { resolver(ctx) } else { None };
            serde_json::json!({
                "cert": cert,
                "key": key,
                "http2_directive": new_http2,
                "stapling": resolver.is_some(),
                "resolver": resolver.unwrap_or_default(),
            })
        }
        _ => serde_json::Value::Null,
    };
    let maintenance = crate::maintenance::read(&ctx.paths, &ctx.cfg.app.name);
    render_with(
        &ctx.cfg,
        tls,
        serde_json::to_value(maintenance).unwrap_or_default(),
    )
}

/// The plain-HTTP site, whatever the host holds (undoing the tls step).
pub fn render_plain(cfg: &Config) -> Result<String, String> {
    render_with(cfg, serde_json::Value::Null, serde_json::Value::Null)
}

/// The site for the config and a `tls` value (null: plain HTTP).
fn render_with(
    cfg: &Config,
    tls: serde_json::Value,
    maintenance: serde_json::Value,
) -> Result<String, String> {
    let mut v = config_vars(cfg);
    v["tls"] = tls;
    v["maintenance"] = maintenance;
    crate::render::render("nginx-site.conf", &v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let text = format!(
            "[app]\nname = \"demo\"\ndomain = \"demo.example.com\"\n[django]\nsource = \"x\"\n{extra}"
        );
        Config::parse(&text, std::path::Path::new("/k.toml")).unwrap()
    }

    fn site(c: &Config, tls: serde_json::Value) -> String {
        render_with(c, tls, serde_json::Value::Null).unwrap()
    }

    #[test]
    fn maintenance_sends_everyone_but_loopback_and_the_allowed_to_the_503_page() {
        let off = site(&cfg(""), serde_json::Value::Null);
        assert!(!off.contains("maint"), "{off}");
        let m = crate::maintenance::Maintenance {
            message: "back soon".into(),
            allow: vec!["203.0.113.0/24".into(), "2001:db8::1".into()],
            retry_after_secs: 900,
            since: "2026-12-03T10:00:00Z".into(),
        };
        let on = render_with(
            &cfg(""),
            serde_json::Value::Null,
            serde_json::to_value(&m).unwrap(),
        )
        .unwrap();
        for want in [
            "geo $keel_demo_maint_client {",
            "    127.0.0.0/8 0;",
            "    203.0.113.0/24 0;",
            "    2001:db8::1 0;",
            "if ($uri ~ \"^/(\\.well-known/acme-challenge/|__keel_maintenance)\") {",
            "if ($keel_maint = 1) {",
            "rewrite ^ /__keel_maintenance last;",
            "error_page 503 /__keel_maintenance.html;",
            "add_header Retry-After 900 always;",
        ] {
            assert!(on.contains(want), "{want} not in {on}");
        }
        // The message is in the page, never in nginx's configuration.
        assert!(!on.contains("back soon"));
    }

    #[test]
    fn plain_http_until_a_certificate_exists() {
        let s = site(&cfg(""), serde_json::Value::Null);
        assert!(
            s.contains("server_name demo.example.com localhost 127.0.0.1 [::1];"),
            "{s}"
        );
        // The default server is the host's (one file per port, shared by every app), never
        // in an app's site: two sites with it would fail nginx -t.
        assert!(!s.contains("default_server"), "{s}");
        let all = crate::render::render(
            "nginx-catch-all.conf",
            serde_json::json!({"port": 80, "ssl": false, "lb": false}),
        )
        .unwrap();
        assert!(all.contains("listen 80 default_server;\n    listen [::]:80 default_server;\n    server_name _;\n    return 444;"), "{all}");
        assert!(
            s.contains("X-Content-Type-Options \"nosniff\" always"),
            "{s}"
        );
        assert!(
            s.contains("disable_symlinks on from=/opt/demo/current/staticfiles;"),
            "{s}"
        );
        assert!(s.contains("client_max_body_size 20m;"), "{s}");
        // The outage page: 503 with a retry hint, and the security headers kept there too.
        let ph = &s[s.find("location @placeholder").expect("placeholder")..];
        assert!(ph.contains("add_header Retry-After 30 always;"), "{s}");
        assert!(
            ph.contains("add_header X-Content-Type-Options \"nosniff\" always;"),
            "{s}"
        );
        assert!(
            s.contains("location ^~ /.well-known/acme-challenge/"),
            "{s}"
        );
        assert!(!s.contains("ssl"), "{s}");
        assert!(!s.contains("return 301"), "{s}");
    }

    #[test]
    fn https_redirects_port_80_but_not_the_challenge() {
        let c = cfg("[tls]\nemail = \"a@example.com\"\ndomains = [\"www.demo.example.com\"]\n");
        let (cert, key) = cert_paths(&c).unwrap();
        assert_eq!(cert, "/etc/letsencrypt/live/keel-demo/fullchain.pem");
        let t = serde_json::json!({"cert": cert, "key": key, "http2_directive": false, "stapling": false, "resolver": ""});
        let s = site(&c, t.clone());
        let (http, https) = s.split_once("listen 443 ssl http2;").expect("a TLS server");
        assert!(http.contains("acme-challenge"), "{http}");
        assert!(
            http.contains("return 301 https://$host$request_uri;"),
            "{http}"
        );
        // Port 80 reaches the app only for the load balancers' health.
        assert_eq!(http.matches("proxy_pass").count(), 1, "{http}");
        assert!(http.contains("location = /keel-health/lb {"), "{http}");
        assert!(
            https.contains("server_name demo.example.com www.demo.example.com localhost"),
            "{https}"
        );
        assert!(https.contains("ssl_protocols TLSv1.2 TLSv1.3;"), "{https}");
        assert!(
            https.contains("Strict-Transport-Security \"max-age=15768000\" always"),
            "{https}"
        );
        assert!(https.contains("proxy_pass"), "{https}");
        assert!(
            https.contains("proxy_hide_header Strict-Transport-Security;"),
            "{https}"
        );
        assert!(!https.contains("ssl_stapling"), "{https}");
        assert!(!s.contains("default_server"), "{s}");
        let all = crate::render::render(
            "nginx-catch-all.conf",
            serde_json::json!({"port": 443, "ssl": true}),
        )
        .unwrap();
        assert!(all.contains("listen 443 ssl default_server;"), "{all}");
        assert!(all.contains("ssl_reject_handshake on;"), "{all}");
        // nginx >= 1.25.1 spells HTTP/2 `http2 on;`.
        let mut t2 = t;
        t2["http2_directive"] = true.into();
        let s = site(&c, t2);
        assert!(
            s.contains("listen 443 ssl;\n    listen [::]:443 ssl;\n    http2 on;"),
            "{s}"
        );
    }

    #[test]
    fn hsts_follows_the_config() {
        let c = cfg("[tls]\nmode = \"self-signed\"\nhsts_max_age = 0\n");
        assert_eq!(config_vars(&c)["hsts"], "");
        let c = cfg(
            "[tls]\nmode = \"self-signed\"\nhsts_max_age = 63072000\nhsts_include_subdomains = true\nhsts_preload = true\n",
        );
        assert_eq!(
            config_vars(&c)["hsts"],
            "max-age=63072000; includeSubDomains; preload"
        );
        assert_eq!(cert_paths(&c).unwrap().1, "/etc/keel/tls/demo/privkey.pem");
    }
}
