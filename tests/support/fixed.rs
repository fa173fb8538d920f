//! A cheap reader for streams of fixed-size events.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::chunked::{ChunkDecoder, Piece};
use super::client::{End, HEAD_TIMEOUT};
use super::raw::{find, read_raw};

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
    chunks: ChunkDecoder,
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
            chunks: ChunkDecoder::new(),
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
    fn take(&mut self, bytes: &[u8]) {
        if !self.chunked {
            self.body(bytes);
            return;
        }
        let mut input = bytes;
        loop {
            match self.chunks.next_piece(&mut input) {
                Ok(Some(Piece::Data(data))) => self.body(data),
                Ok(Some(Piece::Last)) => self.end = Some(End::FinalChunk),
                Ok(Some(Piece::Start(_) | Piece::End)) => {}
                Ok(None) => break,
                Err(e) => panic!("malformed chunked body: {e}"),
            }
        }
        assert!(
            input.is_empty(),
            "{} bytes after the final chunk",
            input.len()
        );
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
