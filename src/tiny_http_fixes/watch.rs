//! The watch thread (`sse-watch`): notices a client that closed or reset
//! its connection while its stream was idle, and closes connections that
//! do not finish a request in time.
//!
//! A stream's writer learns that its client left only when a write fails,
//! and an idle stream writes only a keep-alive now and then. One thread per
//! hub watches every stream instead, two ways, on Linux:
//!
//! * Streams whose socket was found (the release of `tiny_http`'s reader,
//!   `release.rs`) are in an epoll set, registered through a copy of the
//!   socket that is closed at once (the registration lives as long as the
//!   socket). A reset wakes it with `EPOLLHUP`/`EPOLLERR`; a FIN wakes it
//!   too, and the kernel is then asked for that one connection's TCP state
//!   (`sock_diag.rs`): anything but `ESTABLISHED` means the client is gone.
//!   Nothing runs while nobody leaves.
//! * Other streams (no `pidfd_getfd` here, or a socket not found) are
//!   looked at by a periodic list of the server's connections from the
//!   kernel: a stream whose connection is no longer established, or gone
//!   from the list (twice in a row), has lost its client.
//!
//! A client found gone is marked (`ClientCounters::peer_closed`) and removed
//! from the hub, which closes its queue; its writer wakes, writes nothing
//! more, and ends with [`DisconnectReason::Closed`](crate::DisconnectReason::Closed).
//!
//! The same periodic list shows the connections of the hub's servers that
//! carry no stream: one whose request head has not come, or that has sent
//! no new request, for [`HubBuilder::request_timeout`](crate::HubBuilder::request_timeout)
//! is closed (both directions shut down through a copy of its socket), so
//! that `tiny_http`'s thread reading it lets go.
//!
//! Elsewhere than Linux there is no watch: a client that left is noticed at
//! the next write, and request heads have no deadline.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::counters::ClientCounters;

/// A stream for the watch to look after.
pub(crate) struct Watched {
    pub(crate) remote: SocketAddr,
    /// The local address its connection came in on, when known (the
    /// listening address, which may be unspecified, or the socket's own).
    pub(crate) local: Option<SocketAddr>,
    pub(crate) counters: Arc<ClientCounters>,
}

/// The settings the watch thread runs with.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WatchSettings {
    /// See [`HubBuilder::close_check`](crate::HubBuilder::close_check).
    pub(crate) close_check: Option<Duration>,
    /// See [`HubBuilder::request_timeout`](crate::HubBuilder::request_timeout).
    pub(crate) request_timeout: Option<Duration>,
}

/// The shortest and longest pause between two lists of connections, and
/// the share of one core a list may take (its cost times this factor).
const SWEEP_MIN: Duration = Duration::from_millis(50);
const HEADS_MIN: Duration = Duration::from_millis(250);
const HEADS_MAX: Duration = Duration::from_secs(5);
const BUDGET_FACTOR: u32 = 100;
/// For the request deadline alone: 0.5 % of a core.
const HEADS_BUDGET_FACTOR: u32 = 200;
/// How often entries of ended streams are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(1);

#[cfg(target_os = "linux")]
pub(crate) use linux::{Watch, start};

#[cfg(not(target_os = "linux"))]
pub(crate) use other::{Watch, start};

#[cfg(not(target_os = "linux"))]
mod other {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    use super::{WatchSettings, Watched};
    use crate::tiny_http_fixes::pipelined::OpenStreams;

    /// No watch here: see the module's docs.
    pub(crate) struct Watch;

    impl Watch {
        pub(crate) fn stream(&self, _socket: Option<&socket2::Socket>, _stream: Watched) {}
        pub(crate) fn listening(&self, _addr: SocketAddr) {}
        pub(crate) fn request_from(&self, _remote: SocketAddr) {}
        pub(crate) fn stop(&self) {}
    }

    pub(crate) fn start(
        _streams: &Arc<OpenStreams>,
        _settings: WatchSettings,
    ) -> Option<(Watch, JoinHandle<()>)> {
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::{HashMap, HashSet};
    use std::net::SocketAddr;
    use std::os::fd::OwnedFd;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, Weak};
    use std::thread::{self, JoinHandle};
    use std::time::{Duration, Instant};

