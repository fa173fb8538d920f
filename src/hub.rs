//! The `Hub` handle: publishing, subscribing, serving, shutting down.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

use crate::acceptor::Acceptor;
use crate::client_id::ClientId;
use crate::config::Config;
use crate::counters::ClientCounters;
use crate::encode;
use crate::error::Error;
use crate::event::Event;
use crate::frame::Frame;
use crate::http;
use crate::hub_thread::HubThread;
use crate::messages::{Outgoing, Route, add_channels};
use crate::metrics::{self, Sample};
#[cfg(feature = "redis")]
use crate::redis_link::connection::{client as redis_client, node_number};
#[cfg(feature = "redis")]
use crate::redis_link::link::Link;
#[cfg(feature = "redis")]
use crate::redis_link::replay::Replayer;
use crate::shared::Shared;
use crate::stats::{ClientStats, Stats};
use crate::subscription::{SubscribeOptions, Subscription};
use crate::sync::lock;
use crate::tiny_http_fixes::release::{Released, release_reader};
use crate::tiny_http_fixes::watch::{self, Watch, WatchSettings, Watched};
use crate::writer;

/// The handle programs publish through: cheap to clone, and usable from any
/// thread.
///
/// Building a hub starts one thread, named `sse-hub`, which owns the list of
/// clients and the replay history. [`notify`](Hub::notify),
/// [`publish`](Hub::publish), [`publish_to`](Hub::publish_to) and
/// [`send_to`](Hub::send_to) encode the event in the calling thread and hand
/// the bytes to the hub thread; the hub thread offers the same bytes to the
/// bounded queue of every client the event reaches, without ever waiting for
/// one. Each connection has a writer thread of its own that takes frames from
/// its queue and writes them.
///
/// The hub shuts down when [`shutdown`](Hub::shutdown) is called, when a
/// [`Server`](crate::Server) serving it is shut down or dropped, or when the
/// last handle is dropped.
///
/// # Examples
///
/// ```
/// use sse_server::{Event, Hub};
///
/// let hub = Hub::builder().history_events(0).build()?; // no automatic ids
/// let subscription = hub.subscribe()?;
///
/// let publisher = hub.clone();
/// std::thread::spawn(move || publisher.notify("from another thread"))
///     .join()
///     .unwrap()?;
/// hub.publish(&Event::new("done").with_event("status")?)?;
///
/// // Events that wait for the hub together travel in one frame.
/// let expected = b"data: from another thread\n\nevent: status\ndata: done\n\n";
/// let mut received = Vec::new();
/// while received.len() < expected.len() {
///     received.extend_from_slice(subscription.recv()?.as_bytes());
/// }
/// assert_eq!(received, expected);
/// hub.shutdown()?;
/// assert!(hub.notify("too late").is_err());
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once shutdown began. Dropping the only sender is what tells the
    /// hub thread to finish: it still receives every event sent before.
    notify_tx: RwLock<Option<Sender<Outgoing>>>,
    notify_rx: Receiver<Outgoing>,
    shared: Arc<Shared>,
    hub_thread: Mutex<Option<JoinHandle<()>>>,
    /// The watch thread's handle, when it runs (Linux; see
    /// `tiny_http_fixes/watch.rs`).
    watch: Option<Watch>,
    watch_thread: Mutex<Option<JoinHandle<()>>>,
    acceptors: Mutex<Vec<Acceptor>>,
    /// The link to the shared Redis Stream (feature `redis`).
    #[cfg(feature = "redis")]
    link: Option<Link>,
    writers: Mutex<Writers>,
    /// Disconnects once every writer thread has dropped its sender.
    alive_rx: Receiver<()>,
    closing_since: OnceLock<Instant>,
}

struct Writers {
    handles: Vec<JoinHandle<()>>,
    prune_at: usize,
    /// Each writer thread holds a clone until its very end.
    alive_tx: Option<Sender<()>>,
}

