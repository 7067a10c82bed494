//! PostgreSQL's wire protocol, the little keel speaks itself: TLS checked against a given
//! CA and the server's name (libpq's verify-full), SCRAM-SHA-256, simple queries. No psql
//! is needed on an app host, no password reaches a command line, and a session can hold an
//! advisory lock while keel runs something else (migrations, beat).
use super::tlsconn::{self, Stream};
use std::io::{Read, Write};
use std::time::Duration;

/// Why a connection failed, in the terms the admin fixes it by.
#[derive(Debug)]
pub enum PgError {
    /// No TCP connection (down, firewalled, a wrong address).
    Unreachable(String),
    /// The server refused TLS, or its certificate is not the CA's or not for that name.
    Tls(String),
    /// Wrong password, role or database (the server's own words).
    Auth(String),
    /// Anything else the server or the link said.
    Other(String),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgError::Unreachable(m) => write!(f, "unreachable: {m}"),
            PgError::Tls(m) => write!(f, "TLS: {m}"),
            PgError::Auth(m) => write!(f, "refused the login: {m}"),
            PgError::Other(m) => write!(f, "{m}"),
        }
    }
}

fn other(e: std::io::Error) -> PgError {
    PgError::Other(e.to_string())
}

/// Where and as whom to connect.
pub struct Target<'a> {
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    pub password: &'a str,
    pub database: &'a str,
    /// PEM of the CA for verify-full; None: plain TCP (loopback on a single host).
    pub ca_pem: Option<&'a [u8]>,
    /// Shown in pg_stat_activity: who holds a lock.
    pub application_name: &'a str,
}

pub struct Conn {
    s: Stream,
}

