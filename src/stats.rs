//! `Stats` and `ClientStats`: what a hub tells of itself and its clients.

use crate::client_id::ClientId;

/// Counters for a whole hub, from [`Hub::stats`](crate::Hub::stats).
///
/// The counts of events are since the hub started. Reading them is cheap (a
/// few atomic loads): no message goes to the hub thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Clients connected now: event streams and subscriptions.
    pub clients: usize,
    /// Events accepted by `notify`, `publish`, `publish_all`, `publish_to`
    /// and `send_to` (under the `redis` feature: appended to the stream by
    /// this process).
    /// Comments ([`Event::comment`](crate::Event::comment)) are not events,
    /// and are counted here no more than in the other counts of events.
    pub published: u64,
    /// Event deliveries put into clients' queues (one event queued for ten
    /// clients counts ten).
    pub queued: u64,
    /// Event deliveries missed because a client's queue was full.
    pub dropped: u64,
    /// Streams the hub ended because the client was too slow (under
    /// [`SlowClient::Disconnect`](crate::SlowClient::Disconnect)) or sent too
    /// many requests behind its stream.
    pub evicted: u64,
    /// Clients turned away before their stream started: those told to come
    /// back later (too many streams open, see
    /// [`HubBuilder::max_clients`](crate::HubBuilder::max_clients); the hub
    /// shutting down; the operating system refusing a thread), whether they
    /// got the `sse-busy` event stream (see
    /// [`HubBuilder::busy_retry`](crate::HubBuilder::busy_retry)) or `503
    /// Service Unavailable`, a rejection by the connect hook, `409
    /// Conflict` for an id in use, `400 Bad Request` for too many topics.
    pub rejected: u64,
    /// Event streams open now (the rest of [`clients`](Stats::clients) are
    /// subscriptions). A stream counts from the moment its request is
    /// taken, before the connect hook runs and the client is registered,
    /// so for that moment `streams` can exceed the streams among `clients`;
    /// an event published then does not reach that stream (but for replay).
    pub streams: usize,
    /// Events published but not yet taken up by the hub thread.
    pub pending: usize,
    /// Events in the replay history.
    pub history_events: usize,
    /// Bytes of encoded events in the replay history.
    pub history_bytes: usize,
    /// Feature `redis`: `None` when the hub shares no stream
    /// ([`HubBuilder::redis`](crate::HubBuilder::redis)); otherwise whether
    /// both of its connections to Redis are up, the one that appends what
    /// this process publishes and the one that reads the stream. While it
    /// is `Some(false)`, publishing fails at once, clients keep their
    /// streams and get no new events, and the hub reconnects by itself.
    #[cfg(feature = "redis")]
    pub redis_connected: Option<bool>,
}

/// Counters for one client, from [`Hub::client_stats`](crate::Hub::client_stats)
/// and [`Hub::clients`](crate::Hub::clients).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// The client's id.
    pub id: ClientId,
    /// Events the client missed because its queue was full.
    pub dropped: u64,
    /// Events written to the client's connection (streams only; a
    /// subscription counts what it received in its own code).
    pub delivered: u64,
    /// True when the hub ended the client's stream (too slow, or too many
    /// requests behind its stream); the stream ends once what was queued is
    /// written.
    pub evicted: bool,
}
