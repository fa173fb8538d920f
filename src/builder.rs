//! `HubBuilder`: every setting of a hub, with its default, and the start
//! of a hub.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "redis")]
use crate::config::RedisSettings;
use crate::config::{Config, DEFAULT_MAX_CLIENTS, SlowClient};
use crate::connect::{ConnectRequest, Decision, Disconnect};
use crate::cors::Cors;
use crate::error::Error;
use crate::event::Event;
use crate::hub::Hub;
use crate::tiny_http_fixes::release;

impl Hub {
    /// A hub with the default settings (see [`HubBuilder`]).
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when the operating system refuses the hub thread.
    pub fn new() -> Result<Hub, Error> {
        HubBuilder::default().build()
    }

    /// Settings for a new hub.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }
}

/// Settings for a [`Hub`], built with [`Hub::builder`].
///
/// Every setting has a default, given in its description; they all live in
/// one `Default` implementation. `build` freezes them: a running hub's
/// settings do not change.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sse_server::{Hub, SlowClient};
///
/// let hub = Hub::builder()
///     .client_buffer(512)
///     .slow_client(SlowClient::Disconnect)
///     .keep_alive(Some(Duration::from_secs(10)))
///     .history_events(500)
///     .history_bytes(256 * 1024)
///     .history_age(Some(Duration::from_secs(60)))
///     .build()?;
/// # hub.shutdown()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct HubBuilder {
    config: Config,
    /// `None`: the default, lowered to the machine's limits by `build`.
    max_clients: Option<usize>,
    /// The Redis settings; used once `redis` has named a server.
    #[cfg(feature = "redis")]
    redis: RedisSettings,
    #[cfg(feature = "redis")]
    redis_on: bool,
}

impl HubBuilder {
    /// How many frames may wait in one client's queue. When a client's
    /// queue is full, the events of the next frame are not queued for it
    /// (see [`slow_client`](HubBuilder::slow_client)). The hub never waits
    /// for a client.
    ///
    /// A frame holds every event that was waiting for the hub when it got to
    /// work (up to about 64 KiB, and for one route: all clients, one topic or
    /// one client), so a burst takes a few slots, while events published one
    /// at a time take one slot each. Each queue has one slot more, kept for
    /// the gap event that tells a client it missed events. Each slot costs
    /// 16 bytes per client, allocated when the client connects. Values below
    /// 1 are raised to 1.
    ///
    /// Defaults to 128.
    pub fn client_buffer(mut self, frames: usize) -> Self {
        self.config.client_buffer = frames.max(1);
        self
    }

    /// What happens to a client whose queue is full: see [`SlowClient`].
    ///
    /// Defaults to [`SlowClient::DropNewest`].
    pub fn slow_client(mut self, policy: SlowClient) -> Self {
        self.config.slow_client = policy;
        self
    }

