//! One SSE client: the handshake (at most [`IN_FLIGHT`] at once across all
//! clients, [`RETRIES`] retries), then reading its stream until told to stop,
//! counting events and their latencies. The stream is handed back still open.

use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::http::{self, Body};
use crate::sse;

/// Handshakes in flight at once, so a 128-deep listen backlog never overflows.
pub const IN_FLIGHT: usize = 64;
/// Retries of a failed handshake, per client.
pub const RETRIES: u32 = 5;
/// Longest one handshake attempt may take.
const ATTEMPT: Duration = Duration::from_secs(10);

/// What all clients share.
pub struct Shared {
    pub addr: SocketAddr,
    /// Events published (M) and their data size (B).
    pub events: u64,
    pub size: usize,
    /// Handshakes give up at this instant.
    pub connect_deadline: Instant,
    pub handshakes: Semaphore,
    /// Events delivered so far, all clients together.
    pub delivered: AtomicU64,
    /// Nanoseconds from `origin` to the last read that completed an event.
    pub last_event_ns: AtomicU64,
    pub origin: Instant,
    /// Clients that have seen the last event.
    pub complete: AtomicUsize,
    pub first_error: Mutex<Option<String>>,
}

impl Shared {
    /// Keeps the first error message of the run.
    pub fn error(&self, message: String) {
        let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(message);
    }
}

/// What one client saw.
#[derive(Default)]
pub struct Tally {
    pub delivered: u64,
    /// Latency of each delivered event, µs.
    pub latencies: Vec<u32>,
    pub complete: bool,
    pub out_of_order: u64,
    pub bad_data: u64,
    pub seq_out_of_range: u64,
    pub eof_before_done: bool,
    pub read_error: bool,
    pub body_error: bool,
    pub not_event_stream: bool,
    pub connect_failed: bool,
    last_seq: Option<u64>,
}

thread_local! {
    /// The read buffer every client on this thread uses in turn: a client owns
    /// no buffer while it waits for data.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 256 * 1024]);
}

/// Runs one client: reports its handshake on `ready` (`true`: streaming),
/// reads until `stop` changes, returns what it saw and its open stream.
pub async fn run(
    shared: &Shared,
    ready: mpsc::UnboundedSender<bool>,
    mut stop: watch::Receiver<bool>,
) -> (Tally, Option<TcpStream>) {
    let mut tally = Tally::default();
    let (stream, mut body, leftover) = match connect(shared).await {
        Ok(connected) => connected,
        Err(failure) => {
            match failure {
                Failure::Io(e) => {
                    tally.connect_failed = true;
                    shared.error(format!("connect: {e}"));
                }
                Failure::NotEventStream(e) => {
                    tally.not_event_stream = true;
                    shared.error(format!("not an event stream: {e}"));
                }
            }
            let _ = ready.send(false);
            return (tally, None);
        }
    };
    let _ = ready.send(true);
    let mut parser = sse::Parser::default();
    if !feed(shared, &mut tally, &mut body, &mut parser, &leftover) {
        return (tally, Some(stream));
    }
    let stopped = stop.changed();
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            _ = &mut stopped => break,
            readable = stream.readable() => if let Err(e) = readable {
                tally.read_error = true;
                shared.error(format!("read: {e}"));
                break;
            }
        }
        let keep_going = BUF.with_borrow_mut(|buf| match stream.try_read(buf) {
            Ok(0) => {
                tally.eof_before_done = true;
                shared.error("stream ended before the run did".into());
                false
            }
            Ok(n) => feed(shared, &mut tally, &mut body, &mut parser, &buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(e) => {
                tally.read_error = true;
                shared.error(format!("read: {e}"));
                false
            }
        });
        if !keep_going {
            break;
        }
    }
    (tally, Some(stream))
}

