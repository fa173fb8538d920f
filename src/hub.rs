//! The `Hub` handle and the hub thread.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError};

use crate::event::{Frame, encode_data};
use crate::server::Acceptor;
use crate::stats::{ClientStats, Stats};
use crate::{Error, Event};

/// When several events wait for the hub at once, it joins them into one
/// frame of at most about this many bytes (a frame always holds at least one
/// whole event), so a burst costs one queue slot and one write per client
/// instead of one per event.
const BATCH_BYTES: usize = 64 * 1024;
/// ... and at most this many events.
const BATCH_EVENTS: u32 = 1024;

/// An id the hub gives each client (stream or subscription), unique for the
/// life of the hub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub(crate) u64);

impl ClientId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Settings for a [`Hub`], built with [`Hub::builder`].
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let hub = sse_server::Hub::builder()
///     .client_buffer(512)
///     .keep_alive(Some(Duration::from_secs(10)))
///     .shutdown_timeout(Duration::from_secs(2))
///     .build()?;
/// # hub.shutdown()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct HubBuilder {
    pub(crate) client_buffer: usize,
    pub(crate) keep_alive: Option<Duration>,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) slow_client: SlowClient,
    pub(crate) max_clients: usize,
}

/// What the hub does when a client's queue is full, set with
/// [`HubBuilder::slow_client`]. Whichever it is, the hub never waits for a
/// client and `notify` never blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowClient {
    /// The client misses the frame that did not fit (the newest events) and
    /// keeps its connection. The miss is counted ([`Stats::dropped`],
    /// [`ClientStats::dropped`]), and the stream carries a comment line
    /// `: missed N events` before the next events it sends, for clients and
    /// people reading the raw stream.
    #[default]
    DropNewest,
    /// The client's stream is ended (after what is already queued for it),
    /// so that it reconnects and starts afresh. It is counted in
    /// [`Stats::evicted`] and [`ClientStats::evicted`].
    Disconnect,
}

impl Default for HubBuilder {
    fn default() -> Self {
        HubBuilder {
            client_buffer: 128,
            keep_alive: Some(Duration::from_secs(15)),
            shutdown_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            slow_client: SlowClient::DropNewest,
            max_clients: default_max_clients(),
        }
    }
}

impl HubBuilder {
    /// How many frames may wait in one client's queue. When a client's
    /// queue is full, the events of the next frame are not queued for it:
    /// the client misses them, and the miss is counted in
    /// [`Stats::dropped`] and [`ClientStats::dropped`]. The hub never waits
    /// for a client.
    ///
    /// A frame holds every event that was waiting for the hub when it got to
    /// work (up to about 64 KiB), so a burst takes a few slots, while events
    /// published one at a time take one slot each. Each slot costs 16 bytes
    /// per client, allocated when the client connects. Values below 1 are
    /// raised to 1.
    ///
    /// Defaults to 128.
    pub fn client_buffer(mut self, frames: usize) -> Self {
        self.client_buffer = frames.max(1);
        self
    }

    /// After this long without sending anything, a stream writes a keep-alive
    /// comment line (`:`), which every client ignores. It keeps proxies
    /// from closing idle streams and is how a client that went away without
    /// a word is noticed: the write fails. `None` turns keep-alives off; a
    /// zero duration is treated as one millisecond.
    ///
    /// Defaults to 15 seconds.
    pub fn keep_alive(mut self, interval: Option<Duration>) -> Self {
        self.keep_alive = interval.map(|d| d.max(Duration::from_millis(1)));
        self
    }

