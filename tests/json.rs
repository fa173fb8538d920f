//! `Event::json` (the `json` feature): a serde value becomes the event's
//! data as one line of JSON, delivered to a stream client like any event.
#![cfg(feature = "json")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use sse_server::{Error, Event, Server};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;

const WAIT: Duration = Duration::from_secs(5);

#[derive(Serialize)]
struct Reading {
    sensor: String,
    celsius: f64,
    tags: Vec<&'static str>,
    note: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
enum Message {
    Joined { user_id: u32 },
    Left { user_id: u32, reason: String },
}

#[test]
fn event_json_serialises_the_value_as_the_data() {
    let reading = Reading {
        sensor: "kitchen \"north\"\nwall".into(),
        celsius: 21.5,
        tags: vec!["a", "b"],
        note: None,
    };
    let event = Event::json(&reading).expect("serialisable");
    let want =
        r#"{"sensor":"kitchen \"north\"\nwall","celsius":21.5,"tags":["a","b"],"note":null}"#;
    assert_eq!(event.data(), want);
    assert!(
        !event.data().contains('\n'),
        "one line: the newline is escaped"
    );
    assert_eq!(
        event.to_bytes(),
        format!("data: {want}\n\n").into_bytes(),
        "one data line"
    );

    let joined = Event::json(&Message::Joined { user_id: 7 }).expect("serialisable");
    assert_eq!(joined.data(), r#"{"kind":"joined","user_id":7}"#);
    let left = Event::json(&Message::Left {
        user_id: 7,
        reason: "bye".into(),
    })
    .expect("serialisable");
    assert_eq!(left.data(), r#"{"kind":"left","user_id":7,"reason":"bye"}"#);

    // Builders still apply.
    let named = Event::json(&[1, 2, 3])
        .expect("serialisable")
        .with_event("numbers")
        .expect("a valid name")
        .with_id("n-1")
        .expect("a valid id");
    assert_eq!(
        named.to_bytes(),
        b"event: numbers\nid: n-1\ndata: [1,2,3]\n\n"
    );
}

#[test]
fn a_value_json_cannot_represent_is_an_error() {
    let mut map = BTreeMap::new();
    map.insert((1, 2), "a tuple key");
    match Event::json(&map) {
        Err(Error::Json(e)) => assert!(e.to_string().contains("key"), "{e}"),
        other => panic!("a map with non-string keys: {other:?}"),
    }
}

#[test]
fn a_json_event_reaches_a_stream_client() {
    init_logging();
    let hub = plain_hub().keep_alive(None).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let reading = Reading {
        sensor: "hall".into(),
        celsius: -3.25,
        tags: vec![],
        note: Some("é ✓".into()),
    };
    hub.publish(
        &Event::json(&reading)
            .expect("serialisable")
            .with_event("reading")
            .expect("a valid name"),
    )
    .expect("publish");
    let event = client.expect_event(WAIT, "the JSON event");
    assert_eq!(event.event_type, "reading");
    assert_eq!(
        event.data,
        r#"{"sensor":"hall","celsius":-3.25,"tags":[],"note":"é ✓"}"#
    );
    hub.shutdown().expect("shutdown");
}
