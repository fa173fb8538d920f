//! Property tests of the event encoder, without extra dependencies: a
//! fixed-seed SplitMix64 generator builds thousands of events from pieces
//! rich in line breaks, NULs, colons, field names and non-ASCII text. Each
//! event is either refused (an event name or id with CR or LF, an id with
//! NUL: `Error::InvalidField`), or its bytes, fed to the WHATWG parser of
//! `support`, give exactly one event with the data (line breaks turned into
//! LF), type, last event id and retry (capped at a day) that were set: no
//! injected field, no extra event. A failing case is shrunk (pieces removed
//! while it still fails) and the smallest input is printed.
//!
//! A second property builds streams: several events and comments
//! (`Event::comment`) in a row, some with ids (empty ones too), some with a
//! retry, sometimes after a BOM, encoded and concatenated, then cut at
//! random points and fed piece by piece (through `feed` or `feed_with`).
//! They must give back exactly the events, in order, with the last event id
//! and the retry carried as state from event to event, and no event for a
//! comment.

mod support;

use std::fmt::Write as _;
use std::time::Duration;

use sse_server::parse::{EventParser, ParsedEvent};
use sse_server::{Error, Event, Hub};

const CASES: usize = 5_000;

/// The pieces strings are made of.
const PIECES: &[&str] = &[
    "\r",
    "\n",
    "\r\n",
    "\n\r",
    "\r\r",
    "\n\n",
    "\0",
    " ",
    "  ",
    ":",
    ": ",
    "data:",
    "data: ",
    "id:",
    "id: ",
    "event:",
    "event: x",
    "retry:",
    "retry: 1",
    "\u{feff}",
    "é",
    "☃",
    "😀",
    "\t",
    "a",
    "Z",
    "0",
    "x y",
    "\u{2028}",
    "\u{85}",
    "\u{7f}",
    ":\n",
    "\n:",
    "\ndata: forged\n\n",
    "\r\nid: 666\r\n",
    "\revent: evil\r",
];

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    /// Up to `max` pieces.
    fn pieces(&mut self, max: usize) -> Vec<&'static str> {
        let n = self.below(max + 1);
        (0..n).map(|_| PIECES[self.below(PIECES.len())]).collect()
    }

    /// Pieces for a field that is usually valid: line breaks (and NUL)
    /// only now and then.
    fn field_pieces(&mut self, max: usize) -> Vec<&'static str> {
        let bad = self.chance(4);
        let n = self.below(max + 1);
        (0..n)
            .map(|_| {
                loop {
                    let piece = PIECES[self.below(PIECES.len())];
                    if bad || !piece.contains(['\r', '\n', '\0']) {
                        break piece;
                    }
                }
            })
            .collect()
    }
}

/// One generated event, as pieces (so that it can be shrunk piece by
/// piece).
#[derive(Clone, Debug)]
struct Case {
    data: Vec<&'static str>,
    comment: Option<Vec<&'static str>>,
    name: Option<Vec<&'static str>>,
    id: Option<Vec<&'static str>>,
    retry: Option<u64>,
}

impl Case {
    fn generate(rng: &mut Rng) -> Case {
        Case {
            data: rng.pieces(12),
            comment: rng.chance(3).then(|| rng.pieces(6)),
            name: rng.chance(2).then(|| rng.field_pieces(4)),
            id: rng.chance(2).then(|| rng.field_pieces(4)),
            retry: rng.chance(4).then(|| rng.next() % 100_000_000),
        }
    }

    fn describe(&self) -> String {
        let join = |pieces: &[&str]| pieces.concat();
        let mut out = format!("data {:?}", join(&self.data));
        if let Some(comment) = &self.comment {
            let _ = write!(out, ", comment {:?}", join(comment));
        }
        if let Some(name) = &self.name {
            let _ = write!(out, ", event name {:?}", join(name));
        }
        if let Some(id) = &self.id {
            let _ = write!(out, ", id {:?}", join(id));
        }
        if let Some(retry) = self.retry {
            let _ = write!(out, ", retry {retry} ms");
        }
        out
    }

