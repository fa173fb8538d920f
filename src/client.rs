//! A blocking `EventSource` client (feature `client`): it follows one
//! stream, yields its events, and reconnects like a browser.
//!
//! HTTP and HTTPS go through [`ureq`](https://docs.rs/ureq); the stream is
//! read with the crate's [`parse`](crate::parse) module, which follows the
//! WHATWG rules exactly. No async runtime: iterating blocks the calling
//! thread until the next event (or error) comes.
//!
//! ```no_run
//! use sse_server::client::EventSource;
//!
//! for event in EventSource::new("http://127.0.0.1:8080/events")? {
//!     match event {
//!         Ok(event) => println!("{}: {}", event.event_type, event.data),
//!         // Network trouble: the source reconnects by itself.
//!         Err(e) if !e.is_fatal() => eprintln!("{e}; reconnecting"),
//!         // A status, a content type or a 204 that says stop: the end.
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How it differs from a browser's `EventSource`
//!
//! * It is an iterator that blocks, not callbacks: `for event in source`.
//! * Network errors are yielded (and the source reconnects, as a browser
//!   does); a browser only fires `error`. A stream the server ends
//!   cleanly is reconnected without an error to yield (a browser fires
//!   `error` then too); `log` says so at debug level.
//! * After a failed reconnect it backs off exponentially, with jitter, up to
//!   [`Builder::max_backoff`]; a browser keeps waiting its `retry` time. A
//!   stream that ends before it gives an event (a server that answers and
//!   hangs up, or whose next event is past [`Builder::max_event_bytes`])
//!   counts as a failed attempt, unless it lasted `max_backoff`; one that
//!   gives an event starts the count again.
//! * The server's `retry:` is clamped between [`Builder::min_retry`] and
//!   [`Builder::max_retry`]: `retry: 0` cannot make it hammer a server.
//! * A read timeout ([`Builder::read_timeout`]) turns a silent, half-open
//!   connection, or a response head that trickles in, into a reconnect; a
//!   browser may wait for the operating system.
//! * Custom headers (say, `Authorization`) can be sent.
//! * Like a browser it sends `Last-Event-ID` when it reconnects, stops on
//!   `204 No Content`, on any other status but `200`–`299`, and on a content
//!   type other than `text/event-stream`, and follows redirects.
//! * An `id:` that cannot be sent back in that header (one holding a
//!   control character other than tab: U+0001 to U+001F, or U+007F; or
//!   one longer than 8 KiB, 8,192 bytes, which a request's head or a proxy
//!   in between may not carry) is ignored, as the format ignores one
//!   holding NUL: the last event id stays the one before, in the events and in
//!   [`EventSource::last_event_id`]. A reconnect then resumes from that
//!   earlier id, so the events since may come twice but none is lost. A
//!   browser sends such an id as it is; the HTTP stack under this client
//!   cannot.
//! * The last event id carries over a reconnect, as in Chromium: an event
//!   without an `id:` at the start of the new stream carries the one
//!   before. (The format's text starts each stream's id buffer empty, so
//!   such an event would make the next reconnect send no id at all.)
//!
//! # Limits
//!
//! * An event may hold up to [`Builder::max_event_bytes`] (64 MiB by
//!   default) before its end comes; past that the connection is dropped
//!   and the source reconnects.
//! * No wait is longer than a day: a reconnection time (the server's or
//!   [`Builder::retry`]), [`Builder::min_retry`], [`Builder::max_retry`],
//!   [`Builder::max_backoff`], [`Builder::read_timeout`] or
//!   [`Builder::connect_timeout`] above a day (`Duration::MAX` included)
//!   is taken as a day.
//! * An id of more than 8 KiB is ignored (above); the URL and the custom
//!   headers may hold 64 KiB together, which [`Builder::build`] checks.

use std::error::Error as StdError;
use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant};

use crate::parse::{EventParser, ParsedEvent};
use crate::retry::{self, RETRY_MAX};