    /// How long [`Hub::shutdown`] waits for the streams to send what is
    /// queued for them and end. Streams whose client stops reading are cut
    /// off at once during a shutdown, so this deadline is only reached when
    /// a client reads, but too slowly to take its backlog in time.
    ///
    /// Defaults to 5 seconds.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// A client that takes no bytes for this long is cut off, and its writer
    /// thread ends. This covers a client that stops reading and one that
    /// vanished without closing (a dead network path): both leave a write
    /// that cannot complete. Applies to connections accepted by
    /// [`Server`](crate::Server), whose sockets get a send timeout and
    /// `TCP_USER_TIMEOUT` to match; a connection from a `tiny_http` server of
    /// the caller's has no socket timeout, so there a stalled write waits for
    /// the kernel. Values below 1 ms are raised to 1 ms.
    ///
    /// Defaults to 30 seconds.
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// What happens to a client whose queue is full: see [`SlowClient`].
    ///
    /// Defaults to [`SlowClient::DropNewest`].
    pub fn slow_client(mut self, policy: SlowClient) -> Self {
        self.slow_client = policy;
        self
    }

    /// The most event streams served at once; a client past it gets
    /// `503 Service Unavailable` with `Retry-After`, no thread is started for
    /// it, and it is counted in [`Stats::rejected`]. Subscriptions made with
    /// [`Hub::subscribe`] do not count.
    ///
    /// Each stream takes two threads (its writer and the `tiny_http`
    /// connection thread), so the operating system's limits cap it whatever
    /// this says. Defaults to 10,000, or less where this machine's limits
    /// would be reached first: a quarter of the open-file limit's worth of
    /// headroom aside, each client needs 2 file descriptors
    /// (`RLIMIT_NOFILE`), 2 tasks (`kernel.pid_max`, `kernel.threads-max`)
    /// and about 9 memory mappings (`vm.max_map_count`; each thread maps its
    /// stack and its signal stack, each with a guard page). With Linux's
    /// default `vm.max_map_count` of 65530 that is about 6,800 clients.
    pub fn max_clients(mut self, clients: usize) -> Self {
        self.max_clients = clients;
        self
    }

