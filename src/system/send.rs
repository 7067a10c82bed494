//! Notifications' transports: an HTTP request (ureq, rustls with the system's trust store)
//! and a mail over SMTP (lettre, rustls). Nothing here is logged: `Exec` logs the request
//! line, redacted.
use std::time::Duration;

/// A mail: everything the transport needs, the password included (read from its keel secret
/// just before, never stored elsewhere).
#[derive(Debug, Clone)]
pub struct Mail {
    pub host: String,
    pub port: u16,
    /// `starttls`, `tls` (implicit) or `none` (loopback only: checked at load).
    pub tls: String,
    pub login: Option<(String, String)>,
    /// A CA to trust besides the system's (PEM).
    pub ca_pem: Option<Vec<u8>>,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// `method` `url` with a JSON `body`: the status.
pub fn http(
    method: &str,
    url: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::io::Result<u16> {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent("keel")
        .tls_config(tls)
        .build()
        .into();
    let r = match body {
        Some(b) => agent
            .post(url)
            .header("Content-Type", "application/json")
            .send(b),
        None if method == "GET" => agent.get(url).call(),
        None => agent.post(url).send_empty(),
    };
    r.map(|resp| resp.status().as_u16())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Send `m` over SMTP.
pub fn smtp(m: &Mail, timeout: Duration) -> std::io::Result<()> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{SmtpTransport, Transport};
    let err = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let mailbox = |s: &str| s.parse::<Mailbox>().map_err(|e| err(&e));
    let mut b = lettre::Message::builder()
        .from(mailbox(&m.from)?)
        .subject(m.subject.clone())
        .header(ContentType::TEXT_PLAIN);
    for t in &m.to {
        b = b.to(mailbox(t)?);
    }
    let msg = b.body(m.body.clone()).map_err(|e| err(&e))?;
    let tls = if m.tls == "none" {
        Tls::None
    } else {
        let mut p = TlsParameters::builder(m.host.clone());
        if let Some(pem) = &m.ca_pem {
            p = p.add_root_certificate(Certificate::from_pem(pem).map_err(|e| err(&e))?);
        }
        let p = p.build_rustls().map_err(|e| err(&e))?;
        if m.tls == "tls" {
            Tls::Wrapper(p)
        } else {
            Tls::Required(p)
        }
    };
    let mut t = SmtpTransport::builder_dangerous(m.host.clone())
        .port(m.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some((u, p)) = &m.login {
        t = t.credentials(Credentials::new(u.clone(), p.clone()));
    }
    t.build().send(&msg).map(|_| ()).map_err(|e| err(&e))
}
