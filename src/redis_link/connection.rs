//! Connections to Redis: opening them, the pause between tries, and the
//! state the link's threads share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::{IntoConnectionInfo, ProtocolVersion};

use crate::config::RedisSettings;
use crate::error::Error;
use crate::retry::jittered_millis;

/// The first pause before connecting again, doubled after each failure.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between tries.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A `redis::Client` for `settings`, or why the URL was refused.
///
/// Every connection it opens speaks RESP2, whatever the URL asks for
/// (`?protocol=resp3`): the link reads RESP2's replies (`XREAD` answers a
/// map under RESP3), and nothing it does needs RESP3.
pub(crate) fn client(settings: &RedisSettings) -> Result<redis::Client, Error> {
    if settings.key.is_empty() {
        return Err(Error::RedisConfig("the stream key is empty".into()));
    }
    let refused = |e: redis::RedisError| {
        Error::RedisConfig(format!("{}: {e}", without_credentials(&settings.url)))
    };
    let info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(refused)?;
    let resp2 = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP2);
    redis::Client::open(info.set_redis_settings(resp2)).map_err(refused)
}

/// `url` with its user and password hidden, for messages and logs: what
/// lies between `://` and the last `@` (the user and password of
/// `redis://user:password@host`; all of it, should an `@` come later
/// still), and the values of the `user` and `pass` query parameters (where
/// `redis+unix://` URLs carry them).
fn without_credentials(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let rest = match rest.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => rest.to_owned(),
    };
    let Some((before, query)) = rest.split_once('?') else {
        return format!("{scheme}{rest}");
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if matches!(name, "user" | "pass" | "password" | "username") => {
                format!("{name}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    let fragment = fragment.map_or(String::new(), |fragment| format!("#{fragment}"));
    format!("{scheme}{before}?{}{fragment}", query.join("&"))
}

/// A connection whose every command gives up after `timeout`.
pub(crate) fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let connection = client.get_connection_with_timeout(timeout)?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// Pauses between tries to connect: 100 ms doubling up to 5 s, each with
/// up to half again of jitter, so that many processes that lost Redis
/// together do not all come back in the same millisecond.
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    pub(crate) fn new() -> Backoff {
        Backoff {
            next: BACKOFF_FIRST,
        }
    }

    /// The pause before the next try; the one after is longer.
    pub(crate) fn pause(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        Duration::from_millis(jittered_millis(base, base / 2, base.as_nanos() as u64))
    }

    pub(crate) fn reset(&mut self) {
        self.next = BACKOFF_FIRST;
    }
}

/// What the link's threads tell the rest of the hub.
#[derive(Default)]
pub(crate) struct LinkState {
    /// The appending connection is up.
    pub(crate) appending: AtomicBool,
    /// The reading connection is up.
    pub(crate) reading: AtomicBool,
    /// The reader knows where in the stream it starts: until then nothing
    /// is appended, or this process's own clients could miss it.
    pub(crate) positioned: AtomicBool,
    /// Set once the hub shuts down.
    pub(crate) stopping: AtomicBool,
}

impl LinkState {
    /// Both connections are up, the reader knows its place, and the hub
    /// is not shutting down.
    pub(crate) fn connected(&self) -> bool {
        self.appending.load(Ordering::Acquire)
            && self.reading.load(Ordering::Acquire)
            && self.positioned.load(Ordering::Acquire)
            && !self.stopping.load(Ordering::Acquire)
    }
}

/// The node numbers there are: the 23 bits of a client id above its 40
/// bits of client number (`Shared::with_redis`).
const NODE_MASK: u64 = 0x7f_ffff;

/// This process's node number: the next value of the counter `<key>:nodes`
/// in Redis, so that the client ids of processes sharing a stream never
/// meet while Redis keeps its data.
///
/// Where the counter does not exist (the key is new, or Redis lost its
/// data: a restart without persistence, `FLUSHALL`, eviction), it starts at
/// a number drawn among the 2^23, in the same transaction as the `INCR`
/// (`SET NX`, then `INCR`, in `MULTI`): numbering after a loss goes on
/// from a random point, not from 1, where the processes still running
/// most likely are. When Redis cannot be reached now, the number is drawn
/// (and that is logged, as another process could draw the same).
pub(crate) fn node_number(settings: &RedisSettings, client: &redis::Client) -> u64 {
    let counter = format!("{}:nodes", settings.key);
    let counted = connect(client, settings.timeout).and_then(|mut connection| {
        let (node,): (u64,) = redis::pipe()
            .atomic()
            .cmd("SET")
            .arg(&counter)
            .arg(drawn_node())
            .arg("NX")
            .ignore()
            .cmd("INCR")
            .arg(&counter)
            .query(&mut connection)?;
        Ok(node)
    });
    match counted {
        Ok(node) => node & NODE_MASK,
        Err(e) => {
            log::warn!(
                "Redis cannot be reached to number this process ({e}); client ids use a drawn \
                 node number instead, which another process could draw too"
            );
            drawn_node()
        }
    }
}

/// A node number drawn uniformly among the 2^23, from the clock, the
/// process id and how many were drawn before in this process.
fn drawn_node() -> u64 {
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let seed = u64::from(std::process::id()) ^ (DRAWN.fetch_add(1, Ordering::Relaxed) << 32);
    jittered_millis(Duration::ZERO, Duration::from_millis(NODE_MASK), seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://:pw@127.0.0.1:6379/", "redis://***@127.0.0.1:6379/"),
            (
                "redis://user:p@ss@host/?protocol=3",
                "redis://***@host/?protocol=3",
            ),
            (
                "redis+unix:///run/redis.sock?db=1&user=u&pass=pw#x",
                "redis+unix:///run/redis.sock?db=1&user=***&pass=***#x",
            ),
            ("user:pw@host", "***@host"),
        ] {
            assert_eq!(without_credentials(url), shown);
        }
    }

    #[test]
    fn drawn_nodes_are_node_numbers() {
        for _ in 0..1000 {
            assert!(drawn_node() <= NODE_MASK);
        }
    }
}
