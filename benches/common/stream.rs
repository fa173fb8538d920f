//! The benches' stream clients: opening an HTTP/1.1 event stream to
//! `/events`, and reading its body (the chunked framing, through the tests'
//! `chunked.rs`, which the including crate declares as `crate::chunked`,
//! then the crate's own event-stream parser); and the nearest-rank
//! percentile they report with.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use sse_server::parse::{EventParser, EventRef};

use crate::chunked::ChunkDecoder;

/// Attempts per client connection.
const CONNECT_ATTEMPTS: usize = 5;

/// Connects, sends the request and reads the response head; gives back the
/// socket, whether the body is chunked, and the body bytes read with the
/// head. Retries a few times (connection refused or reset, a `503`).
pub fn connect_with_retries(addr: SocketAddr) -> Result<(TcpStream, bool, Vec<u8>), String> {
    let mut last_error = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(50 << attempt));
        }
        match handshake(addr) {
            Ok(connected) => return Ok(connected),
            Err(e) => last_error = e,
        }
    }
    Err(format!(
        "connecting to {addr} failed {CONNECT_ATTEMPTS} times; last: {last_error}"
    ))
}

fn handshake(addr: SocketAddr) -> Result<(TcpStream, bool, Vec<u8>), String> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = head.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err("response head longer than 16 KiB".into());
        }
        match socket.read(&mut buf) {
            Ok(0) => return Err("connection closed before the response head".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the response head: {e}")),
        }
    };
    let leftover = head.split_off(end);
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status_line = text.lines().next().unwrap_or("");
    if !status_line.starts_with("http/1.1 200") && !status_line.starts_with("http/1.0 200") {
        return Err(format!("status line {status_line:?}"));
    }
    if !text.contains("content-type: text/event-stream") {
        return Err(format!("not an event stream: {text:?}"));
    }
    let chunked = text.contains("transfer-encoding: chunked");
    Ok((socket, chunked, leftover))
}

/// One stream's body on its way to events: the chunked framing taken off
/// (when the response has it), then the event stream parsed.
pub struct StreamReader {
    /// `None` when the body is not chunked: it runs to the end of the
    /// connection.
    chunks: Option<ChunkDecoder>,
    /// The body bytes of the last read, the buffer kept from read to read.
    body: Vec<u8>,
    events: EventParser,
}

impl StreamReader {
    pub fn new(chunked: bool) -> StreamReader {
        StreamReader {
            chunks: chunked.then(ChunkDecoder::new),
            body: Vec::with_capacity(32 * 1024),
            events: EventParser::new(),
        }
    }

    /// Hands each event that `bytes` completed to `on_event`; gives back
    /// what was wrong with the framing if anything was (the events before
    /// the fault still count).
    pub fn feed(&mut self, bytes: &[u8], on_event: impl FnMut(EventRef<'_>)) -> Option<String> {
        let Some(chunks) = &mut self.chunks else {
            self.events.feed_with(bytes, on_event);
            return None;
        };
        self.body.clear();
        let error = match chunks.decode(bytes, &mut self.body) {
            Ok(taken) if taken < bytes.len() => Some("bytes after the last chunk".to_string()),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        self.events.feed_with(&self.body, on_event);
        error
    }
}

/// The nearest-rank `percent` percentile of `sorted` (0 when empty).
pub fn nearest_rank(sorted: &[u32], percent: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    u64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}
