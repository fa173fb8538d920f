//! `send_to`: one client only, by the id `hub.clients()` lists or one the
//! connect hook chose; an id that is gone is `Error::UnknownClient`; a
//! second connection choosing an id in use gets `409 Conflict`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use sse_server::{ClientId, Decision, Error, Event, Hub, Server, SubscribeOptions};
use support::client::{Client, open_stream, read_events};
use support::events::datas;
use support::hubs::{client_ids, new_client_id, plain_hub};
use support::init_logging;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

/// Connects a stream and returns it with the id the hub gave it.
fn connect_new(hub: &Hub, addr: SocketAddr) -> (Client, ClientId) {
    let before = client_ids(hub);
    let client = open_stream(addr, "/events", &[]);
    (client, new_client_id(hub, &before))
}

#[test]
fn send_to_reaches_only_that_client() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut clients: Vec<(Client, ClientId)> = (0..3).map(|_| connect_new(&hub, addr)).collect();
    let sub = hub.subscribe().expect("subscribe");

    let target = clients[1].1;
    hub.send_to(
        target,
        &Event::new("just for you")
            .with_event("private")
            .expect("name"),
    )
    .expect("send_to a connected stream");
    hub.send_to(sub.id(), &Event::new("for the subscription"))
        .expect("send_to a subscription");
    hub.notify("marker").expect("notify");

    for (i, (client, id)) in clients.iter_mut().enumerate() {
        if *id == target {
            let private = client.expect_event(WAIT, "the private event");
            assert_eq!(private.event_type, "private");
            assert_eq!(private.data, "just for you");
        }
        let marker = client.expect_event(WAIT, "the marker");
        assert_eq!(
            marker.data, "marker",
            "client {i} ({id}): nothing before the broadcast marker"
        );
    }
    let mut bytes = Vec::new();
    while bytes.len() < b"data: for the subscription\n\ndata: marker\n\n".len() {
        let frame = sub.recv_timeout(WAIT).expect("open").expect("a frame");
        bytes.extend_from_slice(frame.as_bytes());
    }
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        "data: for the subscription\n\ndata: marker\n\n"
    );
    let stats = hub.client_stats(target).expect("the target is connected");
    assert_eq!(stats.dropped, 0);
    hub.shutdown().expect("shutdown");
}

