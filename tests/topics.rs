//! Topics: `publish_to` reaches exactly the clients subscribed to the topic
//! (streams with `?topic=`, subscriptions with `SubscribeOptions::topics`),
//! once each; broadcasts reach everyone; topic names are percent-decoded;
//! replay keeps to the client's topics; too many topics get 400.

mod support;

use std::time::Duration;

use sse_server::parse::EventParser;
use sse_server::{
    Decision, Event, Hub, MAX_TOPIC_BYTES, MAX_TOPICS, Server, SubscribeOptions, Subscription,
};
use support::client::{Client, open_stream, read_events};
use support::events::datas;
use support::hubs::{plain_hub, sub_events};
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn publish_to_reaches_exactly_the_subscribers_of_the_topic_once() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // (name, path, what it must receive)
    let streams = [
        ("a", "/events?topic=a", &["to-a", "m1", "m2", "all"][..]),
        ("b", "/events?topic=b", &["m1", "to-b", "m2", "all"][..]),
        (
            "a+b",
            "/events?topic=a&topic=b",
            &["to-a", "m1", "to-b", "m2", "all"][..],
        ),
        (
            "a twice",
            "/events?topic=a&topic=a",
            &["to-a", "m1", "m2", "all"][..],
        ),
        ("none", "/events", &["m1", "m2", "all"][..]),
        ("c", "/events?topic=c&x=a", &["m1", "m2", "all"][..]),
    ];
    let mut clients: Vec<(&str, Client, &[&str])> = streams
        .iter()
        .map(|&(name, path, want)| (name, open_stream(addr, path, &[]), want))
        .collect();
    let subs = [
        (
            "sub a",
            SubscribeOptions::new().topics(["a"]),
            &["to-a", "m1", "m2", "all"][..],
        ),
        (
            "sub b",
            SubscribeOptions::new().topics(["b"]),
            &["m1", "to-b", "m2", "all"][..],
        ),
        (
            "sub a+b",
            SubscribeOptions::new().topics(["b", "a"]),
            &["to-a", "m1", "to-b", "m2", "all"][..],
        ),
        (
            "sub none",
            SubscribeOptions::new(),
            &["m1", "m2", "all"][..],
        ),
    ];
    let subs: Vec<(&str, Subscription, &[&str])> = subs
        .into_iter()
        .map(|(name, options, want)| (name, hub.subscribe_with(options).expect("subscribe"), want))
        .collect();
    assert_eq!(hub.stats().clients, clients.len() + subs.len());

    hub.publish_to("a", &Event::new("to-a"))
        .expect("publish_to");
    hub.notify("m1").expect("notify");
    hub.publish_to("b", &Event::new("to-b"))
        .expect("publish_to");
    hub.publish_to("nobody", &Event::new("to-nobody"))
        .expect("publish_to a topic without subscribers");
    hub.notify("m2").expect("notify");
    hub.publish(
        &Event::new("all")
            .with_event("everyone")
            .expect("a valid name"),
    )
    .expect("publish");
    hub.notify("end").expect("notify");

    for (name, client, want) in &mut clients {
        let got = read_events(client, want.len() + 1, WAIT);
        let mut want: Vec<&str> = want.to_vec();
        want.push("end");
        assert_eq!(datas(&got), want, "stream {name}");
    }
    for (name, sub, want) in &subs {
        let got = sub_events(sub, &mut EventParser::new(), want.len() + 1);
        let mut want: Vec<&str> = want.to_vec();
        want.push("end");
        assert_eq!(datas(&got), want, "subscription {name}");
        assert!(
            sub.try_recv().expect("open").is_none(),
            "{name}: nothing more"
        );
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn topic_names_are_percent_decoded() {
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut slash = open_stream(addr, "/events?topic=a%2Fb", &[]);
    let mut space = open_stream(addr, "/events?topic=a+b", &[]);
    let mut encoded_space = open_stream(addr, "/events?topic=a%20b", &[]);
    let mut unicode = open_stream(addr, "/events?topic=%C3%A9t%C3%A9", &[]);
    let mut raw = open_stream(addr, "/events?topic=a/b", &[]);

    hub.publish_to("a%2Fb", &Event::new("literal"))
        .expect("publish_to");
    hub.publish_to("a/b", &Event::new("slash"))
        .expect("publish_to");
    hub.publish_to("a b", &Event::new("space"))
        .expect("publish_to");
    hub.publish_to("\u{e9}t\u{e9}", &Event::new("unicode"))
        .expect("publish_to");
    hub.notify("end").expect("notify");

    for (name, client, want) in [
        ("%2F", &mut slash, "slash"),
        ("+", &mut space, "space"),
        ("%20", &mut encoded_space, "space"),
        ("UTF-8", &mut unicode, "unicode"),
        ("raw /", &mut raw, "slash"),
    ] {
        let got = read_events(client, 2, WAIT);
        assert_eq!(datas(&got), [want, "end"], "{name}");
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn topics_chosen_by_the_connect_hook_replace_the_query() {
    let hub = plain_hub()
        .keep_alive(None)
        .on_connect(|request| match request.query_values("as").first() {
            Some(user) => Decision::accept().topics([format!("user-{user}"), "news".into()]),
            None => Decision::accept(),
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = open_stream(server.local_addr(), "/events?as=7&topic=asked", &[]);
    hub.publish_to("asked", &Event::new("asked"))
        .expect("publish_to");
    hub.publish_to("user-7", &Event::new("mine"))
        .expect("publish_to");
    hub.publish_to("news", &Event::new("news"))
        .expect("publish_to");
    hub.publish_to("user-8", &Event::new("other"))
        .expect("publish_to");
    hub.notify("end").expect("notify");
    let got = read_events(&mut client, 3, WAIT);
    assert_eq!(datas(&got), ["mine", "news", "end"]);
    hub.shutdown().expect("shutdown");
}

#[test]
fn replay_keeps_to_the_clients_topics() {
    let hub = Hub::builder()
        .retry(None)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let mut observer = open_stream(addr, "/events?topic=a&topic=b", &[]);
    for i in 0..10 {
        let topic = if i % 2 == 0 { "a" } else { "b" };
        hub.publish_to(topic, &Event::new(format!("{topic}{i}")))
            .expect("publish_to");
        if i == 4 {
            hub.notify("all").expect("notify");
        }
    }
    let seen = read_events(&mut observer, 11, WAIT);
    assert_eq!(
        datas(&seen),
        [
            "a0", "b1", "a2", "b3", "a4", "all", "b5", "a6", "b7", "a8", "b9"
        ]
    );
    let id_of = |data: &str| {
        seen.iter()
            .find(|e| e.data == data)
            .map(|e| e.last_event_id.clone())
            .expect("a seen event")
    };

    // A client of topic a that saw a0 reconnects: the later a events and
    // the broadcast, not the b events.
    let a0 = id_of("a0");
    let mut header = open_stream(addr, "/events?topic=a", &[("Last-Event-ID", &a0)]);
    let got = read_events(&mut header, 5, WAIT);
    assert_eq!(datas(&got), ["a2", "a4", "all", "a6", "a8"], "header form");
    let mut query = open_stream(addr, &format!("/events?topic=a&lastEventId={a0}"), &[]);
    let got = read_events(&mut query, 5, WAIT);
    assert_eq!(datas(&got), ["a2", "a4", "all", "a6", "a8"], "query form");

    // Resuming from an event of another topic works too.
    let b5 = id_of("b5");
    let mut from_b = open_stream(addr, "/events?topic=a", &[("Last-Event-ID", &b5)]);
    let got = read_events(&mut from_b, 2, WAIT);
    assert_eq!(datas(&got), ["a6", "a8"]);

    // No topics: only the broadcast.
    let mut plain = open_stream(addr, "/events", &[("Last-Event-ID", &a0)]);
    let got = read_events(&mut plain, 1, WAIT);
    assert_eq!(datas(&got), ["all"]);

    // A subscription of topic b.
    let sub = hub
        .subscribe_with(
            SubscribeOptions::new()
                .topics(["b"])
                .last_event_id(a0.as_str()),
        )
        .expect("subscribe");
    let mut sub_parser = EventParser::new();
    let got = sub_events(&sub, &mut sub_parser, 6);
    assert_eq!(datas(&got), ["b1", "b3", "all", "b5", "b7", "b9"]);

    // Then everyone goes live, each with its own topics.
    hub.publish_to("b", &Event::new("b-live"))
        .expect("publish_to");
    hub.notify("end").expect("notify");
    for (name, client) in [
        ("header", &mut header),
        ("query", &mut query),
        ("from_b", &mut from_b),
        ("plain", &mut plain),
    ] {
        let got = read_events(client, 1, WAIT);
        assert_eq!(datas(&got), ["end"], "{name}: no b event, live");
    }
    let got = sub_events(&sub, &mut sub_parser, 2);
    assert_eq!(datas(&got), ["b-live", "end"]);
    hub.shutdown().expect("shutdown");
}

#[test]
fn more_than_max_topics_get_400() {
    let hub = plain_hub()
        .keep_alive(None)
        .on_connect(|request| match request.query_values("hook").first() {
            Some(n) => {
                let n: usize = n.parse().expect("a number");
                Decision::accept().topics((0..n).map(|i| format!("h{i}")))
            }
            None => Decision::accept(),
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let query = |n: usize| {
        (0..n)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };

    let mut too_many = Client::connect(
        addr,
        &format!("/events?{}", query(MAX_TOPICS + 1)),
        "1.1",
        &[],
    )
    .expect("request");
    assert_eq!(too_many.status, 400, "{} topics", MAX_TOPICS + 1);
    let body = too_many.read_to_end(WAIT);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("at most {MAX_TOPICS} topics\n")
    );

    let mut from_hook = Client::connect(
        addr,
        &format!("/events?hook={}", MAX_TOPICS + 1),
        "1.1",
        &[],
    )
    .expect("request");
    assert_eq!(from_hook.status, 400, "the hook's topics count too");
    from_hook.read_to_end(WAIT);
    assert!(
        wait_until(WAIT, || hub.stats().streams == 0),
        "no stream is left open: {:?}",
        hub.stats()
    );
    assert_eq!(hub.stats().clients, 0, "no client was registered");

    let mut most = open_stream(addr, &format!("/events?{}", query(MAX_TOPICS)), &[]);
    let mut most_hook = open_stream(addr, &format!("/events?hook={MAX_TOPICS}"), &[]);
    hub.publish_to(&format!("t{}", MAX_TOPICS - 1), &Event::new("last"))
        .expect("publish_to");
    hub.publish_to(&format!("h{}", MAX_TOPICS - 1), &Event::new("hook-last"))
        .expect("publish_to");
    assert_eq!(datas(&read_events(&mut most, 1, WAIT)), ["last"]);
    assert_eq!(datas(&read_events(&mut most_hook, 1, WAIT)), ["hook-last"]);
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_topic_longer_than_max_topic_bytes_gets_400() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let too_long = "t".repeat(MAX_TOPIC_BYTES + 1);
    let mut refused = Client::connect(
        addr,
        &format!("/events?topic=a&topic={too_long}"),
        "1.1",
        &[],
    )
    .expect("request");
    assert_eq!(refused.status, 400);
    let body = refused.read_to_end(WAIT);
    assert_eq!(
        String::from_utf8_lossy(&body),
        format!("topics of at most {MAX_TOPIC_BYTES} bytes\n")
    );
    assert_eq!(hub.stats().clients, 0, "no client was registered");

    let longest = "l".repeat(MAX_TOPIC_BYTES);
    let mut most = open_stream(addr, &format!("/events?topic={longest}"), &[]);
    hub.publish_to(&longest, &Event::new("to-the-longest"))
        .expect("publish_to");
    assert_eq!(datas(&read_events(&mut most, 1, WAIT)), ["to-the-longest"]);
    hub.shutdown().expect("shutdown");
}