    /// Every case with one piece fewer (or one optional field fewer).
    fn smaller(&self) -> Vec<Case> {
        let mut out = Vec::new();
        let drop_one = |pieces: &Vec<&'static str>| -> Vec<Vec<&'static str>> {
            (0..pieces.len())
                .map(|i| {
                    let mut fewer = pieces.clone();
                    fewer.remove(i);
                    fewer
                })
                .collect()
        };
        for data in drop_one(&self.data) {
            out.push(Case {
                data,
                ..self.clone()
            });
        }
        if let Some(comment) = &self.comment {
            out.push(Case {
                comment: None,
                ..self.clone()
            });
            for comment in drop_one(comment) {
                out.push(Case {
                    comment: Some(comment),
                    ..self.clone()
                });
            }
        }
        if let Some(name) = &self.name {
            out.push(Case {
                name: None,
                ..self.clone()
            });
            for name in drop_one(name) {
                out.push(Case {
                    name: Some(name),
                    ..self.clone()
                });
            }
        }
        if let Some(id) = &self.id {
            out.push(Case {
                id: None,
                ..self.clone()
            });
            for id in drop_one(id) {
                out.push(Case {
                    id: Some(id),
                    ..self.clone()
                });
            }
        }
        if self.retry.is_some() {
            out.push(Case {
                retry: None,
                ..self.clone()
            });
        }
        out
    }
}

/// What the event-stream format makes of line breaks: CRLF, LF and a lone
/// CR each become LF.
fn normalised(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Whether `Event::with_id` refuses `id`: what would not come back
/// unchanged in a `Last-Event-ID` header (anything but printable ASCII,
/// and spaces or tabs between), as its documentation says.
fn id_refused(id: &str) -> bool {
    let inner = |b: u8| b.is_ascii_graphic() || b == b' ' || b == b'\t';
    !id.bytes().all(inner) || id.starts_with([' ', '\t']) || id.ends_with([' ', '\t'])
}

/// Builds the event and checks it; `Err` says what went wrong.
fn check(case: &Case) -> Result<(), String> {
    let data = case.data.concat();
    let name = case.name.as_ref().map(|p| p.concat());
    let id = case.id.as_ref().map(|p| p.concat());
    let mut event = Event::new(data.clone());
    if let Some(comment) = &case.comment {
        event = event.with_comment(comment.concat());
    }
    if let Some(retry) = case.retry {
        event = event.with_retry(Duration::from_millis(retry));
    }
    if let Some(name) = &name {
        let refuse = name.contains(['\r', '\n']);
        match (event.with_event(name.as_str()), refuse) {
            (Ok(_), true) => return Err("an event name with a line break was accepted".into()),
            (Err(Error::InvalidField { field: "event", .. }), true) => return Ok(()),
            (Err(e), _) => return Err(format!("event name refused wrongly: {e:?}")),
            (Ok(named), false) => event = named,
        }
    }
    if let Some(id) = &id {
        let refuse = id_refused(id);
        match (event.with_id(id.as_str()), refuse) {
            (Ok(_), true) => {
                return Err("an id that cannot come back in Last-Event-ID was accepted".into());
            }
            (Err(Error::InvalidField { field: "id", .. }), true) => return Ok(()),
            (Err(e), _) => return Err(format!("id refused wrongly: {e:?}")),
            (Ok(with_id), false) => event = with_id,
        }
    }

    let bytes = event.to_bytes();
    let expected = ParsedEvent {
        event_type: match name.as_deref() {
            None | Some("") => "message".to_owned(),
            Some(name) => name.to_owned(),
        },
        data: normalised(&data),
        last_event_id: id.clone().unwrap_or_default(),
        // Event::with_retry caps the reconnection time at a day.
        retry: case.retry.map(|retry| retry.min(24 * 60 * 60 * 1000)),
    };
    let show = || format!("bytes {:?}", String::from_utf8_lossy(&bytes));

    // The whole event at once: exactly one event, nothing left over.
    let mut parser = EventParser::new();
    let events = parser.feed(&bytes);
    if events != [expected.clone()] {
        return Err(format!(
            "parsed {events:?}, expected [{expected:?}]; {}",
            show()
        ));
    }
    if parser.has_pending() {
        return Err(format!("the parser holds a partial event; {}", show()));
    }
    let comment_lines = case
        .comment
        .as_ref()
        .map_or(0, |c| normalised(&c.concat()).split('\n').count());
    if parser.comments() != comment_lines {
        return Err(format!(
            "{} comment lines, expected {comment_lines}; {}",
            parser.comments(),
            show()
        ));
    }
    // Every line is a field or a comment, LF-terminated, and the event
    // ends with exactly one blank line.
    if !bytes.ends_with(b"\n\n") || bytes.ends_with(b"\n\n\n") || bytes.contains(&b'\r') {
        return Err(format!("badly terminated or a CR on the wire; {}", show()));
    }
    // Byte by byte (every split point of an incremental parser), and the
    // event twice in a row: two events, the same twice.
    let mut parser = EventParser::new();
    let mut events = Vec::new();
    for &b in bytes.iter().chain(bytes.iter()) {
        events.extend(parser.feed(&[b]));
    }
    if events != [expected.clone(), expected.clone()] {
        return Err(format!(
            "byte by byte, twice: parsed {events:?}; {}",
            show()
        ));
    }
    Ok(())
}

/// Removes pieces while the case still fails; returns the smallest.
fn shrink(mut case: Case) -> (Case, String) {
    let mut failure = check(&case).expect_err("shrinking a case that fails");
    'outer: loop {
        for smaller in case.smaller() {
            if let Err(e) = check(&smaller) {
                case = smaller;
                failure = e;
                continue 'outer;
            }
        }
        return (case, failure);
    }
}

