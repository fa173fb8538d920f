//! `Server`: a `Hub`'s events over HTTP on an address of its own, and the
//! routing of its requests.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use tiny_http::{Request, Response};

use crate::acceptor::Bound;
use crate::connect::split_target;
use crate::error::Error;
use crate::http;
use crate::hub::Hub;

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
    metrics: Option<String>,
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

    /// Serves the hub's metrics ([`Hub::metrics`]: the Prometheus text
    /// exposition format) at `path`, for Prometheus or an agent to scrape.
    /// Requests for it (with any query string) never reach the fallback
    /// handler: `GET` gets `200` with
    /// [`METRICS_CONTENT_TYPE`](crate::METRICS_CONTENT_TYPE), `HEAD` the
    /// same headers without the body, other methods `405 Method Not
    /// Allowed` with `Allow: GET, HEAD`. The event stream's own path wins
    /// over it when both are the same.
    ///
    /// The answer is made on the acceptor thread, from the same counters as
    /// [`Hub::stats`]; it asks nothing of the hub thread. Anyone who can reach the server
    /// can read it: the counts, never an event or a client's address.
    ///
    /// Defaults to off: no metrics path.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use sse_server::{Hub, Server};
    ///
    /// let hub = Hub::new()?;
    /// let server = Server::builder(&hub).metrics("/metrics").bind("127.0.0.1:0")?;
    ///
    /// let mut scrape = std::net::TcpStream::connect(server.local_addr()).expect("connect");
    /// scrape.set_read_timeout(Some(std::time::Duration::from_secs(10))).expect("timeout");
    /// scrape
    ///     .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ///     .expect("send");
    /// let mut answer = String::new();
    /// scrape.read_to_string(&mut answer).expect("read");
    /// assert!(answer.starts_with("HTTP/1.1 200 "));
    /// assert!(answer.contains("\nsse_streams_open 0\n"));
    /// server.shutdown()?;
    /// # Ok::<(), sse_server::Error>(())
    /// ```
    pub fn metrics(mut self, path: impl Into<String>) -> Self {
        self.metrics = Some(path.into());
        self
    }

    /// Hands every request that is not for the event stream (or the
    /// metrics, see [`metrics`](ServerBuilder::metrics)) to `handler`,
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
        let shared = Arc::clone(self.hub.shared());
        let bound = Bound::bind(addr, Arc::clone(&shared)).map_err(Error::Bind)?;
        let local_addr = bound.local_addr();
        if let Some(watch) = self.hub.watch()
            && shared.config.request_timeout.is_some()
        {
            watch.listening(local_addr);
        }
        let hub = self.hub.clone();
        let paths = Paths {
            events: self.path,
            metrics: self.metrics,
        };
        let fallback = self.fallback;
        let acceptor = bound
            .start(Box::new(move |request| {
                route(&hub, &paths, fallback.as_ref(), local_addr, request);
            }))
            .map_err(Error::Spawn)?;
        self.hub.register_acceptor(acceptor);
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
            .field("metrics", &self.metrics)
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
            metrics: None,
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

/// The paths a server answers itself.
struct Paths {
    events: String,
    metrics: Option<String>,
}

/// Hands a request to the hub (its event-stream path), answers the metrics
/// path, hands it to the fallback handler, or answers `404`.
fn route(
    hub: &Hub,
    paths: &Paths,
    fallback: Option<&Fallback>,
    local_addr: SocketAddr,
    request: Request,
) {
    // The connection has sent a whole request head: the request deadline
    // starts again for its next one.
    if let (Some(watch), Some(remote)) = (hub.watch(), request.remote_addr()) {
        watch.request_from(*remote);
    }
    // Answering a request that came in behind an open stream would block
    // this thread until that stream ends.
    let shared = hub.shared();
    let Some(request) = shared.streams.park_if_pipelined(request, &shared.counters) else {
        return;
    };
    let (path, _) = split_target(request.url());
    if path == paths.events {
        // Failures have been answered and logged by `serve`.
        let _ = hub.serve_from(request, Some(local_addr));
    } else if paths.metrics.as_deref() == Some(path) {
        http::end_unread_body(&request, Some(local_addr));
        http::answer_metrics(request, || hub.metrics());
    } else if let Some(fallback) = fallback {
        fallback(request);
    } else {
        http::end_unread_body(&request, Some(local_addr));
        http::send(
            request,
            Response::from_string("not found\n").with_status_code(404),
        );
    }
}
