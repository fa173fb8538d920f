//! This process and this machine, through `/proc` (what `common/procfs.rs`
//! reads for both benches, and more), and the clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Res;
use crate::procfs::{Status, cpu_ticks};
use crate::wait::wait_for;

/// This process's memory, threads and CPU time at one moment.
pub struct ProcSample {
    pub rss_kib: u64,
    pub threads: u64,
    pub cpu_ticks: u64,
}

impl ProcSample {
    pub fn now() -> Res<ProcSample> {
        let status = Status::read("self")?;
        Ok(ProcSample {
            rss_kib: status.field("VmRSS")?,
            threads: status.field("Threads")?,
            cpu_ticks: cpu_ticks("self")?,
        })
    }
}

pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

pub fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

pub fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Polls `done` every 2 ms until it says yes (true) or `timeout` has passed
/// (false).
pub fn wait_until(timeout: Duration, done: impl FnMut() -> bool) -> bool {
    wait_for(timeout, Duration::from_millis(2), done).is_some()
}
