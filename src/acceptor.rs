//! The acceptor: the listening socket, and the thread that takes requests
//! from `tiny_http` and hands them on.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use socket2::{Domain, Protocol, Socket, Type};
use tiny_http::Request;

use crate::http::{Busy, respond_refused};
use crate::shared::Shared;
use crate::sync::lock;
use crate::tiny_http_fixes::accept_thread::{AcceptWatch, server_on};
use crate::tiny_http_fixes::pool::{KICK_EVERY, Kicker};

/// How long one blocked `send` waits before the writer looks up: whether the
/// hub is shutting down, whether the client has stalled for the whole write
/// timeout. It is the socket's `SO_SNDTIMEO`.
const SEND_TICK: Duration = Duration::from_millis(250);

/// How often the acceptor checks that `tiny_http`'s accept thread is alive.
const WATCH_EVERY: Duration = Duration::from_millis(200);

/// Backlog of the listening socket.
const BACKLOG: i32 = 1024;

/// The first and the longest wait before the acceptor tries again after
/// `accept()` failed (for example when the process is out of file
/// descriptors).
const ACCEPT_RETRY_FIRST: Duration = Duration::from_millis(10);
const ACCEPT_RETRY_MAX: Duration = Duration::from_secs(1);

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

/// The acceptor thread's loop: it takes requests from `tiny_http` and hands
/// them to `route`, keeps `tiny_http` accepting (restarting its accept
/// thread, kicking its pool), and turns away what comes with the stop.
struct AcceptLoop {
    listener: TcpListener,
    local_addr: SocketAddr,
    /// The hub's state: its settings, for the busy answer, and its streams.
    shared: Arc<Shared>,
    route: Route,
    watch: AcceptWatch,
    current: Arc<Mutex<Arc<tiny_http::Server>>>,
    stop: Arc<AtomicBool>,
    stop_rx: Receiver<()>,
}

/// What the acceptor hands each request to.
pub(crate) type Route = Box<dyn FnMut(Request) + Send + 'static>;

/// A listening socket with `tiny_http` accepting on it, its acceptor
/// thread not yet started.
pub(crate) struct Bound {
    listener: TcpListener,
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    watch: AcceptWatch,
    http: tiny_http::Server,
}

impl Bound {
    /// Binds `addr` with the socket options every stream needs (see
    /// [`listen`]) and starts `tiny_http` on it; [`start`](Bound::start)
    /// then runs the loop on a thread of its own.
    pub(crate) fn bind(addr: SocketAddr, shared: Arc<Shared>) -> io::Result<Bound> {
        let listener = listen(addr, shared.config.write_timeout)?;
        let local_addr = listener.local_addr()?;
        let (http, watch) = server_on(&listener)?;
        Ok(Bound {
            listener,
            local_addr,
            shared,
            watch,
            http,
        })
    }

    /// The address the socket is bound to, with the real port.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Starts the acceptor thread (`sse-acceptor`), which hands every
    /// request to `route`.
    pub(crate) fn start(self, route: Route) -> io::Result<Acceptor> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        let stop = Arc::new(AtomicBool::new(false));
        let current = Arc::new(Mutex::new(Arc::new(self.http)));
        let accept_loop = AcceptLoop {
            listener: self.listener,
            local_addr: self.local_addr,
            shared: self.shared,
            route,
            watch: self.watch,
            current: Arc::clone(&current),
            stop: Arc::clone(&stop),
            stop_rx,
        };
        let thread = thread::Builder::new()
            .name("sse-acceptor".into())
            .spawn(move || accept_loop.run())?;
        Ok(Acceptor {
            stop,
            stop_tx: Mutex::new(Some(stop_tx)),
            current,
            thread,
        })
    }
}

impl AcceptLoop {
    fn run(mut self) {
        let mut kicker = Kicker::new();
        let mut last_watch = Instant::now();
        // Servers whose accept thread died: the connections they accepted
        // before still send their requests through them.
        let mut retired: Vec<Arc<tiny_http::Server>> = Vec::new();
        loop {
            let http = Arc::clone(&lock(&self.current));
            match http.recv_timeout(KICK_EVERY) {
                Ok(Some(request)) => {
                    kicker.request();
                    if self.stopping() {
                        self.turn_away(request);
                        break;
                    }
                    (self.route)(request);
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
                    kicker.request();
                    (self.route)(request);
                }
            }
            let streams = &self.shared.streams;
            kicker.tick(self.local_addr, || streams.len() > 0);
        }
        // Requests that arrived with the stop: tell them to come back later
        // (a browser's EventSource with the busy answer, so that it does
        // come back, to the server that replaces this one).
        retired.push(Arc::clone(&lock(&self.current)));
        for http in &retired {
            while let Ok(Some(request)) = http.try_recv() {
                self.turn_away(request);
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
            match server_on(&self.listener) {
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

    /// Answers a request that came with the stop: come back later (a
    /// browser's `EventSource` with the busy answer, so that it does come
    /// back, to the server that replaces this one).
    fn turn_away(&self, request: Request) {
        let config = &self.shared.config;
        respond_refused(
            request,
            Busy::ShuttingDown,
            config.cors.as_ref(),
            config.busy_retry,
        );
    }
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
