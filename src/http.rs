//! The HTTP side of the event-stream endpoint: the stream's response head,
//! CORS headers, answers to requests that do not open a stream, the
//! answer that turns a client away for now, and the metrics path's
//! answer. Each function takes the settings it needs as arguments.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, ResponseBox};

use crate::config::Config;
use crate::connect::header_of;
use crate::cors::{Cors, PREFLIGHT, Verdict};
use crate::counters::{Counters, Rejection};
use crate::encode;
use crate::error::Error;
use crate::metrics;
use crate::retry;
use crate::tiny_http_fixes::release::shut;

/// Whether the stream of `request` is sent in chunks (HTTP/1.1) rather than
/// as it is, ended by closing the connection (HTTP/1.0).
pub(crate) fn is_chunked(request: &Request) -> bool {
    *request.http_version() != tiny_http::HTTPVersion(1, 0)
}

/// The response head of an event stream, and the stream's first bytes:
/// the `retry:` line, when there is one, in the stream's framing.
pub(crate) fn stream_head(
    request: &Request,
    cors: Option<&Cors>,
    retry_millis: Option<u64>,
) -> Vec<u8> {
    let chunked = is_chunked(request);
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(if chunked {
        b"HTTP/1.1 200 OK\r\n"
    } else {
        b"HTTP/1.0 200 OK\r\n"
    });
    head.extend_from_slice(
        b"Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n",
    );
    for (name, value) in cors_headers(cors, request) {
        // Writing to a Vec cannot fail.
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if chunked {
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    head.extend_from_slice(b"\r\n");
    if let Some(millis) = retry_millis {
        let line = encode::retry_line(millis);
        if chunked {
            let _ = write!(head, "{:x}\r\n{line}\r\n", line.len());
        } else {
            head.extend_from_slice(line.as_bytes());
        }
    }
    head
}

/// Answers `request` with `response`. When that fails (the client does not
/// read what it is sent, so the send timed out, or the connection broke),
/// the connection is closed: `tiny_http` would otherwise hand over every
/// request the client pipelined behind it, and each answer would wait out
/// the send timeout on the thread answering it (the acceptor's, for
/// everything but a stream), one client holding up everyone else's.
pub(crate) fn send<R: std::io::Read>(request: Request, response: Response<R>) {
    let remote = request.remote_addr().copied();
    if let Err(e) = request.respond(response)
        && let Some(remote) = remote
    {
        let closed = shut(remote, None, Shutdown::Both);
        log::debug!("could not answer {remote} ({e}); connection closed: {closed}");
    }
}

/// Ends the body `request` has not sent yet, when it has one, before the
/// library answers it: `tiny_http` reads what is left of a body of more
/// than 1 KiB (or one sent after `Expect: 100-continue`) when the request
/// is dropped, on the thread answering it, so a client that declares a
/// body and never sends it would hold that thread (the acceptor's, for
/// every answer but a stream) until it hung up or the request deadline
/// closed it. Shutting the connection's reading side makes that read end
/// at once; the connection then closes after the answer, as the next
/// request on it could not be read anyway.
pub(crate) fn end_unread_body(request: &Request, local: Option<SocketAddr>) {
    let declared = request.body_length().unwrap_or(0);
    let expects_continue = header_of(request, "Expect").is_some();
    let chunked = header_of(request, "Transfer-Encoding").is_some();
    let unread = declared > 1024 || (expects_continue && declared > 0) || chunked;
    if let (true, Some(remote)) = (unread, request.remote_addr()) {
        let shut = shut(*remote, local, Shutdown::Read);
        log::debug!(
            "a request from {remote} declares a body it has not sent; read side shut: {shut}"
        );
    }
}

/// Answers every request to the stream path that does not open a stream:
/// `HEAD`, `OPTIONS` (CORS preflight), other methods, and a `GET` from an
/// origin the CORS settings refuse. Gives back a `GET` that may stream.
pub(crate) fn answer_non_stream(cors: Option<&Cors>, request: Request) -> Option<Request> {
    let cors = cors.map(|cors| cors.verdict(origin(&request)));
    if matches!(cors, Some(Verdict::Refused)) {
        log::debug!("refusing a request from an origin the CORS settings do not allow");
        let response = Response::from_string("origin not allowed\n").with_status_code(403);
        send(request, response);
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
    send(request, response);
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
pub(crate) fn respond_with_cors(cors: Option<&Cors>, request: Request, mut response: ResponseBox) {
    add_headers(&mut response, cors_headers(cors, &request));
    send(request, response);
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
pub(crate) fn cors_headers(cors: Option<&Cors>, request: &Request) -> Vec<(&'static str, String)> {
    match cors.map(|cors| cors.verdict(origin(request))) {
        Some(Verdict::Allowed(headers)) => headers,
        _ => Vec::new(),
    }
}

fn origin(request: &Request) -> Option<&str> {
    header_of(request, "Origin")
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
    /// The reason as counted.
    fn rejection(self) -> Rejection {
        match self {
            Busy::TooManyClients => Rejection::TooManyClients,
            Busy::ShuttingDown => Rejection::ShuttingDown,
            Busy::NoThread => Rejection::NoThread,
        }
    }

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
pub(crate) fn respond_refused(
    request: Request,
    why: Busy,
    cors: Option<&Cors>,
    busy_retry: Duration,
) {
    let response = if wants_event_stream(&request) {
        // The client's port tells apart answers drawn in the same
        // nanosecond.
        let seed = request.remote_addr().map_or(0, |remote| remote.port());
        busy(busy_retry, why, u64::from(seed))
    } else {
        unavailable()
    };
    respond_with_cors(cors, request, response);
}

/// Turns `request` away (see [`respond_refused`]: an event-stream client
/// is told when to come back, others get `503`) and counts it; gives back
/// `error`: [`Error::TooManyClients`], [`Error::Spawn`] or
/// [`Error::Closed`].
pub(crate) fn refuse(
    request: Request,
    error: Error,
    config: &Config,
    counters: &Counters,
) -> Error {
    let why = match &error {
        Error::TooManyClients => Busy::TooManyClients,
        Error::Spawn(_) => Busy::NoThread,
        // `Closed`, the only other error a stream is refused with.
        _ => Busy::ShuttingDown,
    };
    counters.reject(why.rejection());
    respond_refused(request, why, config.cors.as_ref(), config.busy_retry);
    error
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
    let millis = retry::jittered_millis(retry, retry, seed);
    Response::from_string(encode::busy(millis, why.reason()))
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

/// Answers a request for the metrics path: `GET` gets `text` (made only
/// then), `HEAD` the same headers without the body, other methods `405`.
pub(crate) fn answer_metrics(request: Request, text: impl FnOnce() -> String) {
    let response = match request.method() {
        // `tiny_http` leaves out the body of an answer to `HEAD`, keeping
        // its `Content-Length`.
        Method::Get | Method::Head => Response::from_string(text())
            .with_header(header("Content-Type", metrics::METRICS_CONTENT_TYPE))
            .with_header(header("Cache-Control", "no-store"))
            .boxed(),
        _ => Response::from_string("method not allowed\n")
            .with_status_code(405)
            .with_header(header("Allow", "GET, HEAD"))
            .boxed(),
    };
    send(request, response);
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("BUG: a constant header is valid")
}
