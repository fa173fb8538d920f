//! The crate's event-stream parser (`sse_server::parse`), checked against
//! the WHATWG rules it claims to follow.

mod support;

use sse_server::parse::{EventParser, ParsedEvent, parse_all};

fn msg(data: &str) -> ParsedEvent {
    ParsedEvent::message(data)
}

#[test]
fn data_lines_are_joined_with_lf_and_the_last_lf_removed() {
    assert_eq!(parse_all(b"data: a\ndata: b\n\n"), [msg("a\nb")]);
    assert_eq!(
        parse_all(b"data: one\n\ndata: two\n\n"),
        [msg("one"), msg("two")]
    );
    assert_eq!(parse_all(b"data:\ndata:\n\n"), [msg("\n")]);
}

#[test]
fn every_line_end_is_recognised() {
    assert_eq!(parse_all(b"data: a\r\ndata: b\r\n\r\n"), [msg("a\nb")]);
    assert_eq!(parse_all(b"data: a\rdata: b\r\r"), [msg("a\nb")]);
    assert_eq!(
        parse_all(b"data: a\r\ndata: b\rdata: c\n\r\n"),
        [msg("a\nb\nc")]
    );
}

#[test]
fn crlf_split_across_feeds_is_one_line_end() {
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: a\r").is_empty());
    assert!(parser.feed(b"\ndata: b\r").is_empty());
    assert_eq!(parser.feed(b"\n\r"), [msg("a\nb")]);
    // The LF right after that CR is part of the same line end, not a
    // second, dispatching blank line.
    assert!(parser.feed(b"\n").is_empty());
    assert!(parser.feed(b"data: c\n").is_empty());
    assert_eq!(parser.feed(b"\n"), [msg("c")]);
}

#[test]
fn exactly_one_leading_space_is_stripped() {
    assert_eq!(parse_all(b"data:x\n\n"), [msg("x")]);
    assert_eq!(parse_all(b"data: x\n\n"), [msg("x")]);
    assert_eq!(parse_all(b"data:  x\n\n"), [msg(" x")]);
    assert_eq!(parse_all(b"data: a: b\n\n"), [msg("a: b")]);
    // A line without a colon is a field name with an empty value.
    assert_eq!(parse_all(b"data\n\n"), [msg("")]);
}

#[test]
fn comments_and_unknown_fields_are_ignored() {
    let mut parser = EventParser::new();
    let events = parser.feed(b":\n: hello\nfoo: bar\ndata: x\n\n:\n");
    assert_eq!(events, [msg("x")]);
    assert_eq!(parser.comments(), 3);
}

#[test]
fn a_block_without_data_is_not_dispatched() {
    assert!(parse_all(b"\n\n\n").is_empty());
    assert!(parse_all(b":\n\n").is_empty());
    assert!(parse_all(b"event: x\n\n").is_empty());
    // The event type of a block without data does not leak into the next.
    assert_eq!(parse_all(b"event: x\n\ndata: y\n\n"), [msg("y")]);
    // An unterminated block is not dispatched.
    assert!(parse_all(b"data: x\n").is_empty());
}

#[test]
fn event_id_and_retry_fields() {
    let events = parse_all(b"event: tick\nid: 7\nretry: 3000\ndata: d\n\ndata: e\n\n");
    assert_eq!(
        events,
        [
            ParsedEvent {
                event_type: "tick".into(),
                data: "d".into(),
                last_event_id: "7".into(),
                retry: Some(3000),
            },
            // The id and retry persist; the type does not.
            ParsedEvent {
                event_type: "message".into(),
                data: "e".into(),
                last_event_id: "7".into(),
                retry: Some(3000),
            },
        ]
    );
    // An id with NUL is ignored; an empty id resets it.
    let events = parse_all(b"id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid\ndata: c\n\n");
    let ids: Vec<&str> = events.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(ids, ["1", "1", ""]);
    // retry must be all ASCII digits.
    for bad in [
        &b"retry: 10x\n"[..],
        b"retry: -1\n",
        b"retry: 1.5\n",
        b"retry:\n",
        b"retry:  5\n",
    ] {
        let mut stream = bad.to_vec();
        stream.extend_from_slice(b"data: z\n\n");
        assert_eq!(
            parse_all(&stream)[0].retry,
            None,
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
}

#[test]
fn a_leading_bom_is_skipped() {
    assert_eq!(parse_all("\u{feff}data: x\n\n".as_bytes()), [msg("x")]);
}

#[test]
fn byte_by_byte_feeding_gives_the_same_events() {
    let stream = "\u{feff}: c\r\nevent: e\rid: 9\ndata: héllo\r\ndata:\rdata: 世界\n\n".as_bytes();
    let whole = parse_all(stream);
    let mut parser = EventParser::new();
    let mut pieces = Vec::new();
    for &b in stream {
        pieces.extend(parser.feed(&[b]));
    }
    assert_eq!(pieces, whole);
    assert_eq!(
        whole,
        [ParsedEvent {
            event_type: "e".into(),
            data: "héllo\n\n世界".into(),
            last_event_id: "9".into(),
            retry: None,
        }]
    );
}
