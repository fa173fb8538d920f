//! The listener, the acceptor thread and routing.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use socket2::{Domain, Protocol, Socket, Type};
use tiny_http::{Header, Method, Request, Response, ResponseBox};

use crate::cors::{PREFLIGHT, Verdict};
use crate::hub::{Shared, lock};
use crate::{Error, Hub};

/// How long one blocked `send` waits before the writer looks up: whether the
/// hub is shutting down, whether the client has stalled for the whole write
/// timeout. It is the socket's `SO_SNDTIMEO`.
const SEND_TICK: Duration = Duration::from_millis(250);

/// How the acceptor kicks `tiny_http`'s thread pool (see `AcceptLoop::kick`):
/// `KICK_BURST` connections every `KICK_EVERY` for `KICK_WHILE` after a
/// request came in (connections arrive in bursts, and each kick frees at
/// most one waiting connection), and one a second while streams are open.
const KICK_EVERY: Duration = Duration::from_millis(50);
const KICK_BURST: usize = 4;
const KICK_WHILE: Duration = Duration::from_secs(3);
const KICK_IDLE: Duration = Duration::from_secs(1);

/// How often the acceptor checks that `tiny_http`'s accept thread is alive.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Backlog of the listening socket.
const BACKLOG: i32 = 1024;

/// The first and the longest wait before the acceptor tries again after
/// `accept()` failed (for example when the process is out of file
/// descriptors).
const ACCEPT_RETRY_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

/// What [`ServerBuilder::fallback`] takes: a handler for every request that
/// is not for the event stream.
type Fallback = Box<dyn Fn(Request) + Send + Sync + 'static>;

/// Settings for a [`Server`], built with [`Server::builder`].
///
/// # Examples
///
/// ```
/// use sse_server::{Hub, Server, tiny_http::Response};
///
/// let hub = Hub::new()?;
/// let server = Server::builder(&hub)
///     .path("/stream")
///     .fallback(|request| {
///         let _ = request.respond(Response::from_string("<h1>hello</h1>"));
///     })
///     .bind("127.0.0.1:0")?;
/// println!("events at http://{}/stream", server.local_addr());
/// server.shutdown()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
pub struct ServerBuilder {
    hub: Hub,
    path: String,
    fallback: Option<Fallback>,
}

impl ServerBuilder {
    /// The path of the event stream; requests for it (with any query
    /// string) go to [`Hub::serve`], which streams on `GET`, answers `HEAD`
    /// and `OPTIONS`, and `405 Method Not Allowed` to other methods.
    ///
    /// Defaults to `/events`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// Hands every request that is not for the event stream to `handler`,
    /// which must respond to it. It runs on the acceptor thread, so it
    /// should answer quickly (serve a page, redirect) and leave long work
    /// to threads of its own.
    ///
    /// Defaults to answering `404 Not Found`.
    pub fn fallback(mut self, handler: impl Fn(Request) + Send + Sync + 'static) -> Self {
        self.fallback = Some(Box::new(handler));
        self
    }

