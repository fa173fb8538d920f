//! The reader thread: follows the shared stream with `XREAD BLOCK` and
//! hands each entry to the hub thread, in the stream's order.
//!
//! It starts at the stream's newest entry when it first connects (what
//! came before is for replay), and after a lost connection goes on from the
//! last id it read, so that nothing Redis still holds is missed. When that
//! id is no longer in the stream (trimmed away while the process was cut
//! off, or the stream was emptied), events may have been lost in between:
//! every client gets the gap event, and the hub's window of the stream
//! starts again.

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
        match self.position {
            None => {
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
            Some(position) if position != StreamId::ZERO => {
                let still_there: Value = match redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(position.to_string())
                    .arg(position.to_string())
                    .query(connection)
                {
                    Ok(found) => found,
                    Err(e) => return Stop::Lost(e),
                };
                if first_id(&still_there) != Some(position) {
                    log::warn!(
                        "the Redis stream no longer holds {position}, the last event this \
                         process read (trimmed or emptied while it was cut off): clients get \
                         the gap event"
                    );
                    if self.hub.send(self.loss_notice()).is_err() {
                        return Stop::Stopping;
                    }
                }
            }
            Some(_) => {}
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
            let read: Value = match redis::cmd("XREAD")
                .arg("COUNT")
                .arg(COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(position.to_string())
                .query(connection)
            {
                Ok(read) => read,
                Err(e) => return Stop::Lost(e),
            };
            for entry in entries_of_xread(&read) {
                let Some((at, outgoing)) = decode(entry) else {
                    // Not ours: skip it, but read on after it.
                    if let Some(at) = entry_id(entry) {
                        self.position = Some(at);
                    }
                    continue;
                };
                self.position = Some(at);
                if self.hub.send(outgoing).is_err() {
                    return Stop::Stopping;
                }
            }
        }
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
