//! `Event::comment` on the wire: comment lines with no blank line after
//! them, which a spec parser reports as no event, and which leave the next
//! event intact. A comment gets no automatic id, takes no place in the
//! numbering of events, is not replayed and is not counted as an event, and
//! goes wherever `publish`, `publish_to` and `send_to` send it.

mod support;

use std::time::Duration;

use sse_server::parse::ParsedEvent;
use sse_server::{Event, Hub, Server};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

/// Reads the first line of a stream (the `retry:` line) and gives it back.
fn retry_line(client: &mut Client) -> String {
    assert!(
        client.read_raw_until(WAIT, |body| body.contains(&b'\n')),
        "the retry line arrives"
    );
    let body = String::from_utf8_lossy(client.body()).into_owned();
    let line = body.split_inclusive('\n').next().unwrap_or_default();
    assert!(line.starts_with("retry: "), "{body:?}");
    line.to_owned()
}

/// The body of `client` as text.
fn body(client: &Client) -> String {
    String::from_utf8_lossy(client.body()).into_owned()
}

#[test]
fn a_comment_is_no_event_and_the_next_event_is_intact() {
    init_logging();
    for version in ["1.1", "1.0"] {
        // The defaults (history, so automatic ids), but no keep-alive, so
        // that every comment line the parser counts is ours.
        let hub = Hub::builder()
            .keep_alive(None)
            .build()
            .expect("build the hub");
        let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
        let mut client =
            Client::connect(server.local_addr(), "/events", version, &[]).expect("connect");
        assert_eq!(client.status, 200);
        let retry = retry_line(&mut client);

        hub.publish(&Event::comment("marker one\r\nmarker two"))
            .expect("publish a comment");
        hub.publish(&Event::new("next")).expect("publish an event");
        let next = client.expect_event(WAIT, "the event after the comment");
        // The first event of the hub: the comment took no number.
        assert!(
            next.last_event_id.ends_with("-1"),
            "HTTP/{version}: {next:?}"
        );
        assert_eq!(
            next,
            ParsedEvent {
                event_type: "message".into(),
                data: "next".into(),
                last_event_id: next.last_event_id.clone(),
                retry: next.retry,
            }
        );
        assert_eq!(
            body(&client),
            format!(
                "{retry}: marker one\n: marker two\nid: {}\ndata: next\n\n",
                next.last_event_id
            ),
            "HTTP/{version}: the comment's lines, no blank line, no id"
        );
        assert!(client.take_parsed().is_empty(), "no other event");
        assert_eq!(client.parser().comments(), 2, "HTTP/{version}");

        // Counted nowhere: one event published, queued, kept and delivered.
        assert!(
            wait_until(WAIT, || hub.stats().queued == 1),
            "HTTP/{version}: {:?}",
            hub.stats()
        );
        let stats = hub.stats();
        assert_eq!(stats.published, 1, "HTTP/{version}");
        assert_eq!(stats.history_events, 1, "HTTP/{version}");
        let id = hub.clients()[0].id;
        assert!(
            wait_until(WAIT, || hub
                .client_stats(id)
                .is_some_and(|client| client.delivered == 1)),
            "HTTP/{version}: {:?}",
            hub.client_stats(id)
        );
        hub.shutdown().expect("shutdown");
    }
}

#[test]
fn a_comment_goes_where_it_is_sent() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut topical = Client::connect(addr, "/events?topic=t", "1.1", &[]).expect("connect");
    let first = hub.clients()[0].id;
    let mut single = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    let second = hub
        .clients()
        .into_iter()
        .map(|client| client.id)
        .find(|&id| id != first)
        .expect("the second client is registered");
    let subscription = hub.subscribe().expect("subscribe");

    hub.publish_to("t", &Event::comment("to the topic"))
        .expect("publish_to");
    hub.send_to(second, &Event::comment("to one client"))
        .expect("send_to");
    hub.publish(&Event::comment("to everyone"))
        .expect("publish");
    hub.notify("after").expect("notify");

    for (client, want) in [
        (
            &mut topical,
            ": to the topic\n: to everyone\ndata: after\n\n",
        ),
        (
            &mut single,
            ": to one client\n: to everyone\ndata: after\n\n",
        ),
    ] {
        let event = client.expect_event(WAIT, "the event after the comments");
        assert_eq!(event, ParsedEvent::message("after"));
        assert_eq!(body(client), want);
        assert_eq!(client.parser().comments(), 2);
    }

    // A subscription gets the comment's bytes in frames that hold no event.
    let mut bytes = Vec::new();
    let mut events = 0;
    let want = b": to everyone\ndata: after\n\n";
    while bytes.len() < want.len() {
        let frame = subscription
            .recv_timeout(WAIT)
            .expect("open")
            .expect("a frame");
        bytes.extend_from_slice(frame.as_bytes());
        events += frame.events();
    }
    assert_eq!(bytes, want);
    assert_eq!(events, 1, "the comment's frame holds no event");
    assert_eq!(hub.stats().published, 1);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_comment_is_not_replayed_and_takes_no_number() {
    init_logging();
    let hub = Hub::builder()
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut live = Client::connect(addr, "/events", "1.1", &[]).expect("connect");

    hub.publish(&Event::new("one")).expect("publish");
    hub.publish(&Event::comment("between")).expect("publish");
    hub.publish(&Event::new("two")).expect("publish");
    let one = live.expect_event(WAIT, "the first event");
    let two = live.expect_event(WAIT, "the second event");
    assert_eq!((one.data.as_str(), two.data.as_str()), ("one", "two"));
    let prefix = one
        .last_event_id
        .strip_suffix('1')
        .expect("the first event's id ends in 1");
    assert_eq!(two.last_event_id, format!("{prefix}2"), "numbered in a row");
    assert_eq!(hub.stats().history_events, 2);

    // A client that saw only the first event gets the second, and not the
    // comment.
    let mut behind = Client::connect(
        addr,
        "/events",
        "1.1",
        &[("Last-Event-ID", one.last_event_id.as_str())],
    )
    .expect("reconnect");
    let retry = retry_line(&mut behind);
    let replayed = behind.expect_event(WAIT, "the replayed event");
    assert_eq!(replayed.data, "two");
    assert_eq!(
        body(&behind),
        format!("{retry}id: {}\ndata: two\n\n", two.last_event_id)
    );
    assert_eq!(behind.parser().comments(), 0);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_comment_may_carry_a_retry_which_applies_at_once() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");

    let slower = Event::comment("slow down").with_retry(Duration::from_secs(10));
    hub.publish(&slower).expect("publish");
    let line = b": slow down\nretry: 10000\n";
    assert!(client.read_raw_len(WAIT, line.len()), "the comment arrives");
    assert_eq!(client.body(), line);
    assert_eq!(client.parser().retry(), Some(10_000), "applied at once");
    assert!(client.take_parsed().is_empty(), "no event");

    hub.notify("x").expect("notify");
    let event = client.expect_event(WAIT, "the next event");
    assert_eq!(event.data, "x");
    assert_eq!(event.event_type, "message");
    assert_eq!(event.retry, Some(10_000));
    assert!(client.take_parsed().is_empty(), "no other event");
    hub.shutdown().expect("shutdown");
}