/// Feeds the bytes of one read; `false` when the stream is over for good.
fn feed(
    shared: &Shared,
    tally: &mut Tally,
    body: &mut Body,
    parser: &mut sse::Parser,
    bytes: &[u8],
) -> bool {
    if bytes.is_empty() {
        return true;
    }
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let before = tally.delivered;
    let result = body.feed(bytes, |chunk| {
        parser.feed(chunk, |head, len| event(shared, tally, head, len, now_ns));
    });
    let new = tally.delivered - before;
    if new > 0 {
        shared.delivered.fetch_add(new, Ordering::Relaxed);
        let at = shared.origin.elapsed().as_nanos() as u64;
        shared.last_event_ns.fetch_max(at, Ordering::Relaxed);
    }
    match result {
        Ok(false) => true,
        Ok(true) => {
            tally.eof_before_done = true;
            shared.error("response body ended before the run did".into());
            false
        }
        Err(e) => {
            tally.body_error = true;
            shared.error(format!("body: {e}"));
            false
        }
    }
}

/// Counts one event whose data starts with `head` and is `len` bytes long.
fn event(shared: &Shared, tally: &mut Tally, head: &[u8], len: usize, now_ns: u64) {
    let Some((seq, sent_ns)) = sse::payload(head, len, shared.size) else {
        tally.bad_data += 1;
        let shown = String::from_utf8_lossy(&head[..head.len().min(40)]).into_owned();
        shared.error(format!("bad data ({len} bytes): {shown:?}"));
        return;
    };
    if seq >= shared.events {
        tally.seq_out_of_range += 1;
        shared.error(format!("seq {seq} out of range"));
        return;
    }
    tally.delivered += 1;
    if tally.last_seq.is_some_and(|last| seq <= last) {
        tally.out_of_order += 1;
    }
    tally.last_seq = Some(seq);
    let micros = now_ns.saturating_sub(sent_ns) / 1000;
    tally.latencies.push(micros.min(u64::from(u32::MAX)) as u32);
    if seq == shared.events - 1 && !tally.complete {
        tally.complete = true;
        shared.complete.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a client never got its stream.
enum Failure {
    Io(String),
    NotEventStream(String),
}

/// The handshake, retried: the stream, its body decoder and any body bytes
/// that came with the head.
async fn connect(shared: &Shared) -> Result<(TcpStream, Body, Vec<u8>), Failure> {
    let mut last = Failure::Io("connect deadline passed before the first attempt".into());
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 * u64::from(attempt))).await;
        }
        // The attempt's clock starts once it may go: waiting for a permit
        // is bounded by the connect deadline only.
        let connect_deadline = shared.connect_deadline.into();
        let permit = tokio::time::timeout_at(connect_deadline, shared.handshakes.acquire()).await;
        let Ok(Ok(_permit)) = permit else {
            last = Failure::Io("connect deadline passed".into());
            break;
        };
        let deadline = shared.connect_deadline.min(Instant::now() + ATTEMPT);
        let attempt = tokio::time::timeout_at(deadline.into(), handshake(shared.addr)).await;
        match attempt {
            Ok(Ok(connected)) => return Ok(connected),
            Ok(Err(failure)) => last = failure,
            Err(_) => last = Failure::Io(format!("no response head within {ATTEMPT:?}")),
        }
    }
    Err(last)
}

/// One attempt: connect, `GET /events`, read and check the response head.
async fn handshake(addr: SocketAddr) -> Result<(TcpStream, Body, Vec<u8>), Failure> {
    let io = |e: std::io::Error| Failure::Io(e.to_string());
    let mut stream = TcpStream::connect(addr).await.map_err(io)?;
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await.map_err(io)? == 0 {
            return Err(Failure::Io(
                "connection closed before the response head".into(),
            ));
        }
        match http::parse_head(&buf) {
            Err(e) => return Err(Failure::NotEventStream(e)),
            Ok(None) if buf.len() > http::MAX_HEAD => {
                return Err(Failure::NotEventStream("response head too long".into()));
            }
            Ok(None) => continue,
            Ok(Some(head)) => {
                if head.status != 200 {
                    return Err(Failure::NotEventStream(format!("status {}", head.status)));
                }
                if !head.content_type.starts_with("text/event-stream") {
                    let shown = head.content_type;
                    return Err(Failure::NotEventStream(format!("Content-Type {shown:?}")));
                }
                let leftover = buf[head.len..].to_vec();
                return Ok((stream, head.body, leftover));
            }
        }
    }
}
