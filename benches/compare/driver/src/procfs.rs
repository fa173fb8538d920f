//! What the driver reads of the server process in `/proc`: resident memory,
//! threads, and CPU time used (utime + stime).

use std::fs;

/// One look at a process.
#[derive(Clone, Copy)]
pub struct Sample {
    pub rss_kib: u64,
    pub threads: u64,
    /// utime + stime, in ms (clock-tick resolution, 10 ms with HZ=100).
    pub cpu_ms: f64,
}

/// Samples process `pid`; an error if it is gone.
pub fn sample(pid: u32) -> Result<Sample, String> {
    let gone = |e: std::io::Error| format!("server process {pid} gone? /proc: {e}");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(gone)?;
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).map_err(gone)?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .ok_or_else(|| format!("/proc/{pid}/status has no {name}"))
    };
    // Fields after the command's closing parenthesis start at field 3
    // (state); utime and stime are fields 14 and 15.
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let (Some(utime), Some(stime)) = (ticks(11), ticks(12)) else {
        return Err(format!("/proc/{pid}/stat: no utime/stime"));
    };
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Ok(Sample {
        rss_kib: field("VmRSS:")?,
        threads: field("Threads:")?,
        cpu_ms: (utime + stime) as f64 * 1000.0 / hz as f64,
    })
}
