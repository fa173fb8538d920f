//! The messages the other threads send the hub thread: events on their way
//! (with where they go), clients joining, clients leaving.

use std::sync::Arc;

use crossbeam_channel::Sender;

use crate::client_id::ClientId;
use crate::counters::ClientCounters;
use crate::frame::Frame;

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// Every client.
    All,
    /// The clients subscribed to this topic.
    Topic(Arc<str>),
    /// The clients with this id.
    Client(ClientId),
}

impl Route {
    /// Whether a client with `id` and `topics` receives an event routed so.
    pub(crate) fn reaches(&self, id: ClientId, topics: &[Box<str>]) -> bool {
        match self {
            Route::All => true,
            Route::Topic(topic) => topics.iter().any(|t| **t == **topic),
            Route::Client(target) => *target == id,
        }
    }
}

/// An event on its way to the hub thread.
pub(crate) struct Outgoing {
    pub(crate) frame: Frame,
    /// The publisher's own id, if the event has one (it is already in the
    /// frame's bytes).
    pub(crate) custom_id: Option<Arc<str>>,
    pub(crate) route: Route,
}

/// A client asking to join.
pub(crate) struct Registration {
    pub(crate) id: ClientId,
    pub(crate) queue: Sender<Frame>,
    pub(crate) counters: Arc<ClientCounters>,
    pub(crate) topics: Vec<Box<str>>,
    pub(crate) last_event_id: Option<String>,
    /// Answered once the client is in (or refused): true when it joined.
    pub(crate) registered: Sender<bool>,
}

/// A client leaving.
pub(crate) struct Removal {
    pub(crate) id: ClientId,
    /// Which client of that id: its counters. An id is free again once its
    /// client has left, and a removal sent late (by the writer, after the
    /// watch thread already had the client removed) must not remove a
    /// newer client that took the same id.
    pub(crate) counters: Arc<ClientCounters>,
    /// Answered once the hub thread has let go of the client, for a
    /// caller that waits for that.
    pub(crate) done: Option<Sender<()>>,
}
