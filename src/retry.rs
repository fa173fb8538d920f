//! Reconnection times sent in `retry:` lines: capped at a day, with a random
//! share of jitter so that clients told the same thing do not all come back
//! in the same millisecond.

use std::time::Duration;

/// The longest reconnection time sent, by an event or at the start of a
/// stream: a day. A larger number is one some clients cannot parse.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// [`RETRY_MAX`] in milliseconds.
const RETRY_MAX_MS: u64 = RETRY_MAX.as_millis() as u64;

/// `base` plus a share of `jitter` drawn uniformly from 0 to `jitter`
/// inclusive, in milliseconds, capped at a day (each part first, then the
/// sum, so no value overflows). `seed` tells apart draws made in the same
/// nanosecond (a client id, a counter).
pub(crate) fn jittered_millis(base: Duration, jitter: Duration, seed: u64) -> u64 {
    let jitter = capped_millis(jitter);
    let draw = mix(seed ^ nanos()) % (jitter + 1);
    (capped_millis(base) + draw).min(RETRY_MAX_MS)
}

fn capped_millis(duration: Duration) -> u64 {
    // At most RETRY_MAX_MS, which fits a u64.
    duration.as_millis().min(u128::from(RETRY_MAX_MS)) as u64
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos() as u64 ^ since.as_secs())
}

/// SplitMix64's finaliser: spreads close inputs over the whole range.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_within_base_and_base_plus_jitter() {
        for seed in 0..1000 {
            let millis =
                jittered_millis(Duration::from_millis(200), Duration::from_millis(50), seed);
            assert!((200..=250).contains(&millis), "{millis}");
        }
        assert_eq!(
            jittered_millis(Duration::from_secs(3), Duration::ZERO, 7),
            3000
        );
    }

    #[test]
    fn extremes_are_capped_at_a_day() {
        assert_eq!(jittered_millis(Duration::ZERO, Duration::ZERO, 1), 0);
        assert_eq!(
            jittered_millis(Duration::MAX, Duration::MAX, 1),
            RETRY_MAX_MS
        );
        assert_eq!(
            jittered_millis(Duration::MAX, Duration::ZERO, 1),
            RETRY_MAX_MS
        );
        assert!(jittered_millis(Duration::ZERO, Duration::MAX, u64::MAX) <= RETRY_MAX_MS);
    }
}
