//! `Event`: what a program publishes, checked as it is built, and its bytes.

use std::sync::Arc;
use std::time::Duration;

use crate::encode::{self, COMMENT, DATA};
use crate::error::Error;
use crate::frame::Frame;
use crate::retry::RETRY_MAX;

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
    /// An id must come back unchanged in that header, so it is printable
    /// ASCII (`!` to `~`), with spaces and tabs only between other
    /// characters; the empty id is allowed (it clears the client's last
    /// id). The event-stream format itself allows more, but such an id
    /// would not come back: `tiny_http` closes, without an answer, a
    /// connection whose request has a header that is not ASCII, so a
    /// browser holding a non-ASCII id could never reconnect; HTTP has no
    /// room for other control characters in a header, and drops spaces
    /// around a value.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Error, Event};
    ///
    /// let event = Event::new("x").with_id("order-7: shipped")?;
    /// assert_eq!(event.to_bytes(), b"id: order-7: shipped\ndata: x\n\n".to_vec());
    /// assert!(Event::new("x").with_id("été").is_err());
    /// assert!(Event::new("x").with_id(" 7").is_err());
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when `id` contains CR, LF or NUL (the
    /// event-stream format ignores an id with NUL in it), another control
    /// character or a character that is not ASCII, or starts or ends with
    /// a space or a tab; [`Error::CommentField`] on a comment
    /// ([`Event::comment`]).
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Event, Error> {
        if self.comment_only {
            return Err(Error::CommentField { field: "id" });
        }
        let id = id.into();
        let reason = if id.contains(['\r', '\n']) {
            Some("a line break (CR or LF)")
        } else if id.contains('\0') {
            Some("a NUL character")
        } else if !id.is_ascii() {
            Some("a character that is not ASCII (it cannot come back in Last-Event-ID)")
        } else if id.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            Some("a control character (it cannot come back in Last-Event-ID)")
        } else if id.starts_with([' ', '\t']) || id.ends_with([' ', '\t']) {
            Some("a space or tab at either end (Last-Event-ID drops it)")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(Error::InvalidField {
                field: "id",
                reason,
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
            len += encode::lines_len(&self.data, DATA.len()) + 1;
        }
        if let Some(comment) = &self.comment {
            len += encode::lines_len(comment, COMMENT.len());
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

    pub(crate) fn custom_id(&self) -> Option<Arc<str>> {
        self.id.as_deref().map(Arc::from)
    }

    /// The event as a frame of its own: a comment is no event, so its frame
    /// holds none.
    pub(crate) fn to_frame(&self) -> Frame {
        Frame::new(self.to_bytes(), u32::from(!self.comment_only))
    }

    /// The event's frame without its own id: under the `redis` feature
    /// every event carries the id of its entry in the shared stream.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn to_frame_without_id(&self) -> Frame {
        if self.id.is_none() {
            return self.to_frame();
        }
        Event {
            id: None,
            ..self.clone()
        }
        .to_frame()
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        if let Some(comment) = &self.comment {
            encode::lines(out, COMMENT, comment);
        }
        if let Some(event) = &self.event {
            encode::field(out, "event", event.as_bytes());
        }
        if let Some(id) = &self.id {
            encode::field(out, "id", id.as_bytes());
        }
        if let Some(retry) = self.retry {
            encode::field(out, "retry", retry.as_millis().to_string().as_bytes());
        }
        // A comment ends without a blank line: see `Event::comment`.
        if !self.comment_only {
            encode::lines(out, DATA, &self.data);
            out.push(b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
