//! `Event` and its wire encoding, and `Frame`, the encoded bytes clients share.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;

/// One server-sent event: data, and optionally an event name, an id, a
/// reconnection time and a comment; or a comment alone
/// ([`Event::comment`]).
///
/// Data and comments may hold any text: they are split on every line break
/// the event-stream format knows (CRLF, LF and a lone CR) and sent as one
/// `data:` (or `:`) line each, so a browser's `EventSource` hands back the
/// same text with the line breaks turned into LF. Data that begins with a
/// space keeps it, and empty data is still an event.
///
/// The event name and id are sent on one line each, so a line break in them
/// would start a new field or a new event. They are checked when they are
/// set, and refused with [`Error::InvalidField`]: never sent, never a panic.
///
/// # Examples
///
/// ```
/// use sse_server::Event;
/// use std::time::Duration;
///
/// let event = Event::new("42 °C")
///     .with_event("temperature")?
///     .with_id("7")?
///     .with_retry(Duration::from_secs(3));
/// assert_eq!(
///     event.to_bytes(),
///     b"event: temperature\nid: 7\nretry: 3000\ndata: 42 \xc2\xb0C\n\n".to_vec()
/// );
///
/// // A line break in a name would inject a field: it is refused.
/// assert!(Event::new("x").with_event("a\ndata: forged").is_err());
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Event {
    data: String,
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
    comment: Option<String>,
    /// Made by [`Event::comment`]: no data, so no blank line.
    comment_only: bool,
}

impl Event {
    /// An event carrying `data` and nothing else (a browser sees it as a
    /// `message` event).
    pub fn new(data: impl Into<String>) -> Event {
        Event {
            data: data.into(),
            ..Event::default()
        }
    }

