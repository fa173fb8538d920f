//! One event as an entry of the shared Redis Stream, and back.
//!
//! An entry has four fields: `d`, the event's bytes as the hub sends them,
//! without an id (binary-safe, so any data travels unchanged); `n`, `1`
//! for an event and `0` for a comment; `r`, where it goes (`*` every
//! client, `t:<topic>` a topic, `c:<id>` one client); `p`, the publishing
//! process's node number, for an operator reading the stream by eye. The
//! entry's id becomes the event's id.

use std::sync::Arc;

use redis::Value;

use crate::client_id::ClientId;
use crate::encode;
use crate::frame::Frame;
use crate::messages::{Outgoing, Route};
use crate::stream_id::StreamId;

/// The fields of `outgoing` for `XADD`, published by node `node`.
pub(crate) fn fields(outgoing: &Outgoing, node: u64) -> [(&'static str, Vec<u8>); 4] {
    let route = match &outgoing.route {
        Route::All => b"*".to_vec(),
        Route::Topic(topic) => format!("t:{topic}").into_bytes(),
        Route::Client(id) => format!("c:{}", id.get()).into_bytes(),
    };
    [
        ("d", outgoing.frame.as_bytes().to_vec()),
        (
            "n",
            if outgoing.frame.events() == 0 {
                b"0".to_vec()
            } else {
                b"1".to_vec()
            },
        ),
        ("r", route),
        ("p", node.to_string().into_bytes()),
    ]
}

/// An entry of the stream, `[id, [field, value, ...]]`, as the event the
/// hub thread sends on: with the entry's id in its bytes. `None` for what
/// this crate did not write: it is skipped (see [`decode_checked`]).
pub(crate) fn decode(entry: &Value) -> Option<(StreamId, Outgoing)> {
    decode_checked(entry).ok()
}

/// [`decode`], or why the entry is not one this crate wrote: no `d`, `n`
/// or `r` field, one of them not as written here, or a `d` that is not the
/// bytes of one event (or comment) as `Event` and `Hub::notify` encode it.
/// The entry id is added to `d` as an `id:` line and `d` goes to clients
/// as it is, so what would change the next event (a block without its
/// blank line), set an id (an `id:` line) or be read otherwise by some
/// parser (a CR) must not pass.
pub(crate) fn decode_checked(entry: &Value) -> Result<(StreamId, Outgoing), &'static str> {
    let Value::Array(parts) = entry else {
        return Err("not an entry");
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return Err("not an entry");
    };
    let id_text = text(id).ok_or("an entry id that is not text")?;
    let position = StreamId::parse(&id_text).ok_or("an entry id that is not <ms>-<seq>")?;
    let mut data = None;
    let mut events = None;
    let mut route = None;
    for pair in fields.chunks_exact(2) {
        let (Some(name), value) = (bytes(&pair[0]), &pair[1]) else {
            continue;
        };
        match name {
            b"d" => data = bytes(value),
            b"n" => {
                events = match bytes(value) {
                    Some(b"0") => Some(0),
                    Some(b"1") => Some(1),
                    _ => return Err("an `n` field other than 0 or 1"),
                }
            }
            b"r" => {
                route = Some(
                    bytes(value)
                        .and_then(decode_route)
                        .ok_or("an `r` field that is not *, t:<topic> or c:<id>")?,
                )
            }
            _ => {}
        }
    }
    let data = data.ok_or("no `d` field")?;
    let events = events.ok_or("no `n` field")?;
    let route = route.ok_or("no `r` field")?;
    written_here(data, events == 1)?;
    let id: Arc<str> = Arc::from(id_text);
    // A comment is no event: no id, which would make it a block with an id
    // and no data.
    let (frame, custom_id) = if events == 0 {
        (Frame::new(data.to_vec(), 0), None)
    } else {
        (
            Frame::new(encode::with_id_text(&id, data), 1),
            Some(Arc::clone(&id)),
        )
    };
    Ok((
        position,
        Outgoing {
            frame,
            custom_id,
            route,
            position: Some(position),
            after_loss: false,
        },
    ))
}

