//! `StreamId`: the id of an entry of a Redis Stream (`<ms>-<seq>`), which
//! is the event id every process gives the event under the `redis` feature.

use std::fmt;

/// An entry id of a Redis Stream: milliseconds, then a sequence number
/// within the millisecond. Ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct StreamId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl StreamId {
    /// `0-0`, before every entry.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) const ZERO: StreamId = StreamId { ms: 0, seq: 0 };

    /// Parses `<ms>-<seq>` (both in decimal, no sign, no spaces); `None`
    /// for anything else, so a client's `Last-Event-ID` can be any text.
    pub(crate) fn parse(text: &str) -> Option<StreamId> {
        let (ms, seq) = text.split_once('-')?;
        let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamId;

    #[test]
    fn parses_what_redis_makes_and_nothing_else() {
        assert_eq!(
            StreamId::parse("1732000000000-7"),
            Some(StreamId {
                ms: 1_732_000_000_000,
                seq: 7
            })
        );
        assert_eq!(StreamId::parse("0-0"), Some(StreamId::ZERO));
        for bad in [
            "",
            "-",
            "1-",
            "-1",
            "1",
            "1-2-3",
            "+1-2",
            "1- 2",
            "a-1",
            "1-1x",
            "99999999999999999999999-1",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad:?}");
        }
        assert_eq!(StreamId::parse("12-34").unwrap().to_string(), "12-34");
    }

    #[test]
    fn orders_like_redis() {
        let id = |text| StreamId::parse(text).unwrap();
        assert!(id("1-5") < id("2-0"));
        assert!(id("2-0") < id("2-1"));
        assert!(id("10-0") > id("9-99"));
    }
}