/// The reconnection time before the server sets one, by default.
const RETRY: Duration = Duration::from_secs(3);
const MIN_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10 * 60);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest wait any setting takes (a day, the longest `retry:` this
/// crate's servers send): a longer one is lowered to it.
const MAX_WAIT: Duration = RETRY_MAX;
/// Three times the server's default keep-alive (15 s).
const READ_TIMEOUT: Duration = Duration::from_secs(45);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most an event may hold before its end comes, by default.
const MAX_EVENT_BYTES: usize = 64 * 1024 * 1024;
/// The size of one read from the stream.
const READ_SIZE: usize = 16 * 1024;
/// The longest id sent back as `Last-Event-ID`: longer ones are ignored.
const MAX_ID_BYTES: usize = 8 * 1024;
/// The most the URL and custom headers may hold together: the request's
/// head must fit ureq's output buffer (128 KiB) with the id and the
/// headers ureq adds.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Why the source yielded an error. Errors for which
/// [`is_fatal`](Error::is_fatal) is false are followed by a reconnect;
/// after a fatal one the iterator ends.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Connecting, or reading the stream, failed (refused, reset, DNS, TLS,
    /// the stream cut short). The source reconnects.
    Network(Box<dyn StdError + Send + Sync>),
    /// Nothing came for the read timeout, or the response's head did not
    /// come whole within it; the connection was dropped and the source
    /// reconnects.
    ReadTimeout(Duration),
    /// The event being read held more than [`Builder::max_event_bytes`]
    /// (this many) before its end came; the connection was dropped and the
    /// source reconnects (from the last event it read whole).
    EventTooLarge(usize),
    /// The server answered `204 No Content`: the WHATWG way of telling an
    /// `EventSource` to stop. Fatal.
    NoContent,
    /// The server answered with a status other than `200`–`299`. Fatal.
    Status(u16),
    /// The answer's `Content-Type` is not `text/event-stream` (`None`: it
    /// had none). Fatal.
    ContentType(Option<String>),
    /// The URL cannot be fetched: not `http://` or `https://`, with no
    /// host, or malformed (a space, a character beyond ASCII: percent-encode
    /// it, and write an international domain name in its `xn--` form).
    /// Fatal; [`Builder::build`] returns it.
    Url(String),
    /// A header set with [`Builder::header`], or the id set with
    /// [`Builder::last_event_id`], cannot be sent: a name that is not an
    /// HTTP token, a value holding a control character other than tab
    /// (CR, LF and NUL included), an id of more than 8 KiB, or a URL and
    /// headers of more than 64 KiB together. Fatal; [`Builder::build`]
    /// returns it.
    Header(String),
    /// The first connection failed and [`Builder::retry_first_connect`] is
    /// off. Fatal.
    FirstConnect(Box<dyn StdError + Send + Sync>),
}

impl Error {
    /// True when the source has stopped: the iterator yields nothing more.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            Error::Network(_) | Error::ReadTimeout(_) | Error::EventTooLarge(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Network(e) => write!(f, "the event stream's connection failed: {e}"),
            Error::ReadTimeout(after) => {
                write!(f, "the event stream sent nothing for {after:?}")
            }
            Error::EventTooLarge(limit) => {
                write!(f, "an event held more than {limit} bytes before its end")
            }
            Error::NoContent => f.write_str("the server answered 204: no more events"),
            Error::Status(status) => write!(f, "the server answered {status}"),
            Error::ContentType(Some(kind)) => {
                write!(f, "the answer is {kind}, not text/event-stream")
            }
            Error::ContentType(None) => f.write_str("the answer has no content type"),
            Error::Url(why) => write!(f, "bad event stream URL: {why}"),
            Error::Header(why) => write!(f, "bad request header: {why}"),
            Error::FirstConnect(e) => write!(f, "could not connect: {e}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Error::Network(e) | Error::FirstConnect(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// Settings for an [`EventSource`], from [`EventSource::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sse_server::client::EventSource;
///
/// let source = EventSource::builder("https://example.com/feed")
///     .header("Authorization", "Bearer secret")
///     .last_event_id("41")
///     .read_timeout(Duration::from_secs(60))
///     .build()?;
/// # drop(source);
/// # Ok::<(), sse_server::client::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    url: String,
    headers: Vec<(String, String)>,
    last_event_id: String,
    retry: Duration,
    min_retry: Duration,
    max_retry: Duration,
    max_backoff: Duration,
    read_timeout: Duration,
    connect_timeout: Duration,
    retry_first_connect: bool,
    max_event_bytes: usize,
}

impl Builder {
    /// Sends this header with every request (a second call with the same
    /// name adds another). [`build`](Builder::build) refuses a name that
    /// is not an HTTP token, a value holding a control character other
    /// than tab, and headers that hold more than 64 KiB with the URL
    /// (counting each header's name and value, and 4 bytes for each).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The `Last-Event-ID` to send on the first request, to resume where an
    /// earlier run stopped (a [`ParsedEvent::last_event_id`] this source
    /// yielded is always one it can send). [`build`](Builder::build)
    /// refuses an id holding a control character other than tab, or more
    /// than 8 KiB (8,192 bytes). Defaults to none.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = id.into();
        self
    }