    /// After this long without sending anything, a stream writes a keep-alive
    /// comment line (`:`), which every client ignores. It keeps proxies
    /// from closing idle streams and is how a client that vanished without
    /// a word (a dead network path) is noticed: the write fails, or stalls
    /// until [`write_timeout`](HubBuilder::write_timeout). A client that
    /// closes or resets its connection is noticed sooner, see
    /// [`close_check`](HubBuilder::close_check). `None` turns keep-alives
    /// off; a zero duration is treated as one millisecond. Any longer
    /// duration is taken as it is: one too long for the clock to reach
    /// (such as `Duration::MAX`) never fires, like `None`.
    ///
    /// Defaults to 15 seconds.
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.config.keep_alive = interval.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// A client that takes no bytes for this long is cut off, and its writer
    /// thread ends (the disconnect hook says [`TimedOut`]). The clock starts
    /// when the client stops taking bytes and the socket's buffers are full.
    /// A client that vanished without closing (a dead network path) while
    /// little was sent to it is cut off by the kernel, after twice this plus
    /// a second (`TCP_USER_TIMEOUT`, which on Linux also counts while a
    /// client's receive window stays closed). When events come so slowly
    /// that the buffers (up to a few MB) take longer than that to fill, the
    /// kernel's cut comes first; the hook still says [`TimedOut`] when the
    /// writer can see the kernel's timeout error, and [`Closed`] where
    /// `tiny_http`'s reading thread took that error first (a stream that
    /// could not let that thread go, see the crate docs). Applies to
    /// connections accepted by
    /// [`Server`](crate::Server), whose sockets get a send timeout and
    /// `TCP_USER_TIMEOUT` from its listening socket; a connection from a
    /// `tiny_http` server of the caller's has no socket timeout, so there a
    /// stalled write waits for the kernel. Values below 1 ms are raised to
    /// 1 ms. Any longer value is taken as it is (`Duration::MAX` means a
    /// client that stops reading is never cut off by the writer), but the
    /// kernel's timeout, twice it and a second, stops at about 24.8 days,
    /// the most Linux accepts.
    ///
    /// Defaults to 30 seconds.
    ///
    /// [`TimedOut`]: crate::DisconnectReason::TimedOut
    /// [`Closed`]: crate::DisconnectReason::Closed
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.config.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// How long [`Hub::shutdown`] waits for the streams to send what is
    /// queued for them and end. Streams whose client stops reading are cut
    /// off at once during a shutdown, so this deadline is only reached when
    /// a client reads, but too slowly to take its backlog in time.
    ///
    /// A zero timeout does not wait for the streams: those not yet ended
    /// are counted in [`Error::ShutdownTimeout`] and end on their own. A
    /// timeout too long for the clock to reach (such as `Duration::MAX`)
    /// means no deadline: the shutdown waits until every stream has ended.
    /// The same deadline holds when the hub shuts down because it was
    /// dropped.
    ///
    /// Defaults to 5 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }

    /// The most event streams served at once. A client past it is turned
    /// away: no thread is started for it, it is counted in
    /// [`Stats::rejected`](crate::Stats::rejected), and it is told to come
    /// back later, in a way it honours: a request whose `Accept` header asks
    /// for `text/event-stream` (every `EventSource` does) gets a short
    /// `200` event stream with a `retry:` and an `sse-busy` event (see
    /// [`busy_retry`](HubBuilder::busy_retry)), after which a browser
    /// reconnects by itself; any other request gets
    /// `503 Service Unavailable` with `Retry-After`. Subscriptions made
    /// with [`Hub::subscribe`] do not count.
    ///
    /// Each stream takes a thread (its writer) and a file descriptor, and,
    /// until it is accepted, a second of each (`tiny_http`'s connection
    /// thread and its copy of the socket). On Linux 5.6 and later the stream
    /// then lets go of them (see the crate docs); elsewhere, or where a
    /// seccomp filter refuses `pidfd_getfd`, it keeps them for its whole
    /// life. The operating system's limits cap the number of streams
    /// whatever this says. Defaults to 10,000, or less where this machine's
    /// limits would be reached first: keeping a quarter of each limit spare,
    /// each client needs 1 file descriptor (`RLIMIT_NOFILE`) and 1 task
    /// (`kernel.pid_max`, `kernel.threads-max`) (2 of each without the
    /// release), and, with 4,096 mappings spare, 5 memory mappings
    /// (`vm.max_map_count`; a thread maps its stack and its signal stack,
    /// each with a guard page) (9 without the release). With Linux's default
    /// `vm.max_map_count` of 65530 that is 10,000 clients with the release,
    /// about 6,800 without.
    pub fn max_clients(mut self, clients: usize) -> Self {
        self.max_clients = Some(clients);
        self
    }

