//! `axum-broadcast`: the usual async Rust SSE server.
//!
//! axum 0.8 on a tokio multi-thread runtime (default worker count; pinned to
//! one core it gets one worker). Events go through one
//! `tokio::sync::broadcast::<String>` channel of capacity 1024; each SSE
//! client (`GET /events`) is a `BroadcastStream` turned into
//! `Sse<...>.keep_alive(KeepAlive::default())`. A receiver that lags more
//! than 1024 events skips ahead: the skipped events are lost for it. Accepted
//! sockets get TCP_NODELAY through `ListenerExt::tap_io`. Hyper may coalesce
//! several ready events into one write.
//!
//! It is in the comparison as what most people would reach for in async
//! Rust: the ecosystem's default shape, to set a synchronous
//! thread-per-client library against.
//!
//! Contract: `GET /events`, `POST /publish?count=M&size=B&interval_us=I`,
//! `GET /stats` (see `benches/compare/README.md`). Usage:
//! `axum-broadcast --addr 127.0.0.1:PORT`; it ends on SIGTERM.

use std::convert::Infallible;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// Events a receiver may fall behind before it skips ahead.
const CAPACITY: usize = 1024;
/// Largest accepted `count`.
const MAX_COUNT: u64 = 10_000_000;
/// Largest accepted `size` (bytes of data per event).
const MAX_SIZE: u64 = 1 << 20;
/// Largest accepted `interval_us` (10 s).
const MAX_INTERVAL_US: u64 = 10_000_000;

fn main() {
    let addr = parse_addr().unwrap_or_else(|| {
        eprintln!("usage: axum-broadcast --addr 127.0.0.1:PORT");
        std::process::exit(2);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(serve(addr));
}

/// Serves until SIGTERM, then exits without waiting for open streams.
async fn serve(addr: String) {
    let mut sigterm = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| {
            eprintln!("axum-broadcast: cannot bind {addr}: {e}");
            std::process::exit(1);
        })
        .tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
    eprintln!("axum-broadcast: listening on {addr}");

    let (tx, _) = broadcast::channel::<String>(CAPACITY);
    let app = Router::new()
        .route("/events", get(events))
        .route("/publish", post(publish))
        .route("/stats", get(stats))
        .with_state(tx);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    tokio::select! {
        _ = sigterm.recv() => {}
        result = server => eprintln!("axum-broadcast: server ended: {result:?}"),
    }
    // SSE streams never end by themselves, so a graceful shutdown would wait
    // forever: exit at once.
    std::process::exit(0);
}

/// The value after `--addr` on the command line.
fn parse_addr() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr" {
            return args.next();
        }
    }
    None
}

/// `GET /events`: one broadcast receiver per client, lagged events skipped.
async fn events(
    State(tx): State<broadcast::Sender<String>>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(tx.subscribe())
        .filter_map(|item| item.ok().map(|data| Ok(Event::default().data(data))));
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// `GET /stats`: the number of live receivers.
async fn stats(State(tx): State<broadcast::Sender<String>>) -> String {
    format!("clients {}\n", tx.receiver_count())
}

/// `POST /publish?count=M&size=B&interval_us=I`: 202 at once, then a std
/// thread publishes the events paced to `t0 + k * I`.
async fn publish(
    State(tx): State<broadcast::Sender<String>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some((count, size, interval_us)) = query.as_deref().and_then(parse_publish) else {
        return (StatusCode::BAD_REQUEST, "bad publish parameters\n").into_response();
    };
    let spawned = thread::Builder::new()
        .name("publish".into())
        .spawn(move || {
            let t0 = Instant::now();
            for seq in 0..count {
                // At most 10^7 * 10^7 µs: no overflow.
                let deadline = t0 + Duration::from_micros(seq * interval_us);
                let now = Instant::now();
                if deadline > now {
                    thread::sleep(deadline - now);
                }
                // No receivers is not an error here: the event just goes nowhere.
                let _ = tx.send(payload(seq, size));
            }
        });
    match spawned {
        Ok(_) => (StatusCode::ACCEPTED, "accepted\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Parses `count`, `size` and `interval_us` from the query; all required.
fn parse_publish(query: &str) -> Option<(u64, usize, u64)> {
    let (mut count, mut size, mut interval_us) = (None, None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=')?;
        let value: u64 = value.parse().ok()?;
        match key {
            "count" => count = Some(value),
            "size" => size = Some(value),
            "interval_us" => interval_us = Some(value),
            _ => {}
        }
    }
    let (count, size, interval_us) = (count?, size?, interval_us?);
    if count > MAX_COUNT || size > MAX_SIZE || interval_us > MAX_INTERVAL_US {
        return None;
    }
    Some((count, size as usize, interval_us))
}

/// The data of event `seq`: `"<seq> <send_unix_ns> "` padded with `x` to
/// `size` bytes.
fn payload(seq: u64, size: usize) -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut data = format!("{seq} {ns} ");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}
