//! Connections to Redis: opening them, the pause between tries, and the
//! state the link's threads share.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
/// map under RESP3), and nothing it does needs RESP3. Its handshake does
/// not send `CLIENT SETINFO` (the library's name and version for `CLIENT
/// LIST`): two replies more to wait for, each as long as the whole wait,
/// when Redis does not answer.
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
        .set_protocol(ProtocolVersion::RESP2)
        .set_skip_set_lib_name();
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

/// A connection opened within about `timeout` (the TCP connection, then
/// the handshake: `AUTH`, `SELECT`), whose every command gives up after
/// `timeout`.
pub(crate) fn connect(
    client: &redis::Client,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    connect_by(client, Instant::now() + timeout, timeout)
}

/// A connection opened by about `deadline`, whose every command gives up
/// after `timeout`.
///
/// The `redis` crate gives each reply of the handshake the whole wait it is
/// given, one after the other: against a server that accepts and never
/// answers, `AUTH` and `SELECT` would wait twice. Each gets its share
/// instead. (Its `CLIENT SETINFO`, two more replies, is not sent: see
/// `client`.)
pub(crate) fn connect_by(
    client: &redis::Client,
    deadline: Instant,
    timeout: Duration,
) -> redis::RedisResult<redis::Connection> {
    let handshake = client.get_connection_info().redis_settings();
    let replies = u32::from(handshake.password().is_some()) + u32::from(handshake.db() != 0);
    let within = left_until(deadline, timeout)?;
    let connection = client
        .get_connection_with_timeout(within / replies.max(1))
        .map_err(|e| clearer(e, timeout))?;
    connection.set_read_timeout(Some(timeout))?;
    connection.set_write_timeout(Some(timeout))?;
    Ok(connection)
}

/// What is left of the wait until `deadline`; a timeout error when
/// nothing is (`budget`: the wait the caller had, for its message).
pub(crate) fn left_until(deadline: Instant, budget: Duration) -> redis::RedisResult<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(no_answer(budget));
    }
    Ok(left)
}

/// `e`, but a timeout says so in words: the socket's own words for it are
/// "Resource temporarily unavailable (os error 11)". It stays a timeout
/// (`is_timeout`).
pub(crate) fn clearer(e: redis::RedisError, timeout: Duration) -> redis::RedisError {
    if e.is_timeout() {
        no_answer(timeout)
    } else {
        e
    }
}

fn no_answer(timeout: Duration) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("Redis did not answer within {timeout:?}"),
    ))
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

/// Starts the counter `KEYS[1]` at `ARGV[1]` where it does not exist,
/// then counts.
const START_AND_COUNT: &str =
    "redis.call('SET', KEYS[1], ARGV[1], 'NX') return redis.call('INCR', KEYS[1])";

/// The node numbers there are: the 23 bits of a client id above its 40
/// bits of client number (`Shared::with_redis`).
const NODE_MASK: u64 = 0x7f_ffff;

/// This process's node number: the next value of the counter `<key>:nodes`
/// in Redis, so that the client ids of processes sharing a stream never
/// meet while Redis keeps its data.
///
/// Where the counter does not exist (the key is new, or Redis lost its
/// data: a restart without persistence, `FLUSHALL`, eviction), it starts at
/// a number drawn among the 2^23, in the same step as the `INCR` (one
/// script, one reply to wait for): numbering after a loss goes on
/// from a random point, not from 1, where the processes still running
/// most likely are. When Redis cannot be reached now, the number is drawn
/// (and that is logged, as another process could draw the same).
pub(crate) fn node_number(settings: &RedisSettings, client: &redis::Client) -> u64 {
    let counter = format!("{}:nodes", settings.key);
    let deadline = Instant::now() + settings.timeout;
    let counted = connect_by(client, deadline, settings.timeout).and_then(|mut connection| {
        // Connecting and asking share one `timeout`.
        connection.set_read_timeout(Some(left_until(deadline, settings.timeout)?))?;
        let start = drawn_node();
        let counted = redis::cmd("EVAL")
            .arg(START_AND_COUNT)
            .arg(1)
            .arg(&counter)
            .arg(start)
            .query::<u64>(&mut connection);
        match counted {
            // The script refused (an ACL that forbids scripts, say): the
            // same in two round trips.
            Err(e) if !e.is_io_error() && !e.is_timeout() => {
                redis::cmd("SET")
                    .arg(&counter)
                    .arg(start)
                    .arg("NX")
                    .exec(&mut connection)?;
                redis::cmd("INCR").arg(&counter).query(&mut connection)
            }
            counted => counted,
        }
        .map_err(|e| clearer(e, settings.timeout))
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
pub(crate) mod tests {
    use std::sync::Arc;

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

    /// A server that accepts and never answers, on 127.0.0.1: its
    /// address, and the thread that holds its connections until the
    /// listener is woken by one to `stop` it.
    pub(crate) fn silent_server() -> (std::net::SocketAddr, impl FnOnce()) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("its address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for socket in listener.incoming() {
                if stopping.load(Ordering::Acquire) {
                    return;
                }
                held.push(socket);
            }
        });
        let stop = move || {
            stop.store(true, Ordering::Release);
            let _ = std::net::TcpStream::connect(addr);
            thread.join().expect("the silent server's thread");
        };
        (addr, stop)
    }

    /// Found at a2bc971: the handshake's timeout against a server that does
    /// not answer read "Resource temporarily unavailable (os error 11)".
    #[test]
    fn a_silent_server_times_out_in_words() {
        let (addr, stop) = silent_server();
        let client = redis::Client::open(format!("redis://:pw@{addr}/1")).expect("a client");
        let timeout = Duration::from_millis(300);
        let Err(e) = connect(&client, timeout) else {
            panic!("a connection to a server that never answers");
        };
        assert!(e.is_timeout(), "{e:?}");
        assert_eq!(e.to_string(), "Redis did not answer within 300ms");
        stop();
    }

    #[test]
    fn drawn_nodes_are_node_numbers() {
        for _ in 0..1000 {
            assert!(drawn_node() <= NODE_MASK);
        }
    }
}
