//! The replay history: a client that reconnects with its last event id
//! (`Last-Event-ID` header or `?lastEventId=`) gets exactly the events it
//! missed, then the live ones; an id the history cannot resume from gets a
//! gap event carrying the newest id. Eviction by count, bytes and age,
//! publisher ids, subscriptions, and the gap event's name.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use sse_server::crossbeam_channel;
use sse_server::parse::{EventParser, ParsedEvent};
use sse_server::{Decision, Error, Event, Hub, Server, SubscribeOptions};
use support::client::{Client, open_stream, read_events};
use support::events::datas;
use support::hubs::sub_events;
use support::init_logging;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

/// The `<n>` of an automatic id `<hex>-<n>`.
fn seq(id: &str) -> u64 {
    let (hex, n) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("id {id:?} is not <hex>-<n>"));
    assert!(
        !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "id {id:?}: the prefix is not hex"
    );
    n.parse()
        .unwrap_or_else(|_| panic!("id {id:?}: the counter is not a number"))
}

/// The `<hex>-` of an automatic id.
fn prefix(id: &str) -> &str {
    let at = id
        .find('-')
        .unwrap_or_else(|| panic!("id {id:?} has no '-'"));
    &id[..=at]
}

/// A hub with the protocol defaults (automatic ids, a 1000-event history)
/// but no `retry:` line and no keep-alives, so bodies hold only events.
fn hub_with_history(events: usize, bytes: usize, age: Option<Duration>) -> Hub {
    Hub::builder()
        .history_events(events)
        .history_bytes(bytes)
        .history_age(age)
        .retry(None)
        .keep_alive(None)
        .build()
        .expect("build the hub")
}