    /// Binds `addr` (port 0 picks a free port; [`Server::local_addr`] tells
    /// which) and starts accepting.
    ///
    /// Every accepted socket gets `TCP_NODELAY` (an event leaves at once), a
    /// send timeout and `TCP_USER_TIMEOUT` to match
    /// [`HubBuilder::write_timeout`](crate::HubBuilder::write_timeout), set
    /// once on the listening socket, whose options Linux copies to the
    /// sockets it accepts.
    ///
    /// # Errors
    ///
    /// [`Error::Bind`] when the address does not resolve or cannot be bound,
    /// [`Error::Spawn`] when the acceptor thread cannot start,
    /// [`Error::Closed`] when the hub is shut down.
    pub fn bind(self, addr: impl ToSocketAddrs) -> Result<Server, Error> {
        if self.hub.is_closed() {
            return Err(Error::Closed);
        }
        let addr = addr
            .to_socket_addrs()
            .map_err(Error::Bind)?
            .next()
            .ok_or_else(|| {
                Error::Bind(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "the address resolved to nothing",
                ))
            })?;
        let write_timeout = self.hub.inner.shared.write_timeout();
        let listener = listen(addr, write_timeout).map_err(Error::Bind)?;
        let local_addr = listener.local_addr().map_err(Error::Bind)?;
        let (http, watch) = tiny_http_server(&listener).map_err(Error::Bind)?;
        let current = Arc::new(Mutex::new(Arc::new(http)));
        let stop = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        if let Some(watch) = self.hub.inner.shared.watch.get()
            && self.hub.inner.shared.config.request_timeout.is_some()
        {
            watch.listening(local_addr);
        }
        let acceptor = AcceptLoop {
            local_addr,
            hub: self.hub.clone(),
            path: self.path,
            fallback: self.fallback,
            listener,
            watch,
            current: Arc::clone(&current),
            stop: Arc::clone(&stop),
            stop_rx,
        };
        let thread = thread::Builder::new()
            .name("sse-acceptor".into())
            .spawn(move || acceptor.run())
            .map_err(Error::Spawn)?;
        self.hub.register_acceptor(Acceptor {
            stop,
            stop_tx: Mutex::new(Some(stop_tx)),
            current,
            thread,
        });
        log::debug!("serving events on {local_addr}");
        Ok(Server {
            hub: self.hub,
            local_addr,
        })
    }
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("hub", &self.hub)
            .field("path", &self.path)
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}

/// An HTTP server for a [`Hub`]: it accepts connections on one address and
/// streams the hub's events to every client of its event-stream path.
///
/// Each stream gets a writer thread of its own (see [`Hub::serve`]).
/// Shutting the server down, or dropping it, shuts the hub down: every
/// stream ends and every thread is joined (see [`Hub::shutdown`]).
///
/// # Examples
///
/// ```
/// use sse_server::{Hub, Server};
///
/// let hub = Hub::new()?;
/// let server = Server::bind("127.0.0.1:0", &hub)?;
/// let addr = server.local_addr();
/// // Clients connect to http://{addr}/events; any thread may publish:
/// hub.notify("hello")?;
/// server.shutdown()?;
/// # Ok::<(), sse_server::Error>(())
/// ```
pub struct Server {
    hub: Hub,
    local_addr: SocketAddr,
}

impl Server {
    /// Serves `hub`'s events at `/events` on `addr`, with the default
    /// settings of [`ServerBuilder`].
    ///
    /// # Errors
    ///
    /// As for [`ServerBuilder::bind`].
    pub fn bind(addr: impl ToSocketAddrs, hub: &Hub) -> Result<Server, Error> {
        Server::builder(hub).bind(addr)
    }

    /// Settings for a server of `hub`'s events.
    pub fn builder(hub: &Hub) -> ServerBuilder {
        ServerBuilder {
            hub: hub.clone(),
            path: "/events".into(),
            fallback: None,
        }
    }

    /// The address the server listens on, with the real port when it was
    /// bound to port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The hub whose events the server streams.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Stops accepting and shuts the hub down; see [`Hub::shutdown`].
    ///
    /// # Errors
    ///
    /// As for [`Hub::shutdown`].
    pub fn shutdown(&self) -> Result<(), Error> {
        self.hub.shutdown()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.hub.shutdown() {
            log::warn!("server dropped: {e}");
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("hub", &self.hub)
            .finish()
    }
}

/// The hub's handle on one server's acceptor thread.
pub(crate) struct Acceptor {
    stop: Arc<AtomicBool>,
    /// Dropped to wake the acceptor from a retry wait.
    stop_tx: Mutex<Option<Sender<()>>>,
    current: Arc<Mutex<Arc<tiny_http::Server>>>,
    thread: JoinHandle<()>,
}

impl Acceptor {
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        lock(&self.stop_tx).take();
        lock(&self.current).unblock();
    }

