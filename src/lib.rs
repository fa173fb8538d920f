//! Server-Sent Events for programs without an async runtime.
//!
//! A [`Hub`] fans events out to every connected client; any thread calls
//! [`Hub::notify`] or [`Hub::publish`], and a [`Server`] streams the events to
//! browsers (`EventSource`) and other HTTP clients. No async runtime: one hub
//! thread, one acceptor thread, and one writer thread per connection.
//!
//! # Quick start
//!
//! ```
//! use sse_server::{Event, Hub, Server};
//!
//! let hub = Hub::new()?;
//! let server = Server::bind("127.0.0.1:0", &hub)?;
//! println!("open http://{}/events", server.local_addr());
//!
//! // From any thread, as often as you like:
//! hub.notify("plain data")?;
//! hub.publish(&Event::new("{\"temp\":21}").with_event("reading")?.with_id("1")?)?;
//!
//! server.shutdown()?;
//! # Ok::<(), sse_server::Error>(())
//! ```
//!
//! # The path of an event
//!
//! 1. `notify` / `publish` encode the event once, in the calling thread, into
//!    shared bytes (a [`Frame`]) and queue it for the hub thread. They never
//!    wait for a client.
//! 2. The hub thread (`sse-hub`) takes the frame, together with any other
//!    frames already waiting, and offers it to every client's bounded queue
//!    with a non-blocking send. A client whose queue is full misses that
//!    frame; the miss is counted ([`Stats::dropped`],
//!    [`ClientStats::dropped`], [`Subscription::missed`]). A slow client never
//!    slows the hub or the other clients.
//! 3. Each connection's writer thread takes everything queued for its client
//!    and sends it with one write, so a client that fell behind catches up in
//!    few system calls, and a lone event leaves at once. (An event of 256 KiB
//!    or more goes in writes of its own, from the one copy every client
//!    shares.)
//!
//! # Beyond broadcast
//!
//! * Replay: the hub keeps the last events ([`HubBuilder::history_events`]) and
//!   gives every event without an id one of its own; a client that
//!   reconnects with `Last-Event-ID` gets exactly what it missed, then the
//!   live events, or an `sse-gap` event when the history cannot tell.
//! * Topics ([`Hub::publish_to`], `?topic=` on the stream's URL) and single
//!   clients ([`Hub::send_to`]).
//! * Hooks to accept, reject or route clients ([`HubBuilder::on_connect`],
//!   [`Decision`]) and to learn why they left ([`HubBuilder::on_disconnect`]).
//! * A `retry:` line with per-client jitter ([`HubBuilder::retry`], [`HubBuilder::retry_jitter`]), CORS
//!   ([`Cors`]), and `Event::json` with the `json` feature.
//!
//! # Embedding in your own `tiny_http` server
//!
//! A program that already runs a `tiny_http` server hands event-stream
//! requests to [`Hub::serve`] and keeps serving its other routes. The
//! [`tiny_http`] crate is re-exported so both sides use the same version.
//! A program with another transport calls [`Hub::subscribe`] and writes the
//! frames itself.
//!
//! # Shutdown
//!
//! [`Hub::shutdown`] (also [`Server::shutdown`], and dropping the server or
//! the last hub handle) stops accepting, delivers the events already
//! published, ends every stream cleanly and joins the threads it started,
//! within [`HubBuilder::shutdown_timeout`]. Afterwards every call that can
//! fail returns [`Error::Closed`] (and [`Hub::serve`] answers `503`).
//!
//! # Logging
//!
//! The crate logs through the [`log`] facade; the program picks the logger.
//! `warn` is for what an operator should act on (a thread the system
//! refused, an `accept()` that failed); `debug` for state changes (a client
//! connected, its stream ended and why, shutdown). Event payloads are never
//! logged.
//!
//! # Limits
//!
//! * Threads and descriptors: a stream uses its writer thread and its socket.
//!   `tiny_http` 0.12 keeps a thread blocked reading every open connection,
//!   on a copy of the socket, and offers no way to stop it; on Linux 5.6 and
//!   later, when a stream is accepted, its socket is found among the
//!   process's descriptors (`pidfd_getfd` on its own process) and its reading
//!   side shut down, so that thread and copy go back to `tiny_http`.
//!   Elsewhere, or where a seccomp filter refuses `pidfd_getfd`, a stream
//!   keeps two threads and two descriptors. A request the client sends on
//!   the stream's connection once the stream runs is not read; requests sent
//!   together with the `GET` wait for the stream's end. The operating
//!   system's thread, descriptor and memory-map limits cap the number of
//!   clients per process; when it refuses a thread the client is turned
//!   away as past [`HubBuilder::max_clients`] (below).
//! * A client past [`HubBuilder::max_clients`], or one that comes during
//!   shutdown, is told to come back later. A browser's `EventSource` treats
//!   every answer but `200 text/event-stream` as final (WHATWG: it "fails
//!   the connection" and never retries), so a request that accepts
//!   `text/event-stream` gets a `200` stream that ends at once, holding a
//!   `retry:` ([`HubBuilder::busy_retry`], with jitter) and an `sse-busy`
//!   event that says why; the browser reconnects after that time by
//!   itself. Other requests get `503 Service Unavailable` with
//!   `Retry-After`.
//! * A client whose queue is full misses events (see
//!   [`HubBuilder::client_buffer`]).
//! * Events wait for the hub thread in an unbounded queue
//!   ([`Stats::pending`]); the hub takes them in batches, so it keeps up with
//!   any publisher that does more than publish.
//! * A client that closes or resets its connection is noticed at once on
//!   Linux, even while its stream is idle: one watch thread per hub
//!   (`sse-watch`) learns it from the kernel and ends the stream
//!   ([`HubBuilder::close_check`]). Elsewhere it is noticed at the next
//!   write to it: an event, or the keep-alive comment
//!   ([`HubBuilder::keep_alive`]). A client that stops reading is cut off
//!   after [`HubBuilder::write_timeout`].
//! * A connection must send its request head within
//!   [`HubBuilder::request_timeout`] (on Linux), so connections that never
//!   finish a request (slowloris) cannot pile up.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(missing_debug_implementations)]

