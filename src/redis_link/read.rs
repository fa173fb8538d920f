//! The reader thread: follows the shared stream with `XREAD BLOCK` and
//! hands each entry to the hub thread, in the stream's order.
//!
//! It starts at the stream's newest entry when it first connects (what
//! came before is for replay), and after a lost connection goes on from the
//! last id it read, so that nothing Redis still holds is missed. With each
//! read it checks, in the same round trip, that this id is still in the
//! stream. When it is not (trimmed away while the process was cut off, or
//! before a slow reader got past it; or the stream was emptied), events may
//! have been lost in between: every client gets the gap event, and the
//! hub's window of the stream starts again. If the stream was emptied and
//! refilled with ids that are not after the last one read (`FLUSHALL`, then
//! an entry in the same millisecond), it is read again from its start.
//!
//! A check can say "lost" where nothing was (the entry trimmed just after
//! this read returned): then clients get a gap event they did not need,
//! never the other way round.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use redis::Value;

use crate::config::RedisSettings;
use crate::encode;
use crate::frame::Frame;
use crate::messages::{Outgoing, Route};
use crate::redis_link::connection::{Backoff, LinkState, connect};
use crate::redis_link::entry::{decode, text};
use crate::stream_id::StreamId;

/// How long one `XREAD` waits for new entries: also how long stopping the
/// hub may wait for this thread.
const BLOCK: Duration = Duration::from_millis(500);
/// At most this many entries per `XREAD`.
const COUNT: usize = 1024;

pub(crate) struct Reader {
    client: redis::Client,
    key: String,
    timeout: Duration,
    gap_event: Option<String>,
    state: Arc<LinkState>,
    hub: Sender<Outgoing>,
    /// The id of the last entry read (`None`: not connected yet).
    position: Option<StreamId>,
    /// A digest of that entry's fields: after the stream was emptied, a
    /// new entry can take the same id.
    digest: Option<u64>,
}

/// Why reading stopped.
enum Stop {
    /// The hub is shutting down.
    Stopping,
    /// The connection failed; connect again.
    Lost(redis::RedisError),
}

impl Reader {
    pub(crate) fn new(
        settings: &RedisSettings,
        gap_event: Option<String>,
        client: redis::Client,
        state: Arc<LinkState>,
        hub: Sender<Outgoing>,
    ) -> Reader {
        Reader {
            client,
            key: settings.key.clone(),
            timeout: settings.timeout,
            gap_event,
            state,
            hub,
            position: None,
            digest: None,
        }
    }