    pub(crate) fn join(self) {
        // A fallback handler may be what shuts the hub down; it runs on the
        // acceptor thread, which cannot wait for itself.
        if self.thread.thread().id() == thread::current().id() {
            return;
        }
        if self.thread.join().is_err() {
            log::error!("BUG: the acceptor thread panicked");
        }
    }
}

struct AcceptLoop {
    local_addr: SocketAddr,
    hub: Hub,
    path: String,
    fallback: Option<Fallback>,
    listener: TcpListener,
    watch: AcceptWatch,
    current: Arc<Mutex<Arc<tiny_http::Server>>>,
    stop: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
}

impl AcceptLoop {
    fn run(mut self) {
        let mut last_kick = Instant::now();
        let mut last_watch = Instant::now();
        // No request yet: nothing for the pool to have mixed up, so no
        // kicks until the first one (they would only take descriptors and
        // wake-ups from a server that has just started).
        let mut last_request: Option<Instant> = None;
        // Servers whose accept thread died: the connections they accepted
        // before still send their requests through them.
        let mut retired: Vec<Arc<tiny_http::Server>> = Vec::new();
        loop {
            let http = Arc::clone(&lock(&self.current));
            match http.recv_timeout(KICK_EVERY) {
                Ok(Some(request)) => {
                    last_request = Some(Instant::now());
                    if self.stopping() {
                        respond_refused(&self.hub.inner.shared, request, Busy::ShuttingDown);
                        break;
                    }
                    self.route(request);
                }
                Ok(None) if self.stopping() => break,
                Ok(None) => {}
                Err(e) => {
                    if self.stopping() {
                        break;
                    }
                    // tiny_http's accept thread has ended on an accept()
                    // error (EMFILE, ENFILE, ENOBUFS, ...) and accepts no
                    // more: start a new one on the same socket.
                    log::warn!(
                        "accepting connections failed ({e}); trying again in {ACCEPT_RETRY_FIRST:?}"
                    );
                    if !self.restart(&mut retired) {
                        break;
                    }
                }
            }
            if last_watch.elapsed() >= WATCH_EVERY {
                last_watch = Instant::now();
                if !self.watch.alive() {
                    log::warn!(
                        "tiny_http's accept thread has died (it panics when an accepted \
                         socket cannot be duplicated, e.g. out of descriptors); restarting it"
                    );
                    if !self.restart(&mut retired) {
                        break;
                    }
                }
            }
            for old in &retired {
                while let Ok(Some(request)) = old.try_recv() {
                    last_request = Some(Instant::now());
                    self.route(request);
                }
            }
            let since_kick = last_kick.elapsed();
            let recent = last_request.is_some_and(|at| at.elapsed() < KICK_WHILE);
            let kicks = if recent && since_kick >= KICK_EVERY {
                KICK_BURST
            } else if since_kick >= KICK_IDLE && self.hub.stats().streams > 0 {
                1
            } else {
                0
            };
            if kicks > 0 {
                self.kick(kicks);
                last_kick = Instant::now();
            }
        }
        // Requests that arrived with the stop: tell them to come back later
        // (a browser's EventSource with the busy answer, so that it does
        // come back, to the server that replaces this one).
        retired.push(Arc::clone(&lock(&self.current)));
        for http in &retired {
            while let Ok(Some(request)) = http.try_recv() {
                respond_refused(&self.hub.inner.shared, request, Busy::ShuttingDown);
            }
        }
    }

    /// Starts a new `tiny_http` acceptor on the listening socket, waiting
    /// between tries (10 ms, doubling up to 1 s) for as long as it fails (a
    /// new acceptor needs a file descriptor of its own). False when the
    /// server stops first.
    fn restart(&mut self, retired: &mut Vec<Arc<tiny_http::Server>>) -> bool {
        let mut retry = ACCEPT_RETRY_FIRST;
        loop {
            if !self.wait(retry) {
                return false;
            }
            match tiny_http_server(&self.listener) {
                Ok((fresh, watch)) => {
                    self.watch = watch;
                    let old = std::mem::replace(&mut *lock(&self.current), Arc::new(fresh));
                    retired.push(old);
                    log::warn!("the acceptor is running again");
                    return true;
                }
                Err(e) => {
                    retry = (retry * 2).min(ACCEPT_RETRY_MAX);
                    log::warn!("restarting the acceptor failed ({e}); trying again in {retry:?}");
                }
            }
        }
    }

