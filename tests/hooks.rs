//! The connect hook (reject with a status, what it sees, topics it chooses)
//! and the disconnect hook (why each stream ended, with the client's id,
//! address and delivered count).

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sse_server::crossbeam_channel::{self, Receiver};
use sse_server::parse::ParsedEvent;
use sse_server::{
    ClientId, Decision, Disconnect, DisconnectReason, Event, Hub, HubBuilder, Server, SlowClient,
};
use support::client::{Client, End, read_events};
use support::events::datas;
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

/// Adds a disconnect hook that hands every `Disconnect` to the receiver.
fn reporting(builder: HubBuilder) -> (HubBuilder, Receiver<Disconnect>) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let builder = builder.on_disconnect(move |disconnect| {
        let _ = tx.send(disconnect.clone());
    });
    (builder, rx)
}

/// The one client the hub lists.
fn only_client(hub: &Hub) -> ClientId {
    let clients = hub.clients();
    assert_eq!(clients.len(), 1, "one client: {clients:?}");
    clients[0].id
}

#[test]
fn the_connect_hook_rejects_with_its_status() {
    init_logging();
    let (builder, disconnects) = reporting(plain_hub().keep_alive(None).on_connect(|request| {
        match request.header("Authorization") {
            Some("Bearer let-me-in") => Decision::accept(),
            Some("stop") => Decision::reject(204),
            Some("odd") => Decision::reject(99),
            _ => Decision::reject(401),
        }
    }));
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    for (headers, status, rejected) in [
        (&[][..], 401, 1),
        (&[("Authorization", "Bearer wrong")][..], 401, 2),
        (&[("Authorization", "stop")][..], 204, 3),
        (&[("Authorization", "odd")][..], 403, 4),
    ] {
        let mut client = Client::connect(addr, "/events", "1.1", headers).expect("a response");
        assert_eq!(client.status, status, "{headers:?}");
        assert_ne!(
            client.header("Content-Type"),
            Some("text/event-stream"),
            "{headers:?}: not a stream"
        );
        assert_eq!(client.read_to_end(WAIT), b"", "{headers:?}: no body");
        assert_eq!(hub.stats().rejected, rejected, "{headers:?}: counted");
        assert_eq!(hub.stats().clients, 0, "{headers:?}: no client registered");
    }
    assert!(
        wait_until(WAIT, || hub.stats().streams == 0),
        "no stream stays open: {:?}",
        hub.stats()
    );

    let mut allowed = Client::connect(
        addr,
        "/events",
        "1.1",
        &[("Authorization", "Bearer let-me-in")],
    )
    .expect("connect");
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(hub.stats().clients, 1);
    hub.notify("welcome").expect("notify");
    assert_eq!(allowed.expect_event(WAIT, "an event").data, "welcome");
    assert_eq!(hub.stats().rejected, 4);

    hub.shutdown().expect("shutdown");
    let reported: Vec<Disconnect> = disconnects.try_iter().collect();
    assert_eq!(
        reported.len(),
        1,
        "only the accepted stream reaches the disconnect hook: {reported:?}"
    );
    assert_eq!(reported[0].reason, DisconnectReason::Shutdown);
}

/// What the connect hook saw of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    method: String,
    path: String,
    query: String,
    topics: Vec<String>,
    names: Vec<String>,
    token: Option<String>,
    token_lower: Option<String>,
    missing: Option<String>,
    remote: Option<SocketAddr>,
    last_event_id: Option<String>,
}

