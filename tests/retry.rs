//! The `retry:` line each stream starts with: within `[retry, retry +
//! jitter]`, drawn per client, exact without jitter, absent when turned
//! off, capped at a day, and applied by a conformant parser.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sse_server::{Hub, Server};
use support::client::Client;
use support::init_logging;

const WAIT: Duration = Duration::from_secs(5);

/// Opens a stream and returns the value of the `retry:` line its body
/// starts with (`None` when the body starts with something else), with the
/// client.
fn first_retry(addr: SocketAddr, version: &str) -> (Option<u64>, Client) {
    let mut client = Client::connect(addr, "/events", version, &[]).expect("connect");
    assert_eq!(client.status, 200);
    // The line is sent with the head; a body without it stays empty until
    // the first event (the callers publish one when they expect none).
    assert!(
        client.read_raw_until(WAIT, |body| body.contains(&b'\n')),
        "HTTP/{version}: a first line"
    );
    let body = String::from_utf8_lossy(client.body()).into_owned();
    let line = body.split('\n').next().unwrap_or_default();
    let retry = line
        .strip_prefix("retry: ")
        .map(|v| v.parse().unwrap_or_else(|_| panic!("retry value {v:?}")));
    (retry, client)
}

#[test]
fn the_default_retry_is_3_to_5_seconds_and_jittered() {
    init_logging();
    let hub = Hub::new().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut values = Vec::new();
    for i in 0..20 {
        let version = if i % 4 == 3 { "1.0" } else { "1.1" };
        let (retry, client) = first_retry(addr, version);
        let retry = retry.unwrap_or_else(|| {
            panic!(
                "client {i}: the body starts with a retry line: {:?}",
                String::from_utf8_lossy(client.body())
            )
        });
        assert!(
            (3000..=5000).contains(&retry),
            "client {i}: retry {retry} within 3000..=5000"
        );
        // Exactly the line, nothing else yet: no event, no blank line.
        assert_eq!(client.body(), format!("retry: {retry}\n").as_bytes());
        values.push(retry);
    }
    let first = values[0];
    assert!(
        values.iter().any(|&v| v != first),
        "20 clients all got {first}: no jitter"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_custom_retry_and_jitter_stay_in_range() {
    let hub = Hub::builder()
        .retry(Some(Duration::from_millis(250)))
        .retry_jitter(Duration::from_millis(50))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut values = Vec::new();
    for _ in 0..20 {
        let (retry, _client) = first_retry(server.local_addr(), "1.1");
        let retry = retry.expect("a retry line");
        assert!(
            (250..=300).contains(&retry),
            "retry {retry} within 250..=300"
        );
        values.push(retry);
    }
    assert!(
        values.iter().any(|&v| v != values[0]),
        "all equal: {values:?}"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn retry_without_jitter_is_exact_and_the_parser_applies_it() {
    let hub = Hub::builder()
        .retry(Some(Duration::from_secs(1)))
        .retry_jitter(Duration::ZERO)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    for version in ["1.1", "1.0"] {
        for _ in 0..5 {
            let (retry, mut client) = first_retry(server.local_addr(), version);
            assert_eq!(retry, Some(1000), "HTTP/{version}");
            assert_eq!(client.parser().retry(), Some(1000), "applied at once");
            assert!(
                client.take_parsed().is_empty(),
                "the retry line is not an event"
            );
            drop(client);
        }
    }
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    hub.notify("x").expect("notify");
    let event = client.expect_event(WAIT, "an event");
    assert_eq!(event.data, "x");
    assert_eq!(
        event.retry,
        Some(1000),
        "the event carries the stream's retry"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn retry_none_sends_no_retry_line() {
    let hub = Hub::builder()
        .retry(None)
        .retry_jitter(Duration::from_secs(2))
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    hub.notify("first").expect("notify");
    let event = client.expect_event(WAIT, "the first event");
    assert_eq!(event.data, "first");
    assert_eq!(event.retry, None);
    assert_eq!(client.parser().retry(), None);
    let body = String::from_utf8_lossy(client.body()).into_owned();
    assert!(
        body.starts_with("id: "),
        "the body starts with the event: {body:?}"
    );
    assert!(!body.contains("retry"), "{body:?}");
    hub.shutdown().expect("shutdown");
}

#[test]
fn retry_is_capped_at_a_day() {
    let day = 24 * 60 * 60 * 1000;
    let hub = Hub::builder()
        .retry(Some(Duration::from_secs(2 * 24 * 60 * 60)))
        .retry_jitter(Duration::from_secs(60))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let (retry, _client) = first_retry(server.local_addr(), "1.1");
    assert_eq!(retry, Some(day));
    hub.shutdown().expect("shutdown");

    let hub = Hub::builder()
        .retry(Some(Duration::from_millis(day - 10)))
        .retry_jitter(Duration::from_secs(60))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    for _ in 0..10 {
        let (retry, _client) = first_retry(server.local_addr(), "1.1");
        let retry = retry.expect("a retry line");
        assert!(
            (day - 10..=day).contains(&retry),
            "{retry}: base plus jitter, capped"
        );
    }
    hub.shutdown().expect("shutdown");
}
