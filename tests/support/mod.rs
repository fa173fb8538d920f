//! Shared helpers for the integration tests, one module a concern.
//!
//! Used from each test file with `mod support;`, which imports by name what
//! it uses; not every file uses every helper.
#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

pub mod browser;
pub mod child;
pub mod chunked;
pub mod client;
pub mod events;
pub mod fixed;
pub mod hubs;
pub mod nginx;
pub mod proc;
pub mod programs;
pub mod raw;
#[cfg(feature = "redis")]
pub mod redis;
pub mod relay;
pub mod wait;

/// Turns on the crate's logging when `RUST_LOG` asks for it.
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Makes the tests of one binary that take it run one at a time, for those
/// that watch process-wide things (threads, descriptors, memory, timing)
/// another test would disturb. A test that failed holding it does not stop
/// the others.
pub fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
