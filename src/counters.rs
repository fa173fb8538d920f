//! The counters behind [`Stats`], [`ClientStats`] and the hub's metrics:
//! atomics that every thread of a hub updates and any thread reads, without
//! a message to the hub thread.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::client_id::ClientId;
use crate::connect::DisconnectReason;
use crate::stats::{ClientStats, Stats};

/// Why a client was turned away before its stream started: the `reason`
/// label of `sse_streams_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// `max_clients` streams were open.
    TooManyClients,
    /// The hub was shutting down.
    ShuttingDown,
    /// The operating system refused the stream's writer thread.
    NoThread,
    /// The connect hook rejected the client.
    Hook,
    /// The id the connect hook chose belongs to a connected client.
    IdInUse,
    /// The client asked for more than `MAX_TOPICS` topics.
    TooManyTopics,
    /// The client asked for a topic longer than `MAX_TOPIC_BYTES`.
    TopicTooLong,
}

impl Rejection {
    /// Every reason, in the order of [`Tallies::rejected`].
    pub(crate) const ALL: [Rejection; 7] = [
        Rejection::TooManyClients,
        Rejection::ShuttingDown,
        Rejection::NoThread,
        Rejection::Hook,
        Rejection::IdInUse,
        Rejection::TooManyTopics,
        Rejection::TopicTooLong,
    ];

    /// The reason as a metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Rejection::TooManyClients => "too_many_clients",
            Rejection::ShuttingDown => "shutting_down",
            Rejection::NoThread => "no_thread",
            Rejection::Hook => "hook",
            Rejection::IdInUse => "id_in_use",
            Rejection::TooManyTopics => "too_many_topics",
            Rejection::TopicTooLong => "topic_too_long",
        }
    }
}

/// Why a stream ended, as counted: a [`DisconnectReason`] without the
/// write error's kind. The `reason` label of `sse_disconnects_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Departure {
    Closed,
    WriteError,
    TimedOut,
    Evicted,
    Shutdown,
}

impl Departure {
    /// Every reason, in the order of [`Tallies::disconnects`].
    pub(crate) const ALL: [Departure; 5] = [
        Departure::Closed,
        Departure::WriteError,
        Departure::TimedOut,
        Departure::Evicted,
        Departure::Shutdown,
    ];

    pub(crate) fn of(reason: &DisconnectReason) -> Departure {
        match reason {
            DisconnectReason::Closed => Departure::Closed,
            DisconnectReason::WriteError(_) => Departure::WriteError,
            DisconnectReason::TimedOut => Departure::TimedOut,
            DisconnectReason::Evicted => Departure::Evicted,
            DisconnectReason::Shutdown => Departure::Shutdown,
        }
    }

    /// The reason as a metric label value.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Departure::Closed => "closed",
            Departure::WriteError => "write_error",
            Departure::TimedOut => "timed_out",
            Departure::Evicted => "evicted",
            Departure::Shutdown => "shutdown",
        }
    }
}

/// The hub's counters (a [`Stats`] without the parts read elsewhere, and
/// the counts only the metrics show).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connected: AtomicUsize,
    pub(crate) published: AtomicU64,
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) evicted: AtomicU64,
    /// By [`Rejection`], in the order of [`Rejection::ALL`].
    rejected: [AtomicU64; Rejection::ALL.len()],
    /// Streams whose client joined the hub (past the connect hook).
    streams_opened: AtomicU64,
    /// Streams ended, by [`Departure`], in the order of [`Departure::ALL`].
    disconnects: [AtomicU64; Departure::ALL.len()],
    /// Bytes the writers handed to their streams' connections.
    pub(crate) written_bytes: AtomicU64,
    pub(crate) history_events: AtomicUsize,
    pub(crate) history_bytes: AtomicUsize,
}

/// The counts the metrics show beside [`Stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tallies {
    pub(crate) streams_opened: u64,
    /// In the order of [`Rejection::ALL`].
    pub(crate) rejected: [u64; Rejection::ALL.len()],
    /// In the order of [`Departure::ALL`].
    pub(crate) disconnects: [u64; Departure::ALL.len()],
    pub(crate) written_bytes: u64,
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
            rejected: self
                .rejected
                .iter()
                .map(|count| count.load(Ordering::Relaxed))
                .sum(),
            history_events: self.history_events.load(Ordering::Relaxed),
            history_bytes: self.history_bytes.load(Ordering::Relaxed),
            ..Stats::default()
        }
    }

    /// The counts that are not in [`Stats`].
    pub(crate) fn tallies(&self) -> Tallies {
        Tallies {
            streams_opened: self.streams_opened.load(Ordering::Relaxed),
            rejected: self
                .rejected
                .each_ref()
                .map(|count| count.load(Ordering::Relaxed)),
            disconnects: self
                .disconnects
                .each_ref()
                .map(|count| count.load(Ordering::Relaxed)),
            written_bytes: self.written_bytes.load(Ordering::Relaxed),
        }
    }

    /// Counts one client turned away before its stream started.
    pub(crate) fn reject(&self, why: Rejection) {
        self.rejected[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one stream started: its client joined the hub.
    pub(crate) fn stream_opened(&self) {
        self.streams_opened.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one stream ended, and why.
    pub(crate) fn disconnected(&self, reason: &DisconnectReason) {
        self.disconnects[Departure::of(reason) as usize].fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_counted_in_their_own_slots() {
        let counters = Counters::default();
        for (at, &why) in Rejection::ALL.iter().enumerate() {
            assert_eq!(why as usize, at, "{why:?}");
            for _ in 0..=at {
                counters.reject(why);
            }
        }
        for (at, &departure) in Departure::ALL.iter().enumerate() {
            assert_eq!(departure as usize, at, "{departure:?}");
        }
        counters.disconnected(&DisconnectReason::WriteError(std::io::ErrorKind::Other));
        counters.disconnected(&DisconnectReason::Shutdown);
        counters.disconnected(&DisconnectReason::Shutdown);
        let tallies = counters.tallies();
        assert_eq!(tallies.rejected, [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(tallies.disconnects, [0, 1, 0, 0, 2]);
        assert_eq!(counters.snapshot().rejected, 28);
    }
}
