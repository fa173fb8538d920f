//! Bounded waiting.
//!
//! Included by each bench with `#[path = ".../common/wait.rs"] mod wait;`.

use std::thread;
use std::time::{Duration, Instant};

/// Asks `done` every `poll` until it says yes or `limit` has passed: how long
/// it took, or `None` if it never said yes.
pub fn wait_for(
    limit: Duration,
    poll: Duration,
    mut done: impl FnMut() -> bool,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if done() {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        thread::sleep(poll);
    }
}
