//! Automatic event ids: `<hub start ms in hex>-<n>`, `n` counting the hub's
//! events from 1 in hub order whatever route they took; another hub's ids
//! are unknown; no history, no ids.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sse_server::parse::EventParser;
use sse_server::{ClientId, Decision, Event, Hub, Server, SubscribeOptions};
use support::client::{Client, read_events};
use support::hubs::sub_events;
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(5);

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis()
}

/// Splits an automatic id into its hub prefix (as a number) and counter.
fn parts(id: &str) -> (u128, u64) {
    let (hex, n) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("id {id:?} is not <hex>-<n>"));
    assert!(
        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "id {id:?}: the prefix is hex"
    );
    assert!(
        hex.bytes().all(|b| !b.is_ascii_uppercase()),
        "id {id:?}: lowercase hex"
    );
    let started = u128::from_str_radix(hex, 16).expect("hex");
    let n = n
        .parse()
        .unwrap_or_else(|_| panic!("id {id:?}: the counter is a number"));
    (started, n)
}

#[test]
fn automatic_ids_are_the_hub_start_in_hex_and_a_counter_across_every_route() {
    init_logging();
    let before = now_ms();
    let hub = Hub::builder()
        .retry(None)
        .keep_alive(None)
        .on_connect(|_| Decision::accept().id(ClientId::new(5)).topics(["t"]))
        .build()
        .expect("build the hub");
    let after = now_ms();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    assert_eq!(client.status, 200);

    hub.notify("notify").expect("notify");
    hub.publish(&Event::new("publish").with_event("named").expect("name"))
        .expect("publish");
    hub.publish_to("t", &Event::new("publish_to"))
        .expect("publish_to");
    hub.send_to(ClientId::new(5), &Event::new("send_to"))
        .expect("send_to");
    // Events the client does not get still count.
    hub.publish_to("other", &Event::new("elsewhere"))
        .expect("publish_to");
    hub.notify("after").expect("notify");
    // A publisher id replaces the automatic one but still counts.
    hub.publish(&Event::new("own").with_id("mine").expect("id"))
        .expect("publish");
    hub.notify("last").expect("notify");

    let got = read_events(&mut client, 7, WAIT);
    let datas: Vec<&str> = got.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(
        datas,
        [
            "notify",
            "publish",
            "publish_to",
            "send_to",
            "after",
            "own",
            "last"
        ]
    );
    assert_eq!(got[5].last_event_id, "mine");
    let mut started = None;
    let mut counters = Vec::new();
    for event in got.iter().filter(|e| e.data != "own") {
        let (hub_ms, n) = parts(&event.last_event_id);
        assert!(
            (before..=after).contains(&hub_ms),
            "{}: the prefix {hub_ms} is the hub's start time ({before}..={after})",
            event.last_event_id
        );
        assert_eq!(*started.get_or_insert(hub_ms), hub_ms, "one prefix per hub");
        counters.push(n);
    }
    assert_eq!(counters, [1, 2, 3, 4, 6, 8]);
    // Exactly one id line per event on the wire.
    let body = String::from_utf8_lossy(client.body()).into_owned();
    assert_eq!(body.matches("id: ").count(), 7, "{body}");
    hub.shutdown().expect("shutdown");
}

#[test]
fn the_counter_follows_hub_order_under_concurrent_publishers() {
    // Room for every event even if none are batched.
    let hub = Hub::builder()
        .client_buffer(1024)
        .build()
        .expect("build the hub");
    let sub = hub.subscribe().expect("subscribe");
    let publishers: Vec<_> = (0..4)
        .map(|p| {
            let hub = hub.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    hub.notify(format!("{p}-{i}")).expect("notify");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("a publisher panicked");
    }
    let got = sub_events(&sub, &mut EventParser::new(), 200);
    let counters: Vec<u64> = got.iter().map(|e| parts(&e.last_event_id).1).collect();
    let want: Vec<u64> = (1..=200).collect();
    assert_eq!(counters, want, "1, 2, 3, ... in the order received");
    // Each publisher's own events stay in its order.
    for p in 0..4 {
        let mine: Vec<String> = got
            .iter()
            .map(|e| e.data.clone())
            .filter(|d| d.starts_with(&format!("{p}-")))
            .collect();
        let want: Vec<String> = (0..50).map(|i| format!("{p}-{i}")).collect();
        assert_eq!(mine, want);
    }
    hub.shutdown().expect("shutdown");
}

/// Subscribes, publishes `n` events and returns their ids.
fn ids_of(hub: &Hub, n: usize) -> Vec<String> {
    let sub = hub.subscribe().expect("subscribe");
    for i in 0..n {
        hub.notify(i.to_string()).expect("notify");
    }
    sub_events(&sub, &mut EventParser::new(), n)
        .into_iter()
        .map(|e| e.last_event_id)
        .collect()
}

#[test]
fn an_id_from_another_hub_is_unknown() {
    let first = Hub::new().expect("build the first hub");
    let first_ids = ids_of(&first, 5);
    let (first_ms, _) = parts(&first_ids[0]);
    // Another run of the program starts at least a millisecond later.
    assert!(
        wait_until(WAIT, || now_ms() > first_ms),
        "the clock moves on"
    );
    let second = Hub::new().expect("build the second hub");
    let second_ids = ids_of(&second, 5);
    let (second_ms, _) = parts(&second_ids[0]);
    assert_ne!(first_ms, second_ms, "the prefixes differ");
    assert_eq!(
        first_ids.iter().map(|id| parts(id).1).collect::<Vec<_>>(),
        second_ids.iter().map(|id| parts(id).1).collect::<Vec<_>>(),
        "both count from 1"
    );

    // The second hub's own id resumes...
    let own = second
        .subscribe_with(SubscribeOptions::new().last_event_id(second_ids[2].as_str()))
        .expect("subscribe");
    let got = sub_events(&own, &mut EventParser::new(), 2);
    assert_eq!(got[0].data, "3");
    // ...the first hub's same-numbered id does not.
    let foreign = second
        .subscribe_with(SubscribeOptions::new().last_event_id(first_ids[2].as_str()))
        .expect("subscribe");
    let got = sub_events(&foreign, &mut EventParser::new(), 1);
    assert_eq!(got[0].event_type, "sse-gap");
    assert_eq!(got[0].data, "unknown-id");
    assert_eq!(
        got[0].last_event_id, second_ids[4],
        "the second hub's newest id"
    );
    first.shutdown().expect("shutdown");
    second.shutdown().expect("shutdown");
}

#[test]
fn no_history_means_no_automatic_ids() {
    for (events, bytes) in [(0, 0), (0, 1 << 20), (1000, 0)] {
        let hub = Hub::builder()
            .history_events(events)
            .history_bytes(bytes)
            .history_age(None)
            .retry(None)
            .keep_alive(None)
            .build()
            .expect("build the hub");
        let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
        let mut client =
            Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
        hub.notify("a").expect("notify");
        hub.publish(&Event::new("b").with_id("own").expect("id"))
            .expect("publish");
        hub.notify("c").expect("notify");
        let got = read_events(&mut client, 3, WAIT);
        let ids: Vec<&str> = got.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, ["", "own", "own"], "history({events}, {bytes}, None)");
        assert_eq!(
            String::from_utf8_lossy(client.body()),
            "data: a\n\nid: own\ndata: b\n\ndata: c\n\n",
            "history({events}, {bytes}, None): the bytes as published"
        );
        assert_eq!(hub.stats().history_events, 0);
        hub.shutdown().expect("shutdown");
    }
}