/// Whether `data` is what this crate writes in `d` (`encode.rs`,
/// `Event::encode_into` without the id): for an event, `:` comment lines,
/// `event: `, `retry: <digits>` and `data: ` (or bare `data:`) lines, at
/// least one of them a data line, then one blank line; for a comment,
/// comment lines and at most a `retry:` line, with no blank line. Every
/// line ends in LF; no CR anywhere, no `id:` line, no other field.
fn written_here(data: &[u8], event: bool) -> Result<(), &'static str> {
    if data.contains(&b'\r') {
        return Err("a `d` field with a CR in it");
    }
    let body = if event {
        data.strip_suffix(b"\n\n")
            .ok_or("an event's `d` field that does not end with a blank line")?
    } else {
        data.strip_suffix(b"\n")
            .ok_or("a comment's `d` field that does not end with a line end")?
    };
    let mut data_lines = 0;
    let mut comment_lines = 0;
    for line in body.split(|&b| b == b'\n') {
        let retry = line
            .strip_prefix(b"retry: ")
            .is_some_and(|millis| !millis.is_empty() && millis.iter().all(u8::is_ascii_digit));
        if line.starts_with(b":") {
            comment_lines += 1;
        } else if event && (line == b"data:" || line.starts_with(b"data: ")) {
            data_lines += 1;
        } else if !(retry || event && line.starts_with(b"event: ")) {
            return Err(if line.is_empty() {
                "a `d` field with a blank line before its end"
            } else if line.starts_with(b"id:") || line == b"id" {
                "a `d` field with an `id:` line"
            } else {
                "a `d` field with a line this crate does not write"
            });
        }
    }
    if event && data_lines == 0 {
        return Err("an event's `d` field without a data line");
    }
    if !event && comment_lines == 0 {
        return Err("a comment's `d` field without a comment line");
    }
    Ok(())
}

fn decode_route(value: &[u8]) -> Option<Route> {
    if value == b"*" {
        return Some(Route::All);
    }
    let value = std::str::from_utf8(value).ok()?;
    if let Some(topic) = value.strip_prefix("t:") {
        return Some(Route::Topic(Arc::from(topic)));
    }
    let id = value.strip_prefix("c:")?.parse().ok()?;
    Some(Route::Client(ClientId::new(id)))
}

fn bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::BulkString(bytes) => Some(bytes),
        Value::SimpleString(text) => Some(text.as_bytes()),
        _ => None,
    }
}