    /// Works around a race in `tiny_http` 0.12's thread pool: two
    /// connections accepted close together can both be handed to the same
    /// idle worker, and the second then waits in the pool's queue until some
    /// worker finishes its connection, which for event streams may be never.
    /// A connection that closes at once makes the pool start (or wake) a
    /// worker, which then takes the waiting connection.
    fn kick(&self, connections: usize) {
        let Ok(mut target) = self.listener.local_addr() else {
            return;
        };
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
            });
        }
        for _ in 0..connections {
            if let Err(e) = TcpStream::connect_timeout(&target, KICK_EVERY) {
                log::trace!("kicking the connection pool failed: {e}");
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Waits `pause`, or less when the server stops; false when it stops.
    fn wait(&self, pause: Duration) -> bool {
        matches!(
            self.stop_rx.recv_timeout(pause),
            Err(RecvTimeoutError::Timeout)
        ) && !self.stopping()
    }

    fn route(&self, request: Request) {
        // The connection has sent a whole request head: the request
        // deadline starts again for its next one.
        if let (Some(watch), Some(remote)) =
            (self.hub.inner.shared.watch.get(), request.remote_addr())
        {
            watch.request_from(*remote);
        }
        // Answering a request that came in behind an open stream would block
        // this thread until that stream ends.
        let Some(request) = self.hub.inner.shared.park_if_pipelined(request) else {
            return;
        };
        let path = request.url().split('?').next().unwrap_or_default();
        if path == self.path {
            // Failures have been answered and logged by `serve`.
            let _ = self.hub.serve_from(request, Some(self.local_addr));
        } else if let Some(fallback) = &self.fallback {
            fallback(request);
        } else {
            let _ = request.respond(Response::from_string("not found\n").with_status_code(404));
        }
    }
}

/// Answers every request to the stream path that does not open a stream:
/// `HEAD`, `OPTIONS` (CORS preflight), other methods, and a `GET` from an
/// origin the CORS settings refuse. Gives back a `GET` that may stream.
pub(crate) fn answer_non_stream(shared: &Shared, request: Request) -> Option<Request> {
    let cors = shared
        .config
        .cors
        .as_ref()
        .map(|cors| cors.verdict(origin(&request)));
    if matches!(cors, Some(Verdict::Refused)) {
        log::debug!("refusing a request from an origin the CORS settings do not allow");
        let response = Response::from_string("origin not allowed\n").with_status_code(403);
        let _ = request.respond(response);
        return None;
    }
    let cors_headers = match cors {
        Some(Verdict::Allowed(headers)) => headers,
        _ => Vec::new(),
    };
    let mut response = match request.method() {
        Method::Get if http_1_0_keep_alive(&request) => {
            log::debug!("refusing an HTTP/1.0 keep-alive event stream");
            Response::from_string(
                "an HTTP/1.0 event stream needs Connection: close (or use HTTP/1.1)\n",
            )
            .with_status_code(400)
            .boxed()
        }
        Method::Get => return Some(request),
        // What a GET would answer, without the (endless) body.
        Method::Head => Response::empty(200)
            .with_header(header("Content-Type", "text/event-stream"))
            .with_header(header("Cache-Control", "no-cache"))
            .boxed(),
        Method::Options => {
            let mut response =
                Response::empty(204).with_header(header("Allow", "GET, HEAD, OPTIONS"));
            if !cors_headers.is_empty() {
                for (name, value) in PREFLIGHT {
                    response.add_header(header(name, value));
                }
            }
            response.boxed()
        }
        _ => Response::from_string("method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD, OPTIONS"))
            .boxed(),
    };
    add_headers(&mut response, cors_headers);
    let _ = request.respond(response);
    None
}

