//! Clients turned away: a request that asks for `text/event-stream` (as
//! every `EventSource` does) gets a `200` event stream that ends at once,
//! holding a `retry:` of `busy_retry` plus jitter and one `sse-busy` event
//! saying why, and no id; any other request `503` with `Retry-After`. Both
//! are counted in `Stats::rejected`. A client that follows the WHATWG rules
//! (wait the reconnection time, reconnect) is told again while the server
//! is full and served once a slot is free.

mod support;

use std::net::SocketAddr;
use std::thread;
use std::time::Duration;

use sse_server::parse::ParsedEvent;
use sse_server::tiny_http;
use sse_server::{Cors, Error, Hub, Server};
use support::client::{Client, End, Framing};
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// The `busy_retry` of these tests: clients are told 200 to 400 ms.
const BUSY_MS: u64 = 200;

const ORIGIN: &str = "https://app.example.com";

/// A hub that serves one stream at once and notices a client that left
/// within a keep-alive of 50 ms.
fn full_after_one() -> Hub {
    plain_hub()
        .max_clients(1)
        .busy_retry(ms(BUSY_MS))
        .keep_alive(Some(ms(50)))
        .cors(Cors::any())
        .build()
        .expect("build the hub")
}

/// Checks that `client` got the busy answer, read to its end, with `why` as
/// its data, and returns the reconnection time it announced.
fn expect_busy(client: &mut Client, why: &str, what: &str) -> u64 {
    assert_eq!(client.status, 200, "{what}");
    assert_eq!(
        client.header("Content-Type"),
        Some("text/event-stream"),
        "{what}"
    );
    assert_eq!(client.header("Cache-Control"), Some("no-cache"), "{what}");
    assert!(
        matches!(client.framing(), Framing::Length(_)),
        "{what}: a body of known length, not {:?}",
        client.framing()
    );
    assert_eq!(client.wait_end(WAIT), Some(End::Complete), "{what}");
    let retry = client
        .parser()
        .retry()
        .unwrap_or_else(|| panic!("{what}: a valid retry field"));
    assert!(
        (BUSY_MS..=2 * BUSY_MS).contains(&retry),
        "{what}: retry {retry} within busy_retry and twice it"
    );
    assert_eq!(
        client.take_parsed(),
        [ParsedEvent {
            event_type: "sse-busy".into(),
            data: why.into(),
            last_event_id: String::new(),
            retry: Some(retry),
        }],
        "{what}: exactly one event"
    );
    // The exact bytes: one block, no `id:` line (it would set the
    // browser's lastEventId, and so the replay of its next connection).
    assert_eq!(
        client.body(),
        format!("retry: {retry}\nevent: sse-busy\ndata: {why}\n\n").as_bytes(),
        "{what}"
    );
    assert!(!client.parser().has_pending(), "{what}");
    retry
}

fn request(addr: SocketAddr, version: &str, headers: &[(&str, &str)]) -> Client {
    Client::request(addr, "GET", "/events", version, headers, b"").expect("an answer")
}

fn expect_503(client: &mut Client, what: &str) {
    assert_eq!(client.status, 503, "{what}");
    assert_eq!(client.header("Retry-After"), Some("5"), "{what}");
    assert_ne!(
        client.header("Content-Type"),
        Some("text/event-stream"),
        "{what}"
    );
    assert_eq!(client.read_to_end(WAIT), b"service unavailable\n", "{what}");
}

#[test]
fn past_max_clients_an_event_stream_client_is_told_to_come_back_and_others_get_503() {
    init_logging();
    let hub = full_after_one();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let mut first = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(first.status, 200);
    assert_eq!(first.framing(), Framing::Chunked);

    // Every refusal is counted before it is answered, so the count is
    // exact as soon as the client has its answer.
    let mut rejected = 0;
    for (version, accept) in [
        ("1.1", "text/event-stream"),
        ("1.0", "text/event-stream"),
        // What browsers send, with other ranges around it, in any case.
        ("1.1", "text/html, Text/Event-Stream;q=0.9, */*;q=0.1"),
    ] {
        let what = format!("HTTP/{version}, Accept: {accept}");
        let mut busy = request(addr, version, &[("Accept", accept), ("Origin", ORIGIN)]);
        expect_busy(&mut busy, "too-many-clients", &what);
        assert_eq!(
            busy.header("Access-Control-Allow-Origin"),
            Some("*"),
            "{what}: a page of another origin can read it"
        );
        rejected += 1;
        assert_eq!(hub.stats().rejected, rejected, "{what}");
    }

    for (version, accept) in [
        ("1.1", None),
        ("1.0", None),
        ("1.1", Some("*/*")),
        ("1.1", Some("text/*")),
        ("1.1", Some("text/event-stream;q=0, text/plain")),
        ("1.1", Some("text/event-streams")),
    ] {
        let what = format!("HTTP/{version}, Accept: {accept:?}");
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let mut refused = request(addr, version, &headers);
        expect_503(&mut refused, &what);
        rejected += 1;
        assert_eq!(hub.stats().rejected, rejected, "{what}");
    }

    // No stream was started for any of them, and the first one carries on.
    assert_eq!(hub.stats().streams, 1);
    hub.notify("still here").expect("notify");
    assert_eq!(first.expect_event(WAIT, "an event").data, "still here");
    hub.shutdown().expect("shutdown");
    assert_eq!(first.wait_end(WAIT), Some(End::FinalChunk));
}

