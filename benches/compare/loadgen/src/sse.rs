//! An incremental `text/event-stream` parser that keeps only what the bench
//! needs of each event: the first bytes and the length of its first `data:`
//! line. Lines end in LF or CRLF; an event ends at a blank line. Nothing is
//! copied but the first [`HEAD`] bytes of each line, so a 16 KiB event costs
//! one scan for its newline and no allocation.

use memchr::memchr;

/// Bytes kept of the start of a line: enough for `data: <seq> <ns> `.
pub const HEAD: usize = 64;

/// The parser's state between reads.
pub struct Parser {
    /// First bytes of the line being read.
    head: [u8; HEAD],
    /// Length of the line so far, CR included.
    len: usize,
    /// The line so far ends in CR.
    cr: bool,
    /// The event being read has had its `data:` line.
    have_data: bool,
    /// First bytes of that line's value, and how many of them are kept.
    data_head: [u8; HEAD],
    data_kept: usize,
    /// Length of the whole value.
    data_len: usize,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            head: [0; HEAD],
            len: 0,
            cr: false,
            have_data: false,
            data_head: [0; HEAD],
            data_kept: 0,
            data_len: 0,
        }
    }
}

impl Parser {
    /// Feeds body bytes; `on_event(value_head, value_len)` is called for each
    /// complete event that had a `data:` line.
    pub fn feed(&mut self, bytes: &[u8], mut on_event: impl FnMut(&[u8], usize)) {
        let mut rest = bytes;
        while let Some(i) = memchr(b'\n', rest) {
            self.push(&rest[..i]);
            self.end_line(&mut on_event);
            rest = &rest[i + 1..];
        }
        self.push(rest);
    }

    fn push(&mut self, part: &[u8]) {
        if part.is_empty() {
            return;
        }
        if self.len < HEAD {
            let n = (HEAD - self.len).min(part.len());
            self.head[self.len..self.len + n].copy_from_slice(&part[..n]);
        }
        self.len += part.len();
        self.cr = part.last() == Some(&b'\r');
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&[u8], usize)) {
        let len = self.len - usize::from(self.cr);
        self.len = 0;
        self.cr = false;
        if len == 0 {
            if self.have_data {
                self.have_data = false;
                on_event(&self.data_head[..self.data_kept], self.data_len);
            }
            return;
        }
        let head = &self.head[..len.min(HEAD)];
        // Comments, and data lines after the first, are skipped.
        if head[0] == b':' || self.have_data {
            return;
        }
        let (field, mut start) = match memchr(b':', head) {
            Some(colon) => (&head[..colon], colon + 1),
            None if len <= HEAD => (head, len),
            None => return,
        };
        if field != b"data" {
            return;
        }
        if head.get(start) == Some(&b' ') {
            start += 1;
        }
        let kept = head.len() - start;
        self.data_head[..kept].copy_from_slice(&head[start..]);
        self.data_kept = kept;
        self.data_len = len - start;
        self.have_data = true;
    }
}

/// Reads a payload `"<seq> <send_unix_ns> xxx..."` of `len` bytes, which must
/// be `max(size, len(prefix))`: `(seq, send_unix_ns)`, or `None` if it is not
/// one.
pub fn payload(head: &[u8], len: usize, size: usize) -> Option<(u64, u64)> {
    let (seq, used) = number(head)?;
    let (sent, used2) = number(&head[used..])?;
    let prefix = used + used2;
    (len == size.max(prefix)).then_some((seq, sent))
}

/// A decimal number followed by one space: its value and the bytes used.
fn number(bytes: &[u8]) -> Option<(u64, usize)> {
    let digits = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || bytes.get(digits) != Some(&b' ') {
        return None;
    }
    let mut value: u64 = 0;
    for &b in &bytes[..digits] {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some((value, digits + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<(Vec<u8>, usize)> {
        let mut parser = Parser::default();
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk, |head, len| out.push((head.to_vec(), len)));
        }
        out
    }

    #[test]
    fn lines_events_and_split_reads() {
        let got = events(&[
            b": keep-alive\n\nevent: x\r\nid: 1\r\ndata: 3 17 xx\r\ndata: no\r\n\r\nda",
            b"ta:4 5 \n",
            b"\n\n",
        ]);
        assert_eq!(got, vec![(b"3 17 xx".to_vec(), 7), (b"4 5 ".to_vec(), 4)]);
    }

    #[test]
    fn long_data_is_measured_not_kept() {
        let line = format!("data: 1 2 {}\n\n", "x".repeat(20_000));
        let (a, b) = line.as_bytes().split_at(9_000);
        let got = events(&[a, b]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.len(), HEAD - 6);
        assert_eq!(got[0].1, 20_004);
        assert_eq!(payload(&got[0].0, got[0].1, 20_004), Some((1, 2)));
    }

    #[test]
    fn payloads() {
        assert_eq!(payload(b"12 345 xx", 9, 9), Some((12, 345)));
        assert_eq!(payload(b"12 345 ", 7, 4), Some((12, 345)));
        assert_eq!(payload(b"12 345 xx", 9, 10), None);
        assert_eq!(payload(b"12 345", 6, 4), None);
        assert_eq!(payload(b"a 1 ", 4, 4), None);
    }
}
