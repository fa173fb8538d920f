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
    sse_server::Hub::builder().history_events(0).retry(None)
}

// ---------------------------------------------------------------------------
// Robustness helpers: descriptors and memory through /proc, raw HTTP,
// a cheap reader for streams of fixed-size events, and re-running this test
// binary as a child process.
// ---------------------------------------------------------------------------

/// The process's open file descriptors: the entries of `/proc/self/fd`,
/// including the one the listing itself holds (so compare counts taken the
/// same way).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...), in KiB;
/// `pid` may be `"self"`.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

impl Client {
    /// The client's socket: for socket options (`SO_LINGER`) and for raw
    /// writes on the stream's connection (pipelined requests).
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }
}

/// One read from `stream`, waiting until `deadline` at most (and at least
/// 1 ms); `None` once the deadline has passed.
fn read_before(
    stream: &mut TcpStream,
    deadline: Instant,
    buf: &mut [u8],
) -> Option<io::Result<usize>> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    stream
        .set_read_timeout(Some(left.max(ms(1))))
        .expect("set the read timeout");
    Some(stream.read(buf))
}

/// A TCP connection to `addr` with a write timeout, for raw requests.
/// Makes closing `socket` send a reset (`SO_LINGER` 0) rather than a FIN.
pub fn reset_on_close(socket: &TcpStream) {
    socket2::SockRef::from(socket)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

pub fn raw_connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("set the write timeout");
    stream
}

/// What came back on a raw connection.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// How reading ended: `Some(End::Eof)` or `Some(End::Reset)` when the
    /// server closed, `None` when `timeout` passed with the connection open
    /// (or `done` said enough).
    pub closed: Option<End>,
}