    /// How long to wait before reconnecting until the server sends a
    /// `retry:`. Clamped like the server's value. Values above a day are
    /// lowered to a day. Defaults to 3 seconds.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = retry.min(MAX_WAIT);
        self
    }

    /// The shortest reconnection time taken from the server (or from
    /// [`retry`](Builder::retry)); it wins over
    /// [`max_retry`](Builder::max_retry) if they cross. Values above a day
    /// are lowered to a day. Defaults to 500 ms.
    pub fn min_retry(mut self, min: Duration) -> Self {
        self.min_retry = min.min(MAX_WAIT);
        self
    }

    /// The longest reconnection time taken from the server. Values above a
    /// day are lowered to a day. Defaults to 10 minutes.
    pub fn max_retry(mut self, max: Duration) -> Self {
        self.max_retry = max.min(MAX_WAIT);
        self
    }

    /// After a failed connection attempt the next waits twice as long as
    /// the one before (starting from the reconnection time), with jitter, up
    /// to this (or up to the reconnection time, if that is longer). A
    /// stream that ends before it gives an event counts as a failed attempt
    /// unless it lasted this long; a stream that gives one ends the run of
    /// failures. Values above a day are lowered to a day. Defaults to 30
    /// seconds.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.min(MAX_WAIT);
        self
    }

    /// A stream that sends nothing (not even a keep-alive comment) for this
    /// long, or whose response head does not come whole within it, is
    /// dropped and reconnected. Keep it longer than the server's
    /// keep-alive interval (this crate's servers send one every 15 s by
    /// default). Values below 1 ms are raised to 1 ms, values above a day
    /// lowered to a day. Defaults to 45 seconds.
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = timeout.clamp(Duration::from_millis(1), MAX_WAIT);
        self
    }

    /// The most an event may hold (its data, name and id, and the line
    /// being read) while its end has not come: a server that sends an event
    /// without end, or one larger than this, makes the source drop the
    /// connection, yield [`Error::EventTooLarge`] and reconnect from the
    /// last event it read whole, instead of holding all of it in memory.
    /// Checked after each read (of at most 16 KiB), so an event may
    /// briefly hold up to 16 KiB more. Defaults to 64 MiB.
    pub fn max_event_bytes(mut self, max: usize) -> Self {
        self.max_event_bytes = max;
        self
    }

    /// How long connecting (DNS, TCP, TLS) may take. Values below 1 ms are
    /// raised to 1 ms, values above a day lowered to a day. Defaults to 10
    /// seconds.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.clamp(Duration::from_millis(1), MAX_WAIT);
        self
    }

    /// Whether a failed first connection is retried like a dropped one
    /// (yielding [`Error::Network`] and backing off), as a browser does, or
    /// ends the source with [`Error::FirstConnect`]. Defaults to true.
    pub fn retry_first_connect(mut self, retry: bool) -> Self {
        self.retry_first_connect = retry;
        self
    }

    /// The source. It connects when first iterated.
    ///
    /// # Errors
    ///
    /// [`Error::Url`] when the URL is not `http://` or `https://`, has no
    /// host, or is malformed; [`Error::Header`] when a header or the last
    /// event id cannot be sent. Both are settings no request could carry,
    /// so they are refused here rather than tried again and again.
    pub fn build(self) -> Result<EventSource, Error> {
        check_url(&self.url)?;
        for (name, value) in &self.headers {
            if ureq::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::Header(format!("{name:?} is not a header name")));
            }
            // The value is not shown: it may be a secret.
            if !can_be_a_header(value) {
                return Err(Error::Header(format!(
                    "the value of {name:?} holds a control character"
                )));
            }
        }
        if self.last_event_id.len() > MAX_ID_BYTES {
            return Err(Error::Header(format!(
                "the last event id holds {} bytes: more than {MAX_ID_BYTES} cannot be sent \
                 as Last-Event-ID",
                self.last_event_id.len()
            )));
        }
        if !can_be_a_header(&self.last_event_id) {
            return Err(Error::Header(format!(
                "the last event id {:?} holds a control character: it cannot be \
                 sent as Last-Event-ID",
                self.last_event_id
            )));
        }
        let head: usize = self.url.len()
            + self
                .headers
                .iter()
                .map(|(name, value)| name.len() + value.len() + 4)
                .sum::<usize>();
        if head > MAX_HEAD_BYTES {
            return Err(Error::Header(format!(
                "the URL and headers hold {head} bytes: a request's head can hold at most \
                 {MAX_HEAD_BYTES} of them"
            )));
        }
        // Both timeouts are at most a day (see their setters): ureq adds
        // them to an `Instant`.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(self.connect_timeout))
            .timeout_per_read(Some(self.read_timeout))
            .timeout_recv_response(Some(self.read_timeout))
            .build()
            .into();
        let retry = clamp(self.retry, self.min_retry, self.max_retry);
        Ok(EventSource {
            agent,
            state: State::Connect,
            parser: stream_parser(&self.last_event_id),
            queued: std::collections::VecDeque::new(),
            retry,
            failures: 0,
            connected: false,
            opened: Instant::now(),
            gave_events: false,
            deferred: None,
            buffer: vec![0; READ_SIZE],
            settings: self,
        })
    }
}

