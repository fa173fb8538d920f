//! Shared helpers for the integration tests: a real SSE client over
//! `std::net::TcpStream`, a WHATWG-conformant event-stream parser, thread
//! inspection through `/proc`, and bounded waiting.
//!
//! Used from each test file with `mod support;`; not every file uses every
//! helper.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Time and waiting
// ---------------------------------------------------------------------------

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls `f` until it returns true or `timeout` passes; true when `f` did.
/// The short sleep between polls is only the poll interval of this bounded
/// loop, never a synchronisation in itself.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(ms(5));
    }
}

/// Turns on the crate's logging when `RUST_LOG` asks for it.
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}

// ---------------------------------------------------------------------------
// Threads, as Linux sees them
// ---------------------------------------------------------------------------

/// The process's thread count (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .expect("a Threads: line in /proc/self/status")
        .trim()
        .parse()
        .expect("Threads: holds a number")
}

/// The names (`comm`) of the process's threads right now. A thread that ends
/// while the directory is read is skipped.
pub fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some(comm.trim_end_matches('\n').to_owned())
        })
        .collect()
}

/// Linux keeps 15 bytes of a thread's name.
pub fn comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// How many threads have a name starting with `prefix` (truncated to the 15
/// bytes Linux keeps).
pub fn threads_named(prefix: &str) -> usize {
    let prefix = comm(prefix);
    thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// How many threads are named exactly `name` (truncated as Linux does).
pub fn threads_named_exactly(name: &str) -> usize {
    let name = comm(name);
    thread_names().iter().filter(|n| n.as_str() == name).count()
}

// ---------------------------------------------------------------------------
// The event-stream parser (WHATWG HTML, "Interpreting an event stream")
// ---------------------------------------------------------------------------

/// One dispatched event, as an `EventSource` would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedEvent {
    /// The event type (`message` when no `event:` field was given).
    pub event_type: String,
    /// The data, lines joined with LF, the last LF removed.
    pub data: String,
    /// The stream's last event id at dispatch (state, like `EventSource`'s
    /// `lastEventId`: it persists across events until an `id:` changes it).
    pub last_event_id: String,
    /// The stream's reconnection time in ms at dispatch, if a valid `retry:`
    /// field has set one (state, like the last event id).
    pub retry: Option<u64>,
}

impl ParsedEvent {
    /// A `message` event carrying `data`, with no id and no retry set.
    pub fn message(data: &str) -> ParsedEvent {
        ParsedEvent {
            event_type: "message".into(),
            data: data.into(),
            last_event_id: String::new(),
            retry: None,
        }
    }
}

/// An incremental event-stream parser: feed it bytes in pieces of any size.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    /// The previous byte was a CR that ended a line: an LF right after it
    /// belongs to the same line end.
    after_cr: bool,
    /// At least one line has been processed (the BOM check is done).
    first_line_done: bool,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    comments: usize,
}

impl EventParser {
    pub fn new() -> EventParser {
        EventParser::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.process_line(&mut out);
                }
                b'\n' => self.process_line(&mut out),
                _ => self.line.push(b),
            }
        }
        out
    }

    /// The reconnection time set by the last valid `retry:` field.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The last event id, as of the last dispatch.
    pub fn last_event_id(&self) -> &str {
        &self.last_event_id
    }

    /// How many comment lines have been seen.
    pub fn comments(&self) -> usize {
        self.comments
    }

    /// True when a partial line or undispatched fields are pending (they are
    /// discarded if the stream ends now).
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || !self.data.is_empty() || !self.event_type.is_empty()
    }

    fn process_line(&mut self, out: &mut Vec<ParsedEvent>) {
        let mut raw = std::mem::take(&mut self.line);
        if !self.first_line_done {
            self.first_line_done = true;
            if raw.starts_with("\u{feff}".as_bytes()) {
                raw.drain(..3);
            }
        }
        // The stream is decoded as UTF-8 with replacement; line ends are
        // ASCII, so decoding line by line is the same.
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            self.comments += 1;
            return;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (&line[..], ""),
        };
        match field {
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_owned(),
            // retry counts only when it is all ASCII digits; digits beyond
            // u64 are clamped rather than rejected.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            // Unknown fields, and ids and retries that did not qualify.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<ParsedEvent>) {
        self.last_event_id = self.last_event_id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = std::mem::take(&mut self.event_type);
        out.push(ParsedEvent {
            event_type: if event_type.is_empty() {
                "message".into()
            } else {
                event_type
            },
            data,
            last_event_id: self.last_event_id.clone(),
            retry: self.retry,
        });
    }
}

