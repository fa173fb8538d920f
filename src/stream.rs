//! The writer thread of one event-stream connection: headers, framing,
//! coalescing, keep-alive.

use std::io::{self, ErrorKind, Write};
use std::sync::atomic::Ordering;
use std::time::Instant;

use crossbeam_channel::RecvTimeoutError;

use crate::Frame;
use crate::hub::Subscription;

/// Stack reserved for each writer thread. Only the pages a thread touches
/// cost memory; the writer's deepest path (a write through `tiny_http`'s
/// writer, a log line) stays well inside this.
pub(crate) const STACK_SIZE: usize = 128 * 1024;

/// A writer drains what is queued for its client into one write of at most
/// about this many bytes (one frame more can overshoot it).
const WRITE_BYTES: usize = 64 * 1024;

/// Room kept at the front of the write buffer for a chunk-size line
/// (`ffffffff\r\n`).
const CHUNK_HEAD: usize = 10;

const HEAD_11: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\
Transfer-Encoding: chunked\r\n\r\n";

const HEAD_10: &[u8] = b"HTTP/1.0 200 OK\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\r\n";

/// The line sent after `keep_alive` of silence. A comment line with no blank
/// line after it: every client ignores it, and none reads it as an empty
/// message (some clients do for `:\n\n`).
const KEEP_ALIVE: &[u8] = b":\n";

const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// Why a stream ended.
#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The hub shut down or dropped the client.
    Finished,
    /// A write failed: the client went away.
    WriteFailed,
    /// The client took no bytes for the write timeout.
    TimedOut,
}

pub(crate) fn run(request: tiny_http::Request, subscription: Subscription) {
    let chunked = *request.http_version() != tiny_http::HTTPVersion(1, 0);
    let remote = request.remote_addr().copied();
    let id = subscription.id();
    let mut stream = Stream {
        writer: request.into_writer(),
        subscription,
        chunked,
        out: Vec::with_capacity(256),
        reported_missed: 0,
    };
    log::debug!("client {id} connected from {remote:?}");
    let ending = stream.run();
    match ending {
        Ending::Finished
            if stream
                .subscription
                .counters()
                .evicted
                .load(Ordering::Relaxed) =>
        {
            log::debug!("client {id} evicted: too slow, or too many requests behind its stream")
        }
        Ending::Finished => log::debug!("client {id} stream ended"),
        Ending::WriteFailed => log::debug!("client {id} went away"),
        Ending::TimedOut => log::debug!("client {id} stopped reading: write timed out"),
    }
}

struct Stream {
    writer: Box<dyn Write + Send>,
    subscription: Subscription,
    chunked: bool,
    out: Vec<u8>,
    /// Missed events already told to the client.
    reported_missed: u64,
}

impl Stream {
    fn run(&mut self) -> Ending {
        let head = if self.chunked { HEAD_11 } else { HEAD_10 };
        if let Err(e) = self.send_raw(head) {
            return ending_of(&e);
        }
        let keep_alive = self.subscription.shared().config.keep_alive;
        loop {
            let first = match keep_alive {
                Some(interval) => self.subscription.receiver().recv_timeout(interval),
                None => self
                    .subscription
                    .receiver()
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            self.begin();
            let mut events = 0;
            match first {
                Ok(frame) => {
                    self.report_missed();
                    events += self.append(&frame);
                    while self.out.len() < WRITE_BYTES {
                        match self.subscription.receiver().try_recv() {
                            Ok(frame) => events += self.append(&frame),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.out.extend_from_slice(KEEP_ALIVE),
                Err(RecvTimeoutError::Disconnected) => return self.finish(),
            }
            if let Err(e) = self.send_buffered() {
                return ending_of(&e);
            }
            self.subscription
                .counters()
                .delivered
                .fetch_add(events as u64, Ordering::Relaxed);
            if self.out.capacity() > 4 * WRITE_BYTES {
                self.out = Vec::with_capacity(256);
            }
        }
    }

    /// Starts a new write: empties the buffer and leaves room for the chunk
    /// head.
    fn begin(&mut self) {
        self.out.clear();
        if self.chunked {
            self.out.resize(CHUNK_HEAD, 0);
        }
    }

    /// Tells the client, in a comment line, how many events it missed since
    /// the last time, if any.
    fn report_missed(&mut self) {
        let missed = self.subscription.missed();
        if missed > self.reported_missed {
            let _ = writeln!(
                self.out,
                ": missed {} events",
                missed - self.reported_missed
            );
            self.reported_missed = missed;
        }
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

    fn finish(&mut self) -> Ending {
        match self.chunked {
            true => self
                .send_raw(LAST_CHUNK)
                .map_or_else(|e| ending_of(&e), |()| Ending::Finished),
            false => Ending::Finished,
        }
    }

    /// Writes and flushes `bytes`. A write that makes no progress (the
    /// socket's send timeout fired) is retried until the client has taken
    /// nothing for the write timeout, or at once gives up while the hub is
    /// shutting down.
    fn send_raw(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        let mut stalled = None;
        while !bytes.is_empty() {
            match self.writer.write(bytes) {
                Ok(0) => return Err(ErrorKind::WriteZero.into()),
                Ok(n) => {
                    bytes = &bytes[n..];
                    stalled = None;
                }
                Err(e) => self.retry_or_fail(e, &mut stalled)?,
            }
        }
        loop {
            match self.writer.flush() {
                Ok(()) => return Ok(()),
                Err(e) => self.retry_or_fail(e, &mut stalled)?,
            }
        }
    }

    fn retry_or_fail(&self, e: io::Error, stalled: &mut Option<Instant>) -> io::Result<()> {
        match e.kind() {
            ErrorKind::Interrupted => Ok(()),
            ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                let since = *stalled.get_or_insert_with(Instant::now);
                let shared = self.subscription.shared();
                if shared.closing.load(Ordering::Acquire)
                    || since.elapsed() >= shared.write_timeout()
                {
                    Err(ErrorKind::TimedOut.into())
                } else {
                    Ok(())
                }
            }
            _ => Err(e),
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
    if e.kind() == ErrorKind::TimedOut {
        Ending::TimedOut
    } else {
        Ending::WriteFailed
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
    }
}