/// A stream of events from one URL: an iterator that blocks until the next
/// event, reconnecting when the connection drops. See the [module
/// docs](self).
pub struct EventSource {
    agent: ureq::Agent,
    settings: Builder,
    state: State,
    parser: EventParser,
    queued: std::collections::VecDeque<ParsedEvent>,
    /// The reconnection time, clamped.
    retry: Duration,
    /// Connection attempts that failed in a row, counting a stream that
    /// ended before it gave an event (see `stream_ended`).
    failures: u32,
    /// Whether any connection got a stream going.
    connected: bool,
    /// When the current stream's response came.
    opened: Instant,
    /// Whether the current stream has given an event.
    gave_events: bool,
    /// An error to yield once the events before it have been.
    deferred: Option<Error>,
    buffer: Vec<u8>,
}

enum State {
    Connect,
    Reading(Box<dyn Read + Send>),
    /// Waiting `wait` from `since` before the next attempt. (Not a
    /// deadline: an `Instant` plus a long wait can overflow.)
    Waiting {
        since: Instant,
        wait: Duration,
    },
    Closed,
}

impl EventSource {
    /// A source with the default settings (see [`Builder`]).
    ///
    /// # Errors
    ///
    /// [`Error::Url`] when the URL is not `http://` or `https://`, has no
    /// host, or is malformed.
    pub fn new(url: impl Into<String>) -> Result<EventSource, Error> {
        EventSource::builder(url).build()
    }

    /// Settings for a source of `url`.
    pub fn builder(url: impl Into<String>) -> Builder {
        Builder {
            url: url.into(),
            headers: Vec::new(),
            last_event_id: String::new(),
            retry: RETRY,
            min_retry: MIN_RETRY,
            max_retry: MAX_RETRY,
            max_backoff: MAX_BACKOFF,
            read_timeout: READ_TIMEOUT,
            connect_timeout: CONNECT_TIMEOUT,
            retry_first_connect: true,
            max_event_bytes: MAX_EVENT_BYTES,
        }
    }