/// Opens a stream resuming from `last_id` with the header.
fn resume(addr: std::net::SocketAddr, last_id: &str) -> Client {
    open_stream(addr, "/events", &[("Last-Event-ID", last_id)])
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

/// Asserts that a stream's next event is the live `marker` (nothing was
/// replayed before it and no gap was reported).
fn expect_marker(client: &mut Client, marker: &str, what: &str) -> ParsedEvent {
    let event = client.expect_event(WAIT, what);
    assert_eq!(
        (event.event_type.as_str(), event.data.as_str()),
        ("message", marker),
        "{what}: the next event is the live marker"
    );
    event
}

/// Publishes `data` and waits until the hub has taken it in (a
/// subscription received it), so that it counts as the newest event.
fn publish_and_wait(hub: &Hub, data: &str) {
    let observer = hub.subscribe().expect("subscribe");
    hub.notify(data).expect("notify");
    let got = sub_events(&observer, &mut EventParser::new(), 1);
    assert_eq!(got[0].data, data);
}

#[derive(Clone, Copy, Debug)]
enum Form {
    Header,
    Query,
}

/// A client sees 10 events and leaves; 20 more are published while it is
/// away, 15 more while its reconnect is in the connect hook (before it is
/// registered) and 15 more concurrently with its registration; then 5 live
/// ones. It must receive exactly events 10..65, in order.
fn reconnect_while_publishing(form: Form) {
    // The hook holds the reconnect (the request with a last event id) until
    // the publisher has published 15 events: those certainly fall between
    // the client's connect and its registration.
    let (connecting_tx, connecting_rx) = crossbeam_channel::bounded::<()>(1);
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let hub = Hub::builder()
        .retry(None)
        .keep_alive(None)
        .on_connect(move |request| {
            if request.last_event_id().is_some() {
                let _ = connecting_tx.send(());
                let _ = go_rx.recv_timeout(WAIT);
            }
            Decision::accept()
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let mut first = open_stream(addr, "/events", &[]);
    for i in 0..10 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = read_events(&mut first, 10, WAIT);
    assert_eq!(datas(&seen), numbered(0..10));
    let last_id = seen[9].last_event_id.clone();
    assert_eq!(seq(&last_id), 10, "automatic ids count events from 1");
    drop(first);

    for i in 10..30 {
        hub.notify(i.to_string()).expect("notify");
    }
    let publisher = {
        let hub = hub.clone();
        thread::spawn(move || {
            connecting_rx
                .recv_timeout(WAIT)
                .expect("the reconnect reaches the connect hook");
            for i in 30..45 {
                hub.notify(i.to_string()).expect("notify");
            }
            go_tx.send(()).expect("release the hook");
            for i in 45..60 {
                hub.notify(i.to_string()).expect("notify");
            }
        })
    };
    let mut second = match form {
        Form::Header => resume(addr, &last_id),
        Form::Query => open_stream(addr, &format!("/events?lastEventId={last_id}"), &[]),
    };
    publisher.join().expect("the publisher panicked");
    for i in 60..65 {
        hub.notify(i.to_string()).expect("notify");
    }

    let got = read_events(&mut second, 55, WAIT);
    let types: Vec<&str> = got.iter().map(|e| e.event_type.as_str()).collect();
    assert!(
        types.iter().all(|t| *t == "message"),
        "{form:?}: no gap event: {types:?}"
    );
    assert_eq!(
        datas(&got),
        numbered(10..65),
        "{form:?}: the missed events, then the live ones, once each, in order"
    );
    for (i, event) in got.iter().enumerate() {
        assert_eq!(
            prefix(&event.last_event_id),
            prefix(&last_id),
            "{form:?}: same hub"
        );
        assert_eq!(
            seq(&event.last_event_id),
            11 + i as u64,
            "{form:?}: ids strictly increasing, no gap, no duplicate"
        );
    }
    hub.notify("end").expect("notify");
    expect_marker(&mut second, "end", "nothing after the live events");
    hub.shutdown().expect("shutdown");
}

#[test]
fn reconnect_with_the_header_gets_exactly_the_missed_events_then_live_ones() {
    init_logging();
    reconnect_while_publishing(Form::Header);
}

#[test]
fn reconnect_with_the_query_parameter_gets_exactly_the_missed_events_then_live_ones() {
    reconnect_while_publishing(Form::Query);
}

#[test]
fn the_header_name_is_case_insensitive_and_wins_over_the_query() {
    let hub = hub_with_history(1000, 1 << 20, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..5 {
        hub.notify(i.to_string()).expect("notify");
    }
    let ids: Vec<String> = read_events(&mut observer, 5, WAIT)
        .into_iter()
        .map(|e| e.last_event_id)
        .collect();

    let mut lower = open_stream(addr, "/events", &[("last-event-id", &ids[2])]);
    let got = read_events(&mut lower, 2, WAIT);
    assert_eq!(datas(&got), ["3", "4"], "a lowercase header name resumes");

    // Header says event 1, query says garbage: the header counts.
    let path = "/events?lastEventId=garbage";
    let mut both = open_stream(addr, path, &[("Last-Event-ID", &ids[1])]);
    let got = read_events(&mut both, 3, WAIT);
    assert_eq!(
        datas(&got),
        ["2", "3", "4"],
        "the header wins over the query"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn an_evicted_id_gets_a_gap_event_with_the_newest_id_then_live_events() {
    let hub = hub_with_history(10, 1 << 20, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..30 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = read_events(&mut observer, 30, WAIT);
    let ids: Vec<String> = seen.iter().map(|e| e.last_event_id.clone()).collect();
    let newest = ids[29].clone();
    assert_eq!(
        hub.stats().history_events,
        10,
        "the history keeps 10 events"
    );

    // The oldest id the history can resume from is that of the event just
    // before the oldest one kept (index 19: events 20..29 are kept).
    let mut edge = resume(addr, &ids[19]);
    let got = read_events(&mut edge, 10, WAIT);
    assert_eq!(datas(&got), numbered(20..30), "resume from the edge");

    for (what, id) in [("first id", &ids[0]), ("just evicted", &ids[18])] {
        let mut client = resume(addr, id);
        let gap = client.expect_event(WAIT, "a gap event");
        assert_eq!(gap.event_type, "sse-gap", "{what}");
        assert_eq!(gap.data, "unknown-id", "{what}");
        assert_eq!(
            gap.last_event_id, newest,
            "{what}: the gap carries the newest id"
        );
    }

    let mut gapped = resume(addr, &ids[0]);
    let gap = gapped.expect_event(WAIT, "a gap event");
    assert_eq!(gap.event_type, "sse-gap");
    // Reconnecting with the gap's id resumes: nothing to replay, no gap.
    let mut after_gap = resume(addr, &gap.last_event_id);
    hub.notify("live-1").expect("notify");
    let live = expect_marker(&mut gapped, "live-1", "the live event after the gap");
    assert_eq!(seq(&live.last_event_id), 31);
    let live = expect_marker(&mut after_gap, "live-1", "resuming from the gap's id");
    assert_eq!(seq(&live.last_event_id), 31);
    expect_marker(&mut observer, "live-1", "the observer");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_garbage_or_unknown_id_gets_a_gap_event_then_live_events() {
    let hub = hub_with_history(1000, 1 << 20, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // Before any event: a gap without an id.
    let mut early = resume(addr, "garbage");
    let gap = early.expect_event(WAIT, "a gap event on a fresh hub");
    assert_eq!(
        (gap.event_type.as_str(), gap.data.as_str()),
        ("sse-gap", "unknown-id")
    );
    assert_eq!(gap.last_event_id, "", "no event yet, so no id to give");

    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..3 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = read_events(&mut observer, 3, WAIT);
    let newest = seen[2].last_event_id.clone();
    let hub_prefix = prefix(&newest).to_owned();
    let future = format!("{hub_prefix}999");
    let not_a_number = format!("{hub_prefix}x1");
    let other_hub = format!("1{hub_prefix}1");
    // Numbers the hub never writes: a sign, a leading zero.
    let plus = format!("{hub_prefix}+1");
    let zero = format!("{hub_prefix}01");
    let garbage = [
        "garbage",
        "42",
        "-1",
        future.as_str(),
        not_a_number.as_str(),
        other_hub.as_str(),
        plus.as_str(),
        zero.as_str(),
    ];
    let mut clients: Vec<(&str, Client)> = Vec::new();
    for id in garbage {
        let mut client = resume(addr, id);
        let gap = client.expect_event(WAIT, &format!("a gap event for {id:?}"));
        assert_eq!(gap.event_type, "sse-gap", "{id:?}");
        assert_eq!(gap.data, "unknown-id", "{id:?}");
        assert_eq!(gap.last_event_id, newest, "{id:?}");
        clients.push((id, client));
    }
    // The query form too (percent-encoded garbage).
    let mut query = open_stream(addr, "/events?lastEventId=%00%FF%20nope", &[]);
    let gap = query.expect_event(WAIT, "a gap event for a query id");
    assert_eq!(gap.event_type, "sse-gap");
    assert_eq!(gap.last_event_id, newest);
    clients.push(("query", query));

    let early_live = read_events(&mut early, 3, WAIT);
    assert_eq!(datas(&early_live), numbered(0..3), "live after its gap");
    hub.notify("live").expect("notify");
    expect_marker(&mut early, "live", "the early client");
    for (id, client) in &mut clients {
        let live = expect_marker(client, "live", &format!("after the gap for {id:?}"));
        assert_eq!(seq(&live.last_event_id), 4);
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn the_byte_limit_evicts_old_events() {
    const CAP: usize = 200;
    let hub = hub_with_history(1000, CAP, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..20 {
        hub.notify(format!("event {i:02}")).expect("notify");
    }
    let seen = read_events(&mut observer, 20, WAIT);
    let ids: Vec<String> = seen.iter().map(|e| e.last_event_id.clone()).collect();
    let stats = hub.stats();
    assert!(
        stats.history_bytes <= CAP,
        "history bytes {} within {CAP}",
        stats.history_bytes
    );
    // Each encoded event is about 30 bytes: far fewer than 20 fit.
    let kept = stats.history_events;
    assert!((2..10).contains(&kept), "{kept} events kept in {CAP} bytes");
    // One more event would not have fitted.
    let one = format!("id: {}\ndata: event 00\n\n", ids[0]).len();
    assert!(
        stats.history_bytes + one > CAP,
        "{} bytes kept, so another {one} would not fit",
        stats.history_bytes
    );

    let edge = 20 - kept - 1;
    let mut client = resume(addr, &ids[edge]);
    let got = read_events(&mut client, kept, WAIT);
    let want: Vec<String> = (20 - kept..20).map(|i| format!("event {i:02}")).collect();
    assert_eq!(datas(&got), want, "resume from the oldest resumable id");

    let mut evicted = resume(addr, &ids[edge - 1]);
    let gap = evicted.expect_event(WAIT, "a gap event");
    assert_eq!(gap.event_type, "sse-gap", "an id evicted by the byte limit");
    assert_eq!(gap.last_event_id, ids[19]);
    hub.shutdown().expect("shutdown");
}

#[test]
fn an_event_larger_than_the_byte_limit_is_not_kept_and_ends_replay_across_it() {
    let hub = hub_with_history(1000, 200, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    hub.notify("a").expect("notify");
    hub.notify("b").expect("notify");
    hub.notify("x".repeat(300)).expect("notify");
    hub.notify("c").expect("notify");
    let seen = read_events(&mut observer, 4, WAIT);
    assert_eq!(seen[2].data.len(), 300, "the big event is delivered live");
    assert_eq!(hub.stats().history_events, 1, "only c is kept");

    let mut before = resume(addr, &seen[1].last_event_id);
    let gap = before.expect_event(WAIT, "a gap: the big event is not kept");
    assert_eq!(gap.event_type, "sse-gap");
    assert_eq!(gap.last_event_id, seen[3].last_event_id);

    let mut after = resume(addr, &seen[2].last_event_id);
    let replayed = after.expect_event(WAIT, "c, replayed");
    assert_eq!(replayed.data, "c");
    assert_eq!(replayed.last_event_id, seen[3].last_event_id);
    hub.shutdown().expect("shutdown");
}

#[test]
fn events_older_than_the_age_limit_are_not_replayed() {
    const AGE: Duration = Duration::from_millis(1000);
    let hub = hub_with_history(1000, 1 << 20, Some(AGE));
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..5 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = read_events(&mut observer, 5, WAIT);
    // Every event was kept (admitted) before the observer received it.
    let received = Instant::now();
    let ids: Vec<String> = seen.iter().map(|e| e.last_event_id.clone()).collect();

    // Young enough: replayed (this takes milliseconds; the limit is 1 s).
    let young = hub
        .subscribe_with(SubscribeOptions::new().last_event_id(ids[1].as_str()))
        .expect("subscribe");
    let got = sub_events(&young, &mut EventParser::new(), 3);
    assert!(
        received.elapsed() < AGE,
        "the machine is too slow for this test: {:?}",
        received.elapsed()
    );
    assert_eq!(datas(&got), ["2", "3", "4"], "young events are replayed");
    drop(young);

    // Wait (bounded, on the clock) until every event is older than the
    // limit. The hub drops them when it next looks at the history.
    assert!(wait_until(AGE * 5, || received.elapsed() > AGE + ms(20)));
    let mut late = resume(addr, &ids[1]);
    let gap = late.expect_event(WAIT, "a gap: the events aged out");
    assert_eq!(gap.event_type, "sse-gap");
    assert_eq!(gap.data, "unknown-id");
    assert_eq!(
        gap.last_event_id, ids[4],
        "the gap still carries the newest id"
    );

    // The newest id still resumes: nothing after it was lost.
    let mut newest = resume(addr, &ids[4]);
    hub.notify("live").expect("notify");
    expect_marker(&mut newest, "live", "resuming from the newest id");
    expect_marker(&mut late, "live", "after the gap");
    expect_marker(&mut observer, "live", "the observer");
    assert!(
        wait_until(WAIT, || hub.stats().history_events == 1),
        "only the live event is in the history: {:?}",
        hub.stats()
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn stats_follow_age_eviction_done_by_a_reconnect() {
    const AGE: Duration = Duration::from_millis(200);
    let hub = hub_with_history(1000, 1 << 20, Some(AGE));
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for i in 0..5 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = read_events(&mut observer, 5, WAIT);
    let received = Instant::now();
    assert_eq!(hub.stats().history_events, 5);
    assert!(wait_until(AGE * 10, || received.elapsed() > AGE + ms(20)));
    // The reconnect makes the hub expire every event...
    let mut late = resume(addr, &seen[0].last_event_id);
    let gap = late.expect_event(WAIT, "a gap: the events aged out");
    assert_eq!(gap.event_type, "sse-gap");
    // ...so the history is empty, and the counters should say so.
    let stats = hub.stats();
    assert_eq!(
        (stats.history_events, stats.history_bytes),
        (0, 0),
        "the history is empty after the age eviction: {stats:?}"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn publisher_ids_are_kept_on_the_wire_and_resumable() {
    let hub = hub_with_history(1000, 1 << 20, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events", &[]);
    for (data, id) in [("a", "abc-1"), ("b", "abc-2"), ("c", "abc-3")] {
        let event = Event::new(data).with_id(id).expect("a valid id");
        hub.publish(&event).expect("publish");
    }
    hub.notify("d").expect("notify");
    let seen = read_events(&mut observer, 4, WAIT);
    let ids: Vec<&str> = seen.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(&ids[..3], ["abc-1", "abc-2", "abc-3"]);
    assert_eq!(
        seq(ids[3]),
        4,
        "the hub's counter counts the publisher's events"
    );
    let auto = ids[3].to_owned();
    // The exact bytes: one id line per event, the publisher's unchanged.
    let want = format!(
        "id: abc-1\ndata: a\n\nid: abc-2\ndata: b\n\nid: abc-3\ndata: c\n\nid: {auto}\ndata: d\n\n"
    );
    assert_eq!(String::from_utf8_lossy(observer.body()), want);

    for (from, want) in [
        ("abc-1", &["b", "c", "d"][..]),
        ("abc-3", &["d"][..]),
        ("abc-2", &["c", "d"][..]),
    ] {
        let mut client = resume(addr, from);
        let got = read_events(&mut client, want.len(), WAIT);
        assert_eq!(datas(&got), want, "resume from {from}");
        assert_eq!(got.last().expect("events").last_event_id, auto);
    }
    let mut newest = resume(addr, &auto);
    let mut unknown = resume(addr, "abc-4");
    hub.publish(&Event::new("e").with_id("abc-5").expect("a valid id"))
        .expect("publish");
    let live = expect_marker(&mut newest, "e", "nothing after the newest id");
    assert_eq!(live.last_event_id, "abc-5");
    let gap = unknown.expect_event(WAIT, "a gap for an unknown publisher id");
    assert_eq!(gap.event_type, "sse-gap");
    assert_eq!(gap.last_event_id, auto, "the newest event at the time");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_publisher_id_evicted_from_the_history_is_unknown() {
    let hub = hub_with_history(2, 1 << 20, None);
    let sub = hub.subscribe().expect("subscribe");
    let mut parser = EventParser::new();
    for i in 1..=4 {
        let event = Event::new(i.to_string()).with_id(format!("p{i}"));
        hub.publish(&event.expect("a valid id")).expect("publish");
    }
    sub_events(&sub, &mut parser, 4);
    // p3 and p4 are kept.
    let kept = hub
        .subscribe_with(SubscribeOptions::new().last_event_id("p3"))
        .expect("subscribe");
    let got = sub_events(&kept, &mut EventParser::new(), 1);
    assert_eq!(datas(&got), ["4"]);
    for gone in ["p1", "p2"] {
        let gone_sub = hub
            .subscribe_with(SubscribeOptions::new().last_event_id(gone))
            .expect("subscribe");
        let got = sub_events(&gone_sub, &mut EventParser::new(), 1);
        assert_eq!(got[0].event_type, "sse-gap", "{gone} left the history");
        assert_eq!(seq(&got[0].last_event_id), 4, "the newest event's number");
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn subscribe_with_a_last_event_id_replays_then_goes_live() {
    let hub = hub_with_history(1000, 1 << 20, None);
    let first = hub.subscribe().expect("subscribe");
    for i in 0..10 {
        hub.notify(i.to_string()).expect("notify");
    }
    let seen = sub_events(&first, &mut EventParser::new(), 10);
    let resumed = hub
        .subscribe_with(SubscribeOptions::new().last_event_id(seen[5].last_event_id.as_str()))
        .expect("subscribe");
    // The replay is queued before `subscribe_with` returns.
    assert!(
        !resumed.receiver().is_empty(),
        "the replay is already queued"
    );
    hub.notify("10").expect("notify");
    let mut parser = EventParser::new();
    let got = sub_events(&resumed, &mut parser, 5);
    assert_eq!(datas(&got), numbered(6..11));
    let numbers: Vec<u64> = got.iter().map(|e| seq(&e.last_event_id)).collect();
    assert_eq!(numbers, [7, 8, 9, 10, 11]);
    assert!(resumed.try_recv().expect("open").is_none(), "nothing more");

    let gapped = hub
        .subscribe_with(SubscribeOptions::new().last_event_id("nope"))
        .expect("subscribe");
    let got = sub_events(&gapped, &mut EventParser::new(), 1);
    assert_eq!(got[0].event_type, "sse-gap");
    assert_eq!(got[0].data, "unknown-id");
    assert_eq!(seq(&got[0].last_event_id), 11);
    hub.shutdown().expect("shutdown");
}

#[test]
fn the_gap_event_can_be_renamed() {
    let hub = Hub::builder()
        .gap_event(Some("resync".into()))
        .retry(None)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    publish_and_wait(&hub, "x");
    let mut client = resume(server.local_addr(), "nope");
    let gap = client.expect_event(WAIT, "the renamed gap event");
    assert_eq!(gap.event_type, "resync");
    assert_eq!(gap.data, "unknown-id");
    assert_eq!(seq(&gap.last_event_id), 1);
    hub.shutdown().expect("shutdown");
}

#[test]
fn without_a_gap_event_name_the_gap_is_a_comment() {
    let hub = Hub::builder()
        .gap_event(None)
        .retry(None)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    publish_and_wait(&hub, "x");
    let mut client = resume(server.local_addr(), "nope");
    let comment = b": sse-gap unknown-id\n";
    assert!(
        client.read_raw_len(WAIT, comment.len()),
        "the gap comment arrives"
    );
    assert_eq!(client.body(), comment, "a comment line, no event");
    hub.notify("live").expect("notify");
    let live = expect_marker(&mut client, "live", "the live event after the comment");
    assert_eq!(seq(&live.last_event_id), 2);
    assert_eq!(client.parser().comments(), 1);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_gap_event_name_with_a_line_break_or_that_reaches_onmessage_is_refused() {
    // An empty event name, or `message`, is what a browser hands to
    // `onmessage`: the gap would pass for an event of the application's.
    for name in ["a\nb", "a\rb", "gap\r\ndata: forged", "", "message"] {
        let built = Hub::builder().gap_event(Some(name.into())).build();
        assert!(
            matches!(built, Err(Error::InvalidField { field: "event", .. })),
            "{name:?}: {built:?}"
        );
    }
}

#[test]
fn every_id_with_id_takes_comes_back_in_last_event_id() {
    // `Event::with_id` takes only ids that come back unchanged in a
    // `Last-Event-ID` header: each, read off the wire and sent back,
    // resumes right after its event.
    let hub = hub_with_history(1000, 1 << 20, None);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let printable: String = (b'!'..=b'~').map(char::from).collect();
    let ids = [printable.as_str(), "a b", "a\tb", "a :\t b", "7"];
    let mut observer = open_stream(addr, "/events", &[]);
    for (i, id) in ids.iter().enumerate() {
        let event = Event::new(i.to_string()).with_id(*id).expect("a valid id");
        hub.publish(&event).expect("publish");
    }
    let seen = read_events(&mut observer, ids.len(), WAIT);
    for (i, event) in seen.iter().enumerate() {
        assert_eq!(event.last_event_id, ids[i], "the id on the wire");
        let mut client = resume(addr, &event.last_event_id);
        let want = numbered(i + 1..ids.len());
        let got = read_events(&mut client, want.len(), WAIT);
        assert_eq!(datas(&got), want, "resumed from {:?}", ids[i]);
        if i + 1 == ids.len() {
            // Nothing after the newest id: the next event is live.
            hub.notify("live").expect("notify");
            expect_marker(&mut client, "live", "resumed from the newest id");
        }
    }
    hub.shutdown().expect("shutdown");
}
