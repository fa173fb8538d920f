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

// The byte order mark: one, at the very start of the stream, is skipped.

const BOM: &[u8] = b"\xEF\xBB\xBF";

fn cat(pieces: &[&[u8]]) -> Vec<u8> {
    pieces.concat()
}

#[test]
fn a_leading_bom_split_across_feeds_is_skipped() {
    let stream = cat(&[BOM, b"data: x\n\n"]);
    // Every cut, including 1 byte then 2 (parse_every_way tries them all).
    parse_every_way(&stream, &[msg("x")]);
    for cuts in [[1, 3], [1, 2], [2, 3], [1, 1]] {
        let mut parser = EventParser::new();
        let (first, rest) = stream.split_at(cuts[0]);
        let (second, third) = rest.split_at(cuts[1]);
        assert!(parser.feed(first).is_empty());
        assert!(parser.feed(second).is_empty());
        assert_eq!(parser.feed(third), [msg("x")], "{cuts:?}");
    }
    // A BOM alone on the first line leaves a blank line: it dispatches.
    parse_every_way(&cat(&[b"data: a\n", BOM, b"\n"]), &[]);
    parse_every_way(&cat(&[BOM, b"\ndata: y\n\n"]), &[msg("y")]);
    // The BOM before a comment.
    let parser = parse_every_way(&cat(&[BOM, b": hi\ndata: z\n\n"]), &[msg("z")]);
    assert_eq!(parser.comments(), 1);
}

#[test]
fn only_one_bom_is_skipped() {
    // The second BOM is part of the field name: `\u{feff}data` is an unknown
    // field, so there is no event.
    let parser = parse_every_way(&cat(&[BOM, BOM, b"data: x\n\n"]), &[]);
    assert!(!parser.has_pending());
    // It is part of the line, so the line no longer starts with a colon:
    // not a comment either.
    let parser = parse_every_way(&cat(&[BOM, BOM, b": c\n\n"]), &[]);
    assert_eq!(parser.comments(), 0);
    // And it stays in a value.
    parse_every_way(&cat(&[BOM, b"data:", BOM, b"x\n\n"]), &[msg("\u{feff}x")]);
}

#[test]
fn a_bom_not_at_the_start_is_kept() {
    // On a later line it is part of the field name.
    parse_every_way(&cat(&[b"data: a\n\n", BOM, b"data: b\n\n"]), &[msg("a")]);
    // After a blank first line, too.
    parse_every_way(&cat(&[b"\n", BOM, b"data: b\n\n"]), &[]);
    // In data it is data.
    parse_every_way(&cat(&[b"data: ", BOM, b"\n\n"]), &[msg("\u{feff}")]);
    // An incomplete BOM is no BOM: invalid UTF-8, one U+FFFD, and so the
    // field is `\u{fffd}data`, unknown.
    parse_every_way(b"\xEF\xBBdata: x\n\n", &[]);
    parse_every_way(b"\xEF\xBB\ndata: x\n\n", &[msg("x")]);
}

// Line ends: CRLF, LF and a lone CR.

#[test]
fn every_line_end_in_every_combination() {
    for first in ["\r\n", "\n", "\r"] {
        for second in ["\r\n", "\n", "\r"] {
            for third in ["\r\n", "\n", "\r"] {
                if second == "\r" && third.starts_with('\n') {
                    // CR then LF is one line end, not a blank line.
                    continue;
                }
                let stream = format!("data: a{first}data: b{second}{third}data: c{first}{first}");
                parse_every_way(stream.as_bytes(), &[msg("a\nb"), msg("c")]);
            }
        }
    }
    // LF CR is two line ends (a blank line), CR LF one.
    parse_every_way(b"data: a\n\rdata: b\r\n\r\n", &[msg("a"), msg("b")]);
    // CR CR LF: a line end, then a blank line.
    parse_every_way(b"data: a\r\r\ndata: b\r\n\n", &[msg("a"), msg("b")]);
}

