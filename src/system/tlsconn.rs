//! A TCP connection to another host, and TLS over it checked against one CA and the
//! server's name (or address): for PostgreSQL and Redis on a database host or a managed
//! service. The CA is the one the admin gave, never the system's store.
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(b),
            Stream::Tls(s) => s.read(b),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(b),
            Stream::Tls(s) => s.write(b),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// TCP to host:port, every address it resolves to tried within `timeout`.
pub fn tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {host}: {e}"))?
        .collect();
    let mut last = format!("{host} resolves to no address");
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                s.set_write_timeout(Some(timeout))
                    .map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(last)
}

/// TLS over `tcp`, the server's certificate checked against `ca_pem` and `host`; the
/// handshake is done here, so a wrong CA or name fails now, with rustls's reason.
pub fn wrap(tcp: TcpStream, ca_pem: &[u8], host: &str) -> Result<Stream, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| format!("the CA file: {e}"))?;
        roots
            .add(c)
            .map_err(|e| format!("the CA file's certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("the CA file holds no certificate".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| match e.get_ref() {
                Some(inner) => inner.to_string(),
                None => e.to_string(),
            })?;
    }
    Ok(Stream::Tls(Box::new(s)))
}

/// A Redis server reached by URL: AUTH with the password, then PING; the reply of each.
pub fn redis_check(s: &mut Stream, password: &str) -> Result<(), String> {
    for args in [&["AUTH", password][..], &["PING"][..]] {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        s.write_all(out.as_bytes()).map_err(|e| e.to_string())?;
        let mut line = vec![];
        let mut b = [0u8; 1];
        while line.len() < 512 {
            s.read_exact(&mut b).map_err(|e| e.to_string())?;
            if b[0] == b'\n' {
                break;
            }
            line.push(b[0]);
        }
        let reply = String::from_utf8_lossy(&line).trim_end().to_string();
        if reply.starts_with('-') {
            return Err(format!("Redis answered {reply}"));
        }
    }
    Ok(())
}
