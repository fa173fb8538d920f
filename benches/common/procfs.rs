//! A process as Linux shows it under `/proc/<pid>`: its CPU time and the
//! numbers in its status file. `pid` is a process id, or `self`.
//!
//! Included by each bench with `#[path = ".../common/procfs.rs"] mod procfs;`.

/// Clock ticks per second of `/proc/<pid>/stat` (USER_HZ, `getconf
/// CLK_TCK`: 100 on Linux).
const TICKS_PER_SECOND: u64 = 100;

/// utime + stime of the process (all its threads, live and ended), in clock
/// ticks.
pub fn cpu_ticks(pid: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
    // The command name may hold spaces; the fields after it do not.
    let at = stat.rfind(')').ok_or_else(|| format!("no ) in {path}"))?;
    let fields: Vec<&str> = stat[at + 1..].split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of the whole line; the rest after the
    // name starts at field 3.
    let number = |at: usize| -> Result<u64, String> {
        fields
            .get(at)
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("short {path}"))
    };
    Ok(number(11)? + number(12)?)
}

/// `ticks` in ms.
pub fn ticks_ms(ticks: u64) -> u64 {
    ticks * 1000 / TICKS_PER_SECOND
}

/// The process's status file, read once for the fields taken from it.
pub struct Status {
    path: String,
    text: String,
}

impl Status {
    pub fn read(pid: &str) -> Result<Status, String> {
        let path = format!("/proc/{pid}/status");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {path}: {e}"))?;
        Ok(Status { path, text })
    }

    /// The number a field holds: `VmRSS` (in KiB), `Threads`, ...
    pub fn field(&self, name: &str) -> Result<u64, String> {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("no {name} in {}", self.path))
    }
}
