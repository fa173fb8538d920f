//! What every peer server shares: the contract's command line, its
//! `/publish` parameters, the event data and the paced publish loop
//! (`benches/compare/README.md`), and, for the std-only peers, [`http1`]:
//! the accept loop and the little HTTP/1.1 they speak.

pub mod http1;

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest accepted `count`.
const MAX_COUNT: u64 = 10_000_000;
/// Largest accepted `size` (bytes of data per event).
const MAX_SIZE: u64 = 1 << 20;
/// Largest accepted `interval_us` (10 s).
const MAX_INTERVAL_US: u64 = 10_000_000;

/// The value after `--addr` on the command line; without one, prints the
/// usage of `program` and exits with status 2.
pub fn addr(program: &str) -> String {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--addr"
            && let Some(addr) = args.next()
        {
            return addr;
        }
    }
    eprintln!("usage: {program} --addr 127.0.0.1:PORT");
    std::process::exit(2);
}

/// The parameters of `POST /publish?count=M&size=B&interval_us=I`.
#[derive(Clone, Copy, Debug)]
pub struct Publish {
    pub count: u64,
    pub size: usize,
    pub interval_us: u64,
}

impl Publish {
    /// Parses `count`, `size` and `interval_us` from a query string (the
    /// part after `?`); all are required, within the bounds above.
    pub fn parse(query: &str) -> Option<Publish> {
        let (mut count, mut size, mut interval_us) = (None, None, None);
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=')?;
            let value: u64 = value.parse().ok()?;
            match key {
                "count" => count = Some(value),
                "size" => size = Some(value),
                "interval_us" => interval_us = Some(value),
                _ => {}
            }
        }
        let (count, size, interval_us) = (count?, size?, interval_us?);
        if count > MAX_COUNT || size > MAX_SIZE || interval_us > MAX_INTERVAL_US {
            return None;
        }
        Some(Publish {
            count,
            size: size as usize,
            interval_us,
        })
    }

    /// Calls `event(seq)` for seq = 0 .. count, each at `t0 + seq *
    /// interval_us` (t0: the first; one that has fallen behind goes at
    /// once).
    pub fn paced(&self, mut event: impl FnMut(u64)) {
        let t0 = Instant::now();
        for seq in 0..self.count {
            // At most 10^7 * 10^7 µs: no overflow.
            let deadline = t0 + Duration::from_micros(seq * self.interval_us);
            let now = Instant::now();
            if deadline > now {
                thread::sleep(deadline - now);
            }
            event(seq);
        }
    }
}

/// The data of event `seq`: `"<seq> <send_unix_ns> "` padded with `x` to
/// `size` bytes, the time taken now.
pub fn payload(seq: u64, size: usize) -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut data = format!("{seq} {ns} ");
    let pad = size.saturating_sub(data.len());
    data.extend(std::iter::repeat_n('x', pad));
    data
}

/// Event `seq` as it goes on the wire: `data: <payload>\n\n`.
pub fn frame(seq: u64, size: usize) -> Vec<u8> {
    let data = payload(seq, size);
    let mut frame = Vec::with_capacity(data.len() + 8);
    frame.extend_from_slice(b"data: ");
    frame.extend_from_slice(data.as_bytes());
    frame.extend_from_slice(b"\n\n");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_parameters() {
        let p = Publish::parse("count=5&size=64&interval_us=1000").unwrap();
        assert_eq!((p.count, p.size, p.interval_us), (5, 64, 1000));
        assert!(Publish::parse("count=5&size=64").is_none());
        assert!(Publish::parse("count=x&size=64&interval_us=0").is_none());
        assert!(Publish::parse("count=10000001&size=64&interval_us=0").is_none());
    }

    #[test]
    fn frames_hold_exactly_size_bytes_of_data() {
        let frame = frame(7, 64);
        let text = std::str::from_utf8(&frame).unwrap();
        let data = text
            .strip_prefix("data: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert_eq!(data.len(), 64);
        assert!(data.starts_with("7 "));
        assert!(data.ends_with('x'));
    }
}