    /// A comment alone, with no data: `: ` lines that every client ignores,
    /// for a marker to find when reading a stream by eye, or a heartbeat of
    /// the program's own. The text is split on line breaks like data.
    ///
    /// A comment is sent without the blank line that ends an event: some
    /// clients (httpx-sse) report a block with no data line as an empty
    /// message once an event id has been seen, while comment lines with no
    /// blank line after them are invisible to every client, and the next
    /// event's lines simply follow them.
    ///
    /// A comment is not an event: it gets no automatic id, is not kept for
    /// replay, and is counted nowhere ([`Stats::published`], `queued`,
    /// `dropped`, [`ClientStats::delivered`]; its [`Frame`] holds 0
    /// events). Otherwise it travels like one: [`Hub::publish`],
    /// [`Hub::publish_to`] and [`Hub::send_to`] take it, and a client whose
    /// queue is full misses it. It may carry a reconnection time
    /// ([`with_retry`](Event::with_retry)), sent after the comment lines
    /// and applied by clients at once, but no event name or id: with no
    /// blank line after them, those would belong to the next event.
    ///
    /// [`Stats::published`]: crate::Stats::published
    /// [`ClientStats::delivered`]: crate::ClientStats::delivered
    /// [`Hub::publish`]: crate::Hub::publish
    /// [`Hub::publish_to`]: crate::Hub::publish_to
    /// [`Hub::send_to`]: crate::Hub::send_to
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Error, Event};
    ///
    /// let marker = Event::comment("checkpoint 7\nall good");
    /// assert_eq!(marker.to_bytes(), b": checkpoint 7\n: all good\n".to_vec());
    /// assert!(marker.is_comment());
    /// assert!(matches!(
    ///     Event::comment("x").with_id("1"),
    ///     Err(Error::CommentField { field: "id" })
    /// ));
    /// ```
    pub fn comment(text: impl Into<String>) -> Event {
        Event {
            comment: Some(text.into()),
            comment_only: true,
            ..Event::default()
        }
    }

    /// Sets the event name (the `event:` field; browsers dispatch it to
    /// `addEventListener(name, ..)` instead of `onmessage`).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when `name` contains CR or LF,
    /// [`Error::CommentField`] on a comment ([`Event::comment`]).
    pub fn with_event(mut self, name: impl Into<String>) -> Result<Event, Error> {
        if self.comment_only {
            return Err(Error::CommentField { field: "event" });
        }
        let name = name.into();
        if name.contains(['\r', '\n']) {
            return Err(Error::InvalidField {
                field: "event",
                reason: "a line break (CR or LF)",
            });
        }
        self.event = Some(name);
        Ok(self)
    }

    /// Sets the event id (the `id:` field). Clients remember the last id
    /// they saw and send it back as `Last-Event-ID` when they reconnect.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when `id` contains CR, LF or NUL (the
    /// event-stream format ignores an id with NUL in it),
    /// [`Error::CommentField`] on a comment ([`Event::comment`]).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Event, Error> {
        if self.comment_only {
            return Err(Error::CommentField { field: "id" });
        }
        let id = id.into();
        if id.contains(['\r', '\n']) {
            return Err(Error::InvalidField {
                field: "id",
                reason: "a line break (CR or LF)",
            });
        }
        if id.contains('\0') {
            return Err(Error::InvalidField {
                field: "id",
                reason: "a NUL character",
            });
        }
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the reconnection time (the `retry:` field, in whole
    /// milliseconds; sub-millisecond parts are dropped). Values above 24
    /// hours are taken as 24 hours, the cap
    /// [`HubBuilder::retry`](crate::HubBuilder::retry) applies too: a
    /// larger number is one some clients cannot parse, and ignore.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::Event;
    /// use std::time::Duration;
    ///
    /// let event = Event::new("x").with_retry(Duration::MAX);
    /// assert_eq!(event.retry(), Some(Duration::from_secs(24 * 60 * 60)));
    /// assert_eq!(event.to_bytes(), b"retry: 86400000\ndata: x\n\n".to_vec());
    /// ```
    pub fn with_retry(mut self, retry: Duration) -> Event {
        self.retry = Some(retry.min(RETRY_MAX));
        self
    }

    /// Adds a comment, sent as `:` lines before the fields. Clients ignore
    /// comments; they are useful for debugging a stream by eye. On a
    /// comment ([`Event::comment`]) it replaces the text.
    pub fn with_comment(mut self, comment: impl Into<String>) -> Event {
        self.comment = Some(comment.into());
        self
    }

    /// An event whose data is `value` as JSON (needs the `json` feature).
    ///
    /// # Errors
    ///
    /// [`Error::Json`] when `value` cannot be serialised (a map with
    /// non-string keys, a failing `Serialize` implementation).
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "json")] {
    /// #[derive(serde::Serialize)]
    /// struct Reading { celsius: f32 }
    ///
    /// let event = sse_server::Event::json(&Reading { celsius: 21.5 })?;
    /// assert_eq!(event.data(), r#"{"celsius":21.5}"#);
    /// # }
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    #[cfg(feature = "json")]
    pub fn json<T: serde::Serialize + ?Sized>(value: &T) -> Result<Event, Error> {
        serde_json::to_string(value)
            .map(Event::new)
            .map_err(Error::Json)
    }

    /// The event's data (empty for a comment).
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The event name, if one was set.
    pub fn event(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The event id, if one was set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The reconnection time, if one was set (at most 24 hours: see
    /// [`with_retry`](Event::with_retry)).
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    /// The comment, if one was set: the text of [`Event::comment`] or of
    /// [`with_comment`](Event::with_comment). (Not `comment()`: that name
    /// makes a comment.)
    pub fn comment_text(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// True for a comment made with [`Event::comment`]: no data, not an
    /// event to clients.
    pub fn is_comment(&self) -> bool {
        self.comment_only
    }

    /// The event in the event-stream wire format, ending with the blank line
    /// that dispatches it; for a comment ([`Event::comment`]), its `:` lines
    /// (and `retry:` line) with no blank line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if !self.comment_only {
            len += encoded_lines_len(&self.data, DATA.len()) + 1;
        }
        if let Some(comment) = &self.comment {
            len += encoded_lines_len(comment, COMMENT.len());
        }
        if let Some(event) = &self.event {
            len += "event: \n".len() + event.len();
        }
        if let Some(id) = &self.id {
            len += "id: \n".len() + id.len();
        }
        if self.retry.is_some() {
            len += "retry: \n".len() + 20;
        }
        len
    }

    pub(crate) fn custom_id(&self) -> Option<std::sync::Arc<str>> {
        self.id.as_deref().map(std::sync::Arc::from)
    }

    /// The event as a frame of its own: a comment is no event, so its frame
    /// holds none.
    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new(self.to_bytes(), u32::from(!self.comment_only))
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        if let Some(comment) = &self.comment {
            encode_lines(out, COMMENT, comment);
        }
        if let Some(event) = &self.event {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(event.as_bytes());
            out.push(b'\n');
        }
        if let Some(id) = &self.id {
            out.extend_from_slice(b"id: ");
            out.extend_from_slice(id.as_bytes());
            out.push(b'\n');
        }
        if let Some(retry) = self.retry {
            out.extend_from_slice(b"retry: ");
            out.extend_from_slice(retry.as_millis().to_string().as_bytes());
            out.push(b'\n');
        }
        // A comment ends without a blank line: see `Event::comment`.
        if !self.comment_only {
            encode_lines(out, DATA, &self.data);
            out.push(b'\n');
        }
    }
}

/// The longest reconnection time sent, by an event or at the start of a
/// stream: a day.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(24 * 60 * 60);

const DATA: &str = "data: ";
const COMMENT: &str = ": ";

/// Encodes data-only text: what [`crate::Hub::notify`] sends.
pub(crate) fn encode_data(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_lines_len(data, DATA.len()) + 1);
    encode_lines(&mut out, DATA, data);
    out.push(b'\n');
    out
}

