//! Shared helpers for the integration tests, one module a concern.
//!
//! Used from each test file with `mod support;`, which imports by name what
//! it uses; not every file uses every helper.
#![allow(dead_code)]

pub mod child;
pub mod chunked;
pub mod client;
pub mod fixed;
pub mod hubs;
pub mod parser;
pub mod proc;
pub mod raw;
pub mod wait;

/// Turns on the crate's logging when `RUST_LOG` asks for it.
pub fn init_logging() {
    let _ = env_logger::builder().is_test(true).try_init();
}
