//! The public API without the network: trait bounds, subscriptions, the
//! counters, the slow-subscriber policy and the closed hub.

mod support;

use std::time::Duration;

use sse_server::parse::parse_all;
use sse_server::{ClientStats, Error, Event, Frame, Hub, HubBuilder, Server, Stats, Subscription};
use support::client::open_stream;
use support::hubs::{assert_refuses_everything, plain_hub};
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

// Compile-time checks: these fail to build if a bound goes away.
const _: () = {
    const fn send_sync_clone<T: Send + Sync + Clone>() {}
    const fn send<T: Send>() {}
    const fn error<T: std::error::Error + Send + Sync + 'static>() {}
    send_sync_clone::<Hub>();
    send_sync_clone::<HubBuilder>();
    send_sync_clone::<Event>();
    send_sync_clone::<Frame>();
    send_sync_clone::<Stats>();
    send_sync_clone::<ClientStats>();
    send::<Subscription>();
    send::<Server>();
    error::<Error>();
};

#[test]
fn hub_is_send_sync_clone() {
    fn assert_bounds<T: Send + Sync + Clone + 'static>(_: &T) {}
    let hub = plain_hub().build().expect("build the hub");
    assert_bounds(&hub);
    // A clone is the same hub: what one publishes, the other's subscribers
    // receive, from another thread.
    let subscription = hub.subscribe().expect("subscribe");
    let clone = hub.clone();
    std::thread::spawn(move || clone.notify("from a clone").expect("notify"))
        .join()
        .expect("the thread panicked");
    let frame = subscription
        .recv_timeout(WAIT)
        .expect("open")
        .expect("a frame");
    assert_eq!(frame.as_bytes(), b"data: from a clone\n\n");
    hub.shutdown().expect("shutdown");
}

/// Receives frames until `want` bytes have arrived.
fn receive_bytes(subscription: &Subscription, want: usize) -> (Vec<u8>, usize) {
    let mut bytes = Vec::new();
    let mut events = 0;
    while bytes.len() < want {
        let frame = subscription
            .recv_timeout(WAIT)
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("only {} of {want} bytes arrived", bytes.len()));
        bytes.extend_from_slice(frame.as_bytes());
        events += frame.events();
    }
    (bytes, events)
}

#[test]
fn a_subscription_receives_what_is_published() {
    let hub = plain_hub().build().expect("build the hub");
    let subscription = hub.subscribe().expect("subscribe");
    assert_eq!(hub.stats().clients, 1);
    assert!(
        subscription.try_recv().expect("open").is_none(),
        "nothing yet"
    );

    let named = Event::new("{\"t\":1}")
        .with_event("tick")
        .expect("valid name")
        .with_id("1")
        .expect("valid id");
    hub.notify("first").expect("notify");
    hub.publish(&named).expect("publish");
    hub.notify("multi\nline").expect("notify");
    let mut want = b"data: first\n\n".to_vec();
    want.extend_from_slice(&named.to_bytes());
    want.extend_from_slice(b"data: multi\ndata: line\n\n");

    let (bytes, events) = receive_bytes(&subscription, want.len());
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(events, 3, "Frame::events adds up to the events published");
    let parsed = parse_all(&bytes);
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[1].event_type, "tick");
    assert_eq!(parsed[1].last_event_id, "1");
    assert_eq!(parsed[2].data, "multi\nline");
    assert!(
        subscription.try_recv().expect("open").is_none(),
        "nothing more"
    );
    assert_eq!(
        subscription
            .recv_timeout(ms(10))
            .expect("open")
            .map(|f| f.events()),
        None
    );

    let stats = hub.stats();
    assert_eq!(stats.published, 3);
    assert_eq!(stats.queued, 3);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.pending, 0);
    assert_eq!(subscription.missed(), 0);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_subscription_gets_every_event_published_after_it_subscribed() {
    let hub = plain_hub().build().expect("build the hub");
    hub.notify("before").expect("notify");
    let subscription = hub.subscribe().expect("subscribe");
    hub.notify("after").expect("notify");
    let mut bytes = Vec::new();
    while !bytes.ends_with(b"data: after\n\n") {
        let frame = subscription
            .recv_timeout(WAIT)
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("\"after\" did not arrive; got {bytes:?}"));
        bytes.extend_from_slice(frame.as_bytes());
    }
    // The documented promise covers events published after `subscribe`
    // returns. One published just before may or may not arrive (the hub
    // thread takes registrations and events in no fixed order).
    assert!(
        bytes == b"data: after\n\n" || bytes == b"data: before\n\ndata: after\n\n",
        "{:?}",
        String::from_utf8_lossy(&bytes)
    );
    hub.shutdown().expect("shutdown");
}

