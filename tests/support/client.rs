//! The HTTP test client: one request over a real socket, its response body
//! decoded as it arrives and parsed as an event stream.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::chunked::{ChunkDecoder, Piece};
use super::raw::{find, read_before};
use sse_server::parse::{EventParser, ParsedEvent};

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Chunked,
    Length(usize),
    /// HTTP/1.0 style: the body ends when the server closes.
    Close,
}

/// How a body ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Chunked body: the final `0\r\n\r\n` chunk arrived (a clean end).
    FinalChunk,
    /// `Content-Length` body: all of it arrived.
    Complete,
    /// The server closed the connection (clean for a close-delimited body;
    /// a truncation for a chunked one).
    Eof,
    /// The connection was reset.
    Reset,
}

/// An HTTP client for one request over a real socket, which decodes the
/// response body as it arrives and parses it as an event stream.
pub struct Client {
    stream: TcpStream,
    /// `HTTP/1.1` or `HTTP/1.0`, from the status line.
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    framing: Framing,
    /// Bytes read from the socket and not yet decoded.
    raw: Vec<u8>,
    /// The decoded body so far.
    body: Vec<u8>,
    /// How much of `body` the parser has seen.
    parsed: usize,
    parser: EventParser,
    events: VecDeque<ParsedEvent>,
    chunks: ChunkDecoder,
    chunk_sizes: Vec<usize>,
    end: Option<End>,
}