    use crossbeam_channel::{Receiver, Sender};
    use rustix::event::{EventfdFlags, epoll, eventfd};

    use super::{
        BUDGET_FACTOR, HEADS_BUDGET_FACTOR, HEADS_MAX, HEADS_MIN, PRUNE_EVERY, SWEEP_MIN,
        WatchSettings, Watched,
    };
    use crate::sync::lock;
    use crate::tiny_http_fixes::pipelined::OpenStreams;
    use crate::tiny_http_fixes::release::{close_connections, local_matches};
    use crate::tiny_http_fixes::sock_diag::{self, Connection, ESTABLISHED, SockDiag, canonical};

    /// When each client last sent a complete request head, by address.
    type Requests = Arc<Mutex<HashMap<SocketAddr, Instant>>>;

    /// The epoll token of the wake-up descriptor.
    const WAKE: u64 = 0;

    /// The hub's handle on its watch thread.
    pub(crate) struct Watch {
        epoll: Arc<OwnedFd>,
        wake: Arc<OwnedFd>,
        messages: Sender<Message>,
        next_token: AtomicU64,
        requests: Requests,
        /// Set by `stop`.
        stopping: Arc<AtomicBool>,
    }

    enum Message {
        /// A stream in the epoll set under this token.
        Watched(u64, Watched),
        /// A stream to look for in the lists of connections.
        Polled(Watched),
        /// A server of the hub listens here.
        Listening(SocketAddr),
    }

