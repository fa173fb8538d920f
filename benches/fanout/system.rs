//! `/proc` and clocks: this process's memory, threads and CPU time, the
//! machine the bench runs on, and the time.

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Res;

/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK` on Linux).
const TICKS_PER_SECOND: u64 = 100;

pub struct ProcSample {
    pub rss_kib: u64,
    pub threads: u64,
    pub cpu_ticks: u64,
}

impl ProcSample {
    pub fn now() -> Res<ProcSample> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| format!("reading /proc/self/status: {e}"))?;
        let field = |name: &str| -> Res<u64> {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| format!("no {name} in /proc/self/status"))
        };
        Ok(ProcSample {
            rss_kib: field("VmRSS:")?,
            threads: field("Threads:")?,
            cpu_ticks: cpu_ticks()?,
        })
    }
}

/// utime + stime of this process (all its threads, live and ended), in clock
/// ticks.
pub fn cpu_ticks() -> Res<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("reading /proc/self/stat: {e}"))?;
    // The command name may hold spaces; the fields after it do not.
    let rest = &stat[stat.rfind(')').ok_or("no ) in /proc/self/stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of the whole line; `rest` starts at 3.
    let number = |at: usize| -> Res<u64> {
        fields
            .get(at)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| "short /proc/self/stat".to_string())
    };
    Ok(number(11)? + number(12)?)
}

pub fn ticks_ms(ticks: u64) -> u64 {
    ticks * 1000 / TICKS_PER_SECOND
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

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
}
