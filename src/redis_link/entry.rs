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
/// this crate did not write (an entry without `d`, say): it is skipped.
pub(crate) fn decode(entry: &Value) -> Option<(StreamId, Outgoing)> {
    let Value::Array(parts) = entry else {
        return None;
    };
    let [id, Value::Array(fields)] = parts.as_slice() else {
        return None;
    };
    let id_text = text(id)?;
    let position = StreamId::parse(&id_text)?;
    let mut data = None;
    let mut events = 1;
    let mut route = Route::All;
    for pair in fields.chunks_exact(2) {
        let (Some(name), value) = (bytes(&pair[0]), &pair[1]) else {
            continue;
        };
        match name {
            b"d" => data = bytes(value),
            b"n" => events = u32::from(bytes(value) != Some(b"0")),
            b"r" => route = decode_route(bytes(value)?)?,
            _ => {}
        }
    }
    let data = data?;
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
    Some((
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
}
