//! `Config`: the settings a hub runs with, frozen once it starts, and
//! `SlowClient`, the policy for a client whose queue is full.

use std::fmt;
use std::time::Duration;

use crate::connect::{ConnectHook, DisconnectHook};
use crate::cors::Cors;

/// The most streams served at once, unless the caller says otherwise or the
/// machine's limits allow fewer (see `HubBuilder::max_clients`).
pub(crate) const DEFAULT_MAX_CLIENTS: usize = 10_000;

/// What the hub does when a client's queue is full, set with
/// [`HubBuilder::slow_client`](crate::HubBuilder::slow_client). Whichever it is, the hub never waits for a
/// client and `notify` never blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowClient {
    /// The client misses the frame that did not fit (the newest events) and
    /// keeps its connection. The miss is counted ([`Stats::dropped`],
    /// [`ClientStats::dropped`]), and before the next events it gets, the
    /// stream tells the client with a gap event (see
    /// [`HubBuilder::gap_event`](crate::HubBuilder::gap_event)).
    ///
    /// [`Stats::dropped`]: crate::Stats::dropped
    /// [`ClientStats::dropped`]: crate::ClientStats::dropped
    #[default]
    DropNewest,
    /// The client's stream is ended after what is already queued for it,
    /// so that it reconnects and, with the replay history, catches up from
    /// its last event id. It is counted in [`Stats::evicted`].
    ///
    /// [`Stats::evicted`]: crate::Stats::evicted
    Disconnect,
}

/// The settings a hub runs with, frozen when [`HubBuilder::build`] starts
/// it: what the hub thread, the writer threads, the watch thread and the
/// HTTP side read. Its `Default` is every setting's default, with no system
/// call: `build` lowers `max_clients` to what the machine's limits allow
/// when the caller did not set it.
///
/// [`HubBuilder::build`]: crate::HubBuilder::build
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) client_buffer: usize,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) write_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) slow_client: SlowClient,
    pub(crate) max_clients: usize,
    pub(crate) history_events: usize,
    pub(crate) history_bytes: usize,
    pub(crate) history_age: Option<Duration>,
    pub(crate) retry: Option<Duration>,
    pub(crate) retry_jitter: Duration,
    pub(crate) busy_retry: Duration,
    pub(crate) gap_event: Option<String>,
    pub(crate) cors: Option<Cors>,
    pub(crate) on_connect: Option<ConnectHook>,
    pub(crate) on_disconnect: Option<DisconnectHook>,
    pub(crate) close_check: Option<Duration>,
    pub(crate) request_timeout: Option<Duration>,
    /// Where the shared stream lives (`HubBuilder::redis`); `None`: this
    /// process alone.
    pub(crate) redis: Option<RedisSettings>,
}

/// The Redis Stream several processes share (feature `redis`).
#[derive(Clone)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]` (the `redis` crate's URL).
    pub(crate) url: String,
    /// The stream's key.
    pub(crate) key: String,
    /// `XADD .. MAXLEN ~ max_len`: about how many events the stream keeps.
    pub(crate) max_len: usize,
    /// How long one Redis command may take before the link counts as down
    /// (and `publish` returns an error).
    pub(crate) timeout: Duration,
    /// At most this many events are replayed to a client that reconnects;
    /// one further behind gets the gap event.
    pub(crate) replay_max: usize,
}

impl fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: only what follows the `@` is shown.
        let url = match (self.url.split_once("://"), self.url.rsplit_once('@')) {
            (Some((scheme, _)), Some((_, host))) => format!("{scheme}://***@{host}"),
            _ => self.url.clone(),
        };
        f.debug_struct("RedisSettings")
            .field("url", &url)
            .field("key", &self.key)
            .field("max_len", &self.max_len)
            .field("timeout", &self.timeout)
            .field("replay_max", &self.replay_max)
            .finish()
    }
}

impl Default for RedisSettings {
    fn default() -> Self {
        RedisSettings {
            url: String::new(),
            key: String::new(),
            max_len: 10_000,
            timeout: std::time::Duration::from_secs(1),
            replay_max: 1_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            client_buffer: 128,
            keep_alive: Some(Duration::from_secs(15)),
            write_timeout: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(5),
            slow_client: SlowClient::DropNewest,
            max_clients: DEFAULT_MAX_CLIENTS,
            history_events: 1000,
            history_bytes: 1024 * 1024,
            history_age: Some(Duration::from_secs(300)),
            retry: Some(Duration::from_secs(3)),
            retry_jitter: Duration::from_secs(2),
            busy_retry: Duration::from_secs(5),
            gap_event: Some("sse-gap".into()),
            cors: None,
            on_connect: None,
            on_disconnect: None,
            close_check: Some(Duration::from_millis(500)),
            request_timeout: Some(Duration::from_secs(10)),
            redis: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("client_buffer", &self.client_buffer)
            .field("slow_client", &self.slow_client)
            .field("keep_alive", &self.keep_alive)
            .field("write_timeout", &self.write_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("max_clients", &self.max_clients)
            .field("history_events", &self.history_events)
            .field("history_bytes", &self.history_bytes)
            .field("history_age", &self.history_age)
            .field("retry", &self.retry)
            .field("retry_jitter", &self.retry_jitter)
            .field("busy_retry", &self.busy_retry)
            .field("gap_event", &self.gap_event)
            .field("cors", &self.cors)
            .field("on_connect", &self.on_connect.is_some())
            .field("on_disconnect", &self.on_disconnect.is_some())
            .field("close_check", &self.close_check)
            .field("request_timeout", &self.request_timeout)
            .field("redis", &self.redis)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::RedisSettings;

    #[test]
    fn a_redis_password_never_shows_in_debug_output() {
        let settings = RedisSettings {
            url: "redis://user:s3cret@db.example:6379/2".into(),
            key: "events".into(),
            ..RedisSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(shown.contains("redis://***@db.example:6379/2"), "{shown}");
    }
}