/// Adds `headers` to `response`, leaving out any that is not a valid header
/// (the CORS values come from the settings, which keep only visible ASCII).
fn add_headers(response: &mut ResponseBox, headers: Vec<(&str, String)>) {
    for (name, value) in headers {
        if let Ok(header) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            response.add_header(header);
        }
    }
}

/// Answers `request` with `response` plus the CORS headers its origin
/// earns, so that a browser on an allowed origin can read the status.
pub(crate) fn respond_with_cors(shared: &Shared, request: Request, mut response: ResponseBox) {
    add_headers(&mut response, cors_headers(shared, &request));
    let _ = request.respond(response);
}

/// An HTTP/1.0 request asking to keep the connection open. Its stream could
/// never end: an HTTP/1.0 body without a length ends when the server closes
/// the connection, and `tiny_http` keeps such a connection open, waiting
/// for the next request, for as long as the client does.
fn http_1_0_keep_alive(request: &Request) -> bool {
    *request.http_version() == tiny_http::HTTPVersion(1, 0)
        && request.headers().iter().any(|header| {
            header.field.equiv("Connection")
                && header
                    .value
                    .as_str()
                    .to_ascii_lowercase()
                    .contains("keep-alive")
        })
}

/// The CORS headers a stream's response carries (none without CORS
/// settings or an `Origin` header).
pub(crate) fn cors_headers(shared: &Shared, request: &Request) -> Vec<(&'static str, String)> {
    match shared
        .config
        .cors
        .as_ref()
        .map(|cors| cors.verdict(origin(request)))
    {
        Some(Verdict::Allowed(headers)) => headers,
        _ => Vec::new(),
    }
}

fn origin(request: &Request) -> Option<&str> {
    crate::connect::header_of(request, "Origin")
}

/// Why a client was turned away, as the busy answer's data says it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Busy {
    /// `max_clients` streams are open.
    TooManyClients,
    /// The hub is shutting down or has shut down.
    ShuttingDown,
    /// The operating system refused the stream's writer thread.
    NoThread,
}

impl Busy {
    fn reason(self) -> &'static str {
        match self {
            Busy::TooManyClients => "too-many-clients",
            Busy::ShuttingDown => "shutting-down",
            Busy::NoThread => "no-thread",
        }
    }
}

/// Answers a request turned away before its stream could start, with the
/// CORS headers its origin earns (so a page on an allowed origin can read
/// the answer). A client that asks for an event stream gets one that tells
/// it when to come back (see [`busy`]); any other `503` with `Retry-After`.
pub(crate) fn respond_refused(shared: &Shared, request: Request, why: Busy) {
    let response = if wants_event_stream(&request) {
        // The client's port tells apart answers drawn in the same
        // nanosecond.
        let seed = request.remote_addr().map_or(0, |remote| remote.port());
        busy(shared.config.busy_retry, why, u64::from(seed))
    } else {
        unavailable()
    };
    respond_with_cors(shared, request, response);
}

/// Whether `request` asks for an event stream: `text/event-stream`, in any
/// case, among the media ranges of its `Accept` header(s), and not with
/// `q=0`. `*/*` alone does not count: such a client is not known to follow
/// the event-stream rules, and `503` tells any HTTP client to come back.
fn wants_event_stream(request: &Request) -> bool {
    request
        .headers()
        .iter()
        .filter(|header| header.field.equiv("Accept"))
        .flat_map(|header| header.value.as_str().split(','))
        .any(|range| {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            media.eq_ignore_ascii_case("text/event-stream")
                && !parts.any(|parameter| {
                    parameter.split_once('=').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case("q")
                            && value.trim().parse::<f32>() == Ok(0.0)
                    })
                })
        })
}