impl Hub {
    /// Starts a hub with `config`: its hub thread and, when a setting
    /// needs it, its watch thread.
    pub(crate) fn start(config: Config) -> Result<Hub, Error> {
        let (adds, adds_rx) = add_channels();
        let (remove_tx, remove_rx) = crossbeam_channel::unbounded();
        let (notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let (alive_tx, alive_rx) = crossbeam_channel::bounded(0);
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        let shared = Shared::new(adds, remove_tx, config);
        #[cfg(feature = "redis")]
        let (shared, redis) = match shared.config.redis.clone() {
            Some(settings) => {
                let client = redis_client(&settings)?;
                let node = node_number(&settings, &client);
                let replayer = Replayer::new(&settings, client.clone());
                (
                    shared.with_redis(replayer, node),
                    Some((settings, client, node)),
                )
            }
            None => (shared, None),
        };
        let shared = Arc::new(shared);
        let settings = WatchSettings {
            close_check: shared.config.close_check,
            request_timeout: shared.config.request_timeout,
        };
        let (watch, watch_thread) =
            if settings.close_check.is_some() || settings.request_timeout.is_some() {
                watch::start(&shared.streams, settings).unzip()
            } else {
                (None, None)
            };
        let hub_thread = HubThread::new(
            adds_rx,
            remove_rx,
            notify_rx.clone(),
            Arc::clone(&shared),
            format!("{started_ms:x}-"),
        );
        let handle = thread::Builder::new()
            .name("sse-hub".into())
            .spawn(move || hub_thread.run())
            .map_err(Error::Spawn)?;
        #[cfg(feature = "redis")]
        let link = match redis {
            Some((settings, client, node)) => Some(Link::start(
                &settings,
                shared.config.gap_event.clone(),
                client,
                node,
                notify_tx.clone(),
            )?),
            None => None,
        };
        Ok(Hub {
            inner: Arc::new(Inner {
                notify_tx: RwLock::new(Some(notify_tx)),
                notify_rx,
                shared,
                hub_thread: Mutex::new(Some(handle)),
                watch,
                watch_thread: Mutex::new(watch_thread),
                acceptors: Mutex::new(Vec::new()),
                #[cfg(feature = "redis")]
                link,
                writers: Mutex::new(Writers {
                    handles: Vec::new(),
                    prune_at: 64,
                    alive_tx: Some(alive_tx),
                }),
                alive_rx,
                closing_since: OnceLock::new(),
            }),
        })
    }

    /// Sends `data` as a data-only event (a browser's `onmessage` sees it)
    /// to every connected client. It never blocks on a client.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown; with a shared Redis Stream
    /// (`HubBuilder::redis`, feature `redis`), `Error::RedisUnavailable` when
    /// Redis could not take the event, as for [`publish`](Hub::publish).
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = sse_server::Hub::new()?;
    /// hub.notify("line one\nline two")?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn notify(&self, data: impl AsRef<str>) -> Result<(), Error> {
        self.send(Outgoing {
            frame: Frame::new(encode::data(data.as_ref()), 1),
            custom_id: None,
            route: Route::All,
            position: None,
            after_loss: false,
        })
    }

