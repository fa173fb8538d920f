//! Hubs for tests, and reading and checking them without HTTP.

use std::io::Write;
use std::time::{Duration, Instant};

use super::raw::{find, raw_connect, read_raw};
use sse_server::parse::{EventParser, ParsedEvent};

/// A hub builder without the stream extras the protocol adds by default
/// (automatic event ids, the `retry:` line at connect), so that tests can
/// expect exact bytes. Tests of those extras build their hub themselves.
pub fn plain_hub() -> sse_server::HubBuilder {
    sse_server::Hub::builder().history_events(0).retry(None)
}

/// The ids of the clients the hub lists.
pub fn client_ids(hub: &sse_server::Hub) -> Vec<sse_server::ClientId> {
    hub.clients().into_iter().map(|c| c.id).collect()
}

/// The id of the one client connected since `before` was taken.
pub fn new_client_id(
    hub: &sse_server::Hub,
    before: &[sse_server::ClientId],
) -> sse_server::ClientId {
    let new: Vec<sse_server::ClientId> = client_ids(hub)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect();
    assert_eq!(new.len(), 1, "exactly one new client: {new:?}");
    new[0]
}

/// Reads events from a subscription until `n` have been parsed.
pub fn sub_events(
    sub: &sse_server::Subscription,
    parser: &mut EventParser,
    n: usize,
) -> Vec<ParsedEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        let frame = sub
            .recv_timeout(Duration::from_secs(10))
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("only {} of {n} events came", out.len()));
        out.extend(parser.feed(frame.as_bytes()));
    }
    assert_eq!(out.len(), n, "no more events than expected");
    out
}

/// After shutdown, every public method of the hub gives its documented
/// answer: every one that can fail returns `Closed` (`send_to` too, for the
/// ids of clients connected before the shutdown and for any other), `serve`
/// answers `503` with `Retry-After` whatever the method (checked over a
/// real `tiny_http` server and socket), binding a server is refused, a
/// second shutdown returns `Ok` at once, and the counters stay readable
/// with no client registered and nothing counted as published.
pub fn assert_refuses_everything(hub: &sse_server::Hub, former_clients: &[sse_server::ClientId]) {
    use sse_server::{ClientId, Error, Event, Server, SubscribeOptions, tiny_http};
    let before = hub.stats();
    assert!(hub.is_closed());

    assert!(matches!(hub.notify("late"), Err(Error::Closed)));
    let late = Event::new("late");
    assert!(matches!(hub.publish(&late), Err(Error::Closed)));
    assert!(matches!(hub.publish_to("topic", &late), Err(Error::Closed)));
    let never_used = ClientId::new(u64::MAX);
    for &id in former_clients.iter().chain([&never_used]) {
        let sent = hub.send_to(id, &late);
        assert!(
            matches!(sent, Err(Error::Closed)),
            "send_to({id}) after shutdown: {sent:?}"
        );
    }
    assert!(matches!(hub.subscribe(), Err(Error::Closed)));
    let options = SubscribeOptions::new()
        .topics(["topic"])
        .last_event_id("1")
        .id(ClientId::new(1 << 63));
    assert!(matches!(hub.subscribe_with(options), Err(Error::Closed)));
    assert!(matches!(
        Server::bind("127.0.0.1:0", hub),
        Err(Error::Closed)
    ));
    assert!(matches!(
        Server::builder(hub)
            .path("/stream")
            .fallback(|_| {})
            .bind("127.0.0.1:0"),
        Err(Error::Closed)
    ));

    // `serve`, with requests from a real client through a server of our own.
    let http = tiny_http::Server::http("127.0.0.1:0").expect("bind a tiny_http server");
    let addr = http
        .server_addr()
        .to_ip()
        .expect("a tiny_http server on an IP address");
    // An event-stream request is told to come back (a browser would give up
    // for good on a 503); the others get 503.
    for (method, accept) in [
        ("GET", "text/event-stream"),
        ("GET", "*/*"),
        ("HEAD", "*/*"),
        ("OPTIONS", "*/*"),
    ] {
        let mut socket = raw_connect(addr);
        let request =
            format!("{method} /events HTTP/1.1\r\nHost: {addr}\r\nAccept: {accept}\r\n\r\n");
        socket
            .write_all(request.as_bytes())
            .expect("send the request");
        let request = http
            .recv_timeout(Duration::from_secs(10))
            .expect("tiny_http receives")
            .unwrap_or_else(|| panic!("{method}: no request reached tiny_http"));
        let served = hub.serve(request);
        assert!(
            matches!(served, Err(Error::Closed)),
            "serve({method}) after shutdown: {served:?}"
        );
        if accept == "text/event-stream" {
            let reply = read_raw(&mut socket, Duration::from_secs(10), |bytes| {
                find(bytes, b"data: shutting-down\n\n").is_some()
            });
            let text = reply.text();
            assert!(
                text.starts_with("HTTP/1.1 200 ") && text.contains("event: sse-busy\n"),
                "{method} for an event stream after shutdown: {text:?}"
            );
            continue;
        }
        let reply = read_raw(&mut socket, Duration::from_secs(10), |bytes| {
            find(bytes, b"\r\n\r\n").is_some()
        });
        let text = reply.text();
        assert!(
            text.starts_with("HTTP/1.1 503 "),
            "{method} after shutdown: {text:?}"
        );
        assert!(
            text.to_ascii_lowercase().contains("\r\nretry-after: 5\r\n"),
            "{method} after shutdown: {text:?}"
        );
    }

    let started = Instant::now();
    assert!(
        hub.shutdown().is_ok(),
        "a second shutdown returns Ok at once"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    let after = hub.stats();
    assert_eq!(after.clients, 0, "{after:?}");
    assert_eq!(after.published, before.published, "nothing more published");
    assert_eq!(
        after.rejected,
        before.rejected + 4,
        "each request served after shutdown was rejected"
    );
    assert!(hub.clients().is_empty(), "{:?}", hub.clients());
    for &id in former_clients.iter().chain([&never_used]) {
        assert_eq!(hub.client_stats(id), None, "client {id}");
    }
    assert!(hub.is_closed());
}
