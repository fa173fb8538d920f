//! Every byte of the event-stream format this crate writes: the fields of
//! an event, data and comment lines, the ids the hub gives, gap events, the
//! `retry:` line a stream starts with and the busy answer's block.
//!
//! Nothing here knows about clients or threads; [`Event`](crate::Event)
//! and the hub thread call these to build the bytes of a
//! [`Frame`](crate::Frame).

use std::io::Write;

/// The prefix of a data line.
pub(crate) const DATA: &str = "data: ";
/// The prefix of a comment line.
pub(crate) const COMMENT: &str = ": ";

/// Writes one field line: `name: value` and LF. The value must hold no
/// line break (event names and ids are checked when they are set).
pub(crate) fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Data-only text as one event: what [`Hub::notify`](crate::Hub::notify)
/// sends.
pub(crate) fn data(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines_len(text, DATA.len()) + 1);
    lines(&mut out, DATA, text);
    out.push(b'\n');
    out
}

/// The event that tells a client it has a gap (or, without a name, a
/// comment line saying so), carrying `id` when there is one.
pub(crate) fn gap(name: Option<&str>, id: Option<&str>, data: &str) -> Vec<u8> {
    let mut out = Vec::new();
    match name {
        Some(name) => {
            field(&mut out, "event", name.as_bytes());
            if let Some(id) = id {
                field(&mut out, "id", id.as_bytes());
            }
            lines(&mut out, DATA, data);
            out.push(b'\n');
        }
        None => {
            out.extend_from_slice(b": sse-gap ");
            out.extend_from_slice(data.as_bytes());
            out.push(b'\n');
        }
    }
    out
}

/// `event` (the bytes of one event, with no id) with the id `id` (checked
/// already: no line break, no NUL) on a line before it.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn with_id_text(id: &str, event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + id.len() + 5);
    field(&mut out, "id", id.as_bytes());
    out.extend_from_slice(event);
    out
}

/// An encoded event given the id the hub picks for it, `<prefix><seq>`,
/// in an `id:` line before its other lines.
pub(crate) fn with_id(prefix: &str, seq: u64, event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + 32);
    out.extend_from_slice(b"id: ");
    out.extend_from_slice(prefix.as_bytes());
    // Writing to a Vec cannot fail.
    let _ = writeln!(out, "{seq}");
    out.extend_from_slice(event);
    out
}

/// The `retry:` line a stream starts with: a field line with no blank line
/// after it, so parsers apply it at once and no client reads it as an
/// (empty) event.
pub(crate) fn retry_line(millis: u64) -> String {
    format!("retry: {millis}\n")
}

/// The busy answer's one block: a `retry:`, then an `sse-busy` event whose
/// data says why. One block, so that no client sees a lone `retry:` block
/// as an empty message (some do once they have seen an id); no `id:`, so
/// the client's last event id stays as it was.
pub(crate) fn busy(millis: u64, reason: &str) -> String {
    format!("retry: {millis}\nevent: sse-busy\ndata: {reason}\n\n")
}

/// Splits `text` on CRLF, LF and lone CR, the three line ends of the
/// event-stream format.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

/// The bytes [`lines`] writes for `text` with a prefix of `prefix` bytes.
pub(crate) fn lines_len(text: &str, prefix: usize) -> usize {
    split_lines(text).map(|line| prefix + line.len() + 1).sum()
}

/// One line per line of `text`: `prefix` + line + LF. An empty line is sent
/// as the bare field name (`data:`), which parsers read as an empty value.
pub(crate) fn lines(out: &mut Vec<u8>, prefix: &str, text: &str) {
    for line in split_lines(text) {
        if line.is_empty() {
            out.extend_from_slice(prefix.trim_end().as_bytes());
        } else {
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(line.as_bytes());
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_every_line_end() {
        let got: Vec<&str> = split_lines("a\r\nb\nc\rd").collect();
        assert_eq!(got, ["a", "b", "c", "d"]);
        let got: Vec<&str> = split_lines("").collect();
        assert_eq!(got, [""]);
        let got: Vec<&str> = split_lines("x\n").collect();
        assert_eq!(got, ["x", ""]);
        let got: Vec<&str> = split_lines("\r\r\n").collect();
        assert_eq!(got, ["", "", ""]);
    }

    #[test]
    fn data_len_is_exact() {
        assert_eq!(data("a\nb").len(), lines_len("a\nb", DATA.len()) + 1);
    }

    #[test]
    fn gap_events_and_ids() {
        assert_eq!(
            gap(Some("sse-gap"), Some("x-7"), "unknown-id"),
            b"event: sse-gap\nid: x-7\ndata: unknown-id\n\n"
        );
        assert_eq!(gap(None, None, "missed 3"), b": sse-gap missed 3\n");
        assert_eq!(with_id("p-", 12, b"data: x\n\n"), b"id: p-12\ndata: x\n\n");
    }
}