#[test]
fn the_connect_hook_sees_the_request() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = Arc::clone(&seen);
    let hub = plain_hub()
        .keep_alive(None)
        .on_connect(move |request| {
            record.lock().expect("lock").push(Seen {
                method: request.request().method().to_string(),
                path: request.path().to_owned(),
                query: request.query().to_owned(),
                topics: request.topics(),
                names: request.query_values("name"),
                token: request.header("X-Token").map(str::to_owned),
                token_lower: request.header("x-token").map(str::to_owned),
                missing: request.header("X-Missing").map(str::to_owned),
                remote: request.remote_addr(),
                last_event_id: request.last_event_id(),
            });
            Decision::accept()
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let query = "topic=a%2Fb&name=J%C3%BCrgen+S&topic=c&lastEventId=q-1";
    let first = Client::connect(
        addr,
        &format!("/events?{query}"),
        "1.1",
        &[("X-Token", "secret")],
    )
    .expect("connect");
    assert_eq!(first.status, 200);
    let second =
        Client::connect(addr, "/events", "1.0", &[("Last-Event-ID", "h-2")]).expect("connect");
    let third = Client::connect(
        addr,
        "/events?lastEventId=q-3",
        "1.1",
        &[("last-event-id", "h-3")],
    )
    .expect("connect");

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "the hook ran once per request: {seen:?}");
    assert_eq!(
        seen[0],
        Seen {
            method: "GET".into(),
            path: "/events".into(),
            query: query.into(),
            topics: vec!["a/b".into(), "c".into()],
            names: vec!["J\u{fc}rgen S".into()],
            token: Some("secret".into()),
            token_lower: Some("secret".into()),
            missing: None,
            remote: Some(first.local_addr()),
            last_event_id: Some("q-1".into()),
        }
    );
    assert_eq!(seen[1].query, "");
    assert_eq!(seen[1].topics, Vec::<String>::new());
    assert_eq!(seen[1].remote, Some(second.local_addr()));
    assert_eq!(seen[1].last_event_id.as_deref(), Some("h-2"));
    assert_eq!(seen[2].remote, Some(third.local_addr()));
    assert_eq!(
        seen[2].last_event_id.as_deref(),
        Some("h-3"),
        "the header wins over the query"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn topics_chosen_by_the_hook_override_the_query() {
    let hub = plain_hub()
        .keep_alive(None)
        .on_connect(|_| Decision::accept().topics(["chosen"]))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client =
        Client::connect(server.local_addr(), "/events?topic=asked", "1.1", &[]).expect("connect");
    hub.publish_to("asked", &Event::new("asked"))
        .expect("publish_to");
    hub.publish_to("chosen", &Event::new("chosen"))
        .expect("publish_to");
    hub.notify("marker").expect("notify");
    assert_eq!(
        datas(&read_events(&mut client, 2, WAIT)),
        ["chosen", "marker"]
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_client_that_closes_is_reported_closed() {
    let (builder, disconnects) = reporting(plain_hub().keep_alive(Some(ms(50))));
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let id = only_client(&hub);
    let local = client.local_addr();
    for i in 0..3 {
        hub.notify(i.to_string()).expect("notify");
    }
    assert_eq!(datas(&read_events(&mut client, 3, WAIT)), ["0", "1", "2"]);
    drop(client);

    let disconnect = disconnects
        .recv_timeout(WAIT)
        .expect("the disconnect hook runs once a keep-alive fails");
    assert_eq!(disconnect.reason, DisconnectReason::Closed);
    assert_eq!(disconnect.id, id);
    assert_eq!(disconnect.remote_addr, Some(local));
    assert_eq!(disconnect.delivered, 3, "events, not keep-alives");
    assert_eq!(disconnect.dropped, 0);
    assert!(wait_until(WAIT, || hub.stats().clients == 0));
    hub.shutdown().expect("shutdown");
    assert!(disconnects.try_recv().is_err(), "reported once");
}

/// A stream whose client reads its head and then nothing: large events fill
/// the socket buffers until the writer's write stalls. Returns the
/// disconnect report, the client's id and address, and how many events
/// were published.
///
/// The write timeout is 1 s, so the kernel's `TCP_USER_TIMEOUT` (3 s,
/// counted from when the client's window closed) leaves the writer's clock
/// (counted from when the send buffer filled, which can take a while
/// longer on a loaded machine) a wide margin.
fn stall_until_disconnected() -> (Disconnect, ClientId, SocketAddr, u64) {
    let (builder, disconnects) = reporting(plain_hub().keep_alive(None).write_timeout(ms(1000)));
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let id = only_client(&hub);
    let local = client.local_addr();

    let big = "x".repeat(64 * 1024);
    let mut published = 0u64;
    let mut disconnect = None;
    let reported = wait_until(Duration::from_secs(15), || {
        if let Ok(d) = disconnects.try_recv() {
            disconnect = Some(d);
            return true;
        }
        if published < 2000 {
            for _ in 0..4 {
                hub.notify(&big).expect("notify");
                published += 1;
            }
        }
        false
    });
    assert!(reported, "no disconnect after {published} events");
    assert!(wait_until(WAIT, || hub.stats().clients == 0));
    hub.shutdown().expect("shutdown");
    drop(client);
    (disconnect.expect("reported"), id, local, published)
}

#[test]
fn a_client_that_stops_reading_is_cut_off() {
    let (disconnect, id, local, published) = stall_until_disconnected();
    // The exact reason is checked by the next test.
    assert!(
        matches!(
            disconnect.reason,
            DisconnectReason::TimedOut | DisconnectReason::Closed
        ),
        "{disconnect:?}"
    );
    assert_eq!(disconnect.id, id);
    assert_eq!(disconnect.remote_addr, Some(local));
    assert!(
        disconnect.delivered < published,
        "delivered {} of {published}",
        disconnect.delivered
    );
}

#[test]
fn a_client_that_stops_reading_is_reported_timed_out() {
    let (disconnect, _, _, _) = stall_until_disconnected();
    assert_eq!(
        disconnect.reason,
        DisconnectReason::TimedOut,
        "the client is alive and connected; it only stopped reading: {disconnect:?}"
    );
}

#[test]
fn a_slow_client_disconnected_by_the_policy_is_reported_evicted() {
    let (builder, disconnects) = reporting(
        plain_hub()
            .keep_alive(None)
            .client_buffer(1)
            .slow_client(SlowClient::Disconnect),
    );
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let id = only_client(&hub);
    let local = client.local_addr();

    // The client does not read: its writer blocks, its queue of one frame
    // fills, and the next frame evicts it.
    let big = "y".repeat(64 * 1024);
    let mut published = 0u64;
    let evicted = wait_until(Duration::from_secs(15), || {
        if hub.stats().evicted > 0 {
            return true;
        }
        if published < 2000 {
            hub.notify(&big).expect("notify");
            published += 1;
        }
        false
    });
    assert!(evicted, "not evicted after {published} events");
    // Now it reads: it gets what was written and queued, then a clean end.
    // (With a queue of one frame the eviction may come before the socket
    // buffers are full; the outcome is the same.)
    assert_eq!(
        client.wait_end(Duration::from_secs(10)),
        Some(End::FinalChunk)
    );
    let events = client.take_parsed();
    let received = events.iter().filter(|e| e.event_type == "message").count() as u64;
    let gaps: Vec<&ParsedEvent> = events
        .iter()
        .filter(|e| e.event_type != "message")
        .collect();

    let disconnect = disconnects.recv_timeout(WAIT).expect("the hook runs");
    assert_eq!(disconnect.reason, DisconnectReason::Evicted);
    assert_eq!(disconnect.id, id);
    assert_eq!(disconnect.remote_addr, Some(local));
    assert!(disconnect.dropped >= 1, "{disconnect:?}");
    assert_eq!(disconnect.delivered, received, "delivered = what arrived");
    assert!(disconnect.delivered + disconnect.dropped <= published);
    // Before the last queued frame, the stream may say what it missed (not
    // when the writer took that frame before the miss was counted).
    assert!(gaps.len() <= 1, "{gaps:?}");
    for gap in gaps {
        assert_eq!(gap.event_type, "sse-gap");
        assert_eq!(gap.data, format!("missed {}", disconnect.dropped));
    }
    assert_eq!(hub.stats().evicted, 1);
    hub.shutdown().expect("shutdown");
}

#[test]
fn streams_ended_by_shutdown_are_reported_shutdown() {
    let (builder, disconnects) = reporting(plain_hub().keep_alive(None));
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut clients: Vec<Client> = (0..3)
        .map(|_| Client::connect(addr, "/events", "1.1", &[]).expect("connect"))
        .collect();
    let locals: Vec<SocketAddr> = clients.iter().map(Client::local_addr).collect();
    let mut ids: Vec<ClientId> = hub.clients().into_iter().map(|c| c.id).collect();
    ids.sort();
    hub.notify("one").expect("notify");
    hub.notify("two").expect("notify");
    for client in &mut clients {
        assert_eq!(datas(&read_events(client, 2, WAIT)), ["one", "two"]);
    }
    hub.shutdown().expect("shutdown");

    // Shutdown joins the writer threads, and the hook runs on them.
    let mut reported: Vec<Disconnect> = disconnects.try_iter().collect();
    reported.sort_by_key(|d| d.id);
    assert_eq!(reported.len(), 3, "{reported:?}");
    for disconnect in &reported {
        assert_eq!(disconnect.reason, DisconnectReason::Shutdown);
        assert_eq!(disconnect.delivered, 2);
        assert_eq!(disconnect.dropped, 0);
        let remote = disconnect.remote_addr.expect("an address");
        assert!(locals.contains(&remote), "{remote} is one of {locals:?}");
    }
    let reported_ids: Vec<ClientId> = reported.iter().map(|d| d.id).collect();
    assert_eq!(reported_ids, ids);
    for client in &mut clients {
        assert_eq!(client.wait_end(WAIT), Some(End::FinalChunk));
    }
}

#[test]
fn the_disconnect_hook_sees_the_hub_without_the_client() {
    // The hook looks at the hub through a handle set after building.
    let slot: Arc<OnceLock<Hub>> = Arc::default();
    let hook_slot = Arc::clone(&slot);
    let (tx, rx) = crossbeam_channel::unbounded();
    let hub = plain_hub()
        .keep_alive(Some(ms(20)))
        .on_disconnect(move |disconnect| {
            let hub = hook_slot.get().expect("the hub is set");
            let listed = hub.client_stats(disconnect.id).is_some();
            let reachable = hub.send_to(disconnect.id, &Event::new("x")).is_ok();
            let _ = tx.send((disconnect.id, listed, reachable));
        })
        .build()
        .expect("build the hub");
    slot.set(hub.clone()).expect("set once");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let clients: Vec<Client> = (0..20)
        .map(|_| Client::connect(addr, "/events", "1.1", &[]).expect("connect"))
        .collect();
    assert_eq!(hub.stats().clients, 20);
    // They leave; each writer notices at a keep-alive and runs the hook.
    drop(clients);
    let seen: Vec<(ClientId, bool, bool)> = (0..20)
        .map(|i| {
            rx.recv_timeout(WAIT)
                .unwrap_or_else(|_| panic!("disconnect {i} of 20 reported"))
        })
        .collect();
    let still: Vec<&(ClientId, bool, bool)> = seen
        .iter()
        .filter(|(_, listed, reachable)| *listed || *reachable)
        .collect();
    assert!(
        still.is_empty(),
        "the hook saw {} of 20 clients still in the hub (id, listed, send_to ok): {still:?}",
        still.len()
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_hook_that_panics_gives_its_stream_back() {
    // A panic in the application's hook ends that client's writer thread;
    // its stream's place (`max_clients`) and counts go back all the same,
    // and the server goes on serving.
    let (builder, disconnects) = reporting(plain_hub().max_clients(1).on_connect(|request| {
        if request.header("X-Panic").is_some() {
            panic!("the application's connect hook panicked");
        }
        Decision::accept()
    }));
    let hub = builder.build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    for round in 0..3 {
        // `tiny_http` answers a request dropped unanswered with a 500.
        let panicked =
            Client::connect(addr, "/events", "1.1", &[("X-Panic", "1")]).expect("an answer");
        assert_eq!(panicked.status, 500, "round {round}");
        assert!(
            wait_until(WAIT, || hub.stats().streams == 0),
            "round {round}: the stream's place is given back: {:?}",
            hub.stats()
        );
    }
    // The one place left is free: a client gets a stream and events.
    let mut client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(client.status, 200);
    hub.notify("after the panics").expect("notify");
    assert_eq!(
        client.expect_event(WAIT, "an event").data,
        "after the panics"
    );
    assert!(
        disconnects.try_recv().is_err(),
        "no stream began, none ended"
    );
    hub.shutdown().expect("shutdown");
}
