//! An incremental decoder for the chunked transfer coding of HTTP/1.1
//! (RFC 9112, section 7.1): feed it a body's bytes in pieces of any size, it
//! gives back the data, says when the final chunk has arrived, and reports
//! malformed framing as an error.
//!
//! Standalone (only `std`), so that a benchmark can include it with
//! `#[path = "../tests/support/chunked.rs"] mod chunked;`.

use std::fmt;

/// The longest chunk-size or trailer line taken, without its CRLF.
const MAX_LINE: usize = 1024;

/// Malformed chunked framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkError(String);

impl fmt::Display for ChunkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ChunkError {}

/// What the decoder found next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// A data chunk of this many bytes begins (its size line was read).
    Start(usize),
    /// Data of the current chunk: a chunk's data may come in several
    /// pieces.
    Data(&'a [u8]),
    /// The current chunk's data and the CRLF after it were read: the bytes
    /// taken so far end between two chunks.
    End,
    /// The final (zero-size) chunk and the trailer after it were read: the
    /// body is complete.
    Last,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    #[default]
    Size,
    /// Reading a chunk's data: this many bytes are left.
    Data(usize),
    /// Expecting the CR after a chunk's data.
    DataCr,
    /// Expecting the LF after a chunk's data.
    DataLf,
    /// Reading the trailer lines after the final chunk, up to a blank one.
    Trailer,
    /// The body is complete.
    Done,
}

/// Decodes one chunked body, fed in pieces of any size.
#[derive(Debug, Default)]
pub struct ChunkDecoder {
    state: State,
    /// The chunk-size or trailer line read so far.
    line: Vec<u8>,
}

impl ChunkDecoder {
    pub fn new() -> ChunkDecoder {
        ChunkDecoder::default()
    }

    /// Whether the final chunk and the trailer have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from the front of `input` and moves `input` past what it
    /// took. Returns the next piece, or `None` when `input` holds no more of
    /// the body: either it is used up (feed the next bytes when they come)
    /// or the body is complete (what is left of `input` comes after it).
    pub fn next_piece<'a>(
        &mut self,
        input: &mut &'a [u8],
    ) -> Result<Option<Piece<'a>>, ChunkError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Data(left) => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let (data, rest) = input.split_at(left.min(input.len()));
                    *input = rest;
                    self.state = match left - data.len() {
                        0 => State::DataCr,
                        left => State::Data(left),
                    };
                    return Ok(Some(Piece::Data(data)));
                }
                State::DataCr | State::DataLf => {
                    let Some((&byte, rest)) = input.split_first() else {
                        return Ok(None);
                    };
                    *input = rest;
                    let (want, next) = match self.state {
                        State::DataCr => (b'\r', State::DataLf),
                        _ => (b'\n', State::Size),
                    };
                    if byte != want {
                        return Err(ChunkError(format!(
                            "chunk data not followed by CRLF but by {:?}",
                            byte as char
                        )));
                    }
                    self.state = next;
                    if next == State::Size {
                        return Ok(Some(Piece::End));
                    }
                }
                State::Size => {
                    if !self.take_line(input)? {
                        return Ok(None);
                    }
                    let size = chunk_size(&self.line);
                    self.line.clear();
                    let size = size?;
                    if size == 0 {
                        self.state = State::Trailer;
                    } else {
                        self.state = State::Data(size);
                        return Ok(Some(Piece::Start(size)));
                    }
                }
                State::Trailer => {
                    if !self.take_line(input)? {
                        return Ok(None);
                    }
                    let blank = self.line.is_empty();
                    self.line.clear();
                    if blank {
                        self.state = State::Done;
                        return Ok(Some(Piece::Last));
                    }
                }
            }
        }
    }

    /// Decodes what `bytes` holds of the body and appends its data to
    /// `body`. Returns how many bytes it took: all of them, unless the body
    /// ended before their end.
    pub fn decode(&mut self, bytes: &[u8], body: &mut Vec<u8>) -> Result<usize, ChunkError> {
        let mut input = bytes;
        while let Some(piece) = self.next_piece(&mut input)? {
            if let Piece::Data(data) = piece {
                body.extend_from_slice(data);
            }
        }
        Ok(bytes.len() - input.len())
    }

    /// Takes the bytes of a CRLF-ended line from `input` into `self.line`;
    /// true once the line is whole (then `self.line` holds it without its
    /// CRLF, for the caller to read and clear).
    fn take_line(&mut self, input: &mut &[u8]) -> Result<bool, ChunkError> {
        let end = input.iter().position(|&b| b == b'\n');
        let (taken, rest) = input.split_at(end.map_or(input.len(), |at| at + 1));
        *input = rest;
        self.line.extend_from_slice(taken);
        if self.line.len() > MAX_LINE + 2 {
            return Err(ChunkError(format!(
                "a chunk-size or trailer line longer than {MAX_LINE} bytes"
            )));
        }
        if end.is_none() {
            return Ok(false);
        }
        if !self.line.ends_with(b"\r\n") {
            return Err(ChunkError(format!(
                "a chunk-size or trailer line ends in a bare LF: {:?}",
                String::from_utf8_lossy(&self.line)
            )));
        }
        self.line.truncate(self.line.len() - 2);
        Ok(true)
    }
}

/// The size a chunk-size line gives (hex digits, then any extensions after
/// a `;`).
fn chunk_size(line: &[u8]) -> Result<usize, ChunkError> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| usize::from_str_radix(digits.trim(), 16).ok())
        .ok_or_else(|| {
            ChunkError(format!(
                "bad chunk-size line {:?}",
                String::from_utf8_lossy(line)
            ))
        })
}