#[test]
fn every_event_is_refused_or_parses_back_to_exactly_itself() {
    let mut rng = Rng(0x5eed_0001);
    let mut refused = 0;
    for n in 0..CASES {
        let case = Case::generate(&mut rng);
        if check(&case).is_err() {
            let (small, failure) = shrink(case.clone());
            panic!(
                "case {n} fails: {failure}\n  minimal input: {}\n  original input: {}",
                small.describe(),
                case.describe()
            );
        }
        let name_bad = case
            .name
            .as_ref()
            .is_some_and(|p| p.concat().contains(['\r', '\n']));
        let id_bad = case.id.as_ref().is_some_and(|p| id_refused(&p.concat()));
        refused += usize::from(name_bad || id_bad);
    }
    // The generator reaches both sides.
    assert!(
        refused > CASES / 20 && refused < CASES / 2,
        "{refused} of {CASES} refused"
    );
}

#[test]
fn notify_data_parses_back_to_exactly_itself() {
    // `Hub::notify` encodes data-only events on its own path.
    let hub = Hub::builder()
        .history_events(0)
        .client_buffer(1 << 12)
        .build()
        .expect("build the hub");
    let subscription = hub.subscribe().expect("subscribe");
    let mut rng = Rng(0x5eed_0002);
    let cases: Vec<String> = (0..2_000).map(|_| rng.pieces(12).concat()).collect();
    for (n, data) in cases.iter().enumerate() {
        hub.notify(data).expect("notify");
        let mut bytes = Vec::new();
        let mut parser = EventParser::new();
        let mut events = Vec::new();
        // A frame holds whole events; a batch may hold several.
        while events.is_empty() {
            let frame = subscription
                .recv_timeout(Duration::from_secs(5))
                .expect("the hub is open")
                .expect("a frame within 5 s");
            bytes.extend_from_slice(frame.as_bytes());
            events.extend(parser.feed(frame.as_bytes()));
        }
        assert_eq!(
            events,
            [ParsedEvent::message(&normalised(data))],
            "case {n}: notify({data:?}) sent {:?}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(!parser.has_pending(), "case {n}: notify({data:?})");
    }
    hub.shutdown().expect("shutdown");
}

/// How many streams the sequence property builds.
const STREAMS: usize = 3_000;

/// One item of a generated stream: an event (with optional fields) or a
/// comment made with `Event::comment`, as plain strings so that a failing
/// stream can be shrunk item by item.
#[derive(Clone, Debug)]
struct Item {
    /// `Event::comment(text)`; otherwise `Event::new(data)`.
    comment_only: Option<String>,
    data: String,
    comment: Option<String>,
    name: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
}

impl Rng {
    /// Text from pieces with no CR, LF or NUL: a valid event name.
    fn valid_field(&mut self, max: usize) -> String {
        let n = self.below(max + 1);
        let mut out = String::new();
        while out.len() < n {
            let piece = PIECES[self.below(PIECES.len())];
            if !piece.contains(['\r', '\n', '\0']) {
                out.push_str(piece);
            }
        }
        out
    }

    /// A valid id: [`Rng::valid_field`] without what `id_refused` refuses.
    fn valid_id(&mut self, max: usize) -> String {
        loop {
            let id = self.valid_field(max);
            if !id_refused(&id) {
                return id;
            }
        }
    }

    fn item(&mut self) -> Item {
        let retry = self.chance(4).then(|| match self.below(3) {
            0 => self.next() % 1_000,
            1 => self.next() % 100_000_000,
            // Past the one-day cap.
            _ => self.next() % (1 << 40),
        });
        if self.chance(4) {
            return Item {
                comment_only: Some(self.pieces(6).concat()),
                data: String::new(),
                comment: None,
                name: None,
                id: None,
                retry,
            };
        }
        Item {
            comment_only: None,
            data: self.pieces(8).concat(),
            comment: self.chance(4).then(|| self.pieces(4).concat()),
            name: self.chance(2).then(|| self.valid_field(3)),
            // Now and then an empty id, which resets the last event id.
            id: self.chance(3).then(|| self.valid_id(3)),
            retry,
        }
    }
}

impl Item {
    fn to_event(&self) -> Event {
        let mut event = match &self.comment_only {
            Some(text) => Event::comment(text.as_str()),
            None => Event::new(self.data.as_str()),
        };
        if let Some(comment) = &self.comment {
            event = event.with_comment(comment.as_str());
        }
        if let Some(name) = &self.name {
            event = event.with_event(name.as_str()).expect("a valid name");
        }
        if let Some(id) = &self.id {
            event = event.with_id(id.as_str()).expect("a valid id");
        }
        if let Some(retry) = self.retry {
            event = event.with_retry(Duration::from_millis(retry));
        }
        event
    }
}

/// What a parser must end with after a whole stream.
struct Expected {
    events: Vec<ParsedEvent>,
    last_event_id: String,
    retry: Option<u64>,
    comments: usize,
}

/// The events the items make, with the last event id and the retry as
/// state carried from item to item; comments make none.
fn expected(items: &[Item]) -> Expected {
    let lines = |text: &str| normalised(text).split('\n').count();
    let mut out = Expected {
        events: Vec::new(),
        last_event_id: String::new(),
        retry: None,
        comments: 0,
    };
    for item in items {
        if let Some(retry) = item.retry {
            // Event::with_retry caps the reconnection time at a day.
            out.retry = Some(retry.min(24 * 60 * 60 * 1000));
        }
        if let Some(text) = &item.comment_only {
            out.comments += lines(text);
            continue;
        }
        out.comments += item.comment.as_deref().map_or(0, lines);
        if let Some(id) = &item.id {
            out.last_event_id.clone_from(id);
        }
        out.events.push(ParsedEvent {
            event_type: match item.name.as_deref() {
                None | Some("") => "message".to_owned(),
                Some(name) => name.to_owned(),
            },
            data: normalised(&item.data),
            last_event_id: out.last_event_id.clone(),
            retry: out.retry,
        });
    }
    out
}

/// Encodes the items, concatenates them (after a BOM when `bom`), cuts the
/// stream into random pieces drawn from `cut_seed`, feeds them one by one
/// and compares; `Err` says what went wrong.
fn check_stream(items: &[Item], bom: bool, cut_seed: u64) -> Result<(), String> {
    let mut stream = Vec::new();
    if bom {
        stream.extend_from_slice("\u{feff}".as_bytes());
    }
    for item in items {
        stream.extend_from_slice(&item.to_event().to_bytes());
    }
    let expected = expected(items);

    let mut rng = Rng(cut_seed);
    let borrowed = rng.chance(2);
    let mut parser = EventParser::new();
    let mut events = Vec::new();
    let mut cuts = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        // Mostly small pieces (every kind of split), now and then a large one.
        let max = if rng.chance(4) { 256 } else { 4 };
        let len = (1 + rng.below(max)).min(rest.len());
        let (piece, after) = rest.split_at(len);
        if borrowed {
            parser.feed_with(piece, |event| events.push(event.to_parsed()));
        } else {
            events.extend(parser.feed(piece));
        }
        cuts.push(len);
        rest = after;
    }

    let show = || {
        format!(
            "stream {:?}, cut into pieces of {cuts:?} bytes",
            String::from_utf8_lossy(&stream)
        )
    };
    if events != expected.events {
        return Err(format!(
            "parsed {events:#?}\nexpected {:#?}\n{}",
            expected.events,
            show()
        ));
    }
    if parser.has_pending() {
        return Err(format!("the parser holds a partial event; {}", show()));
    }
    if parser.last_event_id() != expected.last_event_id || parser.retry() != expected.retry {
        return Err(format!(
            "ends with last event id {:?} and retry {:?}, expected {:?} and {:?}; {}",
            parser.last_event_id(),
            parser.retry(),
            expected.last_event_id,
            expected.retry,
            show()
        ));
    }
    if parser.comments() != expected.comments {
        return Err(format!(
            "{} comment lines, expected {}; {}",
            parser.comments(),
            expected.comments,
            show()
        ));
    }
    Ok(())
}

