//! Reading an event stream: an incremental parser that follows the WHATWG
//! rules ("Interpreting an event stream", HTML Living Standard) exactly.
//!
//! It is fed bytes, in pieces of any size, and hands back each event the
//! way a browser's `EventSource` dispatches it: its type, its data, the
//! stream's last event id and reconnection time. It needs no network: a
//! program with a transport of its own (or a test) feeds it what it reads.
//!
//! * The stream is UTF-8; one leading byte order mark is skipped (also when
//!   it arrives split across reads); invalid bytes become U+FFFD, never a
//!   panic.
//! * CR, LF and CRLF all end a line, also when a CRLF is split across
//!   reads.
//! * Fields `data`, `event`, `id` and `retry`; one space after the colon is
//!   dropped; lines starting with `:` are comments; other fields are
//!   ignored. An `id` holding NUL is ignored; `retry` counts only when it
//!   is all ASCII digits (a number past `u64` is taken as `u64::MAX`).
//! * A blank line dispatches the event; a block with no `data` line is not
//!   dispatched, but its `id` still sets the last event id, which persists
//!   from event to event until an `id` changes it (an empty `id` resets it).
//! * What is pending when the stream ends is discarded
//!   ([`EventParser::has_pending`] tells whether anything is).
//!
//! # Examples
//!
//! ```
//! use sse_server::parse::EventParser;
//!
//! let mut parser = EventParser::new();
//! assert!(parser.feed(b"event: greeting\nid: 7\ndata: hel").is_empty());
//! let events = parser.feed(b"lo\r\n\r\n");
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event_type, "greeting");
//! assert_eq!(events[0].data, "hello");
//! assert_eq!(events[0].last_event_id, "7");
//!
//! // Borrowed, with no allocation per event:
//! let mut count = 0;
//! parser.feed_with(b"data: a\n\ndata: b\n\n", |event| {
//!     assert_eq!(event.last_event_id, "7");
//!     count += 1;
//! });
//! assert_eq!(count, 2);
//! ```

use std::borrow::Cow;

/// The byte order mark, skipped once at the start of the stream.
const BOM: &str = "\u{feff}";

/// One dispatched event, as an `EventSource` would see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// One dispatched event, borrowed from the parser: what
/// [`EventParser::feed_with`] hands its callback, with no allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    /// The event type (`message` when no `event:` field was given).
    pub event_type: &'a str,
    /// The data, lines joined with LF, the last LF removed.
    pub data: &'a str,
    /// The stream's last event id at dispatch.
    pub last_event_id: &'a str,
    /// The stream's reconnection time in ms at dispatch.
    pub retry: Option<u64>,
}

impl EventRef<'_> {
    /// The event, owned.
    pub fn to_parsed(self) -> ParsedEvent {
        ParsedEvent {
            event_type: self.event_type.to_owned(),
            data: self.data.to_owned(),
            last_event_id: self.last_event_id.to_owned(),
            retry: self.retry,
        }
    }
}

/// An incremental event-stream parser: feed it bytes in pieces of any size.
/// Its buffers are kept from event to event, so a long stream costs no
/// allocation per event through [`feed_with`](EventParser::feed_with).
#[derive(Debug, Default)]
pub struct EventParser {
    /// The start of a line whose end has not come yet.
    line: Vec<u8>,
    /// The previous byte was a CR that ended a line: an LF right after it
    /// belongs to the same line end.
    after_cr: bool,
    /// At least one line has been processed (the BOM check is done).
    first_line_done: bool,
    /// A `data`, `event` or `id` field has been read since the last blank
    /// line: the block is pending, and is discarded if the stream ends now.
    /// (Not the same as a non-empty buffer: `event:` and `id:` may be empty,
    /// and an empty `id:` still resets the last event id at dispatch.)
    block_pending: bool,
    /// The block being read has set the last event id buffer (which keeps
    /// its value from block to block).
    id_in_block: bool,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    comments: usize,
    blocks: u64,
    /// When set, an `id` it refuses is ignored as one holding NUL is (the
    /// client's: an id it could not send back).
    keep_id: Option<fn(&str) -> bool>,
}

impl EventParser {
    /// A parser at the start of a stream.
    pub fn new() -> EventParser {
        EventParser::default()
    }

    /// A parser that also ignores an `id` that `keep` refuses, the way it
    /// ignores one holding NUL: the last event id stays what it was,
    /// starting from `last_event_id` (the one an earlier stream set).
    #[cfg(feature = "client")]
    pub(crate) fn keeping_ids(keep: fn(&str) -> bool, last_event_id: &str) -> EventParser {
        EventParser {
            keep_id: Some(keep),
            last_event_id_buffer: last_event_id.to_owned(),
            last_event_id: last_event_id.to_owned(),
            ..EventParser::default()
        }
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        self.feed_with(bytes, |event| out.push(event.to_parsed()));
        out
    }

