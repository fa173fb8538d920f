//! The writer thread of one event stream: from the connect hook to the
//! disconnect hook, it registers the client, writes the head, then takes
//! what the hub queued for the client and writes it (coalesced, chunked,
//! with keep-alives) until the stream ends.

use std::io::{self, ErrorKind, Write};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use std::sync::{Arc, Mutex};

use crossbeam_channel::{RecvTimeoutError, Sender};

use crate::client_id::ClientId;
use crate::connect::{
    self, ConnectRequest, Decision, Disconnect, DisconnectReason, MAX_TOPIC_BYTES, MAX_TOPICS,
    Outcome,
};
use crate::counters::{ClientCounters, Rejection};
use crate::doorbell::Doorbell;
use crate::error::Error;
use crate::frame::Frame;
use crate::http::{self, respond_with_cors};
use crate::retry;
use crate::shared::Shared;
use crate::subscription::{SubscribeOptions, Subscription};
use crate::sync::lock;
use crate::tiny_http_fixes::release::Released;

/// Stack reserved for each writer thread. Only the pages a thread touches
/// cost memory; the writer's deepest path (a write through `tiny_http`'s
/// writer, a log line) stays well inside this.
///
/// Each page touched is 4 KiB per client. glibc puts the thread's control
/// block and thread-locals at the top of the stack (about 4.3 KiB on
/// Debian 12's glibc 2.36, so two pages are touched at creation), and in
/// release builds a plain stream's frames fit in what is left of the
/// second page: so the job and the request go to the thread boxed, the
/// registration runs from [`start`] rather than below [`run`]'s frame, and
/// what seldom runs (refusals, the answered registration, building the
/// queue) is out of line. Measured with `perf record -e page-faults -d`
/// on the writer threads (a third page was touched, at 8.02 KiB from the
/// top, in the registration) and the stacks' `Rss` in
/// `/proc/PID/smaps` (12 KiB each before, 8 KiB after;
/// `benches/stack_pages.py` prints them). A stream with an
/// id the connect hook chose, or a replay from Redis, registers the
/// answered way and may touch a third page; so may a debug log line.
pub(crate) const STACK_SIZE: usize = 128 * 1024;

/// A writer drains what is queued for its client into one write of at most
/// about this many bytes (one frame more can overshoot it).
const WRITE_BYTES: usize = 64 * 1024;

/// A write buffer that grew past this is given back after the write.
const KEEP_BUFFER: usize = 16 * 1024;

/// A frame at least this large (one large event, mostly) is written from
/// where the hub keeps it, shared by every client, rather than copied into
/// each writer's buffer: a 10 MiB event sent to 1,000 clients would
/// otherwise need 10 GB of copies at once.
const DIRECT_BYTES: usize = 256 * 1024;

/// Room kept at the front of the write buffer for a chunk-size line: the
/// largest `usize` in hex and CRLF (`ffffffffffffffff\r\n` on 64-bit
/// targets). One event can make a write as large as itself, so a write of
/// 4 GiB or more needs more than eight digits.
const CHUNK_HEAD: usize = 2 * std::mem::size_of::<usize>() + 2;

/// The line sent after `keep_alive` of silence. A comment line with no blank
/// line after it: every client ignores it, and none reads it as an empty
/// message (some clients do for `:\n\n`).
const KEEP_ALIVE: &[u8] = b":\n";

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Why a stream ended, as the writer saw it.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The hub closed the client's queue: shutdown or eviction.
    Finished,
    /// A write failed.
    WriteFailed(ErrorKind),
    /// The watch thread found the client's connection closed or reset.
    PeerClosed,
    /// The client took no bytes for the write timeout.
    TimedOut,
}

/// What a writer thread starts with, boxed, as is the request: the
/// thread's first frames then hold pointers, not copies (see
/// [`STACK_SIZE`]).
pub(crate) struct Job {
    /// The request, kept where the thread that spawns the writer can take
    /// it back to answer it if the thread cannot start.
    pub(crate) slot: Arc<Mutex<Option<Box<tiny_http::Request>>>>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) id: ClientId,
    pub(crate) counters: Arc<ClientCounters>,
    pub(crate) released: Option<Released>,
    pub(crate) remote: Option<SocketAddr>,
    /// Dropped when the writer ends: shutdown waits for every copy.
    pub(crate) alive: Sender<()>,
}