impl RawReply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads from `stream` until the server closes it, `done(bytes so far)`
/// holds, or `timeout` passes.
pub fn read_raw(
    stream: &mut TcpStream,
    timeout: Duration,
    mut done: impl FnMut(&[u8]) -> bool,
) -> RawReply {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut piece = vec![0u8; 64 * 1024];
    loop {
        if done(&bytes) {
            return RawReply {
                bytes,
                closed: None,
            };
        }
        let Some(read) = read_before(stream, deadline, &mut piece) else {
            return RawReply {
                bytes,
                closed: None,
            };
        };
        match read {
            Ok(0) => {
                return RawReply {
                    bytes,
                    closed: Some(End::Eof),
                };
            }
            Ok(n) => bytes.extend_from_slice(&piece[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return RawReply {
                    bytes,
                    closed: Some(End::Reset),
                };
            }
            Err(e) => panic!("reading a raw reply failed: {e}"),
        }
    }
}

/// One HTTP response with a `Content-Length` body, taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawResponse {
    pub status_line: String,
    /// Every header but `Date` (which changes), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Splits the first response off `bytes` (its body sized by
/// `Content-Length`, 0 when absent); `None` until all of it is there.
/// Returns the response and how many bytes it took.
pub fn parse_response(bytes: &[u8]) -> Option<(RawResponse, usize)> {
    let head_end = find(bytes, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let mut headers = Vec::new();
    let mut length = 0usize;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
        if name.eq_ignore_ascii_case("Content-Length") {
            length = value.parse().ok()?;
        }
        if !name.eq_ignore_ascii_case("Date") {
            headers.push((name, value));
        }
    }
    let body_start = head_end + 4;
    let body = bytes.get(body_start..body_start + length)?.to_vec();
    Some((
        RawResponse {
            status_line,
            headers,
            body,
        },
        body_start + length,
    ))
}

/// Decodes a chunked body at the start of `bytes`: the data, whether the
/// final chunk (and its blank line) arrived, and the bytes after it.
pub fn dechunk(bytes: &[u8]) -> Result<(Vec<u8>, bool, &[u8]), String> {
    let mut data = Vec::new();
    let mut rest = bytes;
    loop {
        let Some(at) = find(rest, b"\r\n") else {
            return Ok((data, false, rest));
        };
        let line = String::from_utf8_lossy(&rest[..at]).into_owned();
        let size = usize::from_str_radix(line.trim(), 16)
            .map_err(|_| format!("bad chunk-size line {line:?}"))?;
        let after = &rest[at + 2..];
        if size == 0 {
            return match after.strip_prefix(b"\r\n") {
                Some(tail) => Ok((data, true, tail)),
                None => Ok((data, false, after)),
            };
        }
        if after.len() < size + 2 {
            return Ok((data, false, rest));
        }
        if &after[size..size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        data.extend_from_slice(&after[..size]);
        rest = &after[size + 2..];
    }
}

// ---------------------------------------------------------------------------
// A cheap reader for streams of fixed-size events
// ---------------------------------------------------------------------------

/// How many bytes of an event `FixedEventReader` checks: `data: ` and the
/// ten-digit sequence number.
const FIXED_PREFIX: usize = 16;

/// The data of event `seq` in a stream of fixed-size events: the sequence
/// number in ten digits, padded with `x` to `len` bytes (`len` >= 10).
pub fn fixed_payload(seq: usize, len: usize) -> String {
    assert!(len >= 10);
    let mut data = format!("{seq:010}");
    data.extend(std::iter::repeat_n('x', len - 10));
    data
}

/// A thread reading a stream of fixed-size events to its end: gives back
/// the reader's HTTP version, how the stream ended, and the reader.
pub type FixedReaderThread = std::thread::JoinHandle<(&'static str, Option<End>, FixedEventReader)>;

/// `n` readers of `payload`-byte fixed events at `addr`'s `/events`, one
/// in four on HTTP/1.0, each reading to the end (or `idle` without a byte)
/// on a thread of its own. Gives their progress counters (events read so
/// far) and their threads.
pub fn spawn_fixed_readers(
    addr: SocketAddr,
    n: usize,
    payload: usize,
    idle: Duration,
) -> (
    Vec<std::sync::Arc<std::sync::atomic::AtomicUsize>>,
    Vec<FixedReaderThread>,
) {
    (0..n)
        .map(|i| {
            let version = if i % 4 == 3 { "1.0" } else { "1.1" };
            let mut reader = FixedEventReader::connect(addr, version, payload)
                .unwrap_or_else(|e| panic!("connect reader {i}: {e}"));
            assert_eq!(reader.status, 200, "reader {i}");
            let counter = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let progress = std::sync::Arc::clone(&counter);
            let thread = std::thread::spawn(move || {
                let end = reader.read_to_end(idle, &progress);
                (version, end, reader)
            });
            (counter, thread)
        })
        .unzip()
}

/// Reads an event stream made only of `data: <fixed_payload(seq)>\n\n`
/// events, numbered from 0, without parsing it byte by byte (the WHATWG
/// parser is too slow in debug builds for hundreds of MB): it decodes the
/// chunk framing, counts whole events by their size, and checks the first
/// bytes and the blank line of each, so a missing, extra or reordered event
/// is caught. Records when each event arrived.
pub struct FixedEventReader {
    stream: TcpStream,
    pub status: u16,
    chunked: bool,
    event_len: usize,
    payload_len: usize,
    /// Body bytes decoded so far.
    body_len: usize,
    /// The framing bytes of the chunk-size line or trailer being read.
    line: Vec<u8>,
    chunk: ChunkState,
    /// The first bytes of the event being received.
    prefix: Vec<u8>,
    /// When each complete event arrived.
    pub arrivals: Vec<Instant>,
    pub end: Option<End>,
}

impl FixedEventReader {
    /// Opens `GET /events` over HTTP/`http_version` and reads the head.
    pub fn connect(
        addr: SocketAddr,
        http_version: &str,
        payload_len: usize,
    ) -> io::Result<FixedEventReader> {
        FixedEventReader::connect_to(addr, "/events", http_version, payload_len, None)
    }

    /// Opens `GET <path>` (a query string may say which topics) over
    /// HTTP/`http_version` and reads the head. With `recv_buffer`, the
    /// socket's receive buffer is set to that size before it connects,
    /// which also stops the kernel from growing it.
    pub fn connect_to(
        addr: SocketAddr,
        path: &str,
        http_version: &str,
        payload_len: usize,
        recv_buffer: Option<usize>,
    ) -> io::Result<FixedEventReader> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        if let Some(size) = recv_buffer {
            socket.set_recv_buffer_size(size)?;
        }
        socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
        let mut stream: TcpStream = socket.into();
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        let request = format!(
            "GET {path} HTTP/{http_version}\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        stream.write_all(request.as_bytes())?;
        let reply = read_raw(&mut stream, HEAD_TIMEOUT, |bytes| {
            find(bytes, b"\r\n\r\n").is_some()
        });
        let Some(head_end) = find(&reply.bytes, b"\r\n\r\n") else {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("no response head: {:?}", reply.text()),
            ));
        };
        let head = String::from_utf8_lossy(&reply.bytes[..head_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let chunked = head
            .to_ascii_lowercase()
            .contains("\r\ntransfer-encoding: chunked");
        let mut reader = FixedEventReader {
            stream,
            status,
            chunked,
            event_len: payload_len + 8,
            payload_len,
            body_len: 0,
            line: Vec::new(),
            chunk: ChunkState::Size,
            prefix: Vec::with_capacity(FIXED_PREFIX),
            arrivals: Vec::new(),
            end: None,
        };
        let rest = reply.bytes[head_end + 4..].to_vec();
        reader.take(&rest);
        Ok(reader)
    }

    /// Complete events received.
    pub fn events(&self) -> usize {
        self.arrivals.len()
    }

    /// Body bytes received that do not make a whole event yet.
    pub fn partial_bytes(&self) -> usize {
        self.body_len % self.event_len
    }

    /// Reads until the stream ends or nothing arrives for `idle`; stores the
    /// number of complete events in `progress` as they come. Returns how the
    /// stream ended (`None`: it went quiet).
    pub fn read_to_end(
        &mut self,
        idle: Duration,
        progress: &std::sync::atomic::AtomicUsize,
    ) -> Option<End> {
        // A burst that never runs out: no pause, and no one to hurry it.
        let never = std::sync::atomic::AtomicBool::new(false);
        self.read_in_bursts(usize::MAX, Duration::ZERO, &never, idle, progress)
    }

    /// Reads like a slow client: `burst` bytes, then a pause of `pause`
    /// (the client's pace, not a synchronisation), and again, until `hurry`
    /// is set, the stream ends, or nothing arrives for `idle`. It never
    /// takes more than `burst` bytes per `pause`. Stores the number of
    /// complete events in `progress` as they come. Returns how the stream
    /// ended, if it did.
    pub fn read_in_bursts(
        &mut self,
        burst: usize,
        pause: Duration,
        hurry: &std::sync::atomic::AtomicBool,
        idle: Duration,
        progress: &std::sync::atomic::AtomicUsize,
    ) -> Option<End> {
        let mut piece = vec![0u8; 64 * 1024];
        self.stream
            .set_read_timeout(Some(idle))
            .expect("set the read timeout");
        progress.store(self.events(), std::sync::atomic::Ordering::Release);
        let mut left = burst;
        while self.end.is_none() && !hurry.load(std::sync::atomic::Ordering::Acquire) {
            let want = left.min(piece.len());
            match self.stream.read(&mut piece[..want]) {
                Ok(0) => self.end = Some(End::Eof),
                Ok(n) => {
                    self.take(&piece[..n]);
                    progress.store(self.events(), std::sync::atomic::Ordering::Release);
                    left -= n;
                    if left == 0 {
                        std::thread::sleep(pause);
                        left = burst;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return None;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => self.end = Some(End::Reset),
                Err(e) => panic!("reading the stream failed: {e}"),
            }
        }
        self.end
    }

    /// Takes bytes from the socket: decodes the framing, hands the body on.
    fn take(&mut self, mut bytes: &[u8]) {
        if !self.chunked {
            self.body(bytes);
            return;
        }
        while !bytes.is_empty() {
            match self.chunk {
                ChunkState::Size | ChunkState::Trailer => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if b != b'\n' {
                        self.line.push(b);
                        assert!(self.line.len() < 64, "a runaway chunk-size line");
                        continue;
                    }
                    let line = String::from_utf8_lossy(&self.line).trim().to_owned();
                    self.line.clear();
                    if self.chunk == ChunkState::Trailer {
                        if line.is_empty() {
                            self.chunk = ChunkState::Done;
                            self.end = Some(End::FinalChunk);
                        }
                        continue;
                    }
                    let size = usize::from_str_radix(&line, 16)
                        .unwrap_or_else(|_| panic!("bad chunk-size line {line:?}"));
                    self.chunk = if size == 0 {
                        ChunkState::Trailer
                    } else {
                        ChunkState::Data(size)
                    };
                }
                ChunkState::Data(left) => {
                    let take = left.min(bytes.len());
                    self.body(&bytes[..take]);
                    bytes = &bytes[take..];
                    self.chunk = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    match b {
                        b'\r' => {}
                        b'\n' => self.chunk = ChunkState::Size,
                        _ => panic!("chunk data not followed by CRLF"),
                    }
                }
                ChunkState::Done => panic!("{} bytes after the final chunk", bytes.len()),
            }
        }
    }

    /// Takes body bytes: checks each event's first bytes and its blank line,
    /// counts whole events.
    fn body(&mut self, bytes: &[u8]) {
        let mut at = 0;
        while at < bytes.len() {
            let offset = self.body_len % self.event_len;
            let seq = self.body_len / self.event_len;
            let take = (self.event_len - offset).min(bytes.len() - at);
            let piece = &bytes[at..at + take];
            if offset < FIXED_PREFIX {
                let want = FIXED_PREFIX - offset;
                self.prefix
                    .extend_from_slice(&piece[..want.min(piece.len())]);
                if self.prefix.len() == FIXED_PREFIX {
                    let expected = format!("data: {seq:010}");
                    assert_eq!(
                        String::from_utf8_lossy(&self.prefix),
                        expected,
                        "event {seq} begins wrong (payload {} bytes)",
                        self.payload_len
                    );
                }
            }
            // The event's last two bytes: the LF that ends the data line
            // and the blank line.
            for end in [self.event_len - 2, self.event_len - 1] {
                if (offset..offset + take).contains(&end) {
                    assert_eq!(
                        piece[end - offset],
                        b'\n',
                        "event {seq} does not end with a blank line"
                    );
                }
            }
            self.body_len += take;
            at += take;
            if offset + take == self.event_len {
                self.prefix.clear();
                self.arrivals.push(Instant::now());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Running one test of this binary in a child process
// ---------------------------------------------------------------------------

/// What a child test process did.
#[derive(Debug)]
pub struct ChildRun {
    /// `None` when it was killed at the deadline.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl ChildRun {
    /// Whether the child test ran and passed.
    pub fn passed(&self, test: &str) -> bool {
        self.status.is_some_and(|s| s.success())
            && self.stdout.contains(&format!("test {test} ... ok"))
            && self.stdout.contains("1 passed")
    }
}

/// Runs the `#[ignore]`d test `test` of this test binary in a child process
/// (`--exact <test> --ignored --nocapture`), through
/// `sh -c 'ulimit -n <nofile> && exec ...'` when `nofile` is given. Kills it
/// when it runs past `timeout`.
pub fn run_child_test(test: &str, nofile: Option<u32>, timeout: Duration) -> ChildRun {
    run_child_test_with(test, nofile, &[], timeout)
}

/// [`run_child_test`], with these environment variables set in the child.
pub fn run_child_test_with(
    test: &str,
    nofile: Option<u32>,
    env: &[(&str, &str)],
    timeout: Duration,
) -> ChildRun {
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("this test binary's path");
    let mut command = match nofile {
        Some(limit) => {
            let mut command = Command::new("sh");
            command
                .arg("-c")
                .arg(format!(
                    "ulimit -n {limit} && exec \"$0\" --exact \"$1\" --ignored --nocapture --test-threads=1"
                ))
                .arg(&exe)
                .arg(test);
            command
        }
        None => {
            let mut command = Command::new(&exe);
            command.args([
                "--exact",
                test,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]);
            command
        }
    };
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the child test process");
    let mut out = child.stdout.take().expect("child stdout");
    let mut err = child.stderr.take().expect("child stderr");
    let out_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let mut status = None;
    wait_until(timeout, || {
        status = child.try_wait().expect("wait for the child");
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    ChildRun {
        status,
        stdout: out_reader.join().expect("the stdout reader panicked"),
        stderr: err_reader.join().expect("the stderr reader panicked"),
    }
}

/// Reads events from a subscription until `n` have been parsed.
pub fn sub_events(
    sub: &sse_server::Subscription,
    parser: &mut EventParser,
    n: usize,
) -> Vec<ParsedEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = sub
            .recv_timeout(Duration::from_secs(10))
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("only {} of {n} events came", out.len()));
        out.extend(parser.feed(frame.as_bytes()));
    }
    assert_eq!(out.len(), n, "no more events than expected");
    out
}

pub fn datas(events: &[ParsedEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}

/// After shutdown, every public method of the hub gives its documented
/// answer: every one that can fail returns `Closed` (`send_to` too, for the
/// ids of clients connected before the shutdown and for any other), `serve`
/// answers `503` with `Retry-After` whatever the method (checked over a
/// real `tiny_http` server and socket), binding a server is refused, a
/// second shutdown returns `Ok` at once, and the counters stay readable
/// with no client registered and nothing counted as published.
pub fn assert_refuses_everything(hub: &sse_server::Hub, former_clients: &[sse_server::ClientId]) {
    use sse_server::{ClientId, Error, Event, Server, SubscribeOptions, tiny_http};
    let before = hub.stats();
    assert!(hub.is_closed());

    assert!(matches!(hub.notify("late"), Err(Error::Closed)));
    let late = Event::new("late");
    assert!(matches!(hub.publish(&late), Err(Error::Closed)));
    assert!(matches!(hub.publish_to("topic", &late), Err(Error::Closed)));
    let never_used = ClientId::new(u64::MAX);
    for &id in former_clients.iter().chain([&never_used]) {
        let sent = hub.send_to(id, &late);
        assert!(
            matches!(sent, Err(Error::Closed)),
            "send_to({id}) after shutdown: {sent:?}"
        );
    }
    assert!(matches!(hub.subscribe(), Err(Error::Closed)));
    let options = SubscribeOptions::new()
        .topics(["topic"])
        .last_event_id("1")
        .id(ClientId::new(1 << 63));
    assert!(matches!(hub.subscribe_with(options), Err(Error::Closed)));
    assert!(matches!(
        Server::bind("127.0.0.1:0", hub),
        Err(Error::Closed)
    ));
    assert!(matches!(
        Server::builder(hub)
            .path("/stream")
            .fallback(|_| {})
            .bind("127.0.0.1:0"),
        Err(Error::Closed)
    ));

    // `serve`, with requests from a real client through a server of our own.
    let http = tiny_http::Server::http("127.0.0.1:0").expect("bind a tiny_http server");
    let addr = http
        .server_addr()
        .to_ip()
        .expect("a tiny_http server on an IP address");
    // An event-stream request is told to come back (a browser would give up
    // for good on a 503); the others get 503.
    for (method, accept) in [
        ("GET", "text/event-stream"),
        ("GET", "*/*"),
        ("HEAD", "*/*"),
        ("OPTIONS", "*/*"),
    ] {
        let mut socket = raw_connect(addr);
        let request =
            format!("{method} /events HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
        socket
            .write_all(request.as_bytes())
            .expect("send the request");
        let request = http
            .recv_timeout(Duration::from_secs(10))
            .expect("tiny_http receives")
            .unwrap_or_else(|| panic!("{method}: no request reached tiny_http"));
        let served = hub.serve(request);
        assert!(
            matches!(served, Err(Error::Closed)),
            "serve({method}) after shutdown: {served:?}"
        );
        if accept == "text/event-stream" {
            let reply = read_raw(&mut socket, Duration::from_secs(10), |bytes| {
                find(bytes, b"data: shutting-down\n\n").is_some()
            });
            let text = reply.text();
            assert!(
                text.starts_with("HTTP/1.1 200 ") && text.contains("event: sse-busy\n"),
                "{method} for an event stream after shutdown: {text:?}"
            );
            continue;
        }
        let reply = read_raw(&mut socket, Duration::from_secs(10), |bytes| {
            find(bytes, b"\r\n\r\n").is_some()
        });
        let text = reply.text();
        assert!(
            text.starts_with("HTTP/1.1 503 "),
            "{method} after shutdown: {text:?}"
        );
        assert!(
            text.to_ascii_lowercase().contains("\r\nretry-after: 5\r\n"),
            "{method} after shutdown: {text:?}"
        );
    }

    let started = Instant::now();
    assert!(
        hub.shutdown().is_ok(),
        "a second shutdown returns Ok at once"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let after = hub.stats();
    assert_eq!(after.clients, 0, "{after:?}");
    assert_eq!(after.published, before.published, "nothing more published");
    assert_eq!(
        after.rejected,
        before.rejected + 4,
        "each request served after shutdown was rejected"
    );
    assert!(hub.clients().is_empty(), "{:?}", hub.clients());
    for &id in former_clients.iter().chain([&never_used]) {
        assert_eq!(hub.client_stats(id), None, "client {id}");
    }
    assert!(hub.is_closed());
}