    /// Feeds bytes; hands each event they complete to `on_event`, borrowed.
    pub fn feed_with(&mut self, mut bytes: &[u8], mut on_event: impl FnMut(EventRef<'_>)) {
        while !bytes.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if bytes[0] == b'\n' {
                    bytes = &bytes[1..];
                    continue;
                }
            }
            let Some(end) = bytes.iter().position(|&b| b == b'\r' || b == b'\n') else {
                self.line.extend_from_slice(bytes);
                return;
            };
            self.after_cr = bytes[end] == b'\r';
            if self.line.is_empty() {
                self.process_line(&bytes[..end], &mut on_event);
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&bytes[..end]);
                self.process_line(&line, &mut on_event);
                line.clear();
                self.line = line;
            }
            bytes = &bytes[end + 1..];
        }
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

    /// How many blank lines have ended a block: each is a dispatch, which
    /// sets [`last_event_id`](EventParser::last_event_id) whether or not the
    /// block had data to make an event. Zero means the stream has not set
    /// the last event id yet.
    pub fn blocks(&self) -> u64 {
        self.blocks
    }

    /// The bytes held for the block being read and the line not yet ended:
    /// what a stream that never ends its event makes the parser keep. A
    /// reader of untrusted streams checks it after each
    /// [`feed`](EventParser::feed) to bound its memory.
    ///
    /// ```
    /// use sse_server::parse::EventParser;
    ///
    /// let mut parser = EventParser::new();
    /// parser.feed(b"id: 7\ndata: 12345\ndata: 6");
    /// assert_eq!(parser.pending_bytes(), "7".len() + "12345\n".len() + "data: 6".len());
    /// parser.feed(b"\n\n");
    /// // The id stays the last event id, but nothing is pending.
    /// assert_eq!(parser.pending_bytes(), 0);
    /// assert_eq!(parser.last_event_id(), "7");
    /// ```
    pub fn pending_bytes(&self) -> usize {
        // The id of an event already dispatched stays in its buffer (it is
        // the last event id), but belongs to no pending block.
        let id = if self.id_in_block {
            self.last_event_id_buffer.len()
        } else {
            0
        };
        self.line.len() + self.data.len() + self.event_type.len() + id
    }

    /// True when a partial line, or a `data`, `event` or `id` field not yet
    /// followed by the blank line that dispatches it, is pending: it is
    /// discarded if the stream ends now (a pending `id` never becomes the
    /// last event id). Comments, unknown fields and `retry` (applied at
    /// once) leave nothing pending.
    pub fn has_pending(&self) -> bool {
        // A whole leading BOM waiting for the rest of its line is no data.
        let partial_line =
            !self.line.is_empty() && (self.first_line_done || self.line != BOM.as_bytes());
        partial_line || self.block_pending
    }

    fn process_line(&mut self, mut raw: &[u8], on_event: &mut impl FnMut(EventRef<'_>)) {
        if !self.first_line_done {
            self.first_line_done = true;
            raw = raw.strip_prefix(BOM.as_bytes()).unwrap_or(raw);
        }
        // The stream is decoded as UTF-8 with replacement; line ends are
        // ASCII, so decoding line by line is the same. (Checking first is
        // quicker than the lossy decoding where the line is valid.)
        let line = match std::str::from_utf8(raw) {
            Ok(line) => Cow::Borrowed(line),
            Err(_) => String::from_utf8_lossy(raw),
        };
        if line.is_empty() {
            self.dispatch(on_event);
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
            "event" => {
                self.block_pending = true;
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            "data" => {
                self.block_pending = true;
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored (and one `keep_id` refuses).
            "id" if !value.contains('\0') && self.keep_id.is_none_or(|keep| keep(value)) => {
                self.block_pending = true;
                self.id_in_block = true;
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer.push_str(value);
            }
            // retry counts only when it is all ASCII digits; digits beyond
            // u64 are clamped rather than rejected.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            // Unknown fields, and ids and retries that did not qualify.
            _ => {}
        }
    }

    fn dispatch(&mut self, on_event: &mut impl FnMut(EventRef<'_>)) {
        self.blocks += 1;
        self.last_event_id.clone_from(&self.last_event_id_buffer);
        if !self.data.is_empty() {
            let data = self.data.strip_suffix('\n').unwrap_or(&self.data);
            let event_type = if self.event_type.is_empty() {
                "message"
            } else {
                &self.event_type
            };
            on_event(EventRef {
                event_type,
                data,
                last_event_id: &self.last_event_id,
                retry: self.retry,
            });
        }
        self.data.clear();
        self.event_type.clear();
        self.block_pending = false;
        self.id_in_block = false;
    }
}

/// Parses a whole stream at once: the events it dispatches (what is pending
/// at its end is discarded).
///
/// # Examples
///
/// ```
/// let events = sse_server::parse::parse_all(b"data: a\n\n: a comment\ndata: b\n\n");
/// let data: Vec<&str> = events.iter().map(|event| event.data.as_str()).collect();
/// assert_eq!(data, ["a", "b"]);
/// ```
pub fn parse_all(bytes: &[u8]) -> Vec<ParsedEvent> {
    EventParser::new().feed(bytes)
}