#[test]
fn a_sequence_of_events_cut_anywhere_parses_back_to_exactly_itself() {
    let mut rng = Rng(0x5eed_0003);
    let (mut events, mut comments, mut ids) = (0, 0, 0);
    for n in 0..STREAMS {
        let count = 1 + rng.below(8);
        let mut items: Vec<Item> = (0..count).map(|_| rng.item()).collect();
        let bom = rng.chance(5);
        let cut_seed = rng.next();
        if let Err(failure) = check_stream(&items, bom, cut_seed) {
            // Shrink: drop items while the stream still fails, same cuts.
            let mut failure = failure;
            'shrink: loop {
                for i in 0..items.len() {
                    let mut fewer = items.clone();
                    fewer.remove(i);
                    if let Err(e) = check_stream(&fewer, bom, cut_seed) {
                        items = fewer;
                        failure = e;
                        continue 'shrink;
                    }
                }
                break;
            }
            panic!("stream {n} fails: {failure}\n  smallest items: {items:#?}");
        }
        for item in &items {
            if item.comment_only.is_some() {
                comments += 1;
            } else {
                events += 1;
                ids += usize::from(item.id.is_some());
            }
        }
    }
    // The generator reaches every kind of item.
    assert!(events > STREAMS * 2, "{events} events");
    assert!(comments > STREAMS / 2, "{comments} comments");
    assert!(ids > STREAMS / 2, "{ids} ids");
}