#[test]
fn an_id_that_is_gone_or_never_was_is_unknown() {
    let hub = plain_hub()
        .keep_alive(Some(ms(50)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let never = ClientId::new(1 << 62);
    match hub.send_to(never, &Event::new("x")) {
        Err(Error::UnknownClient(id)) => assert_eq!(id, never),
        other => panic!("send_to an id that never was: {other:?}"),
    }

    // A stream that leaves (noticed at a keep-alive).
    let (mut client, id) = connect_new(&hub, addr);
    hub.send_to(id, &Event::new("while here")).expect("send_to");
    assert_eq!(client.expect_event(WAIT, "an event").data, "while here");
    drop(client);
    assert!(
        wait_until(WAIT, || hub.client_stats(id).is_none()),
        "the stream that left is removed"
    );
    match hub.send_to(id, &Event::new("too late")) {
        Err(Error::UnknownClient(gone)) => assert_eq!(gone, id),
        other => panic!("send_to a stream that left: {other:?}"),
    }

    // A subscription that is dropped.
    let sub = hub.subscribe().expect("subscribe");
    let sub_id = sub.id();
    hub.send_to(sub_id, &Event::new("x")).expect("send_to");
    drop(sub);
    assert!(
        wait_until(WAIT, || hub.client_stats(sub_id).is_none()),
        "the dropped subscription is removed"
    );
    assert!(matches!(
        hub.send_to(sub_id, &Event::new("x")),
        Err(Error::UnknownClient(gone)) if gone == sub_id
    ));
    hub.shutdown().expect("shutdown");
}

/// A client the hub numbers does not wait for the hub thread's answer
/// unless its number is already taken by an id chosen elsewhere: then it is
/// refused like any client whose id is in use, and the holder keeps it.
#[test]
fn a_number_the_hub_picks_that_a_chosen_id_holds_is_refused() {
    let hub = hub_with_user_ids();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    // The hub numbers every stream it accepts, from 1: this one takes 1
    // and chooses 2, the number the next one gets.
    let mut two = open_stream(addr, "/events?user=2", &[]);
    let mut second = Client::connect(addr, "/events", "1.1", &[]).expect("request");
    assert_eq!(second.status, 409);
    assert_eq!(second.read_to_end(WAIT), b"client id in use\n");
    let mut third = open_stream(addr, "/events", &[]);
    assert_eq!(sorted_ids(&hub), [ClientId::new(2), ClientId::new(3)]);
    hub.send_to(ClientId::new(2), &Event::new("for 2"))
        .expect("send_to");
    hub.notify("marker").expect("notify");
    assert_eq!(datas(&read_events(&mut two, 2, WAIT)), ["for 2", "marker"]);
    assert_eq!(datas(&read_events(&mut third, 1, WAIT)), ["marker"]);

    // The same for subscriptions: the next number is 4.
    let chosen = hub
        .subscribe_with(SubscribeOptions::new().id(ClientId::new(4)))
        .expect("subscribe with 4");
    assert!(matches!(
        hub.subscribe(),
        Err(Error::IdInUse(id)) if id == ClientId::new(4)
    ));
    let numbered = hub.subscribe().expect("subscribe");
    assert_eq!(numbered.id(), ClientId::new(5));
    assert_eq!(
        sorted_ids(&hub),
        [2, 3, 4, 5].map(ClientId::new),
        "the refused ones are not clients"
    );
    drop((chosen, numbered));
    hub.shutdown().expect("shutdown");
}

/// A hub whose connect hook gives a client the id in its `user` query
/// parameter, and lets the hub number the others.
fn hub_with_user_ids() -> Hub {
    plain_hub()
        .keep_alive(None)
        .on_connect(|request| match request.query_values("user").first() {
            Some(user) => Decision::accept().id(ClientId::new(user.parse().expect("a number"))),
            None => Decision::accept(),
        })
        .build()
        .expect("build the hub")
}

fn sorted_ids(hub: &Hub) -> Vec<ClientId> {
    let mut ids = client_ids(hub);
    ids.sort();
    ids
}

#[test]
fn an_id_chosen_by_the_connect_hook_is_reachable_and_unique() {
    let hub = hub_with_user_ids();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut seven = open_stream(addr, "/events?user=7", &[]);
    let mut eight = open_stream(addr, "/events?user=8", &[]);
    let mut anonymous = open_stream(addr, "/events", &[]);
    let listed = sorted_ids(&hub);
    assert!(listed.contains(&ClientId::new(7)) && listed.contains(&ClientId::new(8)));
    assert_eq!(listed.len(), 3, "{listed:?}");

    hub.send_to(ClientId::new(7), &Event::new("for 7"))
        .expect("send_to the chosen id");
    hub.notify("marker").expect("notify");
    assert_eq!(
        datas(&read_events(&mut seven, 2, WAIT)),
        ["for 7", "marker"]
    );
    assert_eq!(datas(&read_events(&mut eight, 1, WAIT)), ["marker"]);
    assert_eq!(datas(&read_events(&mut anonymous, 1, WAIT)), ["marker"]);

    // The same id again: 409, and the first connection keeps it.
    let mut second = Client::connect(addr, "/events?user=7", "1.1", &[]).expect("request");
    assert_eq!(second.status, 409);
    assert_ne!(second.header("Content-Type"), Some("text/event-stream"));
    let body = second.read_to_end(WAIT);
    assert_eq!(body, b"client id in use\n");
    assert_eq!(
        hub.stats().clients,
        3,
        "the refused connection is not a client"
    );
    // A subscription choosing it is refused too.
    assert!(matches!(
        hub.subscribe_with(SubscribeOptions::new().id(ClientId::new(7))),
        Err(Error::IdInUse(id)) if id == ClientId::new(7)
    ));
    hub.send_to(ClientId::new(7), &Event::new("still 7"))
        .expect("send_to");
    assert_eq!(datas(&read_events(&mut seven, 1, WAIT)), ["still 7"]);

    // Once 7 has left, its id can be taken again.
    // Without keep-alives only events reveal that it left: publish until
    // a write fails.
    drop(seven);
    assert!(
        wait_until(WAIT, || {
            hub.notify("reveal").expect("notify");
            hub.client_stats(ClientId::new(7)).is_none()
        }),
        "client 7 is removed once a write fails"
    );
    let mut again = open_stream(addr, "/events?user=7", &[]);
    hub.send_to(ClientId::new(7), &Event::new("new 7"))
        .expect("send_to");
    assert_eq!(datas(&read_events(&mut again, 1, WAIT)), ["new 7"]);
    hub.shutdown().expect("shutdown");
}
