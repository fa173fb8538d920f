//! A WHATWG-conformant event-stream parser (HTML, "Interpreting an event
//! stream").
//!
//! Standalone (only `std`), so that a benchmark can include it with
//! `#[path = "../tests/support/parser.rs"] mod parser;`.

/// One dispatched event, as an `EventSource` would see it.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// An incremental event-stream parser: feed it bytes in pieces of any size.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    /// The previous byte was a CR that ended a line: an LF right after it
    /// belongs to the same line end.
    after_cr: bool,
    /// At least one line has been processed (the BOM check is done).
    first_line_done: bool,
    data: String,
    event_type: String,
    last_event_id_buffer: String,
    last_event_id: String,
    retry: Option<u64>,
    comments: usize,
}

impl EventParser {
    pub fn new() -> EventParser {
        EventParser::default()
    }

    /// Feeds bytes; returns the events they completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<ParsedEvent> {
        let mut out = Vec::new();
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            match b {
                b'\r' => {
                    self.after_cr = true;
                    self.process_line(&mut out);
                }
                b'\n' => self.process_line(&mut out),
                _ => self.line.push(b),
            }
        }
        out
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

    /// True when a partial line or undispatched fields are pending (they are
    /// discarded if the stream ends now).
    pub fn has_pending(&self) -> bool {
        !self.line.is_empty() || !self.data.is_empty() || !self.event_type.is_empty()
    }

    fn process_line(&mut self, out: &mut Vec<ParsedEvent>) {
        let mut raw = std::mem::take(&mut self.line);
        if !self.first_line_done {
            self.first_line_done = true;
            if raw.starts_with("\u{feff}".as_bytes()) {
                raw.drain(..3);
            }
        }
        // The stream is decoded as UTF-8 with replacement; line ends are
        // ASCII, so decoding line by line is the same.
        let line = String::from_utf8_lossy(&raw);
        if line.is_empty() {
            self.dispatch(out);
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
            "event" => self.event_type = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            // An id containing NUL is ignored.
            "id" if !value.contains('\0') => self.last_event_id_buffer = value.to_owned(),
            // retry counts only when it is all ASCII digits; digits beyond
            // u64 are clamped rather than rejected.
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = Some(value.parse().unwrap_or(u64::MAX));
            }
            // Unknown fields, and ids and retries that did not qualify.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<ParsedEvent>) {
        self.last_event_id = self.last_event_id_buffer.clone();
        if self.data.is_empty() {
            self.event_type.clear();
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        let event_type = std::mem::take(&mut self.event_type);
        out.push(ParsedEvent {
            event_type: if event_type.is_empty() {
                "message".into()
            } else {
                event_type
            },
            data,
            last_event_id: self.last_event_id.clone(),
            retry: self.retry,
        });
    }
}

/// Parses a whole stream at once.
pub fn parse_all(bytes: &[u8]) -> Vec<ParsedEvent> {
    EventParser::new().feed(bytes)
}

/// The data of each event.
pub fn datas(events: &[ParsedEvent]) -> Vec<String> {
    events.iter().map(|e| e.data.clone()).collect()
}