// Modules in layers, top to bottom: each uses only its own layer and the
// layers above it (see ARCHITECTURE.md; `tests/layers.rs` checks it).
//
// The event and its bytes.
mod client_id;
mod doorbell;
mod encode;
mod error;
mod event;
mod frame;
pub mod parse;
mod retry;
mod stats;
mod stream_id;
mod sync;
// Settings, counters and the messages between threads.
mod config;
mod connect;
mod cors;
mod counters;
mod messages;
mod metrics;
// Workarounds for tiny_http.
mod tiny_http_fixes;

#[cfg(feature = "redis")]
mod redis_link;
// The state the threads share.
mod shared;
mod subscription;
// The threads and the HTTP side.
mod acceptor;
mod history;
mod http;
mod hub_thread;
mod writer;
// The handles programs hold.
mod builder;
#[cfg(feature = "client")]
pub mod client;
mod hub;
mod server;

pub use builder::HubBuilder;
pub use client_id::ClientId;
pub use config::SlowClient;
pub use connect::{
    ConnectRequest, Decision, Disconnect, DisconnectReason, MAX_TOPIC_BYTES, MAX_TOPICS,
};
pub use cors::Cors;
pub use error::Error;
pub use event::Event;
pub use frame::Frame;
pub use hub::Hub;
pub use metrics::METRICS_CONTENT_TYPE;
pub use server::{Server, ServerBuilder};
pub use stats::{ClientStats, Stats};
pub use subscription::{SubscribeOptions, Subscription};

pub use crossbeam_channel;
/// The `prometheus_client` crate (feature `prometheus-client`), re-exported
/// so that a program registers the hub's metrics
/// (`Hub::register_metrics`) in a registry of the same version.
#[cfg(feature = "prometheus-client")]
pub use prometheus_client;
pub use tiny_http;

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