    /// How many events the replay history keeps at most. A client that
    /// reconnects with a `Last-Event-ID` (the header, or a `lastEventId`
    /// query parameter) first receives the events after that id that it
    /// would have received (its topics, events sent to it), then the live
    /// ones, with no gap and no duplicate. When the id is not in the history
    /// (unknown, garbage, or already evicted), the client gets a gap event
    /// (see [`gap_event`](HubBuilder::gap_event)) and then the live events.
    /// The history also keeps at most
    /// [`history_bytes`](HubBuilder::history_bytes) of encoded events and
    /// none older than [`history_age`](HubBuilder::history_age).
    ///
    /// While the history is on, every event the publisher gave no id gets
    /// one: `<hub>-<n>`, where `<hub>` is the hub's start time in
    /// milliseconds since the Unix epoch, in hex (so ids from an earlier
    /// run of the program are recognised as unknown), and `<n>` counts the
    /// hub's events from 1. A publisher's own ids are kept as they are.
    /// 0 turns the history and automatic ids off.
    ///
    /// Defaults to 1,000 events.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let hub = sse_server::Hub::builder()
    ///     .history_events(500)
    ///     .history_bytes(256 * 1024)
    ///     .history_age(Some(Duration::from_secs(60)))
    ///     .build()?;
    /// // No history and no automatic ids:
    /// let plain = sse_server::Hub::builder().history_events(0).build()?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn history_events(mut self, events: usize) -> Self {
        self.config.history_events = events;
        self
    }

    /// How many bytes of encoded events the replay history keeps at most
    /// (see [`history_events`](HubBuilder::history_events)). A single event
    /// larger than this is not kept, and ends replay across it. 0 turns the
    /// history and automatic ids off.
    ///
    /// Defaults to 1 MiB.
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.config.history_bytes = bytes;
        self
    }

    /// How old an event in the replay history may grow before it is
    /// dropped (see [`history_events`](HubBuilder::history_events)); `None`:
    /// no age limit. A zero age lets each event expire as soon as any time
    /// has passed: there is nothing to replay, and a client that reconnects
    /// having missed events gets the gap event (events still get automatic
    /// ids). An age too long for the clock to reach (such as
    /// `Duration::MAX`) is no age limit.
    ///
    /// Defaults to 5 minutes.
    pub fn history_age(mut self, max_age: Option<Duration>) -> Self {
        self.config.history_age = max_age;
        self
    }

    /// The reconnection time each stream announces when it starts (a
    /// `retry:` line), before [`retry_jitter`](HubBuilder::retry_jitter) is
    /// added. `None` sends no `retry:` line (browsers then wait their own
    /// default, about 3 s in most). The value sent is capped at 24 hours, so
    /// any duration will do, up to `Duration::MAX`; sub-millisecond parts
    /// are dropped. A zero `retry` and jitter send `retry: 0`: clients
    /// reconnect at once.
    ///
    /// Defaults to 3 seconds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// // Each client is told to wait 1 to 1.5 seconds before it reconnects.
    /// let hub = sse_server::Hub::builder()
    ///     .retry(Some(Duration::from_secs(1)))
    ///     .retry_jitter(Duration::from_millis(500))
    ///     .build()?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn retry(mut self, retry: Option<Duration>) -> Self {
        self.config.retry = retry;
        self
    }

    /// The random share added to [`retry`](HubBuilder::retry) for each
    /// client, drawn uniformly from 0 to this inclusive, so that after a
    /// restart the browsers do not all come back in the same millisecond.
    /// No effect when `retry` is `None`.
    ///
    /// Defaults to 2 seconds: with the default `retry`, each client waits
    /// 3 to 5 seconds.
    pub fn retry_jitter(mut self, jitter: Duration) -> Self {
        self.config.retry_jitter = jitter;
        self
    }

    /// How long a client that asked for an event stream and was turned away
    /// (past [`max_clients`](HubBuilder::max_clients), during shutdown, or
    /// when the operating system refused a thread) is asked to wait before
    /// it comes back: `busy_retry` plus a random share of the same amount,
    /// drawn for each answer, so clients turned away together spread out.
    ///
    /// Such a client gets `200` with `Content-Type: text/event-stream` and
    /// a body that ends at once:
    ///
    /// ```text
    /// retry: 7342
    /// event: sse-busy
    /// data: too-many-clients
    ///
    /// ```
    ///
    /// The data says why: `too-many-clients`, `shutting-down` or
    /// `no-thread`. A browser listens with
    /// `addEventListener("sse-busy", ..)`; `onmessage` never sees it. The
    /// answer carries no `id:`, so the client's last event id, and with it
    /// its replay, stay as they were.
    ///
    /// Why not `503`: the WHATWG rules make an `EventSource` treat every
    /// answer but `200 text/event-stream` as final (it "fails the
    /// connection" and never retries, until the page is reloaded), while a
    /// `200` stream that ends makes it reconnect after its `retry` time.
    /// Requests that do not ask for `text/event-stream` (`*/*` alone does
    /// not count) still get `503` with `Retry-After`.
    ///
    /// The value sent, jitter included, is capped at 24 hours, so
    /// `Duration::MAX` asks for a day. `Duration::ZERO` is sent as
    /// `retry: 0`: browsers then come back at once, again and again for as
    /// long as the server is full.
    ///
    /// Defaults to 5 seconds: each client waits 5 to 10 seconds.
    pub fn busy_retry(mut self, retry: Duration) -> Self {
        self.config.busy_retry = retry;
        self
    }

    /// The name of the event that tells a client it has a gap: it
    /// reconnected with a `Last-Event-ID` the history cannot resume from
    /// (data `unknown-id`; the event carries the id of the hub's newest
    /// event, so the client's next reconnect starts from there), or it
    /// missed events because its queue was full (data `missed <n>`). A
    /// browser listens with `addEventListener(name, ..)`; `onmessage` never
    /// sees it. `None` sends a comment line (`: sse-gap unknown-id`) instead,
    /// which no client reports. [`build`](HubBuilder::build) refuses a name
    /// with a line break, and the empty name and `message`, which a browser
    /// would hand to `onmessage` like any other event.
    ///
    /// Defaults to `sse-gap`.
    pub fn gap_event(mut self, name: Option<String>) -> Self {
        self.config.gap_event = name;
        self
    }

    /// Lets pages of other origins read the stream: see [`Cors`].
    ///
    /// Defaults to none: no CORS headers are sent.
    pub fn cors(mut self, cors: Cors) -> Self {
        self.config.cors = Some(cors);
        self
    }

    /// Decides about each client before its stream starts: accept it
    /// (optionally choosing its topics and id) or reject it with a status.
    /// The hook runs on the client's own writer thread, so a slow hook
    /// holds up neither the hub nor the acceptor. A hook that panics ends
    /// that thread alone: the client gets `500 Internal Server Error`
    /// (`tiny_http`'s answer to a request dropped unanswered) and its place
    /// under [`max_clients`](HubBuilder::max_clients) goes back.
    ///
    /// Defaults to accepting every client, with the topics of its `?topic=`
    /// query parameters.
    pub fn on_connect(
        mut self,
        hook: impl Fn(&ConnectRequest<'_>) -> Decision + Send + Sync + 'static,
    ) -> Self {
        self.config.on_connect = Some(Arc::new(hook));
        self
    }

    /// Runs when a stream ends, with the client's id and why it ended. It
    /// runs on the client's writer thread, after the stream's last write.
    ///
    /// Defaults to nothing.
    pub fn on_disconnect(mut self, hook: impl Fn(&Disconnect) + Send + Sync + 'static) -> Self {
        self.config.on_disconnect = Some(Arc::new(hook));
        self
    }

    /// Notices at once a client that closes or resets its connection while
    /// its stream is idle, instead of at the stream's next write (an event
    /// or a keep-alive, up to [`keep_alive`](HubBuilder::keep_alive) later):
    /// its writer thread and descriptor go back, it leaves
    /// [`Stats::clients`](crate::Stats::clients) and its slot under
    /// [`max_clients`](HubBuilder::max_clients), and the disconnect hook
    /// says [`Closed`](crate::DisconnectReason::Closed).
    ///
    /// One thread per hub (`sse-watch`) does this, on Linux. Where a
    /// stream's socket could be reached (see the crate docs on the release
    /// of `tiny_http`'s reader) it is in an epoll set: the kernel wakes the
    /// thread when the client's FIN or reset arrives, and the client is
    /// removed within milliseconds, at no cost while nobody leaves.
    /// Other streams are looked for in a list of the server's connections
    /// that the thread asks the kernel for (`sock_diag`, as `ss` does)
    /// at least every `interval`, and more often when a list is cheap
    /// (about 1.7 µs per connection: never more than 1 % of a core, but at
    /// least every `interval`); a client that reset is found gone in two
    /// lists in a row. Values are raised to 50 ms. `None` turns it off:
    /// a client that left is noticed at the stream's next write. Elsewhere
    /// than Linux, or where the kernel refuses `sock_diag` and epoll, it is
    /// off too.
    ///
    /// Defaults to 500 ms.
    pub fn close_check(mut self, interval: Option<Duration>) -> Self {
        // Longer values are taken as they are: a list every `interval` at
        // the least, more often when lists are cheap.
        self.config.close_check = interval.map(|d| d.max(Duration::from_millis(50)));
        self
    }

    /// A connection to a [`Server`](crate::Server) must send a complete
    /// request head within this long of connecting, and a kept-alive
    /// connection its next request within this long of the last one;
    /// otherwise it is closed, and the thread and descriptors it held go
    /// back. Without it a client that sends nothing, or one byte a second,
    /// holds a thread and two descriptors for as long as it likes
    /// (`tiny_http` sets no deadline), and a few thousand such connections
    /// exhaust the process. Event streams are not affected once they run.
    ///
    /// The watch thread (see [`close_check`](HubBuilder::close_check))
    /// lists the server's connections every quarter of this (every
    /// 250 ms at the most often), or less often when a list costs more than
    /// 0.5 % of a core (a list costs about 1.7 µs per connection, streams
    /// included: every 3.2 s with 10,000 streams), and at least every 5 s,
    /// so a connection is closed between this and this plus one such
    /// interval after its last request. It needs Linux with
    /// `pidfd_getfd` (5.6 and later, not refused by a seccomp filter) and
    /// `sock_diag`; elsewhere, and for requests handed to
    /// [`Hub::serve`] by a `tiny_http` server of the caller's, nothing
    /// times a request head out (put a reverse proxy in front). The
    /// deadline counts from the last whole request head, whatever moves
    /// after it: a response that a
    /// [`fallback`](crate::ServerBuilder::fallback) handler takes longer
    /// than this to write, or a request body it takes longer than this to
    /// read, may be cut: its writes then fail, and its reads of the body
    /// end early as if the body were whole (compare what was read with
    /// `Request::body_length`). Turn the deadline off, or raise it, for a
    /// server with such routes.
    /// Values are raised to 1 second; `None` turns the deadline off.
    ///
    /// Defaults to 10 seconds.
    pub fn request_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.request_timeout = timeout.map(|d| d.max(Duration::from_secs(1)));
        self
    }

    /// Shares one stream with every other process attached to the same
    /// Redis Stream (feature `redis`): the stream `key` on the Redis server
    /// at `url` (`redis://[user:password@]host[:port][/db]`, or
    /// `rediss://` with the `redis` crate's TLS features). Every
    /// connection speaks RESP2 whatever the URL says: a `?protocol=resp3`
    /// (which a URL shared with other programs may carry) is taken and
    /// has no effect, as nothing the hub asks of Redis needs RESP3. Error
    /// messages and logs show the URL without its user and password.
    ///
    /// * [`Hub::notify`], [`Hub::publish`], [`Hub::publish_to`] and
    ///   [`Hub::send_to`] append the event to the stream (`XADD .. MAXLEN
    ///   ~`), and return once Redis has it. Events published at once on
    ///   several threads share one round trip.
    /// * One reader thread per process (`sse-redis-read`) follows the
    ///   stream (`XREAD BLOCK`) and fans each event out to this process's
    ///   clients: every process sends the same events in the same order,
    ///   so each client gets each event once, in one order.
    /// * Every event's id is its entry's id in the stream (`<ms>-<seq>`);
    ///   an id the publisher set with [`Event::with_id`] is replaced. A
    ///   client that reconnects to any process with its `Last-Event-ID`
    ///   is replayed from the stream (`XRANGE`, on its own thread), then
    ///   joins the live events with no gap and no duplicate. An id no
    ///   longer in the stream (trimmed, or from before the stream was
    ///   emptied) or more than [`redis_replay_max`](HubBuilder::redis_replay_max)
    ///   events behind gets the gap event. The history
    ///   ([`history_events`](HubBuilder::history_events)) is where such a
    ///   client joins: keep it at least a few seconds of events long. (A
    ///   client whose replay ends before an event this process has sent
    ///   and no longer holds fetches again, a few times, then gets the
    ///   gap event.)
    /// * Redis going away is not fatal. Each connection reconnects with
    ///   backoff (100 ms doubling to 5 s, with jitter); the reader resumes
    ///   from the last id it read, so nothing Redis still holds is missed;
    ///   if what it missed was trimmed meanwhile, or the stream was
    ///   emptied, every client gets the gap event. While Redis cannot be
    ///   reached, publishing fails at once with `Error::RedisUnavailable`,
    ///   clients keep their streams, and
    ///   [`Stats::redis_connected`](crate::Stats::redis_connected) is
    ///   `Some(false)`. A client reconnecting meanwhile is replayed from this
    ///   process's history, or gets the gap event when the history does not
    ///   hold everything it missed (with `history_events(0)`, whenever it
    ///   missed anything).
    /// * [`Hub::send_to`] reaches a client connected to any process; it
    ///   cannot tell whether the client exists, and never returns
    ///   [`Error::UnknownClient`]. Client ids are unique across the
    ///   processes: each process takes a node number from the counter
    ///   `<key>:nodes` in Redis when it starts (`INCR`), and numbers its
    ///   clients from `node << 40`. Where the counter does not exist (a
    ///   new key, or Redis lost its data: a restart without persistence,
    ///   `FLUSHALL`, eviction), it starts at a number drawn among the
    ///   2^23 node numbers, so that numbering after a loss does not start
    ///   again at the numbers of the processes still running. Limits:
    ///   after such a loss, the numbers handed out go on from the drawn
    ///   one, so each process started then shares its number with one of
    ///   the k processes still running with a chance of k / 2^23 (1 in
    ///   84,000 for 100); a failover to a replica that had not yet
    ///   received the counter's last increments hands those numbers out
    ///   again (restart the processes started just before it, or give
    ///   the stream a new key). If Redis cannot be reached at that moment
    ///   a process draws its node number, and says so in the log. Node numbers repeat after 2^23 starts on one
    ///   key: a process could then share ids with one started that many
    ///   starts before, if it still runs.
    ///
    /// `build` waits for both connections, so that a hub built while Redis
    /// is up can publish at once: up to about twice
    /// [`redis_timeout`](HubBuilder::redis_timeout) when Redis cannot be
    /// reached or does not answer (once to connect and take the node
    /// number, once for the connections), and then returns a hub that
    /// keeps trying in the background.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let hub = sse_server::Hub::builder()
    ///     .redis("redis://127.0.0.1:6379", "events")
    ///     .build()?;
    /// hub.notify("every client of every process gets this once")?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    #[cfg(feature = "redis")]
    pub fn redis(mut self, url: &str, key: &str) -> Self {
        self.redis.url = url.to_owned();
        self.redis.key = key.to_owned();
        self.redis_on = true;
        self
    }

    /// About how many events the Redis Stream keeps (`XADD .. MAXLEN ~
    /// len`; Redis trims in whole blocks, so it may hold somewhat more).
    /// Memory in Redis is roughly this times an event's size plus about
    /// 100 bytes. Values are kept between 1 and `i64::MAX`, the largest
    /// Redis takes: `usize::MAX` keeps every event, as far as memory goes.
    ///
    /// Defaults to 10,000.
    #[cfg(feature = "redis")]
    pub fn redis_max_len(mut self, len: usize) -> Self {
        self.redis.max_len = len.clamp(1, crate::redis_link::LARGEST_COUNT);
        self
    }

    /// How long one Redis command may take: a publish that gets no answer
    /// within about twice this fails with `Error::RedisUnavailable` (the
    /// event may still have been appended), and a connection that does
    /// not answer within it counts as lost. Opening a connection (TCP,
    /// then `AUTH` and `SELECT` when the URL asks for them) gets this
    /// long too, and so does fetching the replay of a client that
    /// reconnects (connecting included). Errors and logs say "Redis did
    /// not answer within ..." for these. Values are kept between 10 ms
    /// and 1 minute.
    ///
    /// Defaults to 1 second.
    #[cfg(feature = "redis")]
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.redis.timeout = timeout.clamp(Duration::from_millis(10), Duration::from_secs(60));
        self
    }

    /// At most this many events are replayed from Redis to a client that
    /// reconnects; one further behind gets the gap event. A replay holds
    /// the events it fetches in memory, so this bounds a replay's memory
    /// as [`redis_max_len`](HubBuilder::redis_max_len) bounds the stream's.
    /// Values are kept between 1 and `i64::MAX - 2` (a replay asks Redis
    /// for two entries more than this, and Redis takes at most
    /// `i64::MAX`): `usize::MAX` replays whatever the stream still holds.
    ///
    /// Defaults to 1,000.
    #[cfg(feature = "redis")]
    pub fn redis_replay_max(mut self, events: usize) -> Self {
        self.redis.replay_max = events.clamp(1, crate::redis_link::LARGEST_COUNT - 2);
        self
    }

    /// Starts the hub thread (and, on Linux, the watch thread).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidField`] when the gap event's name holds a line break,
    /// or is empty or `message`,
    /// [`Error::Spawn`] when the operating system refuses the hub thread;
    /// with the `redis` feature, `Error::RedisConfig` for a Redis URL the
    /// `redis` crate cannot read or an empty stream key (a Redis that
    /// cannot be reached is no error: see `HubBuilder::redis`).
    pub fn build(self) -> Result<Hub, Error> {
        let mut config = self.config;
        if let Some(name) = &config.gap_event {
            Event::new("").with_event(name.as_str())?;
            if name.is_empty() || name == "message" {
                return Err(Error::InvalidField {
                    field: "event",
                    reason: "the name of every event without one (a gap event must not reach onmessage)",
                });
            }
        }
        config.max_clients = match self.max_clients {
            Some(clients) => clients,
            None => machine_max_clients(),
        };
        #[cfg(feature = "redis")]
        if self.redis_on {
            config.redis = Some(self.redis);
        }
        Hub::start(config)
    }
}

impl fmt::Debug for HubBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut f = f.debug_struct("HubBuilder");
        f.field("config", &self.config)
            .field("max_clients", &self.max_clients);
        #[cfg(feature = "redis")]
        f.field("redis", &self.redis_on.then_some(&self.redis));
        f.finish()
    }
}

/// The default for [`HubBuilder::max_clients`]: 10,000, or what this
/// machine's limits leave room for, if less.
fn machine_max_clients() -> usize {
    fn read_number(path: &str) -> Option<usize> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }
    fn open_file_limit() -> Option<usize> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits
            .lines()
            .find(|line| line.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse().ok()
    }
    // Descriptors and tasks per stream, and memory mappings.
    let (each, maps_each) = if release::available() { (1, 5) } else { (2, 9) };
    let mut clients = DEFAULT_MAX_CLIENTS;
    if let Some(files) = open_file_limit() {
        clients = clients.min(files * 3 / 4 / each);
    }
    for path in ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"] {
        if let Some(tasks) = read_number(path) {
            clients = clients.min(tasks * 3 / 4 / each);
        }
    }
    if let Some(maps) = read_number("/proc/sys/vm/max_map_count") {
        clients = clients.min(maps.saturating_sub(4096) / maps_each);
    }
    clients.max(1)
}
