//! The replay history the hub thread keeps: the last events, bounded by
//! count, bytes and age.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client_id::ClientId;
use crate::frame::Frame;
use crate::messages::Route;
use crate::stream_id::StreamId;

struct Entry {
    seq: u64,
    /// The publisher's own id; `None` for an id the hub gave.
    custom_id: Option<Arc<str>>,
    route: Route,
    frame: Frame,
    at: Instant,
    /// Its place in the shared Redis Stream (feature `redis`).
    position: Option<StreamId>,
}

/// What a `Last-Event-ID` told the hub.
pub(crate) enum Resume {
    /// Replay these frames (joined), then go live.
    Replay(Vec<Frame>),
    /// The id is not in the history (unknown, garbage, or evicted): the
    /// client has a gap it cannot fill.
    Unknown,
}

pub(crate) struct History {
    max_events: usize,
    max_bytes: usize,
    max_age: Option<Duration>,
    entries: VecDeque<Entry>,
    bytes: usize,
    /// Publisher ids still in the history, to the sequence number of the
    /// newest event that carried them.
    custom: HashMap<Arc<str>, u64>,
    /// Every event with a sequence number up to this one has left the
    /// history (or was never in it).
    evicted_through: u64,
    /// The place in the shared Redis Stream of the newest event that has
    /// left the history (feature `redis`).
    evicted_position: Option<StreamId>,
    /// The prefix of the ids the hub gives: `<prefix><seq>`.
    prefix: String,
}

impl History {
    pub(crate) fn new(
        max_events: usize,
        max_bytes: usize,
        max_age: Option<Duration>,
        prefix: String,
    ) -> History {
        History {
            max_events,
            max_bytes,
            max_age,
            entries: VecDeque::new(),
            bytes: 0,
            custom: HashMap::new(),
            evicted_through: 0,
            evicted_position: None,
            prefix,
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        self.max_events > 0 && self.max_bytes > 0
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn push(
        &mut self,
        seq: u64,
        custom_id: Option<Arc<str>>,
        route: Route,
        frame: Frame,
        now: Instant,
        position: Option<StreamId>,
    ) {
        if !self.enabled() || frame.as_bytes().len() > self.max_bytes {
            self.pass(seq, position);
            return;
        }
        if let Some(id) = &custom_id {
            self.custom.insert(Arc::clone(id), seq);
        }
        self.bytes += frame.as_bytes().len();
        self.entries.push_back(Entry {
            seq,
            custom_id,
            route,
            frame,
            at: now,
            position,
        });
        while self.entries.len() > self.max_events || self.bytes > self.max_bytes {
            self.pop_front();
        }
        self.expire(now);
    }

    /// Notes an event that is not kept (the history is off, or the event
    /// is larger than it may hold): nothing up to it can be replayed from
    /// here any more, so a client that asks what followed an earlier event
    /// gets `Resume::Unknown`, not a replay without this one.
    pub(crate) fn pass(&mut self, seq: u64, position: Option<StreamId>) {
        self.evict_all_through(seq);
        if position.is_some() {
            self.evicted_position = position;
        }
    }

    /// Drops the entries older than the age limit.
    pub(crate) fn expire(&mut self, now: Instant) {
        let Some(max_age) = self.max_age else {
            return;
        };
        while self
            .entries
            .front()
            .is_some_and(|entry| now.saturating_duration_since(entry.at) > max_age)
        {
            self.pop_front();
        }
    }

    fn evict_all_through(&mut self, seq: u64) {
        while !self.entries.is_empty() {
            self.pop_front();
        }
        self.evicted_through = seq;
    }

    fn pop_front(&mut self) {
        if let Some(entry) = self.entries.pop_front() {
            self.bytes -= entry.frame.as_bytes().len();
            self.evicted_through = entry.seq;
            if entry.position.is_some() {
                self.evicted_position = entry.position;
            }
            if let Some(id) = entry.custom_id
                && self.custom.get(&id) == Some(&entry.seq)
            {
                self.custom.remove(&id);
            }
        }
    }

    /// The sequence number a `Last-Event-ID` stands for, if the history can
    /// still tell what came after it. `last_seq` is the newest event's.
    fn position(&self, last_event_id: &str, last_seq: u64) -> Option<u64> {
        let seq = match self.custom.get(last_event_id) {
            Some(&seq) => seq,
            None => canonical_number(last_event_id.strip_prefix(&self.prefix)?)?,
        };
        (seq >= self.evicted_through && seq <= last_seq).then_some(seq)
    }

    /// What to send a client that reconnects with `last_event_id`: the
    /// events after it that reach the client.
    pub(crate) fn resume(
        &mut self,
        last_event_id: &str,
        last_seq: u64,
        id: ClientId,
        topics: &[Box<str>],
        now: Instant,
    ) -> Resume {
        self.expire(now);
        let Some(after) = self.position(last_event_id, last_seq) else {
            return Resume::Unknown;
        };
        let frames = self
            .entries
            .iter()
            .filter(|entry| entry.seq > after && entry.route.reaches(id, topics))
            .map(|entry| entry.frame.clone())
            .collect();
        Resume::Replay(frames)
    }

    /// What to send a client that has every event of the shared Redis
    /// Stream up to `point` (feature `redis`): the events after it that
    /// reach the client, if the history still holds all of them. `floor`
    /// is the first place the hub has seen since its window was last
    /// complete: events before it never reached this hub.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn resume_after(
        &mut self,
        point: StreamId,
        floor: Option<StreamId>,
        id: ClientId,
        topics: &[Box<str>],
        now: Instant,
    ) -> Resume {
        self.expire(now);
        let complete = floor.is_some_and(|floor| point >= floor)
            && self.evicted_position.is_none_or(|evicted| point >= evicted);
        if !complete {
            return Resume::Unknown;
        }
        let frames = self
            .entries
            .iter()
            .filter(|entry| {
                entry.position.is_some_and(|at| at > point) && entry.route.reaches(id, topics)
            })
            .map(|entry| entry.frame.clone())
            .collect();
        Resume::Replay(frames)
    }
}

/// `digits` as the hub writes a sequence number (decimal, no sign, no
/// leading zero), or `None`: an id the hub never gave (`+5`, `05`) is not
/// taken for one it did.
fn canonical_number(digits: &str) -> Option<u64> {
    let canonical =
        digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    if canonical { digits.parse().ok() } else { None }
}