    /// Sends a full [`Event`] to every connected client. It never blocks on
    /// a client.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown; with a shared Redis Stream
    /// (`HubBuilder::redis`, feature `redis`), `Error::RedisUnavailable` when
    /// Redis could not take the event (it cannot be reached, or refused it,
    /// e.g. `OOM` at its `maxmemory` with `noeviction`): the event went
    /// nowhere, except after a timeout or a connection lost while Redis
    /// had it, when it may have been appended and then reaches every
    /// client. The answer is about this event only: `Ok` means it is in
    /// the stream even when Redis refused other publishers' events that
    /// shared its round trip.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Event, Hub};
    ///
    /// let hub = Hub::new()?;
    /// hub.publish(&Event::new("{\"t\":1}").with_event("tick")?.with_id("1")?)?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn publish(&self, event: &Event) -> Result<(), Error> {
        self.send(self.outgoing(event, Route::All))
    }

    /// Sends several events to every connected client, in this order, as
    /// [`publish`](Hub::publish) would one by one. With a shared Redis
    /// Stream (`HubBuilder::redis`, feature `redis`) they are appended in
    /// one round trip, so a single thread publishes many events for the
    /// price of one wait; without Redis this is the same as publishing
    /// each.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown (events before it may have gone
    /// out). With a shared Redis Stream:
    ///
    /// * `Error::RedisUnavailable` when Redis took none of them (it cannot
    ///   be reached, or refused every one), or gave no answer at all (a
    ///   timeout, a connection lost midway): then some may have been
    ///   appended, and which is unknown.
    /// * `Error::RedisPartlyAppended` when Redis appended some and refused
    ///   the others (e.g. `OOM`: it reached its `maxmemory` with
    ///   `noeviction` partway through): the appended ones reach every
    ///   client, and its `refused` lists the positions of those that went
    ///   nowhere, usually every event from the first refused one on.
    ///   Publishing just those again (once Redis has room) delivers each
    ///   event once; publishing them all again would deliver the appended
    ///   ones twice.
    ///
    /// [`Stats::published`](crate::Stats::published) counts the events
    /// Redis appended. The answer is about these events only: Redis
    /// refusing other publishers' events in the same round trip changes
    /// nothing in it.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Event, Hub};
    ///
    /// let hub = Hub::builder().history_events(0).build()?;
    /// let subscription = hub.subscribe()?;
    /// let readings: Vec<Event> = (1..=3).map(|n| Event::new(n.to_string())).collect();
    /// hub.publish_all(&readings)?;
    /// let mut bytes = Vec::new();
    /// while bytes.len() < b"data: 1\n\ndata: 2\n\ndata: 3\n\n".len() {
    ///     let frame = subscription.recv_timeout(std::time::Duration::from_secs(5))?;
    ///     bytes.extend_from_slice(frame.expect("an event").as_bytes());
    /// }
    /// assert_eq!(bytes, b"data: 1\n\ndata: 2\n\ndata: 3\n\n");
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn publish_all<'a>(
        &self,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<(), Error> {
        let outgoing: Vec<Outgoing> = events
            .into_iter()
            .map(|event| self.outgoing(event, Route::All))
            .collect();
        #[cfg(feature = "redis")]
        if let Some(link) = &self.inner.link {
            return self.append(link, &outgoing);
        }
        for one in outgoing {
            self.send(one)?;
        }
        Ok(())
    }

    /// Sends an event to the clients subscribed to `topic` (each receives
    /// it once, however many of its topics match). Clients subscribe with
    /// `?topic=` query parameters, a connect hook's
    /// [`Decision::topics`](crate::Decision::topics), or
    /// [`SubscribeOptions::topics`].
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown; with a shared Redis Stream
    /// (`HubBuilder::redis`, feature `redis`), `Error::RedisUnavailable` when
    /// Redis could not take the event.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Event, Hub, SubscribeOptions};
    /// use std::time::Duration;
    ///
    /// let hub = Hub::builder().history_events(0).build()?;
    /// let sports = hub.subscribe_with(SubscribeOptions::new().topics(["sports"]))?;
    /// hub.publish_to("weather", &Event::new("rain"))?;
    /// hub.publish_to("sports", &Event::new("goal"))?;
    /// let frame = sports.recv_timeout(Duration::from_secs(5))?.expect("an event");
    /// assert_eq!(frame.as_bytes(), b"data: goal\n\n");
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn publish_to(&self, topic: &str, event: &Event) -> Result<(), Error> {
        self.send(self.outgoing(event, Route::Topic(Arc::from(topic))))
    }

    /// Sends an event to one client only.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown (whatever the id: shutdown
    /// disconnects every client), [`Error::UnknownClient`] when no client
    /// with that id is connected. A client that leaves between this check
    /// and the hub thread's turn simply does not get the event. With a
    /// shared Redis Stream (`HubBuilder::redis`, feature `redis`) the client may be
    /// connected to any process, so there is no such check (an unknown id
    /// reaches nobody), and `Error::RedisUnavailable` when Redis could not
    /// take the event.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::{Event, Hub};
    ///
    /// let hub = Hub::new()?;
    /// let one = hub.subscribe()?;
    /// hub.send_to(one.id(), &Event::new("just for you"))?;
    /// drop(one);
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn send_to(&self, client: ClientId, event: &Event) -> Result<(), Error> {
        // Shutdown empties the client list, so looking the client up first
        // would call every client unknown once the hub is closed.
        if self.is_closed() {
            return Err(Error::Closed);
        }
        if !self.shares_a_stream() && !lock(&self.inner.shared.clients).contains_key(&client) {
            return Err(Error::UnknownClient(client));
        }
        self.send(self.outgoing(event, Route::Client(client)))
    }

    /// Whether the hub shares a Redis Stream with other processes.
    fn shares_a_stream(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.link.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// `event` on its way to `route`. Under the `redis` feature the entry's
    /// id in the shared stream replaces the event's own.
    fn outgoing(&self, event: &Event, route: Route) -> Outgoing {
        let (frame, custom_id) = if self.shares_a_stream() {
            (event.to_frame_without_id(), None)
        } else {
            (event.to_frame(), event.custom_id())
        };
        Outgoing {
            frame,
            custom_id,
            route,
            position: None,
            after_loss: false,
        }
    }

    /// Appends `outgoing` to the shared Redis Stream, in one round trip,
    /// and counts the events Redis appended.
    #[cfg(feature = "redis")]
    fn append(&self, link: &Link, outgoing: &[Outgoing]) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::Closed);
        }
        let result = link.append(outgoing);
        let appended: u64 = match &result {
            Ok(()) => outgoing.iter().map(|one| one.frame.events() as u64).sum(),
            Err(Error::RedisPartlyAppended { refused, .. }) => outgoing
                .iter()
                .enumerate()
                // Both in order: a binary search per event.
                .filter(|(at, _)| refused.binary_search(at).is_err())
                .map(|(_, one)| one.frame.events() as u64)
                .sum(),
            Err(_) => 0,
        };
        self.inner
            .shared
            .counters
            .published
            .fetch_add(appended, Ordering::Relaxed);
        result
    }

    fn send(&self, outgoing: Outgoing) -> Result<(), Error> {
        #[cfg(feature = "redis")]
        if let Some(link) = &self.inner.link {
            return self.append(link, std::slice::from_ref(&outgoing));
        }
        let sender = self
            .inner
            .notify_tx
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = sender.as_ref().ok_or(Error::Closed)?;
        let events = outgoing.frame.events() as u64;
        sender.send(outgoing).map_err(|_| Error::Closed)?;
        self.inner
            .shared
            .counters
            .published
            .fetch_add(events, Ordering::Relaxed);
        Ok(())
    }

    /// Subscribes to every broadcast event without a network connection: for
    /// programs that carry the events over some other transport, and for
    /// tests. Same as [`subscribe_with`](Hub::subscribe_with) with default
    /// options.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown; with a shared Redis Stream
    /// (`HubBuilder::redis`, feature `redis`), `Error::RedisUnavailable` when
    /// Redis could not take the event.
    pub fn subscribe(&self) -> Result<Subscription, Error> {
        self.subscribe_with(SubscribeOptions::new())
    }

    /// Subscribes without a network connection, with topics, an id of the
    /// caller's choosing, or a `Last-Event-ID` to resume from. The
    /// subscription receives the replayed events, then every event published
    /// after this call returns that reaches it; its queue has
    /// [`HubBuilder::client_buffer`](crate::HubBuilder::client_buffer) slots, and frames that do not fit are
    /// missed (see [`Subscription::missed`]). Dropping the subscription
    /// unsubscribes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown, [`Error::IdInUse`] when the chosen
    /// id belongs to a connected client.
    pub fn subscribe_with(&self, options: SubscribeOptions) -> Result<Subscription, Error> {
        Subscription::register(&self.inner.shared, options)
    }

    /// Counters for the whole hub.
    pub fn stats(&self) -> Stats {
        let shared = &self.inner.shared;
        #[cfg(feature = "redis")]
        let redis_connected = self.inner.link.as_ref().map(Link::connected);
        Stats {
            streams: shared.streams.len(),
            pending: self.inner.notify_rx.len(),
            #[cfg(feature = "redis")]
            redis_connected,
            ..shared.counters.snapshot()
        }
    }

    /// The hub's metrics in the Prometheus text exposition format (version
    /// 0.0.4; serve it with [`METRICS_CONTENT_TYPE`](crate::METRICS_CONTENT_TYPE),
    /// or let [`ServerBuilder::metrics`](crate::ServerBuilder::metrics) do
    /// it): each family with `# HELP` and `# TYPE`, names prefixed `sse_`.
    ///
    /// Gauges: `sse_clients_connected` (streams and subscriptions),
    /// `sse_streams_open`, `sse_events_pending`, `sse_history_events`,
    /// `sse_history_bytes`, and under the `redis` feature, for a hub that
    /// shares a stream, `sse_redis_connected` (1 or 0). Counters, since the
    /// hub started: `sse_streams_opened_total`,
    /// `sse_streams_rejected_total{reason}` (`too_many_clients`,
    /// `shutting_down`, `no_thread`, `hook`, `id_in_use`, `too_many_topics`,
    /// `topic_too_long`), `sse_disconnects_total{reason}` (`closed`, `write_error`,
    /// `timed_out`, `evicted`, `shutdown`), `sse_events_published_total`,
    /// `sse_deliveries_queued_total`, `sse_deliveries_dropped_total`,
    /// `sse_evictions_total` and `sse_written_bytes_total`. They are the
    /// counts of [`stats`](Hub::stats) and a few more, read as cheaply
    /// (atomic loads and a brief lock of the table of open streams; no
    /// message to the hub thread), and they stay readable after shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = sse_server::Hub::new()?;
    /// hub.notify("hello")?;
    /// let text = hub.metrics();
    /// assert!(text.contains("# TYPE sse_events_published_total counter\n"));
    /// assert!(text.contains("\nsse_events_published_total 1\n"));
    /// assert!(text.contains("\nsse_disconnects_total{reason=\"closed\"} 0\n"));
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn metrics(&self) -> String {
        metrics::text(&Sample {
            stats: self.stats(),
            tallies: self.inner.shared.counters.tallies(),
        })
    }

    /// Registers the hub's metrics (the families of
    /// [`metrics`](Hub::metrics)) in a `prometheus_client` registry, for a
    /// program that gathers its own metrics there (feature
    /// `prometheus-client`; the crate is re-exported as
    /// `sse_server::prometheus_client`). They are read at each scrape, from
    /// the same atomics. The registry does not keep the hub alive: once the
    /// hub is dropped it shows the final counts.
    ///
    /// The registry's own encoders name the families: its OpenMetrics text
    /// (`encoding::text`) adds `# UNIT` lines for the two `_bytes`
    /// families and `# EOF`; its Prometheus text (`encoding::prometheus_text`)
    /// is what [`metrics`](Hub::metrics) writes. A registry with a prefix
    /// puts it before `sse_`.
    ///
    /// # Examples
    ///
    /// ```
    /// use sse_server::Hub;
    /// use sse_server::prometheus_client::{encoding::text::encode, registry::Registry};
    ///
    /// let hub = Hub::new()?;
    /// let mut registry = Registry::default();
    /// hub.register_metrics(&mut registry);
    /// hub.notify("hello")?;
    ///
    /// let mut text = String::new();
    /// encode(&mut text, &registry).expect("writing to a String");
    /// assert!(text.contains("\nsse_events_published_total 1\n"));
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    #[cfg(feature = "prometheus-client")]
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        // The collector holds what the hub's threads hold, never a `Hub`,
        // so a registry does not keep the hub alive.
        let shared = Arc::clone(&self.inner.shared);
        let pending = self.inner.notify_rx.clone();
        // The Redis link's state, which its threads update: atomics too.
        #[cfg(feature = "redis")]
        let link = self.inner.link.as_ref().map(Link::state);
        let sample = move || {
            #[cfg(feature = "redis")]
            let redis_connected = link.as_ref().map(|state| state.connected());
            Sample {
                stats: Stats {
                    streams: shared.streams.len(),
                    pending: pending.len(),
                    #[cfg(feature = "redis")]
                    redis_connected,
                    ..shared.counters.snapshot()
                },
                tallies: shared.counters.tallies(),
            }
        };
        registry.register_collector(Box::new(metrics::Collector::new(sample)));
    }

    /// Counters for one connected client, or `None` when no client with
    /// that id is connected.
    pub fn client_stats(&self, id: ClientId) -> Option<ClientStats> {
        let clients = lock(&self.inner.shared.clients);
        clients.get(&id).map(|counters| counters.snapshot(id))
    }

    /// Counters for every connected client, in no particular order.
    pub fn clients(&self) -> Vec<ClientStats> {
        let clients = lock(&self.inner.shared.clients);
        clients
            .iter()
            .map(|(&id, counters)| counters.snapshot(id))
            .collect()
    }

    /// True once shutdown has begun.
    pub fn is_closed(&self) -> bool {
        self.inner.shared.is_closing()
    }

    /// Answers `request` as the event-stream endpoint, whatever its path:
    /// this is how a program that runs its own `tiny_http` server serves
    /// events from one of its routes. It returns at once.
    ///
    /// * `GET` starts a stream on a writer thread of its own. On that thread
    ///   the connect hook ([`HubBuilder::on_connect`](crate::HubBuilder::on_connect)) decides about the
    ///   client, the client is registered (with its topics, and its replay
    ///   when it sent a `Last-Event-ID`), and only then are the response
    ///   headers written: a client that has the headers receives every event
    ///   published afterwards.
    /// * `HEAD` gets the stream's headers without a body; `OPTIONS` the CORS
    ///   preflight answer (see [`Cors`](crate::Cors)); other methods
    ///   `405 Method Not Allowed` with `Allow`.
    /// * A request that came in on a connection already carrying a stream
    ///   (pipelined behind it) is kept until that stream ends:
    ///   answering it sooner would block.
    ///
    /// The connection's sockets are the caller's: [`Server`](crate::Server)
    /// gives its sockets a write timeout and `TCP_NODELAY`, a server the
    /// caller built has whatever the caller set (a plain `tiny_http::Server`
    /// sets neither, so a client that stops reading holds its writer thread
    /// until the kernel gives up on it).
    ///
    /// # Errors
    ///
    /// Each error has been answered to the client already:
    /// [`Error::Closed`] after shutdown, whatever the method,
    /// [`Error::TooManyClients`] past [`HubBuilder::max_clients`](crate::HubBuilder::max_clients),
    /// [`Error::Spawn`] when the operating system refuses the writer thread.
    /// Until shutdown, other methods than `GET` return `Ok` once answered,
    /// and so does a request kept behind a stream (it is answered when the
    /// stream ends).
    ///
    /// The first three are counted in
    /// [`Stats::rejected`](crate::Stats::rejected) and told to come back
    /// later. A request whose `Accept` asks for `text/event-stream` (every
    /// `EventSource`) gets `200` and a short event stream: a `retry:` of
    /// [`HubBuilder::busy_retry`](crate::HubBuilder::busy_retry) with jitter and an `sse-busy` event
    /// (data `shutting-down`, `too-many-clients` or `no-thread`), then the
    /// end, after which a browser reconnects by itself; `503` would make it
    /// give up for good (WHATWG: any other answer fails the connection).
    /// Other requests get `503 Service Unavailable` with `Retry-After`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sse_server::{Hub, tiny_http};
    ///
    /// let hub = Hub::new()?;
    /// let server = tiny_http::Server::http("127.0.0.1:8080").expect("bind");
    /// for request in server.incoming_requests() {
    ///     if request.url().split('?').next() == Some("/events") {
    ///         hub.serve(request)?;
    ///     } else {
    ///         request.respond(tiny_http::Response::from_string("hello"))?;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve(&self, request: tiny_http::Request) -> Result<(), Error> {
        self.serve_from(request, None)
    }

    /// [`serve`](Hub::serve), for a request that came in on `local` (a
    /// listening address, which may be unspecified) when that is known.
    pub(crate) fn serve_from(
        &self,
        request: tiny_http::Request,
        local: Option<SocketAddr>,
    ) -> Result<(), Error> {
        let shared = &self.inner.shared;
        let Some(request) = shared.streams.park_if_pipelined(request, &shared.counters) else {
            return Ok(());
        };
        http::end_unread_body(&request, local);
        // After shutdown nothing is served here, whatever the method: a
        // `HEAD` answered `200` would tell a health check the stream is up.
        if self.is_closed() {
            return Err(self.refuse(request, Error::Closed));
        }
        let Some(request) = http::answer_non_stream(shared.config.cors.as_ref(), request) else {
            return Ok(());
        };
        let open = shared.streams.len();
        if open >= shared.config.max_clients {
            log::debug!("refusing a client: {open} streams open, the most allowed");
            return Err(self.refuse(request, Error::TooManyClients));
        }
        let mut writers = lock(&self.inner.writers);
        let Some(alive) = writers.alive_tx.clone() else {
            drop(writers);
            return Err(self.refuse(request, Error::Closed));
        };
        let remote = request.remote_addr().copied();
        let counters = Arc::new(ClientCounters::default());
        // Kept to give the place back if the writer cannot start.
        let opened = Arc::clone(&counters);
        if let Some(remote) = remote {
            shared.streams.open(remote, Arc::clone(&counters));
        }
        let released = remote.and_then(|remote| self.release_and_watch(remote, local, &counters));
        // The request goes to the thread through a slot we keep a handle to,
        // so that if the thread cannot start we still have the request and
        // can answer it.
        let slot = Arc::new(Mutex::new(Some(Box::new(request))));
        let id = shared.next_id();
        let job = Box::new(writer::Job {
            slot: Arc::clone(&slot),
            shared: Arc::clone(shared),
            id,
            counters,
            released,
            remote,
            alive,
        });
        let spawned = thread::Builder::new()
            .name(format!("sse-client-{id}"))
            .stack_size(writer::STACK_SIZE)
            .spawn(move || writer::start(job));
        match spawned {
            Ok(handle) => {
                writers.push(handle);
                Ok(())
            }
            Err(e) => {
                drop(writers);
                if let Some(remote) = remote {
                    shared.streams.close(remote, &opened);
                }
                log::warn!("could not start a writer thread for a client: {e}");
                match lock(&slot).take() {
                    Some(request) => Err(self.refuse(*request, Error::Spawn(e))),
                    None => Err(Error::Spawn(e)),
                }
            }
        }
    }

    /// Lets `tiny_http`'s reading thread of the stream from `remote` go (see
    /// `tiny_http_fixes/release.rs`), and has the watch thread look after
    /// the stream. Done here rather than on the writer thread, which may
    /// take a while to be scheduled in a connect burst: the sooner the
    /// reading thread is back in `tiny_http`'s pool, the fewer new ones the
    /// pool starts.
    fn release_and_watch(
        &self,
        remote: SocketAddr,
        local: Option<SocketAddr>,
        counters: &Arc<ClientCounters>,
    ) -> Option<Released> {
        let (released, copy) = match release_reader(remote, local) {
            Some((released, copy)) => (Some(released), Some(copy)),
            None => (None, None),
        };
        if let Some(watch) = &self.inner.watch
            && self.inner.shared.config.close_check.is_some()
        {
            let local = released.as_ref().map(|released| released.local).or(local);
            let watched = Watched {
                remote,
                local,
                counters: Arc::clone(counters),
            };
            watch.stream(copy.as_ref(), watched);
        }
        released
    }

    /// Turns `request` away for now; see [`http::refuse`].
    fn refuse(&self, request: tiny_http::Request, error: Error) -> Error {
        let shared = &self.inner.shared;
        http::refuse(request, error, &shared.config, &shared.counters)
    }

    /// Shuts the hub down: stops every [`Server`](crate::Server) serving it
    /// from accepting, delivers the events already published, ends every
    /// stream cleanly (an HTTP/1.1 stream gets its final chunk), and joins
    /// every thread this crate started for the hub.
    ///
    /// It returns within [`HubBuilder::shutdown_timeout`](crate::HubBuilder::shutdown_timeout) plus a fraction of
    /// a second (a timeout too long for the clock to reach, such as
    /// `Duration::MAX`, is no deadline: it waits for every stream to end). A second call, or a call after another thread began the
    /// shutdown, returns `Ok` at once. Afterwards every method that can fail
    /// returns [`Error::Closed`]: [`notify`](Hub::notify),
    /// [`publish`](Hub::publish), [`publish_to`](Hub::publish_to),
    /// [`send_to`](Hub::send_to) (whatever the id),
    /// [`subscribe`](Hub::subscribe), [`subscribe_with`](Hub::subscribe_with),
    /// [`serve`](Hub::serve) (which answers `503`, whatever the method) and
    /// [`ServerBuilder::bind`](crate::ServerBuilder::bind). The counters
    /// ([`stats`](Hub::stats), [`clients`](Hub::clients),
    /// [`client_stats`](Hub::client_stats)) stay readable; no client is
    /// registered any more.
    ///
    /// `tiny_http`'s own connection threads are not ours to join: each ends
    /// when its client closes the connection, which well-behaved clients do
    /// once the stream ends (the stream's headers say `Connection: close`),
    /// and idle ones end within 5 seconds.
    ///
    /// # Errors
    ///
    /// [`Error::ShutdownTimeout`] when some writer threads were still
    /// sending at the deadline; they are left to end on their own.
    pub fn shutdown(&self) -> Result<(), Error> {
        self.inner.shutdown()
    }

    pub(crate) fn register_acceptor(&self, acceptor: Acceptor) {
        lock(&self.inner.acceptors).push(acceptor);
    }

    /// The state the hub's threads share.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// The watch thread's handle, when it runs.
    pub(crate) fn watch(&self) -> Option<&Watch> {
        self.inner.watch.as_ref()
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("stats", &self.stats())
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Inner {
    fn shutdown(&self) -> Result<(), Error> {
        if self.shared.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let started = *self.closing_since.get_or_init(Instant::now);
        // A timeout too long to add to an `Instant` means no deadline.
        let deadline = started.checked_add(self.shared.config.shutdown_timeout);
        log::debug!("hub shutting down");

        let acceptors = std::mem::take(&mut *lock(&self.acceptors));
        for acceptor in &acceptors {
            acceptor.stop();
        }
        for acceptor in acceptors {
            acceptor.join();
        }
        if let Some(watch) = &self.watch {
            watch.stop();
        }
        if let Some(handle) = lock(&self.watch_thread).take()
            && handle.join().is_err()
        {
            log::error!("BUG: the watch thread panicked");
        }

        // The Redis reader holds a sender too: it stops first.
        #[cfg(feature = "redis")]
        if let Some(link) = &self.link {
            link.stop();
        }
        // Dropping the sender lets the hub thread deliver what is queued and
        // then end; ending drops every client queue, which tells each writer
        // to finish its stream.
        self.notify_tx
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let hub_thread = lock(&self.hub_thread).take();
        if hub_thread.is_some_and(|handle| handle.join().is_err()) {
            log::error!("BUG: the hub thread panicked");
        }

        self.join_writers(deadline)
    }

    /// Waits, until `deadline` (`None`: for as long as it takes), for every
    /// writer thread to end, and joins them.
    fn join_writers(&self, deadline: Option<Instant>) -> Result<(), Error> {
        let handles = {
            let mut writers = lock(&self.writers);
            writers.alive_tx = None;
            std::mem::take(&mut writers.handles)
        };
        // Every writer drops its `alive` sender as the last thing it does,
        // so a disconnect here means every handle joins at once.
        let all_ended = match deadline {
            Some(deadline) => matches!(
                self.alive_rx.recv_deadline(deadline),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected)
            ),
            // Nothing is ever sent on this channel: `recv` returns once
            // every writer has dropped its sender.
            None => self.alive_rx.recv().is_err(),
        };
        let mut stuck = 0;
        for handle in handles {
            if all_ended || handle.is_finished() {
                let _ = handle.join();
            } else {
                stuck += 1;
            }
        }
        if stuck > 0 {
            log::warn!("shutdown deadline passed with {stuck} writer thread(s) still sending");
            return Err(Error::ShutdownTimeout { threads: stuck });
        }
        log::debug!("hub shut down");
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("hub dropped: {e}");
        }
    }
}

impl Writers {
    fn push(&mut self, handle: JoinHandle<()>) {
        self.handles.push(handle);
        if self.handles.len() >= self.prune_at {
            self.handles.retain(|handle| !handle.is_finished());
            self.prune_at = (self.handles.len() * 2).max(64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_is_send_sync_clone() {
        fn assert_traits<T: Send + Sync + Clone>() {}
        assert_traits::<Hub>();
    }
}
