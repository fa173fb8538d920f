//! `thread-naive`: one blocking writer thread per client, written by hand.
//!
//! Std only, with the same request handling as `raw-floor` (one accept
//! thread that parses each request itself). Each SSE client (`GET /events`)
//! gets its response head at once, then its own writer thread (64 KiB stack)
//! fed by a bounded `sync_channel` of 128 shared frames. A publish spawns one
//! thread that, holding the client list's lock, `try_send`s each encoded
//! event to every client; a full channel drops that event for that client.
//! The writer does a blocking `recv`, takes whatever else is queued, and
//! sends it all with one `write_all`. No hub thread, and no joining of
//! waiting events into one frame before they are queued.
//!
//! It is in the comparison as what a program that wants one blocking thread
//! per client writes by hand: the baseline a thread-per-client library must
//! beat.
//!
//! Contract: `GET /events`, `POST /publish?count=M&size=B&interval_us=I`,
//! `GET /stats` (see `benches/compare/README.md`). Usage:
//! `thread-naive --addr 127.0.0.1:PORT`; it ends on SIGTERM (default action).

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest accepted `count`.
const MAX_COUNT: u64 = 10_000_000;
/// Largest accepted `size` (bytes of data per event).
const MAX_SIZE: u64 = 1 << 20;
/// Largest accepted `interval_us` (10 s).
const MAX_INTERVAL_US: u64 = 10_000_000;
/// Largest request head (request line + headers) we read.
const MAX_HEAD: usize = 16 * 1024;
/// Largest request body we read and throw away.
const MAX_BODY: usize = 64 * 1024;
/// Frames a client's channel holds before events are dropped for it.
const QUEUE: usize = 128;
/// Stack size of each writer thread.
const WRITER_STACK: usize = 64 * 1024;
/// How long one client may block a write before it is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the accept thread waits for a request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
Connection: close\r\n\r\n";

/// One encoded event, shared by every client's queue.
type Frame = Arc<[u8]>;

/// The registered clients' queues, and how many frames were dropped because
/// a queue was full.
#[derive(Default)]
struct Hub {
    queues: Mutex<Vec<SyncSender<Frame>>>,
    dropped: AtomicU64,
}

type Clients = Arc<Hub>;

fn main() {
    let addr = parse_addr().unwrap_or_else(|| {
        eprintln!("usage: thread-naive --addr 127.0.0.1:PORT");
        std::process::exit(2);
    });
    let listener = TcpListener::bind(&addr).unwrap_or_else(|e| {
        eprintln!("thread-naive: cannot bind {addr}: {e}");
        std::process::exit(1);
    });
    eprintln!("thread-naive: listening on {addr}");

    let clients: Clients = Arc::new(Hub::default());
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                if let Err(e) = handle(stream, &clients) {
                    eprintln!("thread-naive: request failed: {e}");
                }
            }
            Err(e) => {
                eprintln!("thread-naive: accept failed: {e}");
                // EMFILE and friends: don't spin.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The value after `--addr` on the command line.
fn parse_addr() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            return args.next();
        }
    }
    None
}

/// Reads one request from `stream` and answers it.
fn handle(mut stream: TcpStream, clients: &Clients) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let Some(req) = read_request(&mut stream)? else {
        return respond(&mut stream, "400 Bad Request", "bad request\n");
    };
    let path = req.target.split('?').next().unwrap_or("");
    match (req.method.as_str(), path) {
        ("GET", "/events") => {
            stream.write_all(SSE_HEAD)?;
            let (tx, rx) = mpsc::sync_channel(QUEUE);
            // If the thread cannot be spawned, the stream is dropped (closed).
            thread::Builder::new()
                .name("writer".into())
                .stack_size(WRITER_STACK)
                .spawn(move || write_frames(stream, rx))?;
            clients.queues.lock().unwrap().push(tx);
            Ok(())
        }
        ("GET", "/stats") => {
            let n = clients.queues.lock().unwrap().len();
            let dropped = clients.dropped.load(Ordering::Relaxed);
            let body = format!("clients {n}\ndropped {dropped}\n");
            respond(&mut stream, "200 OK", &body)
        }
        ("POST", "/publish") => match parse_publish(&req.target) {
            Some(params) => {
                let clients = Arc::clone(clients);
                thread::Builder::new()
                    .name("publish".into())
                    .spawn(move || publish(params, &clients))?;
                respond(&mut stream, "202 Accepted", "accepted\n")
            }
            None => respond(&mut stream, "400 Bad Request", "bad publish parameters\n"),
        },
        (_, "/events" | "/stats" | "/publish") => respond(
            &mut stream,
            "405 Method Not Allowed",
            "method not allowed\n",
        ),
        _ => respond(&mut stream, "404 Not Found", "not found\n"),
    }
}

struct Request {
    method: String,
    target: String,
}

/// Reads the request head (up to the blank line) and any `Content-Length`
/// body. `Ok(None)` for a malformed or oversized request.
fn read_request(stream: &mut TcpStream) -> io::Result<Option<Request>> {
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
fn respond(stream: &mut TcpStream, status: &str, body: &str) -> io::Result<()> {
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes())
}

struct Publish {
    count: u64,
    size: usize,
    interval_us: u64,
}

/// Parses `count`, `size` and `interval_us` from the query; all required.
fn parse_publish(target: &str) -> Option<Publish> {
    let (_, query) = target.split_once('?')?;
    let (mut count, mut size, mut interval_us) = (None, None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let value: u64 = value.parse().ok()?;
        match key {
            "count" => count = Some(value),
            "size" => size = Some(value),
            "interval_us" => interval_us = Some(value),
            _ => {}
        }
    }
    let (count, size, interval_us) = (count?, size?, interval_us?);
    if count > MAX_COUNT || size > MAX_SIZE || interval_us > MAX_INTERVAL_US {
        return None;
    }
    Some(Publish {
        count,
        size: size as usize,
        interval_us,
    })
}

/// One client's writer: sends everything queued with one `write_all` until
/// the socket fails or the sender is gone.
fn write_frames(mut stream: TcpStream, rx: Receiver<Frame>) {
    let mut out = Vec::new();
    while let Ok(frame) = rx.recv() {
        out.clear();
        out.extend_from_slice(&frame);
        while let Ok(frame) = rx.try_recv() {
            out.extend_from_slice(&frame);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

/// Publishes `count` events paced to `t0 + k * interval`, queueing each one
/// for every client (full queue: dropped for that client) and forgetting
/// clients whose writer has ended.
fn publish(params: Publish, clients: &Clients) {
    let t0 = Instant::now();
    for seq in 0..params.count {
        // At most 10^7 * 10^7 µs: no overflow.
        let deadline = t0 + Duration::from_micros(seq * params.interval_us);
        let now = Instant::now();
        if deadline > now {
            thread::sleep(deadline - now);
        }
        let frame: Frame = encode_event(seq, params.size).into();
        let mut dropped = 0;
        clients
            .queues
            .lock()
            .unwrap()
            .retain(|tx| match tx.try_send(Arc::clone(&frame)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
        clients.dropped.fetch_add(dropped, Ordering::Relaxed);
    }
}

/// `data: <payload>\n\n` for event `seq`, payload as the contract says.
fn encode_event(seq: u64, size: usize) -> Vec<u8> {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("{seq} {ns} ");
    let mut frame = Vec::with_capacity(8 + prefix.len().max(size));
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(prefix.as_bytes());
    frame.resize(frame.len() + size.saturating_sub(prefix.len()), b'x');
    frame.extend_from_slice(b"\n\n");
    frame
}
