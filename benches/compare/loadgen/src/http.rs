//! The little HTTP/1.1 the loadgen speaks: a response head parser, a body
//! decoder (chunked, `Content-Length` or close-delimited) that hands out body
//! bytes without copying them, and one-shot requests for `/stats` and
//! `/publish`.

use std::net::SocketAddr;
use std::time::Duration;

use memchr::memchr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest response head accepted.
pub const MAX_HEAD: usize = 16 * 1024;

/// A parsed response head.
pub struct Head {
    pub status: u16,
    pub content_type: String,
    pub body: Body,
    /// Bytes the head took, blank line included.
    pub len: usize,
}

/// Parses a response head from the start of `buf`: `Ok(None)` while it is
/// incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let mut pos = 0;
    let mut lines = Vec::new();
    loop {
        let Some(i) = memchr(b'\n', &buf[pos..]) else {
            return Ok(None);
        };
        let line = buf[pos..pos + i]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[pos..pos + i]);
        pos += i + 1;
        if line.is_empty() {
            break;
        }
        lines.push(String::from_utf8_lossy(line).into_owned());
    }
    let status_line = lines.first().ok_or("empty response head")?;
    let mut parts = status_line.split(' ');
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut content_type = String::new();
    let mut body = Body::Close;
    for line in &lines[1..] {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = value.to_ascii_lowercase();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if value.to_ascii_lowercase().contains("chunked") {
                body = Body::Chunked(Chunk::Size { size: 0, digits: 0 });
            }
        } else if name.eq_ignore_ascii_case("content-length") && !matches!(body, Body::Chunked(_)) {
            let n = value
                .parse()
                .map_err(|_| format!("bad Content-Length {value:?}"))?;
            body = Body::Length(n);
        }
    }
    Ok(Some(Head {
        status,
        content_type,
        body,
        len: pos,
    }))
}

/// A response body's framing and where the decoder stands in it.
pub enum Body {
    /// Ends when the connection closes.
    Close,
    /// This many bytes are left.
    Length(u64),
    Chunked(Chunk),
    /// The body has ended (last chunk or `Content-Length` reached).
    Done,
}

/// The state of a chunked body.
pub enum Chunk {
    /// Reading the hex size.
    Size { size: u64, digits: u32 },
    /// Skipping a chunk extension up to the end of the size line.
    Ext { size: u64 },
    /// In a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailer lines up to a blank line.
    Trailer { line_len: usize },
}

impl Body {
    /// Decodes `input`, calling `body` with every run of body bytes. `Ok(true)`
    /// once the body has ended.
    pub fn feed(&mut self, mut input: &[u8], mut body: impl FnMut(&[u8])) -> Result<bool, String> {
        loop {
            match self {
                Body::Done => return Ok(true),
                _ if input.is_empty() => return Ok(false),
                Body::Close => {
                    body(input);
                    return Ok(false);
                }
                Body::Length(left) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    body(&input[..n]);
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Body::Done;
                    }
                }
                Body::Chunked(Chunk::Data(left)) => {
                    let n = (*left).min(input.len() as u64) as usize;
                    body(&input[..n]);
                    input = &input[n..];
                    *left -= n as u64;
                    if *left == 0 {
                        *self = Body::Chunked(Chunk::DataEnd);
                    }
                }
                Body::Chunked(chunk) => {
                    let b = input[0];
                    input = &input[1..];
                    if let Some(next) = chunk.step(b)? {
                        *self = next;
                    }
                }
            }
        }
    }
}

impl Chunk {
    /// One byte of chunk framing; `Some` when the body's state changes.
    fn step(&mut self, b: u8) -> Result<Option<Body>, String> {
        let end_of_size = |size: u64| match size {
            0 => Body::Chunked(Chunk::Trailer { line_len: 0 }),
            n => Body::Chunked(Chunk::Data(n)),
        };
        match self {
            Chunk::Size { size, digits } => match (b as char).to_digit(16) {
                Some(d) if *digits < 15 => {
                    *size = *size * 16 + u64::from(d);
                    *digits += 1;
                }
                Some(_) => return Err("chunk size too large".into()),
                None if *digits == 0 => return Err(format!("bad chunk size byte {b:#04x}")),
                None => match b {
                    b'\r' => {}
                    b'\n' => return Ok(Some(end_of_size(*size))),
                    b';' | b' ' | b'\t' => *self = Chunk::Ext { size: *size },
                    _ => return Err(format!("bad chunk size byte {b:#04x}")),
                },
            },
            Chunk::Ext { size } => {
                if b == b'\n' {
                    return Ok(Some(end_of_size(*size)));
                }
            }
            Chunk::DataEnd => match b {
                b'\r' => {}
                b'\n' => *self = Chunk::Size { size: 0, digits: 0 },
                _ => return Err("chunk data not followed by CRLF".into()),
            },
            Chunk::Trailer { line_len } => match b {
                b'\r' => {}
                b'\n' if *line_len == 0 => return Ok(Some(Body::Done)),
                b'\n' => *line_len = 0,
                _ => *line_len += 1,
            },
            Chunk::Data(_) => unreachable!("data is handled by Body::feed"),
        }
        Ok(None)
    }
}

/// One request on a connection of its own (`Connection: close`): the status
/// and the decoded body, within `limit`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    limit: Duration,
) -> Result<(u16, Vec<u8>), String> {
    tokio::time::timeout(limit, exchange(addr, method, target))
        .await
        .map_err(|_| format!("{method} {target}: no answer within {limit:?}"))?
        .map_err(|e| format!("{method} {target}: {e}"))
}

/// The request and its response, without a time limit.
async fn exchange(addr: SocketAddr, method: &str, target: &str) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::with_capacity(1024);
    let mut head = None;
    let mut out = Vec::new();
    loop {
        let n = stream.read_buf(&mut buf).await.map_err(|e| e.to_string())?;
        if head.is_none() {
            if let Some(h) = parse_head(&buf)? {
                buf.drain(..h.len);
                head = Some(h);
            } else if n == 0 || buf.len() > MAX_HEAD {
                return Err("no complete response head".to_string());
            } else {
                continue;
            }
        }
        let h = head.as_mut().expect("set above");
        let done = h.body.feed(&buf, |bytes| out.extend_from_slice(bytes))?;
        buf.clear();
        if done || n == 0 {
            return Ok((h.status, out));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(head: &[u8], parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut body = parse_head(head).unwrap().unwrap().body;
        let mut out = Vec::new();
        let mut done = false;
        for part in parts {
            done = body.feed(part, |b| out.extend_from_slice(b)).unwrap();
        }
        (out, done)
    }

    #[test]
    fn heads() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n\r\nxx";
        let h = parse_head(wire).unwrap().unwrap();
        assert_eq!((h.status, h.len), (200, wire.len() - 2));
        assert!(h.content_type.starts_with("text/event-stream"));
        assert!(matches!(h.body, Body::Close));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").unwrap().is_none());
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_split_anywhere() {
        let head = b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n";
        let wire = b"5;x=y\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nT: 1\r\n\r\n";
        for cut in 0..wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(
                decode(head, &[a, b]),
                (b"hello 0123456789".to_vec(), true),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn length_and_close() {
        let (out, done) = decode(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n",
            &[b"ab", b"cd"],
        );
        assert_eq!((out, done), (b"abc".to_vec(), true));
        let (out, done) = decode(b"HTTP/1.1 200 OK\r\n\r\n", &[b"ab", b"cd"]);
        assert_eq!((out, done), (b"abcd".to_vec(), false));
    }
}