    /// The last event id the stream has set (as of the last block read,
    /// events not yet yielded included): what the next reconnect sends as
    /// `Last-Event-ID`. Each event carries the id as of itself.
    pub fn last_event_id(&self) -> &str {
        // Every dispatch sets the last event id, an event or not (a block
        // with an `id:` and no data); each stream's parser starts from the
        // one the streams before set.
        self.parser.last_event_id()
    }

    /// The reconnection time now in force (the server's `retry:`, clamped).
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// Closes the connection; the iterator yields nothing more.
    pub fn close(&mut self) {
        self.state = State::Closed;
        self.queued.clear();
        self.deferred = None;
    }

    /// One connection attempt: a stream, or the error to yield.
    fn connect(&mut self) -> Result<Box<dyn Read + Send>, Error> {
        let mut request = self
            .agent
            .get(&self.settings.url)
            .header("Accept", "text/event-stream")
            .header("Cache-Control", "no-cache");
        let last_event_id = self.last_event_id();
        if !last_event_id.is_empty() {
            request = request.header("Last-Event-ID", last_event_id);
        }
        for (name, value) in &self.settings.headers {
            request = request.header(name, value);
        }
        let response = request.call().map_err(|e| match e {
            ureq::Error::BadUri(why) => Error::Url(why),
            // A request that cannot be built (`build` checks the URL and
            // headers, so this is not expected): the same every time, so
            // not one to try again.
            ureq::Error::Http(e) if is_about_the_url(&e) => Error::Url(e.to_string()),
            ureq::Error::Http(e) => Error::Header(e.to_string()),
            ureq::Error::Timeout(ureq::Timeout::PerRead | ureq::Timeout::RecvResponse) => {
                Error::ReadTimeout(self.settings.read_timeout)
            }
            e => Error::Network(Box::new(e)),
        })?;
        let status = response.status().as_u16();
        if status == 204 {
            return Err(Error::NoContent);
        }
        if !(200..300).contains(&status) {
            return Err(Error::Status(status));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let is_event_stream = content_type.as_deref().is_some_and(|value| {
            value
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case("text/event-stream"))
        });
        if !is_event_stream {
            return Err(Error::ContentType(content_type));
        }
        Ok(Box::new(response.into_body().into_reader()))
    }