impl Conn {
    pub fn connect(t: &Target, timeout: Duration) -> Result<Conn, PgError> {
        let tcp = tlsconn::tcp(t.host, t.port, timeout).map_err(PgError::Unreachable)?;
        let s = match t.ca_pem {
            None => Stream::Plain(tcp),
            Some(ca) => {
                let mut tcp = tcp;
                // SSLRequest: the server answers one byte, 'S' to go on with TLS.
                tcp.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                    .map_err(other)?;
                let mut b = [0u8; 1];
                tcp.read_exact(&mut b).map_err(other)?;
                if b[0] != b'S' {
                    return Err(PgError::Tls("the server does not accept TLS".into()));
                }
                tlsconn::wrap(tcp, ca, t.host).map_err(PgError::Tls)?
            }
        };
        let mut c = Conn { s };
        let mut body = vec![0, 3, 0, 0];
        for (k, v) in [
            ("user", t.user),
            ("database", t.database),
            ("application_name", t.application_name),
        ] {
            body.extend_from_slice(k.as_bytes());
            body.push(0);
            body.extend_from_slice(v.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        msg.extend(body);
        c.s.write_all(&msg).map_err(|e| c.tls_or(e))?;
        c.login(t.password)?;
        Ok(c)
    }

    /// An I/O error during the handshake: the certificate check fails inside rustls and
    /// surfaces here.
    fn tls_or(&self, e: std::io::Error) -> PgError {
        match &self.s {
            Stream::Tls(_) if e.kind() == std::io::ErrorKind::InvalidData => {
                PgError::Tls(e.to_string())
            }
            _ => other(e),
        }
    }

    fn send(&mut self, tag: u8, body: &[u8]) -> Result<(), PgError> {
        let mut m = vec![tag];
        m.extend(((body.len() + 4) as u32).to_be_bytes());
        m.extend_from_slice(body);
        self.s.write_all(&m).map_err(|e| self.tls_or(e))
    }

    fn recv(&mut self) -> Result<(u8, Vec<u8>), PgError> {
        let mut h = [0u8; 5];
        self.s.read_exact(&mut h).map_err(|e| self.tls_or(e))?;
        let len = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize;
        if !(4..=(64 << 20)).contains(&len) {
            return Err(PgError::Other(format!("a message of {len} bytes")));
        }
        let mut b = vec![0u8; len - 4];
        self.s.read_exact(&mut b).map_err(|e| self.tls_or(e))?;
        Ok((h[0], b))
    }

    fn login(&mut self, password: &str) -> Result<(), PgError> {
        let mut scram: Option<Scram> = None;
        loop {
            let (tag, b) = self.recv()?;
            match tag {
                b'E' => return Err(server_error(&b)),
                b'R' => {
                    let code = u32::from_be_bytes(b[..4].try_into().unwrap_or([0; 4]));
                    match code {
                        0 => {}
                        3 => {
                            // Cleartext (only ever over TLS or loopback, as keel connects).
                            let mut p = password.as_bytes().to_vec();
                            p.push(0);
                            self.send(b'p', &p)?;
                        }
                        10 => {
                            let mechs = String::from_utf8_lossy(&b[4..]);
                            if !mechs.split('\0').any(|m| m == "SCRAM-SHA-256") {
                                return Err(PgError::Auth(format!(
                                    "the server offers {mechs:?}, not SCRAM-SHA-256"
                                )));
                            }
                            let s = Scram::new();
                            let first = s.client_first();
                            let mut body = b"SCRAM-SHA-256\0".to_vec();
                            body.extend((first.len() as u32).to_be_bytes());
                            body.extend(first.as_bytes());
                            self.send(b'p', &body)?;
                            scram = Some(s);
                        }
                        11 => {
                            let s = scram
                                .as_mut()
                                .ok_or(PgError::Auth("SCRAM out of order".into()))?;
                            let fin = s
                                .client_final(password, &String::from_utf8_lossy(&b[4..]))
                                .map_err(PgError::Auth)?;
                            self.send(b'p', fin.as_bytes())?;
                        }
                        12 => {
                            let s = scram
                                .as_ref()
                                .ok_or(PgError::Auth("SCRAM out of order".into()))?;
                            s.check_server(&String::from_utf8_lossy(&b[4..]))
                                .map_err(PgError::Auth)?;
                        }
                        c => {
                            return Err(PgError::Auth(format!(
                                "the server asks for authentication method {c} (md5 or other): keel speaks SCRAM-SHA-256"
                            )));
                        }
                    }
                }
                b'Z' => return Ok(()),
                _ => {}
            }
        }
    }

    /// A simple query: the rows of its last statement, each column as text (None = NULL).
    pub fn query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, PgError> {
        let mut q = sql.as_bytes().to_vec();
        q.push(0);
        self.send(b'Q', &q)?;
        let mut rows = vec![];
        let mut err = None;
        loop {
            let (tag, b) = self.recv()?;
            match tag {
                b'T' => rows.clear(),
                b'D' => rows.push(data_row(&b)),
                b'E' => err = Some(server_error(&b)),
                b'Z' => break,
                _ => {}
            }
        }
        match err {
            Some(e) => Err(e),
            None => Ok(rows),
        }
    }

    /// The first column of the first row.
    pub fn scalar(&mut self, sql: &str) -> Result<Option<String>, PgError> {
        Ok(self
            .query(sql)?
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let _ = self.s.write_all(&[b'X', 0, 0, 0, 4]);
    }
}

fn data_row(b: &[u8]) -> Vec<Option<String>> {
    let mut out = vec![];
    if b.len() < 2 {
        return out;
    }
    let n = u16::from_be_bytes([b[0], b[1]]) as usize;
    let mut i = 2;
    for _ in 0..n {
        if i + 4 > b.len() {
            break;
        }
        let len = i32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        i += 4;
        if len < 0 {
            out.push(None);
            continue;
        }
        let end = (i + len as usize).min(b.len());
        out.push(Some(String::from_utf8_lossy(&b[i..end]).into_owned()));
        i = end;
    }
    out
}

/// An ErrorResponse: its SQLSTATE decides the kind (28xxx: authorization, 3D000: no such
/// database).
fn server_error(b: &[u8]) -> PgError {
    let (mut code, mut msg) = (String::new(), String::new());
    for f in b.split(|&c| c == 0) {
        if let Some((&t, v)) = f.split_first() {
            let v = String::from_utf8_lossy(v).into_owned();
            match t {
                b'C' => code = v,
                b'M' => msg = v,
                _ => {}
            }
        }
    }
    let text = format!("{msg} ({code})");
    if code.starts_with("28") || code == "3D000" {
        PgError::Auth(text)
    } else {
        PgError::Other(text)
    }
}

/// SCRAM-SHA-256 (RFC 5802/7677) from the client's side, channel binding not used.
struct Scram {
    nonce: String,
    first_bare: String,
    auth_message: String,
    salted: [u8; 32],
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    use hmac::Mac;
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    m.update(msg);
    m.finalize().into_bytes().into()
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Scram {
    fn new() -> Scram {
        use base64::Engine;
        let nonce = b64().encode(crate::secrets::random_bytes(18));
        Scram {
            first_bare: format!("n=,r={nonce}"),
            nonce,
            auth_message: String::new(),
            salted: [0; 32],
        }
    }
    fn client_first(&self) -> String {
        format!("n,,{}", self.first_bare)
    }
    fn client_final(&mut self, password: &str, server_first: &str) -> Result<String, String> {
        use base64::Engine;
        use sha2::Digest;
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|p| p.strip_prefix(k))
                .map(String::from)
        };
        let (Some(r), Some(s), Some(i)) = (attr("r="), attr("s="), attr("i=")) else {
            return Err(format!(
                "a SCRAM challenge keel cannot read: {server_first:.60}"
            ));
        };
        if !r.starts_with(&self.nonce) {
            return Err("the server's SCRAM nonce does not extend keel's".into());
        }
        let salt = b64().decode(s).map_err(|e| e.to_string())?;
        let iter: u32 = i.parse().map_err(|_| "a bad SCRAM iteration count")?;
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password.as_bytes(), &salt, iter, &mut self.salted);
        let client_key = hmac(&self.salted, b"Client Key");
        let stored = sha2::Sha256::digest(client_key);
        let without_proof = format!("c=biws,r={r}");
        self.auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let sig = hmac(&stored, self.auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        Ok(format!("{without_proof},p={}", b64().encode(proof)))
    }
    /// The server proves it knew the verifier too (no one in the middle took the login).
    fn check_server(&self, server_final: &str) -> Result<(), String> {
        use base64::Engine;
        let server_key = hmac(&self.salted, b"Server Key");
        let want = b64().encode(hmac(&server_key, self.auth_message.as_bytes()));
        match server_final.strip_prefix("v=") {
            Some(v) if v == want => Ok(()),
            _ => Err(format!(
                "the server's SCRAM signature is wrong: {server_final:.60}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    /// The client half agrees with the verifier keel stores for the server half (pg.rs):
    /// the proof recovers the stored key, and the server signature checks.
    #[test]
    fn scram_round_trip_against_keels_own_verifier() {
        use base64::Engine;
        use sha2::Digest;
        let salt = b"0123456789abcdef";
        let verifier = crate::pg::scram_verifier("s3cret", salt);
        let (_, rest) = verifier.split_once('$').unwrap();
        let (_, keys) = rest.split_once('$').unwrap();
        let (stored, server_key) = keys.split_once(':').unwrap();
        let b = base64::engine::general_purpose::STANDARD;
        let stored = b.decode(stored).unwrap();
        let server_key = b.decode(server_key).unwrap();
        let mut c = super::Scram::new();
        let server_first = format!("r={}srv,s={},i=4096", c.nonce, b.encode(salt));
        let fin = c.client_final("s3cret", &server_first).unwrap();
        let proof = b.decode(fin.rsplit_once(",p=").unwrap().1).unwrap();
        let sig = super::hmac(&stored, c.auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(sig).map(|(a, b)| a ^ b).collect();
        assert_eq!(sha2::Sha256::digest(&client_key).to_vec(), stored);
        let v = b.encode(super::hmac(&server_key, c.auth_message.as_bytes()));
        assert!(c.check_server(&format!("v={v}")).is_ok());
        assert!(c.check_server("v=AAAA").is_err());
        assert!(c.client_final("x", "r=other,s=AA==,i=1").is_err());
    }
}