#[test]
fn a_lone_cr_ending_one_feed_then_another_byte() {
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: a\r").is_empty());
    // The CR ended the line: `data: b` is a line of its own.
    assert!(parser.feed(b"data: b\r").is_empty());
    // A CR after a CR is a blank line.
    assert_eq!(parser.feed(b"\r"), [msg("a\nb")]);
    assert!(!parser.has_pending());

    // A lone CR, then a colon: the next line is a comment.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: a\r").is_empty());
    assert!(parser.feed(b": c\r").is_empty());
    assert_eq!(parser.comments(), 1);
    assert_eq!(parser.feed(b"\n\n"), [msg("a")]);

    // A CR as the last byte of one feed, the LF the first of the next: one
    // line end. With the blank line split the same way.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: a\r").is_empty());
    assert!(parser.feed(b"\n").is_empty());
    assert_eq!(parser.feed(b"\r"), [msg("a")]);
    // The LF after that CR belongs to it.
    assert_eq!(parser.feed(b"\ndata: b\r\n\r"), [msg("b")]);
    assert_eq!(parser.feed(b"\n"), []);
    assert!(!parser.has_pending());
    // A blank line with nothing before it dispatches nothing.
    assert_eq!(parser.feed(b"\n"), []);
    // An empty feed between a CR and its LF changes nothing.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: b\r").is_empty());
    assert!(parser.feed(b"").is_empty());
    assert!(parser.feed(b"\n").is_empty());
    assert_eq!(parser.feed(b"\r\n"), [msg("b")]);
}

// Fields.

#[test]
fn only_one_leading_space_is_stripped_from_every_field() {
    parse_every_way(
        b"event:  e\nid:  7\ndata:  d\n\n",
        &[event(" e", " d", " 7", None)],
    );
    parse_every_way(b"event:e\nid:7\ndata:d\n\n", &[event("e", "d", "7", None)]);
    // A tab is not a space; trailing spaces stay.
    parse_every_way(b"data:\tx \n\n", &[msg("\tx ")]);
    // Only the first colon splits.
    parse_every_way(b"data::x\n\n", &[msg(":x")]);
}

#[test]
fn field_names_are_exact() {
    for line in [
        &b"Data: x"[..],
        b"DATA: x",
        b"data : x",
        b" data: x",
        b"data\t: x",
        b"datax",
        b"dat: x",
    ] {
        let stream = cat(&[line, b"\n\n"]);
        let parser = parse_every_way(&stream, &[]);
        assert!(!parser.has_pending());
    }
    // An unknown field does not end or spoil the event around it.
    parse_every_way(
        b"data: a\nfoo: bar\nevent\nDATA: no\ndata: b\n\n",
        &[msg("a\nb")],
    );
}

#[test]
fn the_event_type_applies_to_its_own_block_only() {
    parse_every_way(
        b"event: one\nevent: two\ndata: a\n\ndata: b\n\nevent:\ndata: c\n\nevent\ndata: d\n\n",
        &[
            // The last `event` field of the block wins.
            event("two", "a", "", None),
            event("message", "b", "", None),
            // An empty type is `message`.
            event("message", "c", "", None),
            event("message", "d", "", None),
        ],
    );
}

#[test]
fn an_id_with_nul_is_ignored_and_the_previous_id_stays() {
    let parser = parse_every_way(
        b"id: 1\ndata: a\n\nid: 2\0\ndata: b\n\nid: \0\ndata: c\n\nid: 3\nid: x\0y\ndata: d\n\n",
        &[
            event("message", "a", "1", None),
            event("message", "b", "1", None),
            event("message", "c", "1", None),
            // Within a block, an ignored id does not undo an earlier one.
            event("message", "d", "3", None),
        ],
    );
    assert_eq!(parser.last_event_id(), "3");
    // NUL is fine in data and in the event type.
    parse_every_way(
        b"event: a\0b\ndata: c\0d\n\n",
        &[event("a\0b", "c\0d", "", None)],
    );
}

#[test]
fn an_empty_id_resets_the_last_event_id() {
    for reset in [&b"id"[..], b"id:", b"id: "] {
        let stream = cat(&[b"id: 5\ndata: a\n\n", reset, b"\ndata: b\n\n"]);
        let parser = parse_every_way(
            &stream,
            &[
                event("message", "a", "5", None),
                event("message", "b", "", None),
            ],
        );
        assert_eq!(parser.last_event_id(), "");
    }
}

#[test]
fn the_last_event_id_persists_from_event_to_event() {
    let parser = parse_every_way(
        b"id: a\ndata: 1\n\ndata: 2\n\nevent: e\ndata: 3\n\nid: b\ndata: 4\n\ndata: 5\n\n",
        &[
            event("message", "1", "a", None),
            event("message", "2", "a", None),
            event("e", "3", "a", None),
            event("message", "4", "b", None),
            event("message", "5", "b", None),
        ],
    );
    assert_eq!(parser.last_event_id(), "b");
    // The id is taken at dispatch: an `id` after the data lines counts, and
    // before the blank line the last event id has not changed yet.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: x\nid: 9\n").is_empty());
    assert_eq!(parser.last_event_id(), "");
    assert_eq!(parser.feed(b"\n"), [event("message", "x", "9", None)]);
    assert_eq!(parser.last_event_id(), "9");
}