    pub(crate) fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut was_down = false;
        while !self.stopping() {
            // The read timeout covers the time XREAD blocks.
            let connection = connect(&self.client, self.timeout + BLOCK);
            let stop = match connection {
                Ok(mut connection) => {
                    backoff.reset();
                    self.follow(&mut connection, &mut was_down)
                }
                Err(e) => Stop::Lost(e),
            };
            match stop {
                Stop::Stopping => break,
                Stop::Lost(e) => {
                    self.state.reading.store(false, Ordering::Release);
                    if !was_down {
                        log::warn!("lost Redis while following the stream: {e}; reconnecting");
                    }
                    was_down = true;
                    self.pause(backoff.pause());
                }
            }
        }
        self.state.reading.store(false, Ordering::Release);
    }

    fn stopping(&self) -> bool {
        self.state.stopping.load(Ordering::Acquire)
    }

    /// Waits `pause`, or less when the hub stops.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.stopping() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::park_timeout(left.min(Duration::from_millis(50)));
        }
    }

    /// Finds its place, then reads until the connection fails or the hub
    /// stops.
    fn follow(&mut self, connection: &mut redis::Connection, was_down: &mut bool) -> Stop {
        if self.position.is_none() {
            let newest: Value = match redis::cmd("XREVRANGE")
                .arg(&self.key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(connection)
            {
                Ok(newest) => newest,
                Err(e) => return Stop::Lost(e),
            };
            let start = first_id(&newest).unwrap_or(StreamId::ZERO);
            self.position = Some(start);
            self.digest = match &newest {
                Value::Array(entries) => entries.first().and_then(digest),
                _ => None,
            };
            // The hub thread learns where its window of the stream
            // starts: a client whose replay from Redis ends here joins
            // at once, without waiting for the next event.
            let marker = Outgoing {
                frame: Frame::new(Vec::new(), 0),
                custom_id: None,
                route: Route::All,
                position: Some(start),
                after_loss: false,
            };
            if self.hub.send(marker).is_err() {
                return Stop::Stopping;
            }
            self.state.positioned.store(true, Ordering::Release);
        }
        self.state.reading.store(true, Ordering::Release);
        if *was_down {
            log::info!("Redis is back: following the stream again");
            *was_down = false;
        }
        loop {
            if self.stopping() {
                return Stop::Stopping;
            }
            let position = self.position.unwrap_or(StreamId::ZERO);
            // With each read, in the same round trip and just after it (a
            // pipeline runs in order, the checks once XREAD returns): is the
            // last entry read before still there, and which entry is first.
            // Redis trims the oldest entries first, so if that entry is
            // still there, nothing this read could have missed was trimmed.
            let checked = position != StreamId::ZERO;
            let mut pipe = redis::pipe();
            pipe.cmd("XREAD")
                .arg("COUNT")
                .arg(COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(position.to_string());
            if checked {
                let at = position.to_string();
                pipe.cmd("XRANGE").arg(&self.key).arg(&at).arg(&at);
                pipe.cmd("XRANGE")
                    .arg(&self.key)
                    .arg("-")
                    .arg("+")
                    .arg("COUNT")
                    .arg(1);
            }
            let replies: Vec<Value> = match pipe.query(connection) {
                Ok(replies) => replies,
                Err(e) => return Stop::Lost(e),
            };
            let [read, checks @ ..] = replies.as_slice() else {
                continue;
            };
            if let [at_position, first] = checks
                && !self.still_there(at_position, position)
            {
                // Trimmed away before this reader got past it (while cut
                // off, or outrun by a burst), or the stream was emptied:
                // events may be lost.
                log::warn!(
                    "the Redis stream no longer holds {position}, the last entry this process \
                     read (trimmed before it was read past, or the stream was emptied): \
                     clients get the gap event"
                );
                if self.hub.send(self.loss_notice()).is_err() {
                    return Stop::Stopping;
                }
                if first_id(first).is_none_or(|first| first <= position) {
                    // Emptied, and what is there now (if anything) has ids
                    // that are not after ours: all of it is new here, and is
                    // read again from the start (this read's entries too).
                    self.position = Some(StreamId::ZERO);
                    self.digest = None;
                    continue;
                }
            }
            if !checked
                && !entries_of_xread(read).is_empty()
                && self.deleted_since_start(connection)
            {
                // The reader started at an empty stream (or read it again
                // from its start), and entries it never saw have been
                // trimmed since.
                log::warn!(
                    "entries of the Redis stream were trimmed before this process read them: \
                     clients get the gap event"
                );
                if self.hub.send(self.loss_notice()).is_err() {
                    return Stop::Stopping;
                }
            }
            let mut last = None;
            for entry in entries_of_xread(read) {
                let Some(at) = entry_id(entry) else {
                    continue;
                };
                self.position = Some(at);
                last = Some(entry);
                // Not ours (no `d` field, say): skipped, but read past.
                let Some((_, outgoing)) = decode(entry) else {
                    continue;
                };
                if self.hub.send(outgoing).is_err() {
                    return Stop::Stopping;
                }
            }
            // Only the last entry read is looked for at the next read.
            if let Some(entry) = last {
                self.digest = digest(entry);
            }
        }
    }

    /// Whether any entry of the stream has been trimmed (or deleted) since
    /// the stream was created: Redis 7's `entries-added` of `XINFO STREAM`
    /// is more than its `length`. False where Redis does not tell (before
    /// 7.0) or cannot be asked; a lost connection shows at the next read.
    fn deleted_since_start(&self, connection: &mut redis::Connection) -> bool {
        let Ok(Value::Array(info)) = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&self.key)
            .query::<Value>(connection)
        else {
            return false;
        };
        let number = |name: &str| {
            info.chunks_exact(2)
                .find(|pair| text(&pair[0]).as_deref() == Some(name))
                .and_then(|pair| match &pair[1] {
                    Value::Int(n) => u64::try_from(*n).ok(),
                    other => text(other)?.parse().ok(),
                })
        };
        match (number("entries-added"), number("length")) {
            (Some(added), Some(length)) => added > length,
            _ => false,
        }
    }

    /// Whether the reply to `XRANGE key position position` is the entry
    /// read last: the same id, and the same fields.
    fn still_there(&self, reply: &Value, position: StreamId) -> bool {
        let Value::Array(entries) = reply else {
            return false;
        };
        let Some(entry) = entries.first() else {
            return false;
        };
        entry_id(entry) == Some(position) && (self.digest.is_none() || digest(entry) == self.digest)
    }

    /// The gap event for every client, after events were lost.
    fn loss_notice(&self) -> Outgoing {
        Outgoing {
            frame: Frame::new(
                encode::gap(self.gap_event.as_deref(), None, "events-lost"),
                0,
            ),
            custom_id: None,
            route: Route::All,
            position: None,
            after_loss: true,
        }
    }
}

/// The entries of an `XREAD` reply: `[[key, [entry, ...]]]`, or nil when
/// the block time passed.
fn entries_of_xread(reply: &Value) -> &[Value] {
    let Value::Array(streams) = reply else {
        return &[];
    };
    let Some(Value::Array(stream)) = streams.first() else {
        return &[];
    };
    match stream.get(1) {
        Some(Value::Array(entries)) => entries,
        _ => &[],
    }
}

/// The id of an entry `[id, fields]`.
pub(crate) fn entry_id(entry: &Value) -> Option<StreamId> {
    let Value::Array(parts) = entry else {
        return None;
    };
    StreamId::parse(&text(parts.first()?)?)
}

/// The id of the first entry of an `XRANGE` / `XREVRANGE` reply.
pub(crate) fn first_id(reply: &Value) -> Option<StreamId> {
    let Value::Array(entries) = reply else {
        return None;
    };
    entry_id(entries.first()?)
}

/// A digest of the fields of an entry `[id, [field, value, ...]]`.
fn digest(entry: &Value) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let Value::Array(parts) = entry else {
        return None;
    };
    let Some(Value::Array(fields)) = parts.get(1) else {
        return None;
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for field in fields {
        if let Value::BulkString(bytes) = field {
            bytes.hash(&mut hasher);
        }
    }
    Some(hasher.finish())
}
