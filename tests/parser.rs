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

/// Parses `stream` whole, byte by byte, and cut into every two and three
/// pieces (through both `feed` and the borrowed `feed_with`), checks that
/// every way gives `expected`, and returns the parser fed the whole stream.
fn parse_every_way(stream: &[u8], expected: &[ParsedEvent]) -> EventParser {
    let show = String::from_utf8_lossy(stream);
    let mut whole = EventParser::new();
    assert_eq!(whole.feed(stream), expected, "whole: {show:?}");

    let mut parser = EventParser::new();
    let mut events = Vec::new();
    for &b in stream {
        events.extend(parser.feed(&[b]));
    }
    assert_eq!(events, expected, "byte by byte: {show:?}");
    assert_eq!(parser.has_pending(), whole.has_pending(), "{show:?}");
    assert_eq!(parser.last_event_id(), whole.last_event_id(), "{show:?}");
    assert_eq!(parser.retry(), whole.retry(), "{show:?}");

    // Three-way cuts of long streams would be slow; two-way cuts of all.
    let three_way = stream.len() <= 80;
    for a in 0..=stream.len() {
        let ends: Vec<usize> = if three_way {
            (a..=stream.len()).collect()
        } else {
            vec![stream.len()]
        };
        for b in ends {
            let mut parser = EventParser::new();
            let mut events = Vec::new();
            for piece in [&stream[..a], &stream[a..b], &stream[b..]] {
                parser.feed_with(piece, |event| events.push(event.to_parsed()));
            }
            assert_eq!(events, expected, "cut at {a} and {b}: {show:?}");
            assert_eq!(parser.has_pending(), whole.has_pending(), "{show:?}");
            assert_eq!(parser.last_event_id(), whole.last_event_id());
            assert_eq!(parser.retry(), whole.retry(), "{show:?}");
        }
    }
    whole
}

fn event(event_type: &str, data: &str, last_event_id: &str, retry: Option<u64>) -> ParsedEvent {
    ParsedEvent {
        event_type: event_type.into(),
        data: data.into(),
        last_event_id: last_event_id.into(),
        retry,
    }
}

// The examples of the WHATWG HTML standard's "Server-sent events" section.

#[test]
fn spec_introduction_three_messages_one_of_two_lines() {
    parse_every_way(
        b"data: This is the first message.\n\n\
          data: This is the second message, it\n\
          data: has two lines.\n\n\
          data: This is the third message.\n\n",
        &[
            msg("This is the first message."),
            msg("This is the second message, it\nhas two lines."),
            msg("This is the third message."),
        ],
    );
}

#[test]
fn spec_introduction_add_and_remove_event_types() {
    parse_every_way(
        b"event: add\ndata: 73857293\n\n\
          event: remove\ndata: 2153\n\n\
          event: add\ndata: 113411\n\n",
        &[
            event("add", "73857293", "", None),
            event("remove", "2153", "", None),
            event("add", "113411", "", None),
        ],
    );
}

#[test]
fn spec_stock_ticker_lines_make_one_message_once_a_blank_line_follows() {
    let parser = parse_every_way(b"data: YHOO\ndata: +2\ndata: 10\n", &[]);
    assert!(parser.has_pending());
    let parser = parse_every_way(
        b"data: YHOO\ndata: +2\ndata: 10\n\n",
        &[msg("YHOO\n+2\n10")],
    );
    assert!(!parser.has_pending());
}

#[test]
fn spec_four_blocks_and_the_last_event_id_at_each() {
    let stream = b": test stream\n\n\
        data: first event\nid: 1\n\n\
        data:second event\nid\n\n\
        data:  third event\n\n";
    let parser = parse_every_way(
        stream,
        &[
            event("message", "first event", "1", None),
            // An `id` with no value resets the last event id.
            event("message", "second event", "", None),
            // Only the first space after the colon is removed.
            event("message", " third event", "", None),
        ],
    );
    assert_eq!(parser.comments(), 1);
    assert_eq!(parser.last_event_id(), "");

    // Block by block: the last event id the stream would reconnect with.
    let mut parser = EventParser::new();
    assert!(parser.feed(b": test stream\n\n").is_empty());
    assert_eq!(parser.last_event_id(), "");
    assert_eq!(
        parser.feed(b"data: first event\nid: 1\n\n"),
        [event("message", "first event", "1", None)]
    );
    assert_eq!(parser.last_event_id(), "1");
    assert_eq!(
        parser.feed(b"data:second event\nid\n\n"),
        [event("message", "second event", "", None)]
    );
    assert_eq!(parser.last_event_id(), "");
    // The end of the stream is not enough to dispatch the last event.
    assert!(parser.feed(b"data:  third event\n").is_empty());
    assert!(parser.has_pending());
    assert_eq!(
        parser.feed(b"\n"),
        [event("message", " third event", "", None)]
    );
    assert!(!parser.has_pending());
}

#[test]
fn spec_data_with_and_without_a_colon_and_an_undispatched_last_block() {
    // `data` alone and `data:` are the same field with an empty value. The
    // first block is an empty message, the second one newline; the last is
    // not followed by a blank line, so it is never dispatched.
    let parser = parse_every_way(b"data\n\ndata\ndata\n\ndata:", &[msg(""), msg("\n")]);
    assert!(parser.has_pending());
    let mut parser = parse_every_way(b"data\n\ndata\ndata\n\ndata:\n", &[msg(""), msg("\n")]);
    assert!(parser.has_pending());
    // Followed by a blank line, the last block is an empty message too.
    assert_eq!(parser.feed(b"\n"), [msg("")]);
    assert!(!parser.has_pending());
}

#[test]
fn spec_the_space_after_the_colon_is_ignored_if_present() {
    parse_every_way(b"data:test\n\ndata: test\n\n", &[msg("test"), msg("test")]);
}