/// Parses a whole stream at once.
pub fn parse_all(bytes: &[u8]) -> Vec<ParsedEvent> {
    EventParser::new().feed(bytes)
}

// ---------------------------------------------------------------------------
// The HTTP test client
// ---------------------------------------------------------------------------

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChunkState {
    Size,
    Data(usize),
    DataEnd,
    Trailer,
    Done,
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
    chunk: ChunkState,
    chunk_sizes: Vec<usize>,
    end: Option<End>,
}

/// How long a client waits for the response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

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
            chunk: ChunkState::Size,
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

    /// One read from the socket, waiting until `deadline` at most. Returns
    /// true when something happened (bytes arrived or the body ended), false
    /// on timeout or once the body has ended. Panics on a framing error or
    /// an unexpected I/O error.
    fn pump(&mut self, deadline: Instant) -> bool {
        if self.end.is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        self.stream
            .set_read_timeout(Some(left.max(ms(1))))
            .expect("set the client's read timeout");
        let mut piece = vec![0u8; 64 * 1024];
        match self.stream.read(&mut piece) {
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
            Framing::Chunked => loop {
                match self.chunk {
                    ChunkState::Size => {
                        let Some(at) = find(&self.raw, b"\r\n") else {
                            if self.raw.len() > 1024 {
                                return Err("chunk-size line longer than 1 KiB".into());
                            }
                            break;
                        };
                        let line = String::from_utf8_lossy(&self.raw[..at]).into_owned();
                        let size_text = line.split(';').next().unwrap_or_default().trim();
                        let size = usize::from_str_radix(size_text, 16)
                            .map_err(|_| format!("bad chunk-size line {line:?}"))?;
                        self.raw.drain(..at + 2);
                        if size == 0 {
                            self.chunk = ChunkState::Trailer;
                        } else {
                            self.chunk_sizes.push(size);
                            self.chunk = ChunkState::Data(size);
                        }
                    }
                    ChunkState::Data(left) => {
                        let take = left.min(self.raw.len());
                        if take == 0 {
                            break;
                        }
                        self.body.extend(self.raw.drain(..take));
                        self.chunk = if take == left {
                            ChunkState::DataEnd
                        } else {
                            ChunkState::Data(left - take)
                        };
                    }
                    ChunkState::DataEnd => {
                        if self.raw.len() < 2 {
                            break;
                        }
                        if &self.raw[..2] != b"\r\n" {
                            return Err(format!(
                                "chunk data not followed by CRLF but by {:?}",
                                String::from_utf8_lossy(&self.raw[..2])
                            ));
                        }
                        self.raw.drain(..2);
                        self.chunk = ChunkState::Size;
                    }
                    ChunkState::Trailer => {
                        let Some(at) = find(&self.raw, b"\r\n") else {
                            break;
                        };
                        self.raw.drain(..at + 2);
                        if at == 0 {
                            self.chunk = ChunkState::Done;
                            self.end = Some(End::FinalChunk);
                        }
                    }
                    ChunkState::Done => {
                        if !self.raw.is_empty() {
                            return Err(format!(
                                "bytes after the final chunk: {:?}",
                                String::from_utf8_lossy(&self.raw)
                            ));
                        }
                        break;
                    }
                }
            },
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
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream
                .set_read_timeout(Some(left.max(ms(1))))
                .expect("set the client's read timeout");
            match self.stream.read(&mut piece) {
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

/// Reads `n` events from `client`, each within `per_event`, panicking with
/// context when one does not come.
pub fn read_events(client: &mut Client, n: usize, per_event: Duration) -> Vec<ParsedEvent> {
    (0..n)
        .map(|i| client.expect_event(per_event, &format!("event {i} of {n}")))
        .collect()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn tail(bytes: &[u8], n: usize) -> String {
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(n)..]).into_owned()
}

/// A hub builder without the stream extras the protocol adds by default
/// (automatic event ids, the `retry:` line at connect), so that tests can
/// expect exact bytes. Tests of those extras build their hub themselves.
pub fn plain_hub() -> sse_server::HubBuilder {
    sse_server::Hub::builder()
        .history(0, 0, None)
        .retry(None, Duration::ZERO)
}