    /// After a connection that failed: the error to yield, and when to try
    /// again (or the end).
    fn failed(&mut self, error: Error) -> Error {
        let error = match error {
            Error::Network(e) if !self.connected && !self.settings.retry_first_connect => {
                Error::FirstConnect(e)
            }
            Error::ReadTimeout(t) if !self.connected && !self.settings.retry_first_connect => {
                Error::FirstConnect(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no answer within {t:?}"),
                )))
            }
            error => error,
        };
        if error.is_fatal() {
            self.close();
        } else {
            self.failures = self.failures.saturating_add(1);
            self.wait(self.backoff());
        }
        error
    }

    /// The wait before the next attempt after `failures` failed ones in a
    /// row: the reconnection time doubled for each, capped, with "equal
    /// jitter" (half of it fixed, half drawn at random).
    fn backoff(&self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(30);
        let cap = self.settings.max_backoff.max(self.retry);
        let base = self.retry.saturating_mul(1 << doublings).min(cap);
        let half = base / 2;
        let jitter = retry::jittered_millis(Duration::ZERO, half, u64::from(self.failures));
        half + Duration::from_millis(jitter)
    }

    /// The stream ended or broke (`why`) after it had started: reconnect
    /// with a parser for the new stream. A stream that gave an event, or
    /// lasted `max_backoff`, was a working one: the next attempt comes after
    /// the reconnection time. One that did neither (a server that answers
    /// and hangs up, or sends nothing but an event too large) counts as a
    /// failed attempt and backs off, so that it is not asked again and
    /// again at the reconnection time.
    fn stream_ended(&mut self, why: &dyn fmt::Display) {
        let last_event_id = self.parser.last_event_id().to_owned();
        self.parser = stream_parser(&last_event_id);
        let worked = self.gave_events || self.opened.elapsed() >= self.settings.max_backoff;
        let wait = if worked {
            self.failures = 0;
            self.retry
        } else {
            self.failures = self.failures.saturating_add(1);
            self.backoff()
        };
        log::debug!("{why}; reconnecting in {wait:?}");
        self.wait(wait);
    }

    /// The next attempt comes after `wait`.
    fn wait(&mut self, wait: Duration) {
        self.state = State::Waiting {
            since: Instant::now(),
            wait,
        };
    }

    fn read(&mut self, mut body: Box<dyn Read + Send>) -> Option<Error> {
        match body.read(&mut self.buffer) {
            Ok(0) => {
                self.stream_ended(&"the event stream ended");
                None
            }
            Ok(n) => {
                let queued = &mut self.queued;
                let before = queued.len();
                self.parser.feed_with(&self.buffer[..n], |event| {
                    queued.push_back(event.to_parsed())
                });
                self.gave_events |= queued.len() > before;
                if let Some(retry) = self.parser.retry() {
                    let server = Duration::from_millis(retry);
                    self.retry = clamp(server, self.settings.min_retry, self.settings.max_retry);
                }
                if self.parser.pending_bytes() > self.settings.max_event_bytes {
                    let error = Error::EventTooLarge(self.settings.max_event_bytes);
                    self.stream_ended(&error);
                    // After the events this read completed.
                    self.deferred = Some(error);
                    return None;
                }
                self.state = State::Reading(body);
                None
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.state = State::Reading(body);
                None
            }
            Err(e) => {
                let error = if is_read_timeout(&e) {
                    Error::ReadTimeout(self.settings.read_timeout)
                } else {
                    Error::Network(Box::new(e))
                };
                self.stream_ended(&error);
                Some(error)
            }
        }
    }
}

impl Iterator for EventSource {
    type Item = Result<ParsedEvent, Error>;

    /// The next event, or an error; `None` once the source is closed (after
    /// a fatal error, or [`close`](EventSource::close)). Blocks until then.
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.queued.pop_front() {
                return Some(Ok(event));
            }
            if let Some(error) = self.deferred.take() {
                return Some(Err(error));
            }
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Closed => return None,
                State::Waiting { since, wait } => {
                    std::thread::sleep(wait.saturating_sub(since.elapsed()));
                    self.state = State::Connect;
                }
                State::Connect => match self.connect() {
                    Ok(body) => {
                        log::debug!("connected to {}", self.settings.url);
                        self.connected = true;
                        self.opened = Instant::now();
                        self.gave_events = false;
                        self.state = State::Reading(body);
                    }
                    Err(error) => return Some(Err(self.failed(error))),
                },
                State::Reading(body) => {
                    if let Some(error) = self.read(body) {
                        return Some(Err(error));
                    }
                }
            }
        }
    }
}

impl fmt::Debug for EventSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Connect => "connecting",
            State::Reading(_) => "reading",
            State::Waiting { .. } => "waiting to reconnect",
            State::Closed => "closed",
        };
        f.debug_struct("EventSource")
            .field("url", &self.settings.url)
            .field("state", &state)
            .field("last_event_id", &self.last_event_id())
            .field("retry", &self.retry)
            .finish()
    }
}

/// `Ok` when `url` is one a request can go to.
fn check_url(url: &str) -> Result<(), Error> {
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return Err(Error::Url(format!(
            "{url:?} is not an http:// or https:// URL"
        )));
    }
    let uri: ureq::http::Uri = url
        .parse()
        .map_err(|e| Error::Url(format!("{url:?} is malformed ({e})")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::Url(format!("{url:?} has no host")));
    }
    Ok(())
}

/// Whether a request failed to build because of its URL.
fn is_about_the_url(e: &ureq::http::Error) -> bool {
    e.is::<ureq::http::uri::InvalidUri>() || e.is::<ureq::http::uri::InvalidUriParts>()
}

