//! Tiny network probes spoken directly (no curl, no redis-cli): nothing secret ever reaches
//! a command line, and a minimal host needs no extra tools.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

fn connect(port: u16, timeout: Duration) -> std::io::Result<TcpStream> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    Ok(s)
}

/// HTTP/1.0 GET to 127.0.0.1:port: (status, body).
pub fn http_get(
    port: u16,
    host: &str,
    path: &str,
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = connect(port, timeout)?;
    s.write_all(request(host, path).as_bytes())?;
    let mut buf = Vec::new();
    s.take(1 << 20).read_to_end(&mut buf)?;
    parse_http(&String::from_utf8_lossy(&buf))
}

/// The request `http_get` sends, also written to `openssl s_client` for HTTPS.
pub fn request(host: &str, path: &str) -> String {
    format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: keel\r\nConnection: close\r\n\r\n")
}

/// An HTTP/1.x answer: (status, body).
/// (status, body); for a redirect (3xx), its `Location` in place of the body: what a check
/// reports is where it was sent.
pub fn parse_http(text: &str) -> std::io::Result<(u16, String)> {
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {:.80}", text)))?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    if (300..400).contains(&status) {
        let location = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("location")
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default();
        return Ok((status, location));
    }
    Ok((status, body.to_string()))
}

/// A minimal RESP (Redis protocol) client.
pub struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Resp {
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<Resp> {
        let s = connect(port, timeout)?;
        Ok(Resp {
            w: s.try_clone()?,
            r: BufReader::new(s),
        })
    }

    /// Send a command; the reply as text: "+OK" / "-ERR ..." / ":1" / bulk string / "(nil)".
    pub fn cmd(&mut self, args: &[&str]) -> std::io::Result<String> {
        let mut out = format!("*{}\r\n", args.len());
        for a in args {
            out.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        self.w.write_all(out.as_bytes())?;
        self.reply(0)
    }

    /// One reply: a simple or error line as it is, a bulk string's bytes ("(nil)" for
    /// none), an array's elements one per line (nested arrays flattened: SCAN gives its
    /// cursor, then the keys).
    fn reply(&mut self, depth: u32) -> std::io::Result<String> {
        let mut line = String::new();
        self.r.read_line(&mut line)?;
        let line = line.trim_end().to_string();
        if let Some(n) = line.strip_prefix('$') {
            let n: i64 = n
                .parse()
                .map_err(|_| std::io::Error::other("bad bulk length"))?;
            if n < 0 {
                return Ok("(nil)".into());
            }
            let mut buf = vec![0u8; n as usize + 2];
            self.r.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            return Ok(String::from_utf8_lossy(&buf).into_owned());
        }
        if let Some(n) = line.strip_prefix('*') {
            let n: i64 = n
                .parse()
                .map_err(|_| std::io::Error::other("bad array length"))?;
            if depth > 4 || n > 100_000 {
                return Err(std::io::Error::other("reply too deep or too long"));
            }
            let mut items = vec![];
            for _ in 0..n.max(0) {
                items.push(self.reply(depth + 1)?);
            }
            return Ok(items.join("\n"));
        }
        if line.is_empty() {
            return Err(std::io::Error::other("connection closed"));
        }
        Ok(line)
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_redirect_answers_with_its_location() {
        let (c, b) =
            parse_http("HTTP/1.1 302 Found\r\nlocation: /accounts/login/\r\n\r\n<p>moved</p>")
                .unwrap();
        assert_eq!((c, b.as_str()), (302, "/accounts/login/"));
        let (c, b) = parse_http("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\nhello").unwrap();
        assert_eq!((c, b.as_str()), (200, "hello"));
    }

    use super::*;

    #[test]
    fn http_get_parses_status_and_body() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            // Read the whole request: TCP may deliver it in pieces.
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0, "client closed early");
                req.extend_from_slice(&buf[..n]);
            }
            assert!(String::from_utf8_lossy(&req).contains("Host: demo.test"));
            c.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")
                .unwrap();
        });
        let (code, body) = http_get(port, "demo.test", "/", Duration::from_secs(2)).unwrap();
        t.join().unwrap();
        assert_eq!(code, 404);
        assert_eq!(body, "nope");
    }

    #[test]
    fn resp_encodes_and_decodes() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut req = [0u8; 512];
            let n = c.read(&mut req).unwrap();
            assert_eq!(&req[..n], b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
            c.write_all(b"$5\r\nhello\r\n").unwrap();
            let _ = c.read(&mut req).unwrap();
            c.write_all(b"-NOAUTH Authentication required.\r\n")
                .unwrap();
        });
        let mut r = Resp::connect(port, Duration::from_secs(2)).unwrap();
        assert_eq!(r.cmd(&["GET", "k"]).unwrap(), "hello");
        assert!(r.cmd(&["PING"]).unwrap().starts_with("-NOAUTH"));
        t.join().unwrap();
    }
}
