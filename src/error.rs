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
    /// reached, is restarting, or did not answer within
    /// [`HubBuilder::redis_timeout`](crate::HubBuilder::redis_timeout).
    /// Nothing was delivered by this process. After a timeout the event
    /// may still have been appended (and then reaches every client); in
    /// every other case it was not. The text says why. While the link is
    /// down every publish fails at once with this error; the hub
    /// reconnects by itself, and [`Stats::redis_connected`](crate::Stats::redis_connected) tells.
    #[cfg(feature = "redis")]
    RedisUnavailable(String),
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