/// How long a client waits for the response head.
pub(super) const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl Client {
    /// Opens an event stream: `GET path` with `HTTP/<http_version>` ("1.1" or
    /// "1.0") and the extra headers; returns once the response head is read.
    pub fn connect(
        addr: SocketAddr,
        path: &str,
        http_version: &str,
        extra_headers: &[(&str, &str)],
    ) -> io::Result<Client> {
        let mut headers = vec![("Accept", "text/event-stream")];
        headers.extend_from_slice(extra_headers);
        Client::request(addr, "GET", path, http_version, &headers, b"")
    }

    /// `connect` over HTTP/1.1, waiting at most `head_timeout` for the
    /// response head.
    pub fn connect_within(
        addr: SocketAddr,
        path: &str,
        head_timeout: Duration,
    ) -> io::Result<Client> {
        let headers = [("Accept", "text/event-stream")];
        Client::send(addr, "GET", path, "1.1", &headers, b"", head_timeout)
    }

    /// Sends any request and reads the response head. A non-empty body gets
    /// a `Content-Length`.
    pub fn request(
        addr: SocketAddr,
        method: &str,
        path: &str,
        http_version: &str,
        extra_headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Client> {
        Client::send(
            addr,
            method,
            path,
            http_version,
            extra_headers,
            body,
            HEAD_TIMEOUT,
        )
    }

    fn send(
        addr: SocketAddr,
        method: &str,
        path: &str,
        http_version: &str,
        extra_headers: &[(&str, &str)],
        body: &[u8],
        head_timeout: Duration,
    ) -> io::Result<Client> {
        let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("{method} {path} HTTP/{http_version}\r\nHost: {addr}\r\n");
        for (name, value) in extra_headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" || method == "PUT" {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body);
        stream.write_all(&bytes)?;

        // Read until the blank line that ends the head.
        let deadline = Instant::now() + head_timeout;
        let mut buf = Vec::new();
        let mut piece = [0u8; 4096];
        let head_end = loop {
            if let Some(at) = find(&buf, b"\r\n\r\n") {
                break at;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    ErrorKind::TimedOut,
                    format!("no complete response head within {head_timeout:?}"),
                ));
            }
            stream.set_read_timeout(Some(left))?;
            let n = match stream.read(&mut piece) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before the response head ended; got {:?}",
                        String::from_utf8_lossy(&buf)
                    ),
                ));
            }
            buf.extend_from_slice(&piece[..n]);
        };
        let head = String::from_utf8(buf[..head_end].to_vec())
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        let raw = buf[head_end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default().to_owned();
        let status = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| {
            io::Error::new(
                ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
        let reason = parts.next().unwrap_or_default().to_owned();
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line.split_once(':').ok_or_else(|| {
                io::Error::new(ErrorKind::InvalidData, format!("bad header line {line:?}"))
            })?;
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }

        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let framing = if method == "HEAD" || status == 204 || status == 304 {
            Framing::Length(0)
        } else if header("Transfer-Encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            Framing::Chunked
        } else if let Some(len) = header("Content-Length") {
            Framing::Length(len.parse().map_err(|_| {
                io::Error::new(
                    ErrorKind::InvalidData,
                    format!("bad Content-Length {len:?}"),
                )
            })?)
        } else {
            Framing::Close
        };

        let mut client = Client {
            stream,
            version,
            status,
            reason,
            headers,
            framing,
            raw,
            body: Vec::new(),
            parsed: 0,
            parser: EventParser::new(),
            events: VecDeque::new(),
            chunks: ChunkDecoder::new(),
            chunk_sizes: Vec::new(),
            end: None,
        };
        if client.framing == Framing::Length(0) {
            client.end = Some(End::Complete);
        }
        client
            .decode()
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        Ok(client)
    }

    /// A response header's value (the first, if repeated), by name in any
    /// case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// The decoded body bytes received so far (chunk framing removed).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The sizes of the data chunks received so far (chunked bodies only).
    pub fn chunk_sizes(&self) -> &[usize] {
        &self.chunk_sizes
    }

    /// How the body ended, if it has.
    pub fn end(&self) -> Option<End> {
        self.end
    }

    /// The event-stream parser's state (comments seen, last id, ...).
    pub fn parser(&self) -> &EventParser {
        &self.parser
    }

    /// The local address of the client's socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream
            .local_addr()
            .expect("client socket's local address")
    }

    /// The client's socket: for socket options (`SO_LINGER`) and for raw
    /// writes on the stream's connection (pipelined requests).
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }

    /// One read from the socket, waiting until `deadline` at most. Returns
    /// true when something happened (bytes arrived or the body ended), false
    /// on timeout or once the body has ended. Panics on a framing error or
    /// an unexpected I/O error.
    fn pump(&mut self, deadline: Instant) -> bool {
        if self.end.is_some() {
            return false;
        }
        let mut piece = vec![0u8; 64 * 1024];
        let Some(read) = read_before(&mut self.stream, deadline, &mut piece) else {
            return false;
        };
        match read {
            Ok(0) => {
                self.end = Some(End::Eof);
            }
            Ok(n) => {
                self.raw.extend_from_slice(&piece[..n]);
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => return true,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                self.end = Some(End::Reset);
            }
            Err(e) => panic!("reading the response body failed: {e}"),
        }
        if let Err(e) = self.decode() {
            panic!("malformed response body: {e}");
        }
        true
    }

    /// Decodes `raw` into `body` according to the framing, then feeds the
    /// new body bytes to the event parser.
    fn decode(&mut self) -> Result<(), String> {
        match self.framing {
            Framing::Close => self.body.append(&mut self.raw),
            Framing::Length(len) => {
                let take = (len - self.body.len()).min(self.raw.len());
                self.body.extend(self.raw.drain(..take));
                if !self.raw.is_empty() {
                    return Err(format!(
                        "{} bytes after a Content-Length body",
                        self.raw.len()
                    ));
                }
                if self.body.len() == len {
                    self.end = Some(End::Complete);
                }
            }
            Framing::Chunked => {
                let mut input = &self.raw[..];
                while let Some(piece) = self
                    .chunks
                    .next_piece(&mut input)
                    .map_err(|e| e.to_string())?
                {
                    match piece {
                        Piece::Start(size) => self.chunk_sizes.push(size),
                        Piece::Data(data) => self.body.extend_from_slice(data),
                        Piece::End => {}
                        Piece::Last => self.end = Some(End::FinalChunk),
                    }
                }
                if !input.is_empty() {
                    return Err(format!(
                        "bytes after the final chunk: {:?}",
                        String::from_utf8_lossy(input)
                    ));
                }
                self.raw.clear();
            }
        }
        let events = self.parser.feed(&self.body[self.parsed..]);
        self.parsed = self.body.len();
        self.events.extend(events);
        Ok(())
    }

    /// The next event, waiting at most `timeout`; `None` on timeout or when
    /// the stream ended first.
    pub fn next_event(&mut self, timeout: Duration) -> Option<ParsedEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Some(event);
            }
            if self.end.is_some() || Instant::now() >= deadline {
                return None;
            }
            self.pump(deadline);
        }
    }

    /// The next event, or a panic that says what was expected and what the
    /// stream held.
    pub fn expect_event(&mut self, timeout: Duration, what: &str) -> ParsedEvent {
        match self.next_event(timeout) {
            Some(event) => event,
            None => panic!(
                "expected {what} within {timeout:?}; stream end: {:?}; body so far ({} bytes) ends with {:?}",
                self.end,
                self.body.len(),
                tail(&self.body, 200)
            ),
        }
    }

    /// Events already parsed and not yet taken, without reading.
    pub fn take_parsed(&mut self) -> Vec<ParsedEvent> {
        self.events.drain(..).collect()
    }

    /// Reads until `done(body so far)` holds; false if `timeout` passed or
    /// the body ended first.
    pub fn read_raw_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.body) {
                return true;
            }
            if self.end.is_some() || Instant::now() >= deadline {
                return false;
            }
            self.pump(deadline);
        }
    }

    /// Reads until the body holds at least `len` bytes.
    pub fn read_raw_len(&mut self, timeout: Duration, len: usize) -> bool {
        self.read_raw_until(timeout, |body| body.len() >= len)
    }

    /// Reads until the body ends; `None` if `timeout` passed first.
    pub fn wait_end(&mut self, timeout: Duration) -> Option<End> {
        let deadline = Instant::now() + timeout;
        while self.end.is_none() && Instant::now() < deadline {
            self.pump(deadline);
        }
        self.end
    }

    /// Reads a whole (non-stream) response body.
    pub fn read_to_end(&mut self, timeout: Duration) -> Vec<u8> {
        let end = self.wait_end(timeout);
        assert!(
            end.is_some(),
            "the response body did not end within {timeout:?}"
        );
        self.body.clone()
    }

    /// Whether the server has closed the connection, waiting at most
    /// `timeout` for it (only meaningful once the body has ended).
    pub fn server_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut piece = [0u8; 1024];
        loop {
            let Some(read) = read_before(&mut self.stream, deadline, &mut piece) else {
                return false;
            };
            match read {
                Ok(0) => return true,
                Ok(n) => panic!(
                    "unexpected bytes after the body: {:?}",
                    String::from_utf8_lossy(&piece[..n])
                ),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return false;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return true,
            }
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("status", &self.status)
            .field("framing", &self.framing)
            .field("body_len", &self.body.len())
            .field("end", &self.end)
            .finish()
    }
}

/// Opens an event stream over HTTP/1.1 with the extra headers, and checks
/// that it was accepted (200).
pub fn open_stream(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Client {
    let client = Client::connect(addr, path, "1.1", headers)
        .unwrap_or_else(|e| panic!("connect {path} {headers:?}: {e}"));
    assert_eq!(client.status, 200, "GET {path} {headers:?}");
    client
}

/// Reads `n` events from `client`, each within `per_event`, panicking with
/// context when one does not come.
pub fn read_events(client: &mut Client, n: usize, per_event: Duration) -> Vec<ParsedEvent> {
    (0..n)
        .map(|i| client.expect_event(per_event, &format!("event {i} of {n}")))
        .collect()
}

fn tail(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(n)..]).into_owned()
}