/// A reply value as text (an entry id, say).
pub(crate) fn text(value: &Value) -> Option<String> {
    String::from_utf8(bytes(value)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn as_entry(id: &str, fields: &[(&'static str, Vec<u8>)]) -> Value {
        let mut values = Vec::new();
        for (name, value) in fields {
            values.push(Value::BulkString(name.as_bytes().to_vec()));
            values.push(Value::BulkString(value.clone()));
        }
        Value::Array(vec![
            Value::BulkString(id.as_bytes().to_vec()),
            Value::Array(values),
        ])
    }

    #[test]
    fn an_event_comes_back_with_the_entry_id_and_its_route() {
        for route in [
            Route::All,
            Route::Topic(Arc::from("news: σ")),
            Route::Client(ClientId::new(u64::MAX)),
        ] {
            let outgoing = Outgoing {
                frame: Frame::new(b"event: e\ndata: \xff\n\n".to_vec(), 1),
                custom_id: None,
                route: route.clone(),
                position: None,
                after_loss: false,
            };
            let (position, back) = decode(&as_entry("5-1", &fields(&outgoing, 3))).unwrap();
            assert_eq!(position, StreamId { ms: 5, seq: 1 });
            assert_eq!(back.frame.as_bytes(), b"id: 5-1\nevent: e\ndata: \xff\n\n");
            assert_eq!(back.frame.events(), 1);
            assert_eq!(back.custom_id.as_deref(), Some("5-1"));
            assert_eq!(back.route, route);
            assert_eq!(back.position, Some(position));
        }
    }

    #[test]
    fn a_comment_gets_no_id_and_foreign_entries_are_skipped() {
        let comment = Outgoing {
            frame: Frame::new(b": hello\n".to_vec(), 0),
            custom_id: None,
            route: Route::All,
            position: None,
            after_loss: false,
        };
        let (_, back) = decode(&as_entry("7-0", &fields(&comment, 1))).unwrap();
        assert_eq!(back.frame.as_bytes(), b": hello\n");
        assert_eq!(back.frame.events(), 0);
        assert_eq!(back.custom_id, None);

        assert!(decode(&as_entry("7-1", &[("other", b"x".to_vec())])).is_none());
        assert!(decode(&as_entry("not-an-id", &fields(&comment, 1))).is_none());
        let bad_route = [("d", b"data: x\n\n".to_vec()), ("r", b"c:x".to_vec())];
        assert!(decode(&as_entry("8-0", &bad_route)).is_none());
        assert!(decode(&Value::Nil).is_none());
    }

    /// Every shape `Event` and `Hub::notify` give `d` comes back.
    #[test]
    fn what_the_crate_writes_passes_the_check() {
        use crate::event::Event;
        use std::time::Duration;
        let events = [
            Event::new(""),
            Event::new("a\r\nb\rc\n"),
            Event::new(" x").with_event("").unwrap(),
            Event::new("x")
                .with_event("e: f")
                .unwrap()
                .with_retry(Duration::from_millis(1500))
                .with_comment("c\n\nd"),
            Event::new("x")
                .with_id("dropped: the entry id replaces it")
                .unwrap(),
            Event::comment(""),
            Event::comment("a\nb").with_retry(Duration::MAX),
        ];
        for event in events {
            let outgoing = Outgoing {
                frame: event.to_frame_without_id(),
                custom_id: None,
                route: Route::All,
                position: None,
                after_loss: false,
            };
            let decoded = decode_checked(&as_entry("9-9", &fields(&outgoing, 1)));
            assert!(
                decoded.is_ok(),
                "{event:?}: {decoded:?}",
                decoded = decoded.err()
            );
        }
        let notified = Outgoing {
            frame: Frame::new(encode::data("one\n\nthree"), 1),
            custom_id: None,
            route: Route::Topic(Arc::from("t")),
            position: None,
            after_loss: false,
        };
        assert!(decode_checked(&as_entry("9-9", &fields(&notified, 1))).is_ok());
    }

    /// A `d` this crate would not write is skipped, with the reason: it
    /// could swallow the next event, forge an id, or be read otherwise.
    #[test]
    fn a_foreign_d_is_refused() {
        let entry = |d: &[u8], n: &[u8]| {
            as_entry(
                "5-0",
                &[("d", d.to_vec()), ("n", n.to_vec()), ("r", b"*".to_vec())],
            )
        };
        for (d, n) in [
            (&b"data: no end"[..], &b"1"[..]),
            (b"data: one line end\n", b"1"),
            (b"id: forged\ndata: x\n\n", b"1"),
            (b"data: x\nid: forged\n\n", b"1"),
            (b"id\ndata: x\n\n", b"1"),
            (b"data: a\n\ndata: b\n\n", b"1"),
            (b"data: x\r\n\r\n", b"1"),
            (b"data: x\rid: y\n\n", b"1"),
            (b"event: e\n\n", b"1"),
            (b"\n\n", b"1"),
            (b"data:x\n\n", b"1"),
            (b"data\n\n", b"1"),
            (b"retry: soon\ndata: x\n\n", b"1"),
            (b"foo: bar\ndata: x\n\n", b"1"),
            (b"", b"1"),
            (b": comment\n\n", b"0"),
            (b"data: x\n", b"0"),
            (b"event: e\n", b"0"),
            (b"retry: 5\n", b"0"),
            (b": no end", b"0"),
            (b"", b"0"),
            (b"data: x\n\n", b"2"),
            (b"data: x\n\n", b""),
        ] {
            let refused = decode_checked(&entry(d, n));
            assert!(
                refused.is_err(),
                "accepted d {:?} n {:?}",
                String::from_utf8_lossy(d),
                String::from_utf8_lossy(n)
            );
        }
        // Each field is needed.
        let d = ("d", b"data: x\n\n".to_vec());
        let n = ("n", b"1".to_vec());
        let r = ("r", b"*".to_vec());
        assert!(decode_checked(&as_entry("5-0", &[d.clone(), n.clone(), r.clone()])).is_ok());
        for fields in [[d.clone(), n.clone()], [d, r.clone()], [n, r]] {
            assert!(
                decode_checked(&as_entry("5-0", &fields)).is_err(),
                "{fields:?}"
            );
        }
    }
}