/// A parser for one stream, which ignores an id that could not be sent
/// back (a NUL is not the only control character a header cannot hold, and
/// a request's head has a size limit): sending none instead would lose
/// every event since the last one a reconnect could resume from. Its last
/// event id starts as `last_event_id`, the one the streams before set (as
/// Chromium's does; the format's per-stream buffer would start empty, so
/// that an event without an id, or one whose id is ignored, at the start
/// of a stream would make the next reconnect send none).
fn stream_parser(last_event_id: &str) -> EventParser {
    EventParser::keeping_ids(can_be_sent_as_id, last_event_id)
}

/// Whether `id` can go out as `Last-Event-ID`.
fn can_be_sent_as_id(id: &str) -> bool {
    id.len() <= MAX_ID_BYTES && can_be_a_header(id)
}

/// Whether `value` can go out as a header value.
fn can_be_a_header(value: &str) -> bool {
    ureq::http::HeaderValue::from_str(value).is_ok()
}

/// `value` within `min..=max` (`min` wins if they cross).
fn clamp(value: Duration, min: Duration, max: Duration) -> Duration {
    value.min(max).max(min)
}

/// Whether a read failed because ureq's per-read timeout fired.
fn is_read_timeout(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock {
        return true;
    }
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<ureq::Error>())
        .is_some_and(|inner| matches!(inner, ureq::Error::Timeout(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let mut source = EventSource::builder("http://127.0.0.1:1/")
            .retry(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(8))
            .build()
            .expect("a valid URL");
        for (failures, base) in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 8), (60, 8)] {
            source.failures = failures;
            for _ in 0..50 {
                let wait = source.backoff();
                let base = Duration::from_secs(base);
                assert!(wait >= base / 2 && wait <= base, "{failures}: {wait:?}");
            }
        }
    }

    /// The wait `source` is in, after a stream ended.
    fn waiting(source: &EventSource) -> Duration {
        match source.state {
            State::Waiting { wait, .. } => wait,
            _ => panic!("not waiting"),
        }
    }

    #[test]
    fn a_stream_that_gave_nothing_backs_off_one_that_worked_does_not() {
        let mut source = EventSource::builder("http://127.0.0.1:1/")
            .retry(Duration::from_secs(1))
            .max_backoff(Duration::from_secs(60))
            .build()
            .expect("a valid URL");
        // Streams that end at once with no event: each waits twice as long.
        for (failures, base) in [(1, 1), (2, 2), (3, 4), (4, 8)] {
            source.opened = Instant::now();
            source.gave_events = false;
            source.stream_ended(&"ended");
            assert_eq!(source.failures, failures);
            let (wait, base) = (waiting(&source), Duration::from_secs(base));
            assert!(wait >= base / 2 && wait <= base, "{failures}: {wait:?}");
        }
        // A stream that gave an event: the reconnection time, and the
        // count starts again.
        source.gave_events = true;
        source.stream_ended(&"ended");
        assert_eq!((source.failures, waiting(&source)), (0, source.retry));
        // One that gave none but lasted `max_backoff` (a quiet stream a
        // proxy cut): the same.
        source.failures = 4;
        source.gave_events = false;
        source.settings.max_backoff = Duration::from_millis(10);
        source.opened = Instant::now()
            .checked_sub(Duration::from_millis(10))
            .expect("a clock that started 10 ms ago");
        source.stream_ended(&"ended");
        assert_eq!((source.failures, waiting(&source)), (0, source.retry));
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(matches!(
            EventSource::new("ftp://example.com/"),
            Err(Error::Url(_))
        ));
        assert!(EventSource::new("HTTPS://example.com/").is_ok());
    }

    #[test]
    fn retry_is_clamped() {
        assert_eq!(
            clamp(Duration::ZERO, MIN_RETRY, MAX_RETRY),
            Duration::from_millis(500)
        );
        assert_eq!(clamp(Duration::MAX, MIN_RETRY, MAX_RETRY), MAX_RETRY);
    }
}
