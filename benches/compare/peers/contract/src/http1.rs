//! The HTTP/1.1 of the std-only peers: one thread accepts connections and
//! reads each request head itself; small complete answers; the head of a
//! close-delimited event stream.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::Duration;

/// Largest request head (request line + headers) read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body read and thrown away.
const MAX_BODY: usize = 64 * 1024;
/// How long one client may block a write before it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the accept thread waits for a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The head of an event stream whose body ends when the connection does.
pub const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Connection: close\r\n\r\n";

/// Listens on `addr` and hands each accepted connection (TCP_NODELAY, read
/// and write timeouts set) to `handle`, on this thread, for ever. Exits
/// the process when `addr` cannot be bound.
pub fn serve(program: &str, addr: &str, mut handle: impl FnMut(TcpStream) -> io::Result<()>) {
    let listener = TcpListener::bind(addr).unwrap_or_else(|e| {
        eprintln!("{program}: cannot bind {addr}: {e}");
        std::process::exit(1);
    });
    eprintln!("{program}: listening on {addr}");
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let handled = stream
                    .set_nodelay(true)
                    .and_then(|()| stream.set_read_timeout(Some(READ_TIMEOUT)))
                    .and_then(|()| stream.set_write_timeout(Some(WRITE_TIMEOUT)))
                    .and_then(|()| handle(stream));
                if let Err(e) = handled {
                    eprintln!("{program}: request failed: {e}");
                }
            }
            Err(e) => {
                eprintln!("{program}: accept failed: {e}");
                // EMFILE and friends: don't spin.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A request's method and target (path and query).
pub struct Request {
    pub method: String,
    pub target: String,
}

impl Request {
    /// The target without its query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query, without the `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, query)| query)
    }
}

/// Reads the request head (up to the blank line) and any `Content-Length`
/// body. `Ok(None)` for a malformed or oversized request.
pub fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Ok(None);
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let Ok(head) = std::str::from_utf8(&buf[..head_end]) else {
        return Ok(None);
    };
    let mut lines = head.lines();
    let mut parts = lines.next().unwrap_or("").split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let mut content_length = 0usize;
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            match value.trim().parse() {
                Ok(n) if n <= MAX_BODY => content_length = n,
                _ => return Ok(None),
            }
        }
    }
    let request = Request {
        method: method.to_owned(),
        target: target.to_owned(),
    };
    // Drain the body so closing the socket does not reset the connection.
    let mut remaining = content_length.saturating_sub(buf.len() - head_end);
    while remaining > 0 {
        let n = stream.read(&mut chunk[..remaining.min(1024)])?;
        if n == 0 {
            break;
        }
        remaining -= n;
    }
    Ok(Some(request))
}

/// Offset just past the blank line that ends a request head (CRLF or LF).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(i + 2),
        b"\n\r" if buf.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

/// Writes a small complete response and lets the connection close.
pub fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

/// The answer to a request for none of the contract's three endpoints, or
/// with the wrong method for one of them.
pub fn respond_other(stream: &mut TcpStream, path: &str) -> io::Result<()> {
    match path {
        "/events" | "/stats" | "/publish" => {
            respond(stream, "405 Method Not Allowed", "method not allowed\n")
        }
        _ => respond(stream, "404 Not Found", "not found\n"),
    }
}