    /// Starts the watch thread of a hub whose open streams are `streams`:
    /// `None` where epoll or the thread is refused (streams are then
    /// noticed at their next write).
    pub(crate) fn start(
        streams: &Arc<OpenStreams>,
        settings: WatchSettings,
    ) -> Option<(Watch, JoinHandle<()>)> {
        let epoll = Arc::new(epoll::create(epoll::CreateFlags::CLOEXEC).ok()?);
        let wake = Arc::new(eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).ok()?);
        epoll::add(
            &*epoll,
            &*wake,
            epoll::EventData::new_u64(WAKE),
            epoll::EventFlags::IN,
        )
        .ok()?;
        let (messages, inbox) = crossbeam_channel::unbounded();
        let diag = match SockDiag::open() {
            Ok(diag) => Some(diag),
            Err(e) => {
                log::debug!(
                    "sock_diag is not available ({e}): a client that closes is noticed \
                     only from a reset, or at the next write"
                );
                None
            }
        };
        let requests = Requests::default();
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = WatchThread {
            streams: Arc::downgrade(streams),
            settings,
            requests: Arc::clone(&requests),
            stopping: Arc::clone(&stopping),
            epoll: Arc::clone(&epoll),
            inbox,
            diag,
            watched: HashMap::new(),
            polled: Vec::new(),
            missing: HashSet::new(),
            listening: Vec::new(),
            heads: HashMap::new(),
            sweep_cost: Duration::ZERO,
            next_sweep: Instant::now(),
            last_prune: Instant::now(),
            wake: Arc::clone(&wake),
        };
        let handle = thread::Builder::new()
            .name("sse-watch".into())
            .stack_size(256 * 1024)
            .spawn(move || thread.run())
            .map_err(|e| log::warn!("could not start the watch thread: {e}"))
            .ok()?;
        let watch = Watch {
            epoll,
            wake,
            messages,
            next_token: AtomicU64::new(WAKE + 1),
            requests,
            stopping,
        };
        Some((watch, handle))
    }

    impl Watch {
        /// Looks after a stream: through `socket` (a copy of its socket,
        /// which the caller then closes) when there is one, else in the
        /// lists of connections.
        pub(crate) fn stream(&self, socket: Option<&socket2::Socket>, stream: Watched) {
            if let Some(socket) = socket {
                let token = self.next_token.fetch_add(1, Ordering::Relaxed);
                let remote = stream.remote;
                // The thread learns the token before the first event for it.
                if self.messages.send(Message::Watched(token, stream)).is_err() {
                    return;
                }
                let flags =
                    epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ET;
                if let Err(e) = epoll::add(
                    &*self.epoll,
                    socket,
                    epoll::EventData::new_u64(token),
                    flags,
                ) {
                    log::debug!("could not watch the stream of {remote}: {e}");
                }
            } else if self.messages.send(Message::Polled(stream)).is_ok() {
                self.wake();
            }
        }

        /// A server of the hub listens on `addr`: its connections are held
        /// to the request deadline.
        pub(crate) fn listening(&self, addr: SocketAddr) {
            if self.messages.send(Message::Listening(addr)).is_ok() {
                self.wake();
            }
        }

        /// A complete request head came from `remote`.
        pub(crate) fn request_from(&self, remote: SocketAddr) {
            lock(&self.requests).insert(canonical(remote), Instant::now());
        }

        /// Stops the thread (it ends at once; the caller joins it).
        pub(crate) fn stop(&self) {
            self.stopping.store(true, Ordering::Release);
            self.wake();
        }

        fn wake(&self) {
            let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
        }
    }

    struct WatchThread {
        /// Weak: the watch must not keep the hub's streams (and the
        /// requests parked behind them) alive.
        streams: Weak<OpenStreams>,
        settings: WatchSettings,
        requests: Requests,
        stopping: Arc<AtomicBool>,
        epoll: Arc<OwnedFd>,
        inbox: Receiver<Message>,
        diag: Option<SockDiag>,
        watched: HashMap<u64, Watched>,
        polled: Vec<Watched>,
        /// Polled streams missing from the last list (by remote address).
        missing: HashSet<SocketAddr>,
        listening: Vec<SocketAddr>,
        /// Connections without a stream: when each was first listed.
        heads: HashMap<(SocketAddr, SocketAddr), Instant>,
        sweep_cost: Duration,
        next_sweep: Instant,
        last_prune: Instant,
        /// The wake-up descriptor, emptied when it wakes the thread.
        wake: Arc<OwnedFd>,
    }

    impl WatchThread {
        fn run(mut self) {
            let mut events: Vec<epoll::Event> = Vec::with_capacity(256);
            loop {
                let timeout = self.pause();
                let timespec = timeout.map(|pause| rustix::event::Timespec {
                    tv_sec: pause.as_secs() as _,
                    tv_nsec: pause.subsec_nanos() as _,
                });
                events.clear();
                let waited = epoll::wait(
                    &*self.epoll,
                    rustix::buffer::spare_capacity(&mut events),
                    timespec.as_ref(),
                );
                let Some(streams) = self.streams.upgrade() else {
                    return;
                };
                if self.stopping.load(Ordering::Acquire) {
                    return;
                }
                if let Err(e) = waited
                    && e != rustix::io::Errno::INTR
                {
                    log::warn!("the watch thread stops: epoll_wait failed ({e})");
                    return;
                }
                self.take_messages();
                let check = self.woken(&streams, &events);
                self.check(&streams, &check);
                if Instant::now() >= self.next_sweep && self.sweep_needed() {
                    self.sweep(&streams);
                }
                if self.last_prune.elapsed() >= PRUNE_EVERY {
                    self.prune();
                }
            }
        }

        /// Takes in the streams and listening addresses the hub sent.
        fn take_messages(&mut self) {
            for message in self.inbox.try_iter() {
                match message {
                    Message::Watched(token, stream) => {
                        self.watched.insert(token, stream);
                    }
                    Message::Polled(stream) => {
                        self.polled.push(stream);
                        // The pause may have been set for the request
                        // deadline alone, which allows longer ones.
                        let soon = Instant::now()
                            + self
                                .settings
                                .close_check
                                .unwrap_or(SWEEP_MIN)
                                .min(HEADS_MAX);
                        self.next_sweep = self.next_sweep.min(soon);
                    }
                    Message::Listening(addr) => self.listening.push(addr),
                }
            }
        }

        /// Handles what epoll woke the thread for: a stream that was reset
        /// is gone at once; the tokens of the others (a FIN, or bytes the
        /// client sent) are given back, for a look at their state.
        fn woken(&self, streams: &OpenStreams, events: &[epoll::Event]) -> Vec<u64> {
            let mut check = Vec::new();
            for &event in events {
                let (flags, data) = (event.flags, event.data);
                let token = data.u64();
                if token == WAKE {
                    let _ = rustix::io::read(&*self.wake, &mut [0u8; 8]);
                    continue;
                }
                let Some(stream) = self.watched.get(&token) else {
                    continue;
                };
                if flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR) {
                    gone(streams, stream);
                } else {
                    check.push(token);
                }
            }
            check
        }

        /// How long to wait for events: until the next list is due.
        fn pause(&self) -> Option<Duration> {
            let prune = PRUNE_EVERY;
            if !self.sweep_needed() {
                return Some(prune);
            }
            Some(
                self.next_sweep
                    .saturating_duration_since(Instant::now())
                    .min(prune),
            )
        }

        fn sweep_needed(&self) -> bool {
            self.diag.is_some() && (!self.polled.is_empty() || !self.listening.is_empty())
        }

        /// Asks the kernel for the state of each stream that woke up without
        /// a reset: a FIN, or bytes the client sent (which nobody reads).
        fn check(&mut self, streams: &OpenStreams, tokens: &[u64]) {
            let Some(diag) = &mut self.diag else {
                return;
            };
            for token in tokens {
                let Some(stream) = self.watched.get(token) else {
                    continue;
                };
                let Some(local) = stream.local else {
                    continue;
                };
                match diag.state(local, stream.remote) {
                    Ok(Some(ESTABLISHED)) => {}
                    Ok(_) => gone(streams, stream),
                    Err(e) => log::debug!("sock_diag: {e}"),
                }
            }
        }

        /// Lists the connections of the servers' ports: polled streams that
        /// lost their connection are gone, connections without a stream
        /// that are past the request deadline are closed.
        fn sweep(&mut self, streams: &OpenStreams) {
            let started = thread_cpu_time();
            let mut ports: Vec<u16> = self.listening.iter().map(SocketAddr::port).collect();
            let mut any_port = false;
            for stream in &self.polled {
                match stream.local {
                    Some(local) => ports.push(local.port()),
                    None => any_port = true,
                }
            }
            ports.sort_unstable();
            ports.dedup();
            if any_port || ports.len() > sock_diag::MAX_PORTS {
                ports.clear();
            }
            let Some((connections, complete)) = self.list(&ports) else {
                return;
            };
            // What a list costs this thread (in CPU time: on a busy machine
            // the wall clock counts other threads' turns too), which sets
            // the pause; closing connections past the deadline is extra
            // work that does not recur.
            self.sweep_cost = thread_cpu_time().saturating_sub(started);
            self.look_at_polled(streams, &connections, complete);
            if let Some(timeout) = self.settings.request_timeout {
                self.look_at_heads(streams, &connections, timeout);
            }
            let budget = self.sweep_cost.saturating_mul(BUDGET_FACTOR);
            let pause = if self.polled.is_empty() {
                // A quarter of the deadline, or longer when a list costs
                // more than 0.5 % of a core.
                let quarter = self
                    .settings
                    .request_timeout
                    .map_or(HEADS_MIN, |timeout| (timeout / 4).max(HEADS_MIN));
                quarter
                    .max(self.sweep_cost.saturating_mul(HEADS_BUDGET_FACTOR))
                    .min(HEADS_MAX)
            } else {
                budget.clamp(
                    SWEEP_MIN,
                    self.settings
                        .close_check
                        .unwrap_or(SWEEP_MIN)
                        .max(SWEEP_MIN),
                )
            };
            // At most a few seconds: no overflow.
            self.next_sweep = Instant::now() + pause.min(HEADS_MAX);
            log::trace!(
                "listed {} connections in {:?}; {} streams looked for; next list in {pause:?}",
                connections.len(),
                self.sweep_cost,
                self.polled.len()
            );
        }

        /// The connections on `ports` (all, when empty), and whether the
        /// list is complete (the kernel's tables did not change while it
        /// walked them, so a connection missing from it is gone).
        fn list(&mut self, ports: &[u16]) -> Option<(Vec<Connection>, bool)> {
            let diag = self.diag.as_mut()?;
            let mut connections = Vec::new();
            match diag.connections(ports, &mut connections) {
                Ok(complete) => Some((connections, complete)),
                Err(e) => {
                    log::debug!("sock_diag: {e}");
                    None
                }
            }
        }

        fn look_at_polled(
            &mut self,
            streams: &OpenStreams,
            connections: &[Connection],
            complete: bool,
        ) {
            if self.polled.is_empty() {
                return;
            }
            let mut by_remote: HashMap<SocketAddr, Vec<&Connection>> = HashMap::new();
            for connection in connections {
                by_remote
                    .entry(canonical(connection.remote))
                    .or_default()
                    .push(connection);
            }
            let mut missing = HashSet::new();
            for stream in &self.polled {
                let remote = canonical(stream.remote);
                let mine: Vec<&&Connection> = by_remote
                    .get(&remote)
                    .into_iter()
                    .flatten()
                    .filter(|connection| {
                        stream
                            .local
                            .is_none_or(|local| local_matches(local, connection.local))
                    })
                    .collect();
                if mine
                    .iter()
                    .any(|connection| connection.state == ESTABLISHED)
                {
                    continue;
                }
                if !mine.is_empty() || (complete && self.missing.contains(&remote)) {
                    gone(streams, stream);
                } else if complete {
                    missing.insert(remote);
                }
            }
            // An incomplete list proves nothing about what it lacks.
            if complete {
                self.missing = missing;
            }
        }

        fn look_at_heads(
            &mut self,
            streams: &OpenStreams,
            connections: &[Connection],
            timeout: Duration,
        ) {
            let now = Instant::now();
            let streams = streams.addresses();
            let mut listed = HashSet::new();
            let mut due = Vec::new();
            for connection in connections {
                let ours = self
                    .listening
                    .iter()
                    .any(|&listener| local_matches(listener, connection.local));
                if !ours || connection.state != ESTABLISHED {
                    continue;
                }
                let remote = canonical(connection.remote);
                if streams.contains(&remote) {
                    continue;
                }
                let key = (connection.local, connection.remote);
                listed.insert(key);
                let first_seen = *self.heads.entry(key).or_insert(now);
                let last_request = lock(&self.requests).get(&remote).copied();
                let since = last_request.map_or(first_seen, |at| at.max(first_seen));
                if now.saturating_duration_since(since) >= timeout {
                    due.push((connection.remote, connection.local));
                }
            }
            // One that cannot be closed now (not yet accepted, say) is tried
            // again at the next list.
            for (&(remote, local), closed) in due.iter().zip(close_connections(&due)) {
                if closed {
                    log::debug!("closed a connection from {remote}: no request within {timeout:?}");
                    self.heads.remove(&(local, remote));
                    listed.remove(&(local, remote));
                } else {
                    log::debug!("could not close the connection from {remote} yet");
                }
            }
            self.heads.retain(|key, _| listed.contains(key));
            // A request older than the deadline no longer decides anything
            // (the connection is due whether or not it is remembered).
            lock(&self.requests).retain(|_, at| now.saturating_duration_since(*at) < timeout);
        }

        /// Forgets streams that have ended.
        fn prune(&mut self) {
            self.last_prune = Instant::now();
            self.watched
                .retain(|_, stream| Arc::strong_count(&stream.counters) > 1);
            self.polled
                .retain(|stream| Arc::strong_count(&stream.counters) > 1);
        }
    }

    /// The CPU time this thread has used.
    fn thread_cpu_time() -> Duration {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        )
    }

    /// Marks `stream`'s client as gone and removes it from the hub.
    fn gone(streams: &OpenStreams, stream: &Watched) {
        if stream.counters.peer_closed.swap(true, Ordering::AcqRel) {
            return;
        }
        log::debug!("the client at {} closed its connection", stream.remote);
        streams.remove_client(stream.remote, &stream.counters);
    }
}