#[test]
fn a_block_without_data_sets_the_last_event_id_but_is_not_dispatched() {
    let mut parser = EventParser::new();
    assert!(parser.feed(b"id: 5\n\n").is_empty());
    assert_eq!(parser.last_event_id(), "5");
    assert!(parser.feed(b"id: 6\nevent: e\nretry: 10\n\n").is_empty());
    assert_eq!(parser.last_event_id(), "6");
    assert!(!parser.has_pending());
    // The next event carries it; the type of the empty block is gone.
    assert_eq!(
        parser.feed(b"data: x\n\n"),
        [event("message", "x", "6", Some(10))]
    );
    parse_every_way(
        b"id: 5\n\n: c\n\nevent: e\n\ndata: x\n\nid\n\ndata: y\n\n",
        &[
            event("message", "x", "5", None),
            event("message", "y", "", None),
        ],
    );
}

#[test]
fn retry_counts_only_when_all_ascii_digits() {
    let cases: [(&[u8], Option<u64>); 6] = [
        (b"retry: 0", Some(0)),
        (b"retry:100", Some(100)),
        (b"retry: 3000", Some(3000)),
        (b"retry: 007", Some(7)),
        (b"retry: 18446744073709551615", Some(u64::MAX)),
        (b"retry", None),
    ];
    for (line, expected) in cases {
        let stream = cat(&[line, b"\ndata: z\n\n"]);
        parse_every_way(&stream, &[event("message", "z", "", expected)]);
    }
    // An invalid retry is ignored: the previous value stays.
    for bad in [
        &b"retry: 10a"[..],
        b"retry: -1",
        b"retry: 1.5",
        b"retry:",
        b"retry: ",
        b"retry:  100",
        b"retry: 100 ",
        b"retry: +1",
        b"retry: 1e3",
        b"retry: 0x10",
        b"retry: \xD9\xA1",     // ARABIC-INDIC DIGIT ONE
        b"retry: \xEF\xBC\x91", // FULLWIDTH DIGIT ONE
        b"retry: 1\0",
        b"Retry: 1",
    ] {
        let stream = cat(&[b"retry: 500\n", bad, b"\ndata: z\n\n"]);
        let parser = parse_every_way(&stream, &[event("message", "z", "", Some(500))]);
        assert_eq!(
            parser.retry(),
            Some(500),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
        let stream = cat(&[bad, b"\ndata: z\n\n"]);
        let parser = parse_every_way(&stream, &[event("message", "z", "", None)]);
        assert_eq!(parser.retry(), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn a_huge_retry_is_taken_as_the_largest_number() {
    for digits in [
        &b"18446744073709551616"[..],
        b"99999999999999999999999999999999999999999999999999",
        b"000000000000000000000000000000000000000000000000001",
    ] {
        let stream = cat(&[b"retry: ", digits, b"\ndata: z\n\n"]);
        let expected = if digits.starts_with(b"0") {
            1
        } else {
            u64::MAX
        };
        parse_every_way(&stream, &[event("message", "z", "", Some(expected))]);
    }
}

#[test]
fn retry_applies_at_once_and_persists() {
    let mut parser = EventParser::new();
    // No blank line needed: the reconnection time is set when the field is
    // read, and a block with no data keeps it.
    assert!(parser.feed(b"retry: 10\n").is_empty());
    assert_eq!(parser.retry(), Some(10));
    assert!(!parser.has_pending());
    assert_eq!(
        parser.feed(b"data: a\n\ndata: b\nretry: 20\n\ndata: c\n\n"),
        [
            event("message", "a", "", Some(10)),
            event("message", "b", "", Some(20)),
            event("message", "c", "", Some(20)),
        ]
    );
}

#[test]
fn comments_are_ignored_wherever_they_are() {
    let parser = parse_every_way(
        b":data: x\n\n: id: 1\ndata: a\n:\ndata: b\n: event: e\n\n:retry: 5\n",
        &[msg("a\nb")],
    );
    assert_eq!(parser.comments(), 5);
    assert_eq!(parser.retry(), None);
    assert!(!parser.has_pending());
}

// Invalid UTF-8 becomes U+FFFD.

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    let cases: [(&[u8], &str); 11] = [
        (b"\xFF", "\u{fffd}"),
        (b"a\xFEb", "a\u{fffd}b"),
        // A lone continuation byte.
        (b"\x80", "\u{fffd}"),
        // A sequence cut short by the end of the line: one U+FFFD.
        (b"a\xE2\x82", "a\u{fffd}"),
        (b"\xF0\x9F\x98", "\u{fffd}"),
        // Cut short by another character.
        (b"\xF0\x9F\x98x", "\u{fffd}x"),
        // Overlong encodings of `/`: each byte is an error.
        (b"\xC0\xAF", "\u{fffd}\u{fffd}"),
        (b"\xE0\x80\xAF", "\u{fffd}\u{fffd}\u{fffd}"),
        // A surrogate, and a code point past U+10FFFF.
        (b"\xED\xA0\x80", "\u{fffd}\u{fffd}\u{fffd}"),
        (b"\xF4\x90\x80\x80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
        // Valid text around it is kept.
        (b"\xC3\xA9\xFF\xE2\x98\x83", "é\u{fffd}☃"),
    ];
    for (bytes, expected) in cases {
        let stream = cat(&[b"data: ", bytes, b"\n\n"]);
        parse_every_way(&stream, &[msg(expected)]);
        // Cut short by a CR, and by a CRLF.
        let stream = cat(&[b"data: ", bytes, b"\rdata: b\r\n\r\n"]);
        parse_every_way(&stream, &[msg(&format!("{expected}\nb"))]);
    }
}

#[test]
fn invalid_utf8_in_names_ids_and_types() {
    // In a field name: an unknown field.
    parse_every_way(b"d\xFFata: x\n\n", &[]);
    parse_every_way(
        b"event: \xFF\nid: \xE2\x82\ndata: x\n\n",
        &[event("\u{fffd}", "x", "\u{fffd}", None)],
    );
    // In a retry: not digits.
    parse_every_way(b"retry: 1\xFF\ndata: x\n\n", &[msg("x")]);
}

#[test]
fn utf8_split_across_feeds() {
    // Valid, split inside the sequence.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: \xF0\x9F").is_empty());
    assert!(parser.feed(b"\x98").is_empty());
    assert_eq!(parser.feed(b"\x80\n\n"), [msg("😀")]);
    // Invalid, split inside the sequence: still one U+FFFD.
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: \xE2").is_empty());
    assert!(parser.feed(b"\x82").is_empty());
    assert_eq!(parser.feed(b"\n\n"), [msg("\u{fffd}")]);
    let mut parser = EventParser::new();
    assert!(parser.feed(b"data: \xF0\x9F").is_empty());
    assert_eq!(parser.feed(b"\x98x\n\n"), [msg("\u{fffd}x")]);
    // parse_every_way cuts every stream of the tests above at every point.
}

// What is pending at the end of the stream.

#[test]
fn pending_fields_at_the_end_of_the_stream_are_not_dispatched() {
    for pending in [
        &b"data: x\n"[..],
        b"data: x",
        b"data: x\r",
        b"data: x\r\n",
        b"data\n",
        b"event: e\n",
        b"id: 1\n",
        b"id\n",
        b"data: a\n\ndata: b\n",
        b"\xEF",
        b"\xEF\xBB",
        b"\xEF\xBB\xBFd",
        b"\xEF\xBB\xBFid: 1\n",
        b":",
        b"retry: 1",
        b"foo",
    ] {
        let show = String::from_utf8_lossy(pending);
        let mut parser = EventParser::new();
        let dispatched = parser.feed(pending);
        assert!(parser.has_pending(), "{show:?}");
        assert_eq!(
            dispatched.len(),
            usize::from(pending.starts_with(b"data: a\n\n"))
        );
        // A pending id has not become the last event id.
        assert_eq!(parser.last_event_id(), "", "{show:?}");
    }
    for done in [
        &b""[..],
        b"data: x\n\n",
        b"data: x\r\r",
        b": c\n",
        b"retry: 5\n",
        b"foo: bar\n",
        b"id: 1\0\n",
        BOM,
        b"\n",
    ] {
        let mut parser = EventParser::new();
        parser.feed(done);
        assert!(!parser.has_pending(), "{:?}", String::from_utf8_lossy(done));
    }
}

#[test]
fn blocks_counts_every_dispatch_with_or_without_data() {
    let mut parser = EventParser::new();
    assert_eq!(parser.blocks(), 0);
    parser.feed(b": a comment\n");
    assert_eq!(parser.blocks(), 0, "a comment ends no block");
    let events = parser.feed(b"id: 1\n\ndata: x\n\n\n");
    assert_eq!(events.len(), 1);
    assert_eq!(
        parser.blocks(),
        3,
        "an id-only block, an event, an empty block"
    );
    assert_eq!(parser.last_event_id(), "1");
}
