//! Raw HTTP: connections with no client in the way, and taking replies
//! apart by hand.

use std::io::{self, ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::chunked::{ChunkDecoder, ChunkError, Piece};
use super::client::End;
use super::wait::ms;

/// One read from `stream`, waiting until `deadline` at most (and at least
/// 1 ms); `None` once the deadline has passed.
pub fn read_before(
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

/// Makes closing `socket` send a reset (`SO_LINGER` 0) rather than a FIN.
pub fn reset_on_close(socket: &TcpStream) {
    socket2::SockRef::from(socket)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

/// A TCP connection to `addr` with a write timeout, for raw requests.
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

/// Decodes a chunked body at the start of `bytes`: the data of its whole
/// chunks, whether the final chunk (and its blank line) arrived, and the
/// bytes after the body (or, while it has not ended, those of the chunk
/// not yet whole).
pub fn dechunk(bytes: &[u8]) -> Result<(Vec<u8>, bool, &[u8]), ChunkError> {
    let mut decoder = ChunkDecoder::new();
    let mut input = bytes;
    let mut data = Vec::new();
    // How much of `data` whole chunks hold, and where the next chunk starts.
    let (mut whole, mut rest) = (0, bytes);
    while let Some(piece) = decoder.next_piece(&mut input)? {
        match piece {
            Piece::Start(_) => {}
            Piece::Data(more) => data.extend_from_slice(more),
            Piece::End => (whole, rest) = (data.len(), input),
            Piece::Last => return Ok((data, true, input)),
        }
    }
    data.truncate(whole);
    Ok((data, false, rest))
}

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