    /// Starts the hub thread.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when the operating system refuses the thread.
    pub fn build(self) -> Result<Hub, Error> {
        let (add_tx, add_rx) = crossbeam_channel::unbounded();
        let (remove_tx, remove_rx) = crossbeam_channel::unbounded();
        let (notify_tx, notify_rx) = crossbeam_channel::unbounded();
        let (alive_tx, alive_rx) = crossbeam_channel::bounded(0);
        let shared = Arc::new(Shared {
            remove_tx,
            counters: Counters::default(),
            clients: Mutex::new(HashMap::new()),
            closing: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            config: self,
            streams: Mutex::new(HashMap::new()),
        });
        let hub_thread = HubThread {
            add_rx,
            remove_rx,
            notify_rx: notify_rx.clone(),
            clients: Vec::new(),
            shared: Arc::clone(&shared),
        };
        let handle = thread::Builder::new()
            .name("sse-hub".into())
            .spawn(move || hub_thread.run())
            .map_err(Error::Spawn)?;
        Ok(Hub {
            inner: Arc::new(Inner {
                notify_tx: RwLock::new(Some(notify_tx)),
                notify_rx,
                add_tx,
                shared,
                hub_thread: Mutex::new(Some(handle)),
                acceptors: Mutex::new(Vec::new()),
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
}

/// The handle programs publish through: cheap to clone, and usable from any
/// thread.
///
/// Building a hub starts one thread, named `sse-hub`, which owns the list of
/// clients. [`notify`](Hub::notify) and [`publish`](Hub::publish) encode the
/// event in the calling thread and hand the bytes to the hub thread; the hub
/// thread offers the same bytes to every client's bounded queue without ever
/// waiting for one. Each connection has a writer thread of its own that takes
/// frames from its queue and writes them.
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
/// let hub = Hub::new()?;
/// let subscription = hub.subscribe()?;
///
/// let publisher = hub.clone();
/// std::thread::spawn(move || publisher.notify("from another thread"))
///     .join()
///     .unwrap()?;
/// hub.publish(&Event::new("done").with_event("status")?)?;
///
/// let first = subscription.recv()?;
/// assert_eq!(first.as_bytes(), b"data: from another thread\n\n");
/// hub.shutdown()?;
/// assert!(hub.notify("too late").is_err());
/// # Ok::<(), sse_server::Error>(())
/// ```
#[derive(Clone)]
pub struct Hub {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// `None` once shutdown began. Dropping the only sender is what tells the
    /// hub thread to finish: it still receives every event sent before.
    notify_tx: RwLock<Option<Sender<Frame>>>,
    notify_rx: Receiver<Frame>,
    add_tx: Sender<Registration>,
    pub(crate) shared: Arc<Shared>,
    hub_thread: Mutex<Option<JoinHandle<()>>>,
    pub(crate) acceptors: Mutex<Vec<Acceptor>>,
    writers: Mutex<Writers>,
    /// Disconnects once every writer thread has dropped its sender.
    alive_rx: Receiver<()>,
    closing_since: OnceLock<Instant>,
}

/// The part of the hub that writer threads and the hub thread share. It
/// holds no handle to [`Inner`], so no thread the hub started keeps the hub
/// alive.
pub(crate) struct Shared {
    remove_tx: Sender<ClientId>,
    pub(crate) counters: Counters,
    clients: Mutex<HashMap<ClientId, Arc<ClientCounters>>>,
    pub(crate) closing: AtomicBool,
    next_id: AtomicU64,
    pub(crate) config: HubBuilder,
    /// Open event streams by the client's address, with the requests that
    /// arrived behind each stream on its connection.
    streams: Mutex<HashMap<SocketAddr, OpenStream>>,
}

struct OpenStream {
    id: ClientId,
    counters: Arc<ClientCounters>,
    /// Requests the client sent on the connection behind its stream.
    /// `tiny_http` answers a connection's requests in order, so answering
    /// (or dropping) one of these blocks until the stream ends: they wait
    /// here, and are dropped (answered `500` by `tiny_http`, after the
    /// stream's last chunk) once the stream's writer is done.
    parked: Vec<tiny_http::Request>,
}

/// The most requests kept behind one stream; past it the stream is ended.
const MAX_PARKED: usize = 8;

impl Shared {
    pub(crate) fn write_timeout(&self) -> Duration {
        self.config.write_timeout
    }

    /// Keeps `request` aside when it came in on a connection that carries an
    /// open event stream (the client pipelined it behind its `GET`), and
    /// gives it back otherwise. A connection is known by the client's
    /// address and port. A client that piles up more than a few such
    /// requests has its stream ended, which releases them.
    pub(crate) fn park_if_pipelined(
        &self,
        request: tiny_http::Request,
    ) -> Option<tiny_http::Request> {
        let Some(remote) = request.remote_addr().copied() else {
            return Some(request);
        };
        let mut streams = lock(&self.streams);
        let Some(stream) = streams.get_mut(&remote) else {
            return Some(request);
        };
        log::debug!(
            "client {} sent a request behind its event stream; it waits for the stream to end",
            stream.id
        );
        stream.parked.push(request);
        if stream.parked.len() > MAX_PARKED
            && !stream.counters.evicted.swap(true, Ordering::Relaxed)
        {
            self.counters.evicted.fetch_add(1, Ordering::Relaxed);
            let _ = self.remove_tx.send(stream.id);
        }
        None
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    connected: AtomicUsize,
    published: AtomicU64,
    queued: AtomicU64,
    dropped: AtomicU64,
    evicted: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

#[derive(Default)]
pub(crate) struct ClientCounters {
    pub(crate) dropped: AtomicU64,
    pub(crate) delivered: AtomicU64,
    /// Set when the hub ended the client's stream: too slow under
    /// [`SlowClient::Disconnect`], or too many requests behind the stream.
    pub(crate) evicted: AtomicBool,
}

impl ClientCounters {
    fn snapshot(&self, id: ClientId) -> ClientStats {
        ClientStats {
            id,
            dropped: self.dropped.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            evicted: self.evicted.load(Ordering::Relaxed),
        }
    }
}

struct Writers {
    handles: Vec<JoinHandle<()>>,
    prune_at: usize,
    /// Each writer thread holds a clone until its very end.
    alive_tx: Option<Sender<()>>,
}

struct Registration {
    id: ClientId,
    queue: Sender<Frame>,
    counters: Arc<ClientCounters>,
    registered: Sender<()>,
}

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

    /// Sends `data` as a data-only event (a browser's `onmessage` sees it)
    /// to every connected client. It never blocks on a client.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    ///
    /// # Examples
    ///
    /// ```
    /// let hub = sse_server::Hub::new()?;
    /// hub.notify("line one\nline two")?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn notify(&self, data: impl AsRef<str>) -> Result<(), Error> {
        self.send_frame(Frame::new(encode_data(data.as_ref()), 1))
    }

    /// Sends a full [`Event`] to every connected client. It never blocks on
    /// a client.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
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
        self.send_frame(Frame::new(event.to_bytes(), 1))
    }

    fn send_frame(&self, frame: Frame) -> Result<(), Error> {
        let sender = self
            .inner
            .notify_tx
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let sender = sender.as_ref().ok_or(Error::Closed)?;
        let events = frame.events() as u64;
        sender.send(frame).map_err(|_| Error::Closed)?;
        self.inner
            .shared
            .counters
            .published
            .fetch_add(events, Ordering::Relaxed);
        Ok(())
    }

    /// Subscribes without a network connection: for programs that carry the
    /// events over some other transport, and for tests. The subscription
    /// receives every event published after this call returns; its queue
    /// has [`HubBuilder::client_buffer`] slots, and frames that do not fit
    /// are missed (see [`Subscription::missed`]). Dropping the subscription
    /// unsubscribes.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown.
    pub fn subscribe(&self) -> Result<Subscription, Error> {
        let (queue, receiver) = crossbeam_channel::bounded(self.inner.shared.config.client_buffer);
        let (registered_tx, registered_rx) = crossbeam_channel::bounded(1);
        let id = ClientId(self.inner.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let counters = Arc::new(ClientCounters::default());
        if self.inner.shared.closing.load(Ordering::Acquire) {
            return Err(Error::Closed);
        }
        self.inner
            .add_tx
            .send(Registration {
                id,
                queue,
                counters: Arc::clone(&counters),
                registered: registered_tx,
            })
            .map_err(|_| Error::Closed)?;
        // The hub thread answers at once, or drops the registration (and so
        // disconnects this channel) when it stops.
        registered_rx.recv().map_err(|_| Error::Closed)?;
        Ok(Subscription {
            id,
            receiver,
            counters,
            shared: Arc::clone(&self.inner.shared),
        })
    }

    /// Counters for the whole hub.
    pub fn stats(&self) -> Stats {
        let counters = &self.inner.shared.counters;
        Stats {
            clients: counters.connected.load(Ordering::Relaxed),
            published: counters.published.load(Ordering::Relaxed),
            queued: counters.queued.load(Ordering::Relaxed),
            dropped: counters.dropped.load(Ordering::Relaxed),
            evicted: counters.evicted.load(Ordering::Relaxed),
            rejected: counters.rejected.load(Ordering::Relaxed),
            streams: lock(&self.inner.shared.streams).len(),
            pending: self.inner.notify_rx.len(),
        }
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
        self.inner.shared.closing.load(Ordering::Acquire)
    }

    /// Streams events to the client that sent `request`, on a writer thread
    /// of its own: the call returns at once. This is how a program that runs
    /// its own `tiny_http` server serves an event stream from one of its
    /// routes; the method and path are the caller's business.
    ///
    /// The client is registered before the call returns, so it receives
    /// every event published afterwards. The connection's sockets are the
    /// caller's: [`Server`](crate::Server) gives its sockets a write timeout
    /// and `TCP_NODELAY`, a server the caller built has whatever the caller
    /// set (a plain `tiny_http::Server` sets neither, so a client that stops
    /// reading holds its writer thread until the kernel gives up on it).
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] after shutdown, [`Error::Spawn`] when the operating
    /// system refuses the writer thread. In both cases the client has been
    /// answered `503 Service Unavailable` with `Retry-After`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use sse_server::{Hub, tiny_http};
    ///
    /// let hub = Hub::new()?;
    /// let server = tiny_http::Server::http("127.0.0.1:8080").expect("bind");
    /// for request in server.incoming_requests() {
    ///     if request.url() == "/events" {
    ///         hub.serve(request)?;
    ///     } else {
    ///         request.respond(tiny_http::Response::from_string("hello"))?;
    ///     }
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn serve(&self, request: tiny_http::Request) -> Result<ClientId, Error> {
        let shared = &self.inner.shared;
        let Some(request) = shared.park_if_pipelined(request) else {
            return Err(Error::Pipelined);
        };
        if self.is_closed() {
            crate::server::respond_unavailable(request);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Closed);
        }
        let open = lock(&shared.streams).len();
        if open >= shared.config.max_clients {
            log::debug!("refusing a client: {open} streams open, the most allowed");
            crate::server::respond_unavailable(request);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::TooManyClients);
        }
        let subscription = match self.subscribe() {
            Ok(subscription) => subscription,
            Err(e) => {
                crate::server::respond_unavailable(request);
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let id = subscription.id;
        let mut writers = lock(&self.inner.writers);
        let Some(alive) = writers.alive_tx.clone() else {
            crate::server::respond_unavailable(request);
            shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(Error::Closed);
        };
        let remote = request.remote_addr().copied();
        if let Some(remote) = remote {
            let stream = OpenStream {
                id,
                counters: Arc::clone(&subscription.counters),
                parked: Vec::new(),
            };
            lock(&shared.streams).insert(remote, stream);
        }
        // The request goes to the thread through a slot we keep a handle to,
        // so that if the thread cannot start we still have the request and
        // can answer it.
        let slot = Arc::new(Mutex::new(Some(request)));
        let thread_slot = Arc::clone(&slot);
        let shared_for_thread = Arc::clone(shared);
        let spawned = thread::Builder::new()
            .name(format!("sse-client-{id}"))
            .stack_size(crate::stream::STACK_SIZE)
            .spawn(move || {
                let request = lock(&thread_slot).take();
                if let Some(request) = request {
                    crate::stream::run(request, subscription);
                }
                // The stream's writer is gone, so `tiny_http` can now answer
                // what the client sent behind the stream.
                if let Some(remote) = remote {
                    let parked = lock(&shared_for_thread.streams).remove(&remote);
                    drop(parked);
                }
                drop(alive);
            });
        match spawned {
            Ok(handle) => {
                writers.push(handle);
                Ok(id)
            }
            Err(e) => {
                drop(writers);
                if let Some(remote) = remote {
                    lock(&shared.streams).remove(&remote);
                }
                shared.counters.rejected.fetch_add(1, Ordering::Relaxed);
                log::warn!("could not start a writer thread for client {id}: {e}");
                if let Some(request) = lock(&slot).take() {
                    crate::server::respond_unavailable(request);
                }
                Err(Error::Spawn(e))
            }
        }
    }

    /// Shuts the hub down: stops every [`Server`](crate::Server) serving it
    /// from accepting, delivers the events already published, ends every
    /// stream cleanly (an HTTP/1.1 stream gets its final chunk), and joins
    /// every thread this crate started for the hub.
    ///
    /// It returns within [`HubBuilder::shutdown_timeout`] plus a fraction of
    /// a second. A second call, or a call after another thread began the
    /// shutdown, returns at once. Afterwards `notify`, `publish`, `subscribe`
    /// and `serve` return [`Error::Closed`].
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
        let deadline = started + self.shared.config.shutdown_timeout;
        log::debug!("hub shutting down");

        let acceptors = std::mem::take(&mut *lock(&self.acceptors));
        for acceptor in &acceptors {
            acceptor.stop();
        }
        for acceptor in acceptors {
            acceptor.join();
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

        let handles = {
            let mut writers = lock(&self.writers);
            writers.alive_tx = None;
            std::mem::take(&mut writers.handles)
        };
        // Every writer drops its `alive` sender as the last thing it does,
        // so a disconnect here means every handle joins at once.
        let all_ended = matches!(
            self.alive_rx.recv_deadline(deadline),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected)
        );
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

/// A subscription made with [`Hub::subscribe`]: a bounded queue of encoded
/// frames. Dropping it unsubscribes.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
///
/// let hub = sse_server::Hub::new()?;
/// let subscription = hub.subscribe()?;
/// hub.notify("a")?;
/// hub.notify("b")?;
/// let mut bytes = Vec::new();
/// while bytes.len() < b"data: a\n\ndata: b\n\n".len() {
///     let frame = subscription.recv_timeout(Duration::from_secs(5))?.expect("an event");
///     bytes.extend_from_slice(frame.as_bytes());
/// }
/// assert_eq!(bytes, b"data: a\n\ndata: b\n\n");
/// # Ok::<(), sse_server::Error>(())
/// ```
pub struct Subscription {
    id: ClientId,
    receiver: Receiver<Frame>,
    counters: Arc<ClientCounters>,
    shared: Arc<Shared>,
}

impl Subscription {
    /// The subscription's client id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Waits for the next frame.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] once the hub has shut down and every frame queued
    /// before has been received.
    pub fn recv(&self) -> Result<Frame, Error> {
        self.receiver.recv().map_err(|_| Error::Closed)
    }

    /// Waits at most `timeout` for the next frame; `Ok(None)` when none came.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] as for [`recv`](Subscription::recv).
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Frame>, Error> {
        match self.receiver.recv_timeout(timeout) {
            Ok(frame) => Ok(Some(frame)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => Err(Error::Closed),
        }
    }

    /// The next frame if one is queued, without waiting.
    ///
    /// # Errors
    ///
    /// [`Error::Closed`] as for [`recv`](Subscription::recv).
    pub fn try_recv(&self) -> Result<Option<Frame>, Error> {
        match self.receiver.try_recv() {
            Ok(frame) => Ok(Some(frame)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(Error::Closed),
        }
    }

    /// The underlying channel, to wait on it in a `crossbeam_channel::select!`
    /// together with other channels.
    pub fn receiver(&self) -> &Receiver<Frame> {
        &self.receiver
    }

    /// How many events this subscription missed because its queue was full.
    /// A consumer that sees this number grow knows it has a gap.
    pub fn missed(&self) -> u64 {
        self.counters.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn counters(&self) -> &ClientCounters {
        &self.counters
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("queued", &self.receiver.len())
            .field("missed", &self.missed())
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // The hub may be gone already; then there is nothing to leave.
        let _ = self.shared.remove_tx.send(self.id);
    }
}

struct Client {
    id: ClientId,
    queue: Sender<Frame>,
    counters: Arc<ClientCounters>,
}

struct HubThread {
    add_rx: Receiver<Registration>,
    remove_rx: Receiver<ClientId>,
    notify_rx: Receiver<Frame>,
    clients: Vec<Client>,
    shared: Arc<Shared>,
}

impl HubThread {
    fn run(mut self) {
        loop {
            crossbeam_channel::select! {
                recv(self.add_rx) -> registration => match registration {
                    Ok(registration) => self.add(registration),
                    Err(_) => break,
                },
                recv(self.remove_rx) -> id => {
                    if let Ok(id) = id {
                        self.remove(id);
                    }
                },
                recv(self.notify_rx) -> frame => match frame {
                    Ok(frame) => self.broadcast(frame),
                    // Every sender is gone: shutdown, after every event sent
                    // before it has been received and broadcast.
                    Err(_) => break,
                },
            }
        }
        lock(&self.shared.clients).clear();
        self.shared.counters.connected.store(0, Ordering::Relaxed);
    }

    fn add(&mut self, registration: Registration) {
        let Registration {
            id,
            queue,
            counters,
            registered,
        } = registration;
        lock(&self.shared.clients).insert(id, Arc::clone(&counters));
        self.clients.push(Client {
            id,
            queue,
            counters,
        });
        self.shared
            .counters
            .connected
            .store(self.clients.len(), Ordering::Relaxed);
        // The subscriber may have given up waiting; it unsubscribes then.
        let _ = registered.send(());
    }

    fn remove(&mut self, id: ClientId) {
        if let Some(at) = self.clients.iter().position(|client| client.id == id) {
            self.clients.swap_remove(at);
            self.forget(&[id]);
        }
    }

    fn forget(&self, ids: &[ClientId]) {
        let mut clients = lock(&self.shared.clients);
        for id in ids {
            clients.remove(id);
        }
        self.shared
            .counters
            .connected
            .store(self.clients.len(), Ordering::Relaxed);
    }

    fn broadcast(&mut self, first: Frame) {
        let frame = self.gather(first);
        let events = frame.events() as u64;
        let mut queued = 0u64;
        let mut dropped = 0u64;
        let mut gone = Vec::new();
        let policy = self.shared.config.slow_client;
        for client in &self.clients {
            match client.queue.try_send(frame.clone()) {
                Ok(()) => queued += events,
                Err(TrySendError::Full(_)) => {
                    client.counters.dropped.fetch_add(events, Ordering::Relaxed);
                    dropped += events;
                    if policy == SlowClient::Disconnect {
                        client.counters.evicted.store(true, Ordering::Relaxed);
                        self.shared.counters.evicted.fetch_add(1, Ordering::Relaxed);
                        gone.push(client.id);
                    }
                }
                Err(TrySendError::Disconnected(_)) => gone.push(client.id),
            }
        }
        let counters = &self.shared.counters;
        counters.queued.fetch_add(queued, Ordering::Relaxed);
        if dropped > 0 {
            counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        if !gone.is_empty() {
            self.clients.retain(|client| !gone.contains(&client.id));
            self.forget(&gone);
        }
    }

    /// Joins `first` with the events already waiting behind it, so that a
    /// burst costs each client one queue slot and one write.
    fn gather(&self, first: Frame) -> Frame {
        if self.notify_rx.is_empty() {
            return first;
        }
        let mut bytes = Vec::with_capacity(BATCH_BYTES.min(first.as_bytes().len() * 8));
        bytes.extend_from_slice(first.as_bytes());
        let mut events = first.events() as u32;
        while bytes.len() < BATCH_BYTES && events < BATCH_EVENTS {
            match self.notify_rx.try_recv() {
                Ok(next) => {
                    bytes.extend_from_slice(next.as_bytes());
                    events += next.events() as u32;
                }
                Err(_) => break,
            }
        }
        Frame::new(bytes, events)
    }
}

/// The default for [`HubBuilder::max_clients`]: 10,000, or what this
/// machine's limits leave room for, if less.
fn default_max_clients() -> usize {
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
    let mut clients = 10_000;
    if let Some(files) = open_file_limit() {
        clients = clients.min(files * 3 / 4 / 2);
    }
    for path in ["/proc/sys/kernel/pid_max", "/proc/sys/kernel/threads-max"] {
        if let Some(tasks) = read_number(path) {
            clients = clients.min(tasks * 3 / 4 / 2);
        }
    }
    if let Some(maps) = read_number("/proc/sys/vm/max_map_count") {
        clients = clients.min(maps.saturating_sub(4096) / 9);
    }
    clients.max(1)
}

/// Locks a mutex, carrying on with the data if a thread panicked while
/// holding it: every structure behind these locks stays consistent between
/// statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
