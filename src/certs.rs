//! X.509 certificates as keel needs them: names, validity, issuer, OCSP. Parsed in-process
//! (x509-parser), so `keel verify` and the report read a certificate without a command.
use x509_parser::extensions::{GeneralName, ParsedExtension};

#[derive(Debug, Clone, PartialEq)]
pub struct CertInfo {
    /// DNS names of the subjectAltName (the CN when there is none).
    pub names: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub issuer: String,
    pub subject: String,
    pub serial: String,
    /// The certificate names an OCSP responder: stapling is possible.
    pub ocsp: bool,
    /// The DER SubjectPublicKeyInfo, to match a key against.
    pub spki_der: Vec<u8>,
}

const OCSP: &str = "1.3.6.1.5.5.7.48.1";

/// The first `-----BEGIN CERTIFICATE-----` block of a PEM text (a chain's leaf).
pub fn first_pem(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end_tag = "-----END CERTIFICATE-----";
    let end = text[start..].find(end_tag)? + start + end_tag.len();
    Some(&text[start..end])
}

/// Parse the first certificate of a PEM text.
pub fn parse_pem(text: &str) -> Result<CertInfo, String> {
    let block = first_pem(text).ok_or("no PEM certificate in it")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(block.as_bytes())
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let mut names = vec![];
    let mut ocsp = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for g in &san.general_names {
                    if let GeneralName::DNSName(n) = g {
                        names.push(n.to_ascii_lowercase());
                    }
                }
            }
            ParsedExtension::AuthorityInfoAccess(aia) => {
                ocsp |= aia
                    .accessdescs
                    .iter()
                    .any(|d| d.access_method.to_id_string() == OCSP);
            }
            _ => {}
        }
    }
    if names.is_empty()
        && let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
    {
        names.push(cn.to_ascii_lowercase());
    }
    Ok(CertInfo {
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        issuer: cert.issuer().to_string(),
        subject: cert.subject().to_string(),
        serial: cert.raw_serial_as_string(),
        ocsp,
        spki_der: cert.public_key().raw.to_vec(),
    })
}

impl CertInfo {
    /// Whole days until expiry (negative once expired).
    pub fn days_left(&self, now: i64) -> i64 {
        (self.not_after - now).div_euclid(86_400)
    }

    pub fn expired(&self, now: i64) -> bool {
        now >= self.not_after
    }

    /// Does the certificate cover `name` (exactly, or by a one-label wildcard)?
    pub fn covers(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|n| {
            *n == name
                || n.strip_prefix("*.").is_some_and(|suffix| {
                    name.split_once('.')
                        .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix)
                })
        })
    }

    /// The names of `wanted` it does not cover.
    /// An admin's certificate (`tls.cert_file`, shown as `shown`) for `names`, now: its
    /// `(message, hint)` when it does not cover every name or has expired. Checked when the
    /// config is loaded and again by the tls step before it copies the file.
    pub fn unfit(&self, shown: &str, names: &[String], now: i64) -> Option<(String, String)> {
        let missing = self.missing(names);
        if !missing.is_empty() {
            return Some((
                format!("{shown} does not cover {}", missing.join(", ")),
                format!(
                    "it is for {}; get one for every name, or change app.domain / tls.domains",
                    self.names.join(", ")
                ),
            ));
        }
        self.expired(now).then(|| {
            (
                format!("{shown} has expired"),
                "install a current certificate".to_string(),
            )
        })
    }

    pub fn missing<'a>(&self, wanted: &'a [String]) -> Vec<&'a str> {
        wanted
            .iter()
            .filter(|n| !self.covers(n))
            .map(|s| s.as_str())
            .collect()
    }

    /// One line for reports: names, issuer, expiry.
    pub fn describe(&self, now: i64) -> String {
        let until = time::OffsetDateTime::from_unix_timestamp(self.not_after)
            .map(|t| t.date().to_string())
            .unwrap_or_default();
        format!(
            "{} — issuer {}; expires {until} ({} days left)",
            self.names.join(", "),
            self.issuer,
            self.days_left(now)
        )
    }
}

/// Fewer days left than this is worth a warning (`keel verify` degraded, the report's
/// tls section): renewal, due at 30 days, has failed more than once by then.
pub const SHORT_DAYS: i64 = 14;

pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Debian's certbot renewal timer: keel watches it, it does not own it.
pub const RENEWAL_TIMER: &str = "certbot.timer";

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A self-signed certificate for demo.example.com and www.demo.example.com (EC P-256,
    /// made once with `openssl req -x509 -days 3650`).
    pub const DEMO: &str = include_str!("../tests/data/demo-cert.pem");

    #[test]
    fn names_validity_and_wildcards() {
        let c = parse_pem(DEMO).unwrap();
        assert_eq!(c.names, ["demo.example.com", "www.demo.example.com"]);
        assert!(c.covers("DEMO.example.com"));
        assert!(!c.covers("other.example.com"));
        assert_eq!(
            c.missing(&["demo.example.com".into(), "x.example.com".into()]),
            ["x.example.com"]
        );
        assert!(c.not_after > c.not_before);
        assert!(!c.ocsp);
        assert!(c.issuer.contains("demo.example.com"), "{}", c.issuer);
        let wild = CertInfo {
            names: vec!["*.example.com".into()],
            ..c.clone()
        };
        assert!(wild.covers("a.example.com"));
        assert!(!wild.covers("example.com"));
        assert!(!wild.covers("a.b.example.com"));
        assert_eq!(c.days_left(c.not_after - 86_400 * 3 - 5), 3);
        assert!(c.days_left(c.not_after + 1) < 0);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_pem("").is_err());
        assert!(parse_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----").is_err());
        assert!(
            first_pem("x -----BEGIN CERTIFICATE-----\nA\n-----END CERTIFICATE----- y").is_some()
        );
    }
}
