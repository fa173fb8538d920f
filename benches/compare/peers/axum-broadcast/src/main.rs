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

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use peer_contract::Publish;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// Events a receiver may fall behind before it skips ahead.
const CAPACITY: usize = 1024;

fn main() {
    let addr = peer_contract::addr("axum-broadcast");
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
    let Some(params) = query.as_deref().and_then(Publish::parse) else {
        return (StatusCode::BAD_REQUEST, "bad publish parameters\n").into_response();
    };
    let spawned = thread::Builder::new()
        .name("publish".into())
        .spawn(move || {
            params.paced(|seq| {
                // No receivers is not an error here: the event just goes nowhere.
                let _ = tx.send(peer_contract::payload(seq, params.size));
            });
        });
    match spawned {
        Ok(_) => (StatusCode::ACCEPTED, "accepted\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
