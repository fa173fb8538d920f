//! The messages the other threads send the hub thread: events on their way
//! (with where they go), clients joining, clients leaving.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::client_id::ClientId;
use crate::counters::ClientCounters;
use crate::doorbell::RingOnDrop;
use crate::frame::Frame;
use crate::stream_id::StreamId;

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
    /// Its place in the shared Redis Stream (feature `redis`): set by the
    /// reader thread, which has put the id in the frame and in `custom_id`.
    pub(crate) position: Option<StreamId>,
    /// Set by the reader thread on the notice it sends after losing events
    /// (trimmed away, or the stream was emptied, while Redis was out of
    /// reach): the hub's window of the stream starts again after it.
    pub(crate) after_loss: bool,
}

/// Where a joining client starts.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum ResumeFrom {
    /// With the next event.
    Live,
    /// After the event with this id, replayed from the hub's history (or
    /// the gap event when the history does not hold it).
    Id(String),
    /// After `point`, an event of the shared Redis Stream: the client has
    /// been sent everything up to it already (`replayed`, fetched from
    /// Redis), and the hub replays from its history what came after.
    After {
        replayed: Option<Frame>,
        point: StreamId,
    },
    /// Redis says the id cannot be resumed from: the gap event, then live.
    Gap,
}

/// The hub thread's answer to a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Joined {
    Yes,
    IdInUse,
    /// `ResumeFrom::After`'s point has left the history since it was
    /// fetched: fetch again from there.
    Refetch,
}

/// The two ways a [`Registration`] reaches the hub thread.
///
/// `waking` is one of the channels the hub thread sleeps on: a send wakes
/// it, and it answers (or queues a replay) at once. `quiet` is not: the hub
/// thread only takes from it before it numbers an event and before a
/// removal (`HubThread::take_registrations`), so a send costs no thread
/// switch. It is for a client that needs nothing from the hub thread until
/// the next event: an unanswered registration with nothing to replay.
pub(crate) struct AddSenders {
    pub(crate) waking: Sender<Registration>,
    pub(crate) quiet: Sender<Registration>,
}

/// The hub thread's ends of [`AddSenders`].
pub(crate) struct AddReceivers {
    pub(crate) waking: Receiver<Registration>,
    pub(crate) quiet: Receiver<Registration>,
}

/// A pair of unbounded channels for registrations: see [`AddSenders`].
pub(crate) fn add_channels() -> (AddSenders, AddReceivers) {
    let (waking, waking_rx) = crossbeam_channel::unbounded();
    let (quiet, quiet_rx) = crossbeam_channel::unbounded();
    (
        AddSenders { waking, quiet },
        AddReceivers {
            waking: waking_rx,
            quiet: quiet_rx,
        },
    )
}

/// A client asking to join.
pub(crate) struct Registration {
    pub(crate) id: ClientId,
    pub(crate) queue: Sender<Frame>,
    pub(crate) counters: Arc<ClientCounters>,
    pub(crate) topics: Vec<Box<str>>,
    pub(crate) resume: ResumeFrom,
    /// Answered once the client is in, or refused. `None`: the sender
    /// has entered the id in `Shared::clients` itself and goes on without
    /// an answer, since the hub cannot refuse it (see
    /// `Subscription::register`).
    pub(crate) registered: Option<Sender<Joined>>,
    /// Rung after each frame queued, for a receiver that waits with it
    /// (a stream's writer) rather than in the channel's own `recv`; and,
    /// declared after `queue`, when a registration the hub drops (a parked
    /// one, at shutdown) lets go of its copy of the sender.
    pub(crate) bell: RingOnDrop,
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