/// A writer thread's body.
#[inline(never)]
pub(crate) fn start(mut job: Box<Job>) {
    let place = Place {
        shared: Arc::clone(&job.shared),
        remote: job.remote,
        counters: Arc::clone(&job.counters),
    };
    // Admitted from here rather than from `run`, so that the registration
    // (the deepest the thread goes) does not sit below `run`'s frame.
    let request = lock(&job.slot).take();
    if let Some(request) = request
        && let Some((request, subscription)) =
            admit(request, job.id, Arc::clone(&job.counters), &job.shared)
    {
        run(request, subscription, &mut job);
    }
    drop(place);
    // Last: shutdown waits until every writer has let go of this.
    let Job { alive, .. } = *job;
    drop(alive);
}

/// A stream's place among the open streams (which `max_clients` counts),
/// given back when its writer ends: also when the writer ends in a panic,
/// since the application's hooks run on it. `tiny_http` can then answer
/// what the client sent behind the stream.
struct Place {
    shared: Arc<Shared>,
    remote: Option<SocketAddr>,
    counters: Arc<ClientCounters>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Some(remote) = self.remote {
            self.shared.streams.close(remote, &self.counters);
        }
    }
}

/// Runs one admitted event stream, to the disconnect hook.
#[inline(never)]
fn run(request: Box<tiny_http::Request>, subscription: Subscription, job: &mut Job) {
    let released = job.released.take();
    let shared = &job.shared;
    let remote = request.remote_addr().copied();
    let cors = shared.config.cors.as_ref();
    let id = subscription.id();
    shared.counters.stream_opened();
    shared.streams.registered(remote, id, &shared.counters);
    let retry_millis = shared
        .config
        .retry
        .map(|retry| retry::jittered_millis(retry, shared.config.retry_jitter, id.get()));
    let head = http::stream_head(&request, cors, retry_millis);
    let mut stream = Stream {
        chunked: http::is_chunked(&request),
        writer: (*request).into_writer(),
        subscription,
        out: Vec::with_capacity(256),
        released,
    };
    log::debug!("client {id} connected from {remote:?}");
    // The watch thread may have found the client gone before it knew the
    // client's id (it then could not remove it from the hub).
    let ending = if stream.peer_closed() {
        Ending::PeerClosed
    } else {
        stream.send_events(&head)
    };
    let counters = Arc::clone(stream.subscription.counters());
    let reason = reason(ending, &counters, shared);
    log::debug!("client {id} left: {reason:?}");
    // Leave the hub, and wait until it has let go of the client, before the
    // hook runs: the hook sees the hub without this client, and the final
    // counts (the hub may have missed the client a few more events since
    // the stream ended).
    let Stream {
        writer,
        subscription,
        released,
        ..
    } = stream;
    // Forget the stream's descriptor numbers before the last one closes and
    // may be reused: a number still known as a stream's is skipped unseen.
    drop(released);
    drop(writer);
    // The stream's response is done: what the client pipelined behind it
    // can be answered, and a new connection from its address is not taken
    // for it while the hook runs (its place is given back after).
    if let Some(remote) = remote {
        shared.streams.ended(remote, &counters);
    }
    subscription.leave();
    // Counted once the hub has let go: a scrape that shows the disconnect
    // no longer counts the client as connected.
    shared.counters.disconnected(&reason);
    if let Some(hook) = &shared.config.on_disconnect {
        hook(&Disconnect {
            id,
            remote_addr: remote,
            reason,
            delivered: counters.delivered.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
        });
    }
}

