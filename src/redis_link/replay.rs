//! Replay from the shared stream for a client that reconnects with a
//! `Last-Event-ID`, fetched on the client's own thread (never the hub
//! thread's): `XRANGE` from that id.
//!
//! The id must still be in the stream: then nothing after it was trimmed
//! (Redis trims the oldest first), and it is an id of this stream, not of
//! one that was emptied since (`FLUSHALL`) or of another. Otherwise, and
//! when more than `replay_max` events follow it, the client gets the gap
//! event.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::Value;

use crate::client_id::ClientId;
use crate::config::RedisSettings;
use crate::frame::Frame;
use crate::redis_link::connection::{clearer, connect_by, left_until};
use crate::redis_link::entry::decode;
use crate::redis_link::read::entry_id;
use crate::stream_id::StreamId;
use crate::sync::lock;

/// Idle connections kept for the next client that reconnects.
const POOL: usize = 4;

/// What the stream holds after a client's `Last-Event-ID`.
pub(crate) enum Fetched {
    /// Every event after the id up to `point` that reaches the client
    /// (`None`: none did).
    After {
        replayed: Option<Frame>,
        point: StreamId,
    },
    /// The id cannot be resumed from: the gap event.
    Gap,
}

/// Fetches replays, with a few connections kept between clients.
pub(crate) struct Replayer {
    client: redis::Client,
    key: String,
    timeout: Duration,
    /// At most `LARGEST_COUNT - 2` (`HubBuilder::redis_replay_max` sees to
    /// it), so that the `COUNT` of `query` is one Redis takes.
    replay_max: usize,
    idle: Mutex<Vec<redis::Connection>>,
}

impl Replayer {
    pub(crate) fn new(settings: &RedisSettings, client: redis::Client) -> Replayer {
        Replayer {
            client,
            key: settings.key.clone(),
            timeout: settings.timeout,
            replay_max: settings.replay_max,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// What comes after `last_event_id` for the client `id` with `topics`;
    /// `Err` (why) when Redis cannot be asked now.
    pub(crate) fn fetch_after(
        &self,
        last_event_id: &str,
        id: ClientId,
        topics: &[Box<str>],
    ) -> Result<Fetched, String> {
        let Some(from) = StreamId::parse(last_event_id) else {
            return Ok(Fetched::Gap);
        };
        // The id itself, the events after it, and one more to tell a
        // client that is too far behind. A kept connection may have died
        // with a Redis restart: then once more on a new one. All of it
        // within one `timeout`, so that a Redis that does not answer
        // holds the client's stream back no longer.
        let deadline = Instant::now() + self.timeout;
        let kept = lock(&self.idle).pop();
        let reply = match kept {
            Some(kept) => self
                .query(kept, from, deadline)
                .or_else(|_| self.query(self.connect(deadline)?, from, deadline)),
            None => self.query(self.connect(deadline)?, from, deadline),
        }?;
        let Value::Array(entries) = reply else {
            return Ok(Fetched::Gap);
        };
        if entries.first().and_then(entry_id) != Some(from)
            || entries.len() > self.replay_max.saturating_add(1)
        {
            return Ok(Fetched::Gap);
        }
        let mut point = from;
        let mut frames = Vec::new();
        for entry in &entries[1..] {
            let Some(at) = entry_id(entry) else {
                continue;
            };
            point = at;
            if let Some((_, outgoing)) = decode(entry)
                && outgoing.frame.events() > 0
                && outgoing.route.reaches(id, topics)
            {
                frames.push(outgoing.frame);
            }
        }
        Ok(Fetched::After {
            replayed: (!frames.is_empty()).then(|| Frame::join(&frames)),
            point,
        })
    }

    fn connect(&self, deadline: Instant) -> Result<redis::Connection, String> {
        connect_by(&self.client, deadline, self.timeout).map_err(|e| e.to_string())
    }

    /// `XRANGE` from `from` on `connection`, answered by `deadline`; the
    /// connection is kept afterwards when it worked.
    fn query(
        &self,
        mut connection: redis::Connection,
        from: StreamId,
        deadline: Instant,
    ) -> Result<Value, String> {
        let reply: Value = left_until(deadline, self.timeout)
            .and_then(|left| connection.set_read_timeout(Some(left)))
            .and_then(|()| {
                redis::cmd("XRANGE")
                    .arg(&self.key)
                    .arg(from.to_string())
                    .arg("+")
                    .arg("COUNT")
                    .arg(self.replay_max.saturating_add(2))
                    .query(&mut connection)
            })
            .map_err(|e| clearer(e, self.timeout).to_string())?;
        let mut idle = lock(&self.idle);
        if idle.len() < POOL {
            idle.push(connection);
        }
        Ok(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_link::connection::tests::silent_server;

    /// Found at a2bc971: a replay from a server that does not answer failed
    /// with "Resource temporarily unavailable (os error 11)".
    #[test]
    fn a_silent_server_times_out_in_words() {
        let (addr, stop) = silent_server();
        let settings = RedisSettings {
            url: format!("redis://{addr}"),
            key: "k".into(),
            timeout: Duration::from_millis(300),
            ..RedisSettings::default()
        };
        let replayer = Replayer::new(
            &settings,
            crate::redis_link::connection::client(&settings).expect("a client"),
        );
        match replayer.fetch_after("1-0", ClientId::new(1), &[]) {
            Err(why) => assert_eq!(why, "Redis did not answer within 300ms"),
            Ok(_) => panic!("a replay from a server that never answers"),
        }
        stop();
    }
}