/// Subscriptions and streams do not wait for the hub thread to answer their
/// registration: the hub takes waiting registrations before it numbers an
/// event. Each round subscribes, publishes one event at once, and expects
/// it; without that order some rounds lose it.
#[test]
fn every_subscription_of_many_gets_the_event_published_right_after() {
    let hub = plain_hub().build().expect("build the hub");
    for round in 0..500 {
        let subscription = hub.subscribe().expect("subscribe");
        let want = format!("round {round}");
        hub.notify(want.as_str()).expect("notify");
        let frame = subscription
            .recv_timeout(WAIT)
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("round {round}: the event did not arrive"));
        assert_eq!(frame.as_bytes(), format!("data: {want}\n\n").as_bytes());
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn every_stream_of_many_gets_the_event_published_right_after_its_head() {
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    for round in 0..100 {
        let mut client = open_stream(server.local_addr(), "/events", &[]);
        let want = format!("round {round}");
        hub.notify(want.as_str()).expect("notify");
        let event = client.expect_event(WAIT, &want);
        assert_eq!(event.data, want, "round {round}");
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn client_stats_and_unsubscribing() {
    let hub = plain_hub().build().expect("build the hub");
    let a = hub.subscribe().expect("subscribe");
    let b = hub.subscribe().expect("subscribe");
    assert_ne!(a.id(), b.id());
    assert_eq!(hub.stats().clients, 2);
    let mut ids: Vec<_> = hub.clients().into_iter().map(|c| c.id).collect();
    ids.sort();
    let mut want = vec![a.id(), b.id()];
    want.sort();
    assert_eq!(ids, want);
    let stats = hub.client_stats(a.id()).expect("a is connected");
    assert_eq!(stats.id, a.id());
    assert_eq!(stats.dropped, 0);

    let b_id = b.id();
    drop(b);
    assert!(
        wait_until(WAIT, || hub.stats().clients == 1),
        "dropping a subscription unsubscribes; stats: {:?}",
        hub.stats()
    );
    assert!(hub.client_stats(b_id).is_none());
    assert!(hub.client_stats(a.id()).is_some());
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_full_subscription_misses_events_and_the_miss_is_counted() {
    let hub = plain_hub().client_buffer(1).build().expect("build the hub");
    let subscription = hub.subscribe().expect("subscribe");
    // One event at a time, each taken by the hub before the next, so that
    // each is a frame of its own.
    hub.notify("kept").expect("notify");
    assert!(wait_until(WAIT, || hub.stats().queued == 1));
    for i in 0..3 {
        hub.notify(format!("missed {i}")).expect("notify");
        assert!(wait_until(WAIT, || hub.stats().dropped == i + 1));
    }
    assert_eq!(subscription.missed(), 3);
    let stats = hub.client_stats(subscription.id()).expect("connected");
    assert_eq!(stats.dropped, 3);
    let frame = subscription
        .try_recv()
        .expect("open")
        .expect("the kept frame");
    assert_eq!(frame.as_bytes(), b"data: kept\n\n");
    assert!(subscription.try_recv().expect("open").is_none());
    // With room again, events arrive again, after a gap event telling how
    // many were missed.
    hub.notify("again").expect("notify");
    let gap = subscription
        .recv_timeout(WAIT)
        .expect("open")
        .expect("the gap frame");
    assert_eq!(gap.as_bytes(), b"event: sse-gap\ndata: missed 3\n\n");
    assert_eq!(gap.events(), 0);
    let frame = subscription
        .recv_timeout(WAIT)
        .expect("open")
        .expect("a frame");
    assert_eq!(frame.as_bytes(), b"data: again\n\n");
    hub.shutdown().expect("shutdown");
}

#[test]
fn after_shutdown_everything_is_closed_and_queued_events_still_arrive() {
    let hub = plain_hub().build().expect("build the hub");
    let subscription = hub.subscribe().expect("subscribe");
    for i in 0..3 {
        hub.notify(format!("{i}")).expect("notify");
    }
    hub.shutdown().expect("shutdown");
    assert!(hub.is_closed());
    // The events published before the shutdown were delivered...
    let (bytes, events) = receive_bytes(&subscription, b"data: 0\n\ndata: 1\n\ndata: 2\n\n".len());
    assert_eq!(bytes, b"data: 0\n\ndata: 1\n\ndata: 2\n\n");
    assert_eq!(events, 3);
    // ...and then the subscription reports the end.
    assert!(matches!(subscription.recv(), Err(Error::Closed)));
    assert!(matches!(subscription.try_recv(), Err(Error::Closed)));
    assert!(matches!(
        subscription.recv_timeout(ms(10)),
        Err(Error::Closed)
    ));

    // Every method, `send_to` for the subscription that was connected too.
    assert_refuses_everything(&hub, &[subscription.id()]);
    assert_eq!(hub.stats().published, 3);
}

#[test]
fn dropping_the_last_hub_handle_shuts_it_down() {
    let hub = plain_hub().build().expect("build the hub");
    let subscription = hub.subscribe().expect("subscribe");
    hub.notify("last words").expect("notify");
    drop(hub);
    let frame = subscription
        .recv_timeout(WAIT)
        .expect("open")
        .expect("the last event");
    assert_eq!(frame.as_bytes(), b"data: last words\n\n");
    assert!(matches!(
        subscription.recv_timeout(WAIT),
        Err(Error::Closed)
    ));
}
