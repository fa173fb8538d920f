//! Time and bounded waiting.

use std::time::{Duration, Instant};

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Polls `f` until it returns true or `timeout` passes; true when `f` did.
/// The short sleep between polls is only the poll interval of this bounded
/// loop, never a synchronisation in itself.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(ms(5));
    }
}