/// The answer that turns an event-stream client away for now: a `200`
/// event stream with a body of known length (sent whole at once, and its
/// end is a clean one), holding one block: a `retry:` of `retry` plus up
/// to as much again, and an `sse-busy` event whose data says why. A
/// browser's `EventSource` fails for good on any other status; on a stream
/// that ends it waits `retry` and reconnects. No `id:`, so the client's
/// last event id stays as it was.
fn busy(retry: Duration, why: Busy, seed: u64) -> ResponseBox {
    let millis = crate::retry::jittered_millis(retry, retry, seed);
    // One block, so no client sees a lone `retry:` block as an empty
    // message (some do once they have seen an id).
    let body = format!(
        "retry: {millis}\nevent: sse-busy\ndata: {}\n\n",
        why.reason()
    );
    Response::from_string(body)
        .with_header(header("Content-Type", "text/event-stream"))
        .with_header(header("Cache-Control", "no-cache"))
        .boxed()
}

/// `503 Service Unavailable`, asking the client to come back in a few
/// seconds.
fn unavailable() -> ResponseBox {
    Response::from_string("service unavailable\n")
        .with_status_code(503)
        .with_header(header("Retry-After", "5"))
        .boxed()
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("BUG: a constant header is valid")
}

/// A listening socket whose options every accepted socket inherits.
fn listen(addr: SocketAddr, write_timeout: Duration) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(SEND_TICK.min(write_timeout)))?;
    // Twice the write timeout and a second: a client that stops reading is
    // then cut off by the writer's own clock, which starts once the socket's
    // buffers are full (and reported as timed out), before the kernel gives
    // up on the connection (tiny_http's reading thread would take that error
    // and the writer would only see a broken pipe). The kernel's timeout is
    // for a peer that vanished while the little sent to it (keep-alives)
    // never filled the buffers.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    socket.set_tcp_user_timeout(Some(user_timeout(write_timeout)))?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// The `TCP_USER_TIMEOUT` that goes with `write_timeout`: twice it and a
/// second, saturating rather than overflowing, and at most what the kernel
/// takes (a C `int` of milliseconds, about 24.8 days; more is `EINVAL`).
fn user_timeout(write_timeout: Duration) -> Duration {
    const KERNEL_MAX: Duration = Duration::from_millis(i32::MAX as u64);
    write_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(1))
        .min(KERNEL_MAX)
}

fn tiny_http_server(listener: &TcpListener) -> std::io::Result<(tiny_http::Server, AcceptWatch)> {
    let listener = listener.try_clone()?;
    let watch = AcceptWatch::new(&listener);
    let server = tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)?;
    Ok((server, watch))
}

/// Tells whether `tiny_http`'s accept thread is still running.
///
/// That thread owns the copy of the listening socket it was given, and
/// drops it when it ends, whether on an `accept()` error (which `recv`
/// reports) or by a panic (which nothing reports: `tiny_http` 0.12 unwraps
/// the `dup` of each accepted socket, which fails when descriptors run
/// out). While the thread runs, the copy's descriptor names the listening
/// socket; `/proc/self/fd` shows when it no longer does.
struct AcceptWatch {
    path: Option<String>,
    target: Option<std::path::PathBuf>,
}

impl AcceptWatch {
    fn new(copy: &TcpListener) -> AcceptWatch {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            let path = format!("/proc/self/fd/{}", copy.as_raw_fd());
            let target = std::fs::read_link(&path).ok();
            AcceptWatch {
                path: Some(path),
                target,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = copy;
            AcceptWatch {
                path: None,
                target: None,
            }
        }
    }

    /// False once the thread is known to have ended. Where `/proc` cannot
    /// tell, it always says true.
    fn alive(&self) -> bool {
        match (&self.path, &self.target) {
            (Some(path), Some(target)) => std::fs::read_link(path).ok().as_ref() == Some(target),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_timeout_saturates_and_fits_the_kernel() {
        assert_eq!(
            user_timeout(Duration::from_secs(30)),
            Duration::from_secs(61)
        );
        assert_eq!(
            user_timeout(Duration::from_millis(1)),
            Duration::from_millis(1002)
        );
        let most = Duration::from_millis(i32::MAX as u64);
        assert_eq!(user_timeout(Duration::MAX), most);
        assert_eq!(user_timeout(most), most);
    }
}