/// Encodes the event that tells a client it has a gap (or, without a name,
/// a comment line saying so).
pub(crate) fn encode_gap(out: &mut Vec<u8>, name: Option<&str>, id: Option<&str>, data: &str) {
    match name {
        Some(name) => {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(name.as_bytes());
            out.push(b'\n');
            if let Some(id) = id {
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(id.as_bytes());
                out.push(b'\n');
            }
            encode_lines(out, DATA, data);
            out.push(b'\n');
        }
        None => {
            out.extend_from_slice(b": sse-gap ");
            out.extend_from_slice(data.as_bytes());
            out.push(b'\n');
        }
    }
}

/// Splits `text` on CRLF, LF and lone CR, the three line ends of the
/// event-stream format.
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

fn encoded_lines_len(text: &str, prefix: usize) -> usize {
    lines(text).map(|line| prefix + line.len() + 1).sum()
}

/// One line per line of `text`: `prefix` + line + LF. An empty line is sent
/// as the bare field name (`data:`), which parsers read as an empty value.
fn encode_lines(out: &mut Vec<u8>, prefix: &str, text: &str) {
    for line in lines(text) {
        if line.is_empty() {
            out.extend_from_slice(prefix.trim_end().as_bytes());
        } else {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
}

/// Encoded event-stream bytes holding one or more whole events, shared by
/// every client that receives them.
///
/// The hub encodes each event once, in the publishing thread; when several
/// events are waiting together it joins them into one frame, so a client
/// that is behind gets them in one write. Cloning a frame is cheap (a
/// reference count).
///
/// # Examples
///
/// ```
/// let hub = sse_server::Hub::builder().history_events(0).build()?;
/// let subscription = hub.subscribe()?;
/// hub.notify("hello")?;
/// let frame = subscription.recv()?;
/// assert_eq!(frame.as_bytes(), b"data: hello\n\n");
/// assert_eq!(frame.events(), 1);
/// # hub.shutdown()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Frame(Arc<FrameData>);

struct FrameData {
    bytes: Box<[u8]>,
    events: u32,
}

impl Frame {
    pub(crate) fn new(bytes: Vec<u8>, events: u32) -> Frame {
        Frame(Arc::new(FrameData {
            bytes: bytes.into_boxed_slice(),
            events,
        }))
    }

    /// The encoded events, ready to write to a client.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// How many events the frame holds. Comments ([`Event::comment`]) and
    /// the gap events that tell a client it missed events are not counted.
    pub fn events(&self) -> usize {
        self.0.events as usize
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads stay out of Debug output so that logging a frame never
        // leaks what it carries.
        f.debug_struct("Frame")
            .field("bytes", &self.0.bytes.len())
            .field("events", &self.0.events)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_every_line_end() {
        let got: Vec<&str> = lines("a\r\nb\nc\rd").collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
        let got: Vec<&str> = lines("").collect();
        assert_eq!(got, [""]);
        let got: Vec<&str> = lines("x\n").collect();
        assert_eq!(got, ["x", ""]);
        let got: Vec<&str> = lines("\r\r\n").collect();
        assert_eq!(got, ["", "", ""]);
    }

    #[test]
    fn encoded_len_is_an_upper_bound() {
        let event = Event::new("a\nbb\r\n")
            .with_event("e")
            .unwrap()
            .with_id("1")
            .unwrap()
            .with_retry(Duration::MAX)
            .with_comment("c\rd");
        assert!(event.to_bytes().len() <= event.encoded_len());
        assert_eq!(encode_data("a\nb").len(), encoded_lines_len("a\nb", 6) + 1);
        let comment = Event::comment("c\r\nd").with_retry(Duration::MAX);
        assert!(comment.to_bytes().len() <= comment.encoded_len());
    }

    #[test]
    fn a_comment_is_comment_lines_and_no_blank_line() {
        assert_eq!(Event::comment("").to_bytes(), b":\n");
        assert_eq!(
            Event::comment("a\r\nb\rc\n").to_bytes(),
            b": a\n: b\n: c\n:\n"
        );
        assert_eq!(
            Event::comment(" x")
                .with_retry(Duration::from_millis(1500))
                .to_bytes(),
            b":  x\nretry: 1500\n"
        );
        assert_eq!(
            Event::comment("old").with_comment("new").to_bytes(),
            b": new\n"
        );
        let comment = Event::comment("c");
        assert!(comment.is_comment());
        assert_eq!(comment.data(), "");
        assert_eq!(comment.comment_text(), Some("c"));
        assert_eq!(comment.to_frame().events(), 0);
        assert_eq!(Event::new("").to_frame().events(), 1);
        assert!(!Event::default().is_comment());
        assert!(matches!(
            Event::comment("c").with_event("e"),
            Err(Error::CommentField { field: "event" })
        ));
        assert!(matches!(
            Event::comment("c").with_id("1"),
            Err(Error::CommentField { field: "id" })
        ));
    }
}
