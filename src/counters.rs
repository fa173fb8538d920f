//! The counters behind [`Stats`] and [`ClientStats`]: atomics that every
//! thread of a hub updates and any thread reads, without a message to the
//! hub thread.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::client_id::ClientId;
use crate::stats::{ClientStats, Stats};

/// The hub's counters (a [`Stats`] without the parts read elsewhere).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) evicted: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) history_events: AtomicUsize,
    pub(crate) history_bytes: AtomicUsize,
}

impl Counters {
    /// The counters as [`Stats`]; `streams` and `pending` are the caller's
    /// to fill in.
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            clients: self.connected.load(Ordering::Relaxed),
            published: self.published.load(Ordering::Relaxed),
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            history_events: self.history_events.load(Ordering::Relaxed),
            history_bytes: self.history_bytes.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }

    /// Counts one client turned away before its stream started.
    pub(crate) fn reject(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
    }
}

/// One client's counters, shared by the hub thread, the client's writer (or
/// subscription) and the watch thread.
#[derive(Debug, Default)]
pub(crate) struct ClientCounters {
    pub(crate) dropped: AtomicU64,
    pub(crate) delivered: AtomicU64,
    /// Set when the hub ended the client's stream: too slow under
    /// [`SlowClient::Disconnect`](crate::SlowClient::Disconnect), or too many
    /// requests behind its stream.
    pub(crate) evicted: AtomicBool,
    /// Set when the watch thread found the client's connection closed or
    /// reset: the stream ends without another write.
    pub(crate) peer_closed: AtomicBool,
}

impl ClientCounters {
    pub(crate) fn snapshot(&self, id: ClientId) -> ClientStats {
        ClientStats {
            id,
            dropped: self.dropped.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}
