//! The process as Linux sees it, through `/proc`: threads (counts and
//! names), open descriptors and memory.

/// The process's thread count (`Threads:` in `/proc/self/status`).
pub fn thread_count() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .expect("a Threads: line in /proc/self/status")
        .trim()
        .parse()
        .expect("Threads: holds a number")
}

/// The names (`comm`) of the process's threads right now. A thread that ends
/// while the directory is read is skipped.
pub fn thread_names() -> Vec<String> {
    let tasks = std::fs::read_dir("/proc/self/task").expect("read /proc/self/task");
    tasks
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            Some(comm.trim_end_matches('\n').to_owned())
        })
        .collect()
}

/// Linux keeps 15 bytes of a thread's name.
pub fn comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// How many threads have a name starting with `prefix` (truncated to the 15
/// bytes Linux keeps).
pub fn threads_named(prefix: &str) -> usize {
    let prefix = comm(prefix);
    thread_names()
        .iter()
        .filter(|name| name.starts_with(prefix))
        .count()
}

/// How many threads are named exactly `name` (truncated as Linux does).
pub fn threads_named_exactly(name: &str) -> usize {
    let name = comm(name);
    thread_names().iter().filter(|n| n.as_str() == name).count()
}

/// The process's open file descriptors: the entries of `/proc/self/fd`,
/// including the one the listing itself holds (so compare counts taken the
/// same way).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// A `kB` line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`, ...), in KiB;
/// `pid` may be `"self"`.
pub fn proc_status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

/// How many of this process's descriptors are sockets of a TCP connection
/// with `port` at either end, from `/proc/self/fd` and `/proc/net/tcp{,6}`.
/// Unlike [`fd_count`], descriptors of other connections that open and close
/// meanwhile (a pool kick, an earlier test's socket going away) do not count.
pub fn descriptors_of_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let port_of = |field: &str| {
                field
                    .rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
            };
            if fields.len() > 9
                && (port_of(fields[1]) == Some(port) || port_of(fields[2]) == Some(port))
            {
                inodes.insert(format!("socket:[{}]", fields[9]));
            }
        }
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| inodes.contains(target.to_string_lossy().as_ref()))
        .count()
}

/// One row of `/proc/net/tcp`: a loopback IPv4 socket's state and queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRow {
    /// `st`: 1 established, 4 FIN_WAIT1, 8 CLOSE_WAIT, ...
    pub state: u8,
    /// Bytes in the send queue.
    pub tx_queue: u64,
    /// Bytes in the receive queue.
    pub rx_queue: u64,
}

/// The rows of the sockets from each `(local, remote)` (IPv4) of this
/// network namespace, from one read of `/proc/net/tcp`; `None` for a
/// socket that is not (or no longer) there.
pub fn tcp_rows(pairs: &[(std::net::SocketAddr, std::net::SocketAddr)]) -> Vec<Option<TcpRow>> {
    fn hex(addr: std::net::SocketAddr) -> String {
        let std::net::SocketAddr::V4(v4) = addr else {
            panic!("IPv4 only")
        };
        format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        )
    }
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    pairs
        .iter()
        .map(|&(local, remote)| {
            let (local, remote) = (hex(local), hex(remote));
            table.lines().find_map(|line| {
                // Cheap test first: most lines are other connections.
                if !line.contains(&local) {
                    return None;
                }
                let fields: Vec<&str> = line.split_whitespace().collect();
                if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str())
                {
                    return None;
                }
                let (tx, rx) = fields.get(4)?.split_once(':')?;
                Some(TcpRow {
                    state: u8::from_str_radix(fields.get(3)?, 16).ok()?,
                    tx_queue: u64::from_str_radix(tx, 16).ok()?,
                    rx_queue: u64::from_str_radix(rx, 16).ok()?,
                })
            })
        })
        .collect()
}