/// Asks the connect hook about the client, checks its topics and
/// registers it with the hub (with its replay). A client refused on the
/// way has been answered and counted: `None`.
#[inline(never)]
fn admit(
    request: Box<tiny_http::Request>,
    id: ClientId,
    counters: Arc<ClientCounters>,
    shared: &Arc<Shared>,
) -> Option<(Box<tiny_http::Request>, Subscription)> {
    let remote = request.remote_addr().copied();
    let decision = match &shared.config.on_connect {
        Some(hook) => hook(&ConnectRequest { request: &request }),
        None => Decision::accept(),
    };
    let (topics, chosen_id) = match decision.outcome {
        Outcome::Reject(status) => {
            log::debug!("the connect hook refused a client from {remote:?} with {status}");
            turn_away(shared, *request, Rejection::Hook, status, None);
            return None;
        }
        Outcome::Accept { topics, id } => (topics, id),
    };
    let topics = topics.unwrap_or_else(|| ConnectRequest { request: &request }.topics());
    if topics.len() > MAX_TOPICS {
        log::debug!("refusing a client from {remote:?}: {} topics", topics.len());
        let body = format!("at most {MAX_TOPICS} topics\n");
        turn_away(shared, *request, Rejection::TooManyTopics, 400, Some(body));
        return None;
    }
    if let Some(long) = topics.iter().find(|topic| topic.len() > MAX_TOPIC_BYTES) {
        log::debug!(
            "refusing a client from {remote:?}: a topic of {} bytes",
            long.len()
        );
        let body = format!("topics of at most {MAX_TOPIC_BYTES} bytes\n");
        turn_away(shared, *request, Rejection::TopicTooLong, 400, Some(body));
        return None;
    }
    let mut options = SubscribeOptions::new()
        .topics(topics)
        .id(chosen_id.unwrap_or(id));
    options.last_event_id = connect::last_event_id(&request);
    options.counters = Some(counters);
    options.bell = Some(Doorbell::for_current_thread());
    options.unanswered = chosen_id.is_none();
    match Subscription::register(shared, options) {
        Ok(subscription) => Some((request, subscription)),
        Err(Error::IdInUse(taken)) => {
            log::debug!("refusing a client from {remote:?}: id {taken} is in use");
            let body = Some("client id in use\n".to_owned());
            turn_away(shared, *request, Rejection::IdInUse, 409, body);
            None
        }
        Err(e) => {
            http::refuse(*request, e, &shared.config, &shared.counters);
            None
        }
    }
}

/// Answers a client refused on the way in with `status` (and `body`), and
/// counts it. Out of line: the responses it builds would otherwise deepen
/// every writer's stack (see [`STACK_SIZE`]).
#[cold]
#[inline(never)]
fn turn_away(
    shared: &Shared,
    request: tiny_http::Request,
    rejection: Rejection,
    status: u16,
    body: Option<String>,
) {
    shared.counters.reject(rejection);
    let response = match body {
        Some(body) => tiny_http::Response::from_string(body)
            .with_status_code(status)
            .boxed(),
        None => tiny_http::Response::empty(status).boxed(),
    };
    respond_with_cors(shared.config.cors.as_ref(), request, response);
}

/// Why the stream ended, as the disconnect hook is told.
fn reason(ending: Ending, counters: &ClientCounters, shared: &Shared) -> DisconnectReason {
    match ending {
        _ if counters.evicted.load(Ordering::Relaxed) => DisconnectReason::Evicted,
        Ending::PeerClosed => DisconnectReason::Closed,
        Ending::Finished => DisconnectReason::Shutdown,
        Ending::TimedOut if shared.is_closing() => DisconnectReason::Shutdown,
        Ending::TimedOut => DisconnectReason::TimedOut,
        Ending::WriteFailed(
            ErrorKind::BrokenPipe
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::WriteZero,
        ) => DisconnectReason::Closed,
        Ending::WriteFailed(kind) => DisconnectReason::WriteError(kind),
    }
}

struct Stream {
    writer: Box<dyn Write + Send>,
    subscription: Subscription,
    chunked: bool,
    out: Vec<u8>,
    /// Set when `tiny_http`'s reading thread has been let go.
    released: Option<Released>,
}

