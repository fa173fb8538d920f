//! The crate's one error type.

use std::fmt;
use std::io;

use crate::client_id::ClientId;

/// Everything that can go wrong in this crate.
///
/// The enum is `#[non_exhaustive]`: a `match` on it needs a `_` arm, so
/// that later releases can add failure modes without breaking callers.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The hub has been shut down: nothing more can be published, subscribed
    /// or served.
    Closed,
    /// An event field holds a character that would change the meaning of the
    /// stream (a line break in an event name or id, a NUL in an id). The event
    /// is refused rather than sent, which is what stops event injection
    /// (CWE-93) through user-controlled names and ids. Also an id a client
    /// could not send back unchanged in `Last-Event-ID` (see
    /// [`Event::with_id`](crate::Event::with_id)), and a gap event name
    /// that is empty or `message` (see
    /// [`HubBuilder::gap_event`](crate::HubBuilder::gap_event)).
    InvalidField {
        /// The field that was refused: `"event"` or `"id"`.
        field: &'static str,
        /// Why, in words: the kind of character that made it invalid, or
        /// what the name would mean to a client.
        reason: &'static str,
    },
    /// An event name or id was set on a comment ([`Event::comment`]). A
    /// comment is sent without the blank line that ends an event, so the
    /// field would become part of the next event.
    ///
    /// [`Event::comment`]: crate::Event::comment
    CommentField {
        /// The field that was refused: `"event"` or `"id"`.
        field: &'static str,
    },
    /// Binding or preparing the listening socket failed.
    Bind(io::Error),
    /// The operating system refused to start a thread (the process is out of
    /// threads, memory mappings or memory).
    Spawn(io::Error),
    /// `shutdown` gave up waiting for some writer threads at its deadline
    /// ([`HubBuilder::shutdown_timeout`]): their clients were still taking
    /// the events queued for them, too slowly to have them all by then (a
    /// client that stops reading is cut off at once during a shutdown, and
    /// is not counted). The threads are left to finish on their own: each
    /// ends its stream once its client has the rest, or once a write fails.
    ///
    /// [`HubBuilder::shutdown_timeout`]: crate::HubBuilder::shutdown_timeout
    ShutdownTimeout {
        /// How many writer threads were still running at the deadline.
        threads: usize,
    },
    /// The event stream was refused because [`HubBuilder::max_clients`]
    /// streams are open. The client was told to come back later: an
    /// `EventSource` (a request that accepts `text/event-stream`) with a
    /// short `200` stream holding a `retry:` and an `sse-busy` event, which
    /// makes a browser reconnect after [`HubBuilder::busy_retry`] (a `503`
    /// would end its `EventSource` for good); other clients with `503` and
    /// `Retry-After`.
    ///
    /// [`HubBuilder::max_clients`]: crate::HubBuilder::max_clients
    /// [`HubBuilder::busy_retry`]: crate::HubBuilder::busy_retry
    TooManyClients,
    /// No client with that id is connected (it left or never existed).
    UnknownClient(ClientId),
    /// A client id chosen by the connect hook or a subscriber is already in
    /// use by a connected client.
    IdInUse(ClientId),
    /// Redis could not take the event (feature `redis`): it cannot be
    /// reached, is restarting, refused it (for instance `OOM` past its
    /// `maxmemory` with `maxmemory-policy noeviction`), or did not answer
    /// within [`HubBuilder::redis_timeout`](crate::HubBuilder::redis_timeout).
    /// Nothing was delivered by this process. After a timeout, or a
    /// connection lost while Redis had the event, it may still have been
    /// appended (and then reaches every client); in every other case it
    /// was not (for [`Hub::publish_all`](crate::Hub::publish_all): none of
    /// the events was; when some were, the error is
    /// [`RedisPartlyAppended`](Error::RedisPartlyAppended) instead). The
    /// text says why. While the link is down every publish fails at once
    /// with this error; the hub reconnects by itself, and
    /// [`Stats::redis_connected`](crate::Stats::redis_connected) tells.
    #[cfg(feature = "redis")]
    RedisUnavailable(String),
    /// Redis appended some of the events of one
    /// [`Hub::publish_all`](crate::Hub::publish_all) call and refused the
    /// others (feature `redis`), most often `OOM`: the stream reached
    /// Redis's `maxmemory` with `maxmemory-policy noeviction` partway
    /// through the batch.
    ///
    /// The events Redis appended are in the stream, in their order, and
    /// reach every client of every process like any other; the refused
    /// ones went nowhere. Redis takes a batch's events one after another,
    /// so usually the first `appended` went in and every one after them
    /// was refused: `refused` is then `appended..` the batch's end, and
    /// publishing again just the refused events (once Redis has room)
    /// delivers every event once. Redis may free memory while it works
    /// through the batch, though, and then take an event after one it
    /// refused: `refused` lists exactly the ones that are not in the
    /// stream, so retry those and only those (they then arrive after the
    /// later events that went in).
    ///
    /// [`Stats::published`](crate::Stats::published) counts the appended
    /// events. A single event ([`Hub::publish`](crate::Hub::publish) and
    /// the others) is either appended (`Ok`) or not
    /// ([`RedisUnavailable`](Error::RedisUnavailable)); it never gets this
    /// error, whatever happened to other publishers' events that shared
    /// its round trip to Redis.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[cfg(feature = "redis")]
    /// # fn main() -> Result<(), sse_server::Error> {
    /// use sse_server::{Error, Event, Hub};
    ///
    /// // Publishes `events`, retrying only what Redis refused, a few times.
    /// fn publish_each_once(hub: &Hub, events: &[Event]) -> Result<(), Error> {
    ///     let mut rest: Vec<&Event> = events.iter().collect();
    ///     let mut tries = 0;
    ///     loop {
    ///         match hub.publish_all(rest.iter().copied()) {
    ///             Err(Error::RedisPartlyAppended { refused, .. }) if tries < 3 => {
    ///                 rest = refused.iter().map(|&at| rest[at]).collect();
    ///             }
    ///             other => return other,
    ///         }
    ///         tries += 1;
    ///         std::thread::sleep(std::time::Duration::from_millis(500));
    ///     }
    /// }
    ///
    /// let hub = Hub::new()?; // without Redis every event goes out: `Ok`
    /// publish_each_once(&hub, &[Event::new("one"), Event::new("two")])?;
    /// # Ok(())
    /// # }
    /// # #[cfg(not(feature = "redis"))]
    /// # fn main() {}
    /// ```
    #[cfg(feature = "redis")]
    RedisPartlyAppended {
        /// How many events, from the first, Redis appended before it
        /// refused one: the batch's first `appended` events are in the
        /// stream, in order.
        appended: usize,
        /// The positions in the batch (counting from 0) of the events
        /// Redis did not append, in order, never empty; the first is
        /// `appended`. Every other event of the batch is in the stream.
        refused: Vec<usize>,
        /// Redis's answer to the first event it refused.
        reason: String,
    },
    /// The Redis settings were refused when the hub was built (feature
    /// `redis`): a URL the `redis` crate cannot read, or an empty stream
    /// key. The text shows the URL without its user and password.
    #[cfg(feature = "redis")]
    RedisConfig(String),
    /// A value could not be serialised to JSON (`json` feature).
    #[cfg(feature = "json")]
    Json(serde_json::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Closed => f.write_str("the hub is shut down"),
            Error::InvalidField { field, reason } => {
                write!(f, "invalid event {field} field: it contains {reason}")
            }
            Error::CommentField { field } => {
                write!(f, "a comment cannot carry an {field} field")
            }
            Error::Bind(e) => write!(f, "could not bind the listening socket: {e}"),
            Error::Spawn(e) => write!(f, "could not start a thread: {e}"),
            Error::ShutdownTimeout { threads } => write!(
                f,
                "shutdown deadline passed with {threads} writer thread(s) still running"
            ),
            Error::TooManyClients => f.write_str("too many clients: the event stream was refused"),
            Error::UnknownClient(id) => write!(f, "no connected client has id {id}"),
            Error::IdInUse(id) => write!(f, "client id {id} is already in use"),
            #[cfg(feature = "redis")]
            Error::RedisUnavailable(why) => write!(f, "Redis could not take the event: {why}"),
            #[cfg(feature = "redis")]
            Error::RedisPartlyAppended {
                appended,
                refused,
                reason,
            } => write!(
                f,
                "Redis appended the first {appended} event(s), then refused {} of the rest: {reason}",
                refused.len()
            ),
            #[cfg(feature = "redis")]
            Error::RedisConfig(why) => write!(f, "invalid Redis settings: {why}"),
            #[cfg(feature = "json")]
            Error::Json(e) => write!(f, "could not serialise the event data to JSON: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind(e) | Error::Spawn(e) => Some(e),
            #[cfg(feature = "json")]
            Error::Json(e) => Some(e),
            _ => None,
        }
    }
}