/// A client that follows the WHATWG rules for `EventSource`: it keeps its
/// reconnection time and last event id across connections, and after a
/// stream ends it waits the reconnection time before it connects again.
struct RuleFollower {
    addr: SocketAddr,
    reconnection_time: Option<u64>,
    last_event_id: String,
}

impl RuleFollower {
    fn connect(&self) -> Client {
        let mut headers = Vec::new();
        if !self.last_event_id.is_empty() {
            headers.push(("Last-Event-ID", self.last_event_id.as_str()));
        }
        Client::connect(self.addr, "/events", "1.1", &headers).expect("connect")
    }

    /// Takes in what a connection that ended told it.
    fn ended(&mut self, client: &Client) {
        if let Some(retry) = client.parser().retry() {
            self.reconnection_time = Some(retry);
        }
        if !client.parser().last_event_id().is_empty() {
            self.last_event_id = client.parser().last_event_id().to_owned();
        }
    }

    /// Waits the reconnection time, as a browser does before it reconnects.
    /// This wait is the client's behaviour under test, not a
    /// synchronisation: nothing in the server waits for it.
    fn wait_reconnection_time(&self) {
        let millis = self
            .reconnection_time
            .expect("the server announced a reconnection time");
        thread::sleep(ms(millis));
    }
}

#[test]
fn a_client_that_follows_the_rules_comes_back_and_is_served_once_a_slot_is_free() {
    init_logging();
    let hub = full_after_one();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let first = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(first.status, 200);

    let mut comer = RuleFollower {
        addr,
        reconnection_time: None,
        last_event_id: String::new(),
    };

    // Told to come back, twice: the first client is still there.
    for attempt in 1..=2 {
        let mut busy = comer.connect();
        let what = format!("attempt {attempt}");
        let retry = expect_busy(&mut busy, "too-many-clients", &what);
        comer.ended(&busy);
        assert_eq!(comer.reconnection_time, Some(retry), "{what}");
        assert_eq!(comer.last_event_id, "", "{what}: no id came with it");
        assert_eq!(hub.stats().rejected, attempt, "{what}");
        comer.wait_reconnection_time();
    }

    // The first client leaves; once the hub has noticed, the slot is free.
    drop(first);
    assert!(
        wait_until(WAIT, || hub.stats().streams == 0),
        "the client that left is gone: {:?}",
        hub.stats()
    );

    let mut served = comer.connect();
    assert_eq!(served.status, 200);
    assert_eq!(served.framing(), Framing::Chunked, "a real stream");
    assert_eq!(hub.stats().streams, 1);
    assert_eq!(hub.stats().rejected, 2, "not counted again");
    hub.notify("welcome back").expect("notify");
    let event = served.expect_event(WAIT, "the published event");
    assert_eq!(event.event_type, "message");
    assert_eq!(event.data, "welcome back");
    hub.shutdown().expect("shutdown");
    assert_eq!(served.wait_end(WAIT), Some(End::FinalChunk));
}

/// Hands the next request of `http` to `hub.serve` on this thread, while
/// `client` (run on a thread of its own) makes it; returns both results.
fn serve_one<T: Send + 'static>(
    hub: &Hub,
    http: &tiny_http::Server,
    client: impl FnOnce() -> T + Send + 'static,
) -> (Result<(), Error>, T) {
    let client = thread::spawn(client);
    let request = http
        .recv_timeout(WAIT)
        .expect("tiny_http is running")
        .expect("the client's request within the wait");
    let served = hub.serve(request);
    (served, client.join().expect("the client thread panicked"))
}

#[test]
fn after_shutdown_serve_tells_an_event_stream_client_it_is_shutting_down() {
    init_logging();
    let hub = plain_hub()
        .busy_retry(ms(BUSY_MS))
        .build()
        .expect("build the hub");
    let http = tiny_http::Server::http("127.0.0.1:0").expect("bind tiny_http");
    let addr = http.server_addr().to_ip().expect("an IP listen address");
    hub.shutdown().expect("shutdown");

    let (served, mut busy) = serve_one(&hub, &http, move || {
        Client::connect(addr, "/events", "1.1", &[]).expect("connect")
    });
    assert!(matches!(served, Err(Error::Closed)), "{served:?}");
    expect_busy(&mut busy, "shutting-down", "after shutdown");
    assert_eq!(hub.stats().rejected, 1);

    let (served, mut refused) = serve_one(&hub, &http, move || request(addr, "1.1", &[]));
    assert!(matches!(served, Err(Error::Closed)), "{served:?}");
    expect_503(&mut refused, "after shutdown, no Accept");
    assert_eq!(hub.stats().rejected, 2);
}

#[test]
fn extreme_busy_retries_are_capped_and_do_not_panic() {
    init_logging();
    for (busy_retry, expected) in [
        (Duration::ZERO, 0..=0),
        (Duration::MAX, 86_400_000..=86_400_000),
    ] {
        let hub = plain_hub()
            .max_clients(0)
            .busy_retry(busy_retry)
            .build()
            .expect("build the hub");
        let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
        let mut busy =
            Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
        assert_eq!(busy.status, 200, "{busy_retry:?}");
        assert_eq!(busy.wait_end(WAIT), Some(End::Complete), "{busy_retry:?}");
        let retry = busy.parser().retry().expect("a retry field");
        assert!(expected.contains(&retry), "{busy_retry:?}: retry {retry}");
        assert_eq!(busy.take_parsed().len(), 1, "{busy_retry:?}");
        server.shutdown().expect("shutdown");
    }
}