impl Stream {
    /// Writes `head`, then every frame queued for the client, until the
    /// stream ends.
    fn send_events(&mut self, head: &[u8]) -> Ending {
        if let Err(e) = self.send_raw(head) {
            return ending_of(&e);
        }
        let keep_alive = self.subscription.shared().config.keep_alive;
        let mut waited = false;
        loop {
            let first = self.subscription.wait(keep_alive, !waited);
            waited = true;
            self.begin();
            let mut events = 0;
            // A large frame taken on the way, written after the buffer.
            let mut direct = None;
            match first {
                Ok(frame) => {
                    let mut next = Some(frame);
                    while let Some(frame) = next.take() {
                        if frame.as_bytes().len() >= DIRECT_BYTES {
                            direct = Some(frame);
                            break;
                        }
                        events += self.append(&frame);
                        if self.out.len() < WRITE_BYTES {
                            next = self.subscription.receiver().try_recv().ok();
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.out.extend_from_slice(KEEP_ALIVE),
                Err(RecvTimeoutError::Disconnected) if self.peer_closed() => {
                    return self.peer_gone();
                }
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            if self.out.len() > self.head_room() {
                if let Err(e) = self.send_buffered() {
                    return ending_of(&e);
                }
                self.delivered(events);
            }
            if let Some(frame) = direct {
                if let Err(e) = self.send_direct(frame.as_bytes()) {
                    return ending_of(&e);
                }
                self.delivered(frame.events());
            }
            // A burst grows the buffer; give the memory back rather than
            // keep it for every idle client.
            if self.out.capacity() > KEEP_BUFFER {
                self.out = Vec::with_capacity(256);
            }
        }
    }

    /// The watch thread found the connection closed or reset, or cut by
    /// the kernel: one last write, not retried, tells a client that took
    /// nothing for too long (the kernel's `TCP_USER_TIMEOUT` fired, and its
    /// `ETIMEDOUT` is still pending on the socket) from one that closed.
    /// The write ends a chunked stream properly (for a client that only
    /// half-closed), and is a comment line otherwise.
    fn peer_gone(&mut self) -> Ending {
        let last = if self.chunked { LAST_CHUNK } else { KEEP_ALIVE };
        let written = self.writer.write(last);
        if let Ok(n) = written {
            self.subscription
                .shared()
                .counters
                .written_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
        }
        match written.and_then(|_| self.writer.flush()) {
            Err(e) if e.kind() == ErrorKind::TimedOut => Ending::TimedOut,
            _ => Ending::PeerClosed,
        }
    }

    fn peer_closed(&self) -> bool {
        self.subscription
            .counters()
            .peer_closed
            .load(Ordering::Acquire)
    }

    /// Starts a new write: empties the buffer and leaves room for the chunk
    /// head.
    fn begin(&mut self) {
        self.out.clear();
        self.out.resize(self.head_room(), 0);
    }

    /// The room kept at the front of the buffer for the chunk head.
    fn head_room(&self) -> usize {
        if self.chunked { CHUNK_HEAD } else { 0 }
    }

    /// Counts `events` as delivered to the client.
    fn delivered(&self, events: usize) {
        self.subscription
            .counters()
            .delivered
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    fn append(&mut self, frame: &Frame) -> usize {
        self.out.extend_from_slice(frame.as_bytes());
        frame.events()
    }

    /// Sends the buffer as one chunk (or as it is, for HTTP/1.0) with one
    /// write.
    fn send_buffered(&mut self) -> io::Result<()> {
        let start = if self.chunked {
            let len = self.out.len() - CHUNK_HEAD;
            let start = write_chunk_head(len, &mut self.out[..CHUNK_HEAD]);
            self.out.extend_from_slice(b"\r\n");
            start
        } else {
            0
        };
        let out = std::mem::take(&mut self.out);
        let sent = self.send_raw(&out[start..]);
        self.out = out;
        sent
    }

    /// Sends `bytes` as one chunk (or as they are, for HTTP/1.0) without
    /// copying them: the chunk head, the bytes and the chunk's end each in
    /// a write of their own.
    fn send_direct(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.chunked {
            let mut head = [0u8; CHUNK_HEAD];
            let start = write_chunk_head(bytes.len(), &mut head);
            self.send_raw(&head[start..])?;
        }
        self.send_raw(bytes)?;
        if self.chunked {
            self.send_raw(b"\r\n")?;
        }
        Ok(())
    }

    fn finish(&mut self) -> Ending {
        match self.chunked {
            true => self
                .send_raw(LAST_CHUNK)
                .map_or_else(|e| ending_of(&e), |()| Ending::Finished),
            false => Ending::Finished,
        }
    }

    /// Writes and flushes `bytes`, and counts what the connection took. A
    /// write that makes no progress (the socket's send timeout fired) is
    /// retried until the client has taken nothing for the write timeout, or
    /// at once gives up while the hub is shutting down.
    fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        let mut left = bytes;
        let sent = self.write_all(&mut left);
        // One count per write, whether or not all of it went.
        self.subscription
            .shared()
            .counters
            .written_bytes
            .fetch_add((bytes.len() - left.len()) as u64, Ordering::Relaxed);
        sent
    }

    /// [`send_raw`](Stream::send_raw) without the count: leaves in `bytes`
    /// what was not written.
    fn write_all(&mut self, bytes: &mut &[u8]) -> io::Result<()> {
        let mut stall = Stall::new();
        while !bytes.is_empty() {
            match self.writer.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *bytes = &bytes[n..];
                    stall = Stall::new();
                }
                Err(e) => self.retry_or_fail(e, &mut stall)?,
            }
        }
        loop {
            match self.writer.flush() {
                Ok(()) => return Ok(()),
                Err(e) => self.retry_or_fail(e, &mut stall)?,
            }
        }
    }

    fn retry_or_fail(&self, e: io::Error, stall: &mut Stall) -> io::Result<()> {
        let shared = self.subscription.shared();
        let write_timeout = shared.config.write_timeout;
        match e.kind() {
            ErrorKind::Interrupted => Ok(()),
            // The socket's send timeout ticked: no progress since `stall.since`.
            ErrorKind::WouldBlock => {
                stall.blocked = true;
                if shared.is_closing() || stall.since.elapsed() >= write_timeout {
                    Err(ErrorKind::TimedOut.into())
                } else {
                    Ok(())
                }
            }
            // The connection died while the client had long taken nothing:
            // the kernel's TCP_USER_TIMEOUT, which counts from when the
            // client's window closed and so can beat the writer's clock
            // (which counts from when the socket's send buffer filled),
            // aborted it, and tiny_http's reading thread took the ETIMEDOUT,
            // leaving this write an EPIPE. The client stopped reading, so
            // that is what to report.
            _ if stall.blocked && stall.since.elapsed() >= write_timeout / 2 => {
                Err(ErrorKind::TimedOut.into())
            }
            _ => Err(e),
        }
    }
}

/// How long a write has made no progress.
struct Stall {
    /// The last progress, or the start of the write.
    since: Instant,
    /// Whether the socket's send timeout has fired since then.
    blocked: bool,
}

impl Stall {
    fn new() -> Stall {
        Stall {
            since: Instant::now(),
            blocked: false,
        }
    }
}

/// Writes `len` in hex and CRLF at the end of `head`, returning where the
/// chunk-size line starts. No allocation: this runs for every write.
fn write_chunk_head(mut len: usize, head: &mut [u8]) -> usize {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = head.len() - 2;
    head[at..].copy_from_slice(b"\r\n");
    loop {
        at -= 1;
        head[at] = HEX[len & 0xf];
        len >>= 4;
        if len == 0 {
            return at;
        }
    }
}

fn ending_of(e: &io::Error) -> Ending {
    match e.kind() {
        ErrorKind::TimedOut => Ending::TimedOut,
        kind => Ending::WriteFailed(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_heads() {
        for (len, want) in [
            (0, "0\r\n"),
            (10, "a\r\n"),
            (0x1234, "1234\r\n"),
            (WRITE_BYTES * 4, "40000\r\n"),
        ] {
            let mut head = [0u8; CHUNK_HEAD];
            let start = write_chunk_head(len, &mut head);
            assert_eq!(&head[start..], want.as_bytes());
        }
        let mut head = [0u8; CHUNK_HEAD];
        let start = write_chunk_head(u32::MAX as usize, &mut head);
        assert_eq!(&head[start..], b"ffffffff\r\n");
        // Past four GiB (one event that large makes a write that large),
        // up to the largest length there is.
        let mut head = [0u8; CHUNK_HEAD];
        let start = write_chunk_head(usize::MAX, &mut head);
        let want = format!("{:x}\r\n", usize::MAX);
        assert_eq!(&head[start..], want.as_bytes());
        assert_eq!(start, 0, "the head has room for every digit");
        if let Ok(past_u32) = usize::try_from(1u64 << 32) {
            let mut head = [0u8; CHUNK_HEAD];
            let start = write_chunk_head(past_u32, &mut head);
            assert_eq!(&head[start..], b"100000000\r\n");
        }
    }
}
