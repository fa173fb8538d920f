//! The bytes on the wire: response heads, HTTP framing, the event-stream
//! encoding of every kind of event, the keep-alive line, and the refusal of
//! fields that would inject events.

mod support;

use std::time::Duration;

use sse_server::parse::{ParsedEvent, parse_all};
use sse_server::{Error, Event, Hub, Server};
use support::client::{Client, End, Framing};
use support::hubs::plain_hub;
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

/// A hub without keep-alives, so that the body holds only what the test
/// published, and a server for it.
/// The most events a test here publishes to one client in a burst: each
/// client's queue holds that many frames, so none is ever missed, however
/// late its writer thread runs.
const BURST: usize = 500;

fn quiet_server() -> (Hub, Server) {
    let hub = plain_hub()
        .keep_alive(None)
        .client_buffer(BURST)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind the server");
    (hub, server)
}

fn event(data: &str) -> ParsedEvent {
    ParsedEvent::message(data)
}

/// One case: what is published, the exact bytes it must produce, and the
/// event a conformant parser must read back.
struct Case {
    name: &'static str,
    event: Event,
    bytes: Vec<u8>,
    parsed: ParsedEvent,
}

fn data_case(name: &'static str, data: &str, bytes: &[u8], parsed: &str) -> Case {
    Case {
        name,
        event: Event::new(data),
        bytes: bytes.to_vec(),
        parsed: event(parsed),
    }
}

fn cases() -> Vec<Case> {
    let big: String = (0..64 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let mut big_bytes = b"data: ".to_vec();
    big_bytes.extend_from_slice(big.as_bytes());
    big_bytes.extend_from_slice(b"\n\n");
    // 64 KiB in 1 KiB lines.
    let big_lines: String = (0..64)
        .map(|i| format!("{i:04}{}", "x".repeat(1019)))
        .collect::<Vec<_>>()
        .join("\n");
    let big_lines_bytes: Vec<u8> = big_lines
        .split('\n')
        .flat_map(|line| format!("data: {line}\n").into_bytes())
        .chain(*b"\n")
        .collect();

    let full = Event::new("line 1\nline 2")
        .with_comment("a comment")
        .with_event("update")
        .expect("a valid event name")
        .with_id("42")
        .expect("a valid id")
        .with_retry(Duration::from_secs(3));

    vec![
        data_case("plain", "hello", b"data: hello\n\n", "hello"),
        data_case("LF", "a\nb", b"data: a\ndata: b\n\n", "a\nb"),
        data_case("CR", "a\rb", b"data: a\ndata: b\n\n", "a\nb"),
        data_case("CRLF", "a\r\nb", b"data: a\ndata: b\n\n", "a\nb"),
        data_case(
            "mixed line ends",
            "a\r\nb\rc\nd",
            b"data: a\ndata: b\ndata: c\ndata: d\n\n",
            "a\nb\nc\nd",
        ),
        data_case(
            "blank line inside",
            "a\n\nb",
            b"data: a\ndata:\ndata: b\n\n",
            "a\n\nb",
        ),
        data_case("trailing LF", "end\n", b"data: end\ndata:\n\n", "end\n"),
        data_case("only LF", "\n", b"data:\ndata:\n\n", "\n"),
        data_case("leading space", " x", b"data:  x\n\n", " x"),
        data_case("leading spaces", "   x ", b"data:    x \n\n", "   x "),
        data_case("empty", "", b"data:\n\n", ""),
        data_case("colon", "a: b", b"data: a: b\n\n", "a: b"),
        data_case(
            "unicode",
            "héllo wörld ✓ 世界 🎉",
            "data: héllo wörld ✓ 世界 🎉\n\n".as_bytes(),
            "héllo wörld ✓ 世界 🎉",
        ),
        Case {
            name: "64 KiB, one line",
            event: Event::new(big.clone()),
            bytes: big_bytes,
            parsed: event(&big),
        },
        Case {
            name: "64 KiB, 64 lines",
            event: Event::new(big_lines.clone()),
            bytes: big_lines_bytes,
            parsed: event(&big_lines),
        },
        Case {
            name: "every field",
            event: full,
            bytes:
                b": a comment\nevent: update\nid: 42\nretry: 3000\ndata: line 1\ndata: line 2\n\n"
                    .to_vec(),
            parsed: ParsedEvent {
                event_type: "update".into(),
                data: "line 1\nline 2".into(),
                last_event_id: "42".into(),
                retry: Some(3000),
            },
        },
        Case {
            name: "multi-line comment, name with spaces, empty id",
            event: Event::new("x")
                .with_comment("c1\r\nc2\n\nc4")
                .with_event(" spaced name ")
                .expect("a valid event name")
                .with_id("")
                .expect("a valid id"),
            bytes: b": c1\n: c2\n:\n: c4\nevent:  spaced name \nid: \ndata: x\n\n".to_vec(),
            parsed: ParsedEvent {
                event_type: " spaced name ".into(),
                data: "x".into(),
                last_event_id: String::new(),
                // The stream's reconnection time stays as the previous case
                // set it.
                retry: Some(3000),
            },
        },
        Case {
            name: "retry in whole milliseconds",
            event: Event::new("r")
                .with_retry(Duration::from_micros(1_500))
                .with_id("id with spaces: and colon")
                .expect("a valid id"),
            bytes: b"id: id with spaces: and colon\nretry: 1\ndata: r\n\n".to_vec(),
            parsed: ParsedEvent {
                event_type: "message".into(),
                data: "r".into(),
                last_event_id: "id with spaces: and colon".into(),
                retry: Some(1),
            },
        },
    ]
}

/// Publishes every case in turn and checks the body grows by exactly the
/// expected bytes and the parser reads back the expected event.
fn check_cases(http_version: &str) {
    let (hub, server) = quiet_server();
    let mut client =
        Client::connect(server.local_addr(), "/events", http_version, &[]).expect("connect");
    assert_eq!(client.status, 200);
    let mut offset = 0;
    for case in cases() {
        assert_eq!(
            case.event.to_bytes(),
            case.bytes,
            "{}: Event::to_bytes",
            case.name
        );
        hub.publish(&case.event).expect("publish");
        let want_len = offset + case.bytes.len();
        assert!(
            client.read_raw_len(WAIT, want_len),
            "{}: the body did not reach {want_len} bytes; it has {}",
            case.name,
            client.body().len()
        );
        let got = &client.body()[offset..];
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&case.bytes),
            "{}: bytes on the wire",
            case.name
        );
        assert_eq!(got, &case.bytes[..], "{}: bytes on the wire", case.name);
        let parsed = client.next_event(WAIT);
        assert_eq!(
            parsed.as_ref(),
            Some(&case.parsed),
            "{}: parsed event",
            case.name
        );
        assert!(
            client.take_parsed().is_empty(),
            "{}: one event, not more",
            case.name
        );
        offset = want_len;
    }
    hub.shutdown().expect("shutdown");
    let end = client.wait_end(WAIT);
    assert_eq!(client.body().len(), offset, "nothing after the last event");
    match http_version {
        "1.1" => assert_eq!(end, Some(End::FinalChunk)),
        _ => assert_eq!(end, Some(End::Eof)),
    }
}

#[test]
fn events_are_encoded_exactly_over_http_1_1() {
    check_cases("1.1");
}

#[test]
fn events_are_encoded_exactly_over_http_1_0() {
    check_cases("1.0");
}

#[test]
fn notify_sends_data_only_events() {
    let (hub, server) = quiet_server();
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let texts = ["plain", "a\nb", "a\r\nb\rc", " lead", "", "tail\n", "ünï"];
    let mut want = Vec::new();
    for text in texts {
        hub.notify(text).expect("notify");
        want.extend_from_slice(&Event::new(text).to_bytes());
    }
    assert!(
        client.read_raw_len(WAIT, want.len()),
        "all the events arrive"
    );
    assert_eq!(client.body(), &want[..]);
    let parsed: Vec<String> = parse_all(&want).into_iter().map(|e| e.data).collect();
    assert_eq!(
        parsed,
        ["plain", "a\nb", "a\nb\nc", " lead", "", "tail\n", "ünï"]
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn stream_response_heads() {
    let (hub, server) = quiet_server();
    let addr = server.local_addr();

    let client = Client::connect(addr, "/events", "1.1", &[]).expect("connect over HTTP/1.1");
    assert_eq!(client.version, "HTTP/1.1");
    assert_eq!(client.status, 200);
    assert_eq!(client.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(client.header("Cache-Control"), Some("no-cache"));
    assert_eq!(client.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(client.header("Connection"), Some("close"));
    assert_eq!(client.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(client.header("Content-Length"), None);
    assert_eq!(client.framing(), Framing::Chunked);

    let client10 = Client::connect(addr, "/events", "1.0", &[]).expect("connect over HTTP/1.0");
    assert_eq!(client10.version, "HTTP/1.0");
    assert_eq!(client10.status, 200);
    assert_eq!(client10.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(client10.header("Cache-Control"), Some("no-cache"));
    assert_eq!(client10.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(client10.header("Connection"), Some("close"));
    assert_eq!(client10.header("Transfer-Encoding"), None);
    assert_eq!(client10.header("Content-Length"), None);
    assert_eq!(client10.framing(), Framing::Close);

    assert_eq!(hub.stats().clients, 2);
    hub.shutdown().expect("shutdown");
}

#[test]
fn keep_alive_is_a_bare_comment_line() {
    let hub = plain_hub()
        .keep_alive(Some(ms(20)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    for version in ["1.1", "1.0"] {
        let mut client =
            Client::connect(server.local_addr(), "/events", version, &[]).expect("connect");
        // Three keep-alives in a row, and nothing else.
        assert!(
            client.read_raw_len(WAIT, 6),
            "HTTP/{version}: keep-alives arrive on an idle stream"
        );
        assert_eq!(&client.body()[..6], b":\n:\n:\n", "HTTP/{version}");
        hub.notify("x").expect("notify");
        assert!(
            client.read_raw_until(WAIT, |body| body.ends_with(b"data: x\n\n")),
            "HTTP/{version}: the event arrives"
        );
        // Whatever keep-alives came before the event, the body is only
        // keep-alive lines and the event.
        let body = client.body();
        let before = &body[..body.len() - b"data: x\n\n".len()];
        assert!(
            before.chunks(2).all(|pair| pair == b":\n"),
            "HTTP/{version}: only keep-alive lines before the event: {:?}",
            String::from_utf8_lossy(before)
        );
        assert_eq!(client.next_event(WAIT), Some(event("x")), "HTTP/{version}");
        assert!(
            client.parser().comments() >= 3,
            "HTTP/{version}: keep-alives are comments"
        );
        if version == "1.1" {
            // Each write is one chunk: a keep-alive is a chunk of 2 bytes.
            assert!(client.chunk_sizes()[..3].iter().all(|&size| size == 2));
        }
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn line_breaks_in_names_and_ids_that_cannot_come_back_are_refused() {
    let (hub, server) = quiet_server();
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");

    let refused: Vec<(&str, Result<Event, Error>)> = vec![
        ("event LF", Event::new("x").with_event("a\ndata: forged")),
        ("event CR", Event::new("x").with_event("a\rdata: forged")),
        (
            "event CRLF",
            Event::new("x").with_event("a\r\n\r\ndata: forged"),
        ),
        ("event trailing LF", Event::new("x").with_event("name\n")),
        ("id LF", Event::new("x").with_id("1\ndata: forged")),
        ("id CR", Event::new("x").with_id("1\rdata: forged")),
        ("id CRLF", Event::new("x").with_id("1\r\n\r\n")),
        ("id NUL", Event::new("x").with_id("1\0")),
        // Ids that would not come back in a Last-Event-ID header.
        ("id non-ASCII", Event::new("x").with_id("été")),
        ("id control", Event::new("x").with_id("a\u{1}b")),
        ("id DEL", Event::new("x").with_id("a\u{7f}")),
        ("id leading space", Event::new("x").with_id(" 7")),
        ("id trailing space", Event::new("x").with_id("7 ")),
        ("id leading tab", Event::new("x").with_id("\t7")),
        ("id trailing tab", Event::new("x").with_id("7\t")),
        (
            "valid name, then bad id",
            Event::new("x")
                .with_event("fine")
                .and_then(|e| e.with_id("\n")),
        ),
    ];
    for (name, result) in refused {
        let want_field = if name.starts_with("event") {
            "event"
        } else {
            "id"
        };
        match result {
            Err(Error::InvalidField { field, reason }) => {
                assert_eq!(field, want_field, "{name}");
                assert!(!reason.is_empty(), "{name}: a reason");
            }
            Err(other) => panic!("{name}: refused with the wrong error: {other:?}"),
            Ok(event) => panic!(
                "{name}: accepted; it would send {:?}",
                String::from_utf8_lossy(&event.to_bytes())
            ),
        }
    }
    // The display form names the field.
    let err = Event::new("x")
        .with_id("\0")
        .expect_err("NUL in an id is refused");
    assert!(err.to_string().contains("id"), "{err}");

    // Nothing was sent: the first bytes the client sees are a sentinel
    // published after all the refusals.
    assert_eq!(hub.stats().published, 0);
    hub.notify("sentinel").expect("notify");
    assert!(client.read_raw_len(WAIT, b"data: sentinel\n\n".len()));
    assert_eq!(client.body(), b"data: sentinel\n\n");
    assert_eq!(hub.stats().published, 1);

    // Characters that do not break lines are fine in names; ids are
    // printable ASCII with spaces and tabs inside.
    Event::new("x")
        .with_event("a\0b\t: c ü")
        .expect("NUL, tab, colon and unicode are valid in an event name");
    Event::new("x")
        .with_id("a\tb: c ~")
        .expect("tab, colon and inner spaces are valid in an id");
    hub.shutdown().expect("shutdown");
}

#[test]
fn http_1_1_writes_are_well_formed_chunks() {
    let (hub, server) = quiet_server();
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    // A burst: the hub and the writer may join events into fewer chunks,
    // but the decoded body must be exactly the events in order.
    let mut want = Vec::new();
    for i in 0..BURST {
        let text = format!("event {i} {}", "z".repeat(i % 300));
        hub.notify(&text).expect("notify");
        want.extend_from_slice(format!("data: {text}\n\n").as_bytes());
    }
    assert!(client.read_raw_len(WAIT, want.len()));
    assert_eq!(client.body(), &want[..]);
    assert_eq!(
        client.chunk_sizes().iter().sum::<usize>(),
        want.len(),
        "chunk sizes add up to the body"
    );
    hub.shutdown().expect("shutdown");
    assert_eq!(client.wait_end(WAIT), Some(End::FinalChunk));
}

#[test]
fn large_events_are_written_whole_and_in_order() {
    // Events of 256 KiB and more are written from the hub's copy rather
    // than the writer's buffer: around them, smaller events keep their
    // order, and every chunk is well formed.
    for version in ["1.1", "1.0"] {
        let (hub, server) = quiet_server();
        let mut client =
            Client::connect(server.local_addr(), "/events", version, &[]).expect("connect");
        let mut want = Vec::new();
        let sizes = [
            10,
            70_000,
            256 * 1024 - 8,
            256 * 1024,
            20,
            1 << 20,
            1 << 20,
            30,
        ];
        for (i, size) in sizes.into_iter().enumerate() {
            let text = format!("{i} {}", "x".repeat(size));
            hub.notify(&text).expect("notify");
            want.extend_from_slice(format!("data: {text}\n\n").as_bytes());
        }
        assert!(
            client.read_raw_len(WAIT, want.len()),
            "HTTP/{version}: the whole burst"
        );
        assert!(client.body() == &want[..], "HTTP/{version}: the body");
        if version == "1.1" {
            assert_eq!(
                client.chunk_sizes().iter().sum::<usize>(),
                want.len(),
                "chunk sizes add up to the body"
            );
        }
        // Counted once each write has returned, which may be just after
        // the client has read it.
        let delivered = || hub.clients().first().map(|client| client.delivered);
        assert!(
            wait_until(WAIT, || delivered() == Some(sizes.len() as u64)),
            "HTTP/{version}: delivered {:?}",
            delivered()
        );
        hub.shutdown().expect("shutdown");
        if version == "1.1" {
            assert_eq!(client.wait_end(WAIT), Some(End::FinalChunk));
        }
    }
}

#[test]
fn a_small_frame_waiting_before_a_large_one_is_written_first() {
    // The writer takes the frames waiting for it into one write, and a
    // frame of 256 KiB or more apart from it: a small frame found before a
    // large one goes out first. The client reads nothing at first, so the
    // writer is held in a write while the hub queues a small event alone,
    // then a large one, as two frames.
    let (hub, server) = quiet_server();
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    let mut want = Vec::new();
    let mut queued = 0;
    let mut send = |text: String| {
        hub.notify(&text).expect("notify");
        want.extend_from_slice(format!("data: {text}\n\n").as_bytes());
        queued += 1;
        // Queued for the client: the hub has made the event's frame.
        assert!(wait_until(WAIT, || hub.stats().queued == queued));
    };
    // More than the connection holds while nobody reads it.
    for i in 0..8 {
        send(format!("filler {i} {}", "f".repeat(1 << 20)));
    }
    send("small".to_owned());
    send(format!("large {}", "x".repeat(1 << 20)));
    send("last".to_owned());
    assert!(client.read_raw_len(WAIT, want.len()), "the whole burst");
    assert!(client.body() == &want[..], "the body, in order");
    assert_eq!(client.chunk_sizes().iter().sum::<usize>(), want.len());
    hub.shutdown().expect("shutdown");
}
