//! A real `redis-server` for the tests of feature `redis`: on 127.0.0.1, a
//! free port, a fresh directory of its own, every write fsynced to the
//! append-only file before it is acknowledged (so a restart keeps every
//! acknowledged entry). Dropping it kills the server and removes the
//! directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::programs::{find_program, free_port, fresh_dir, tail};
use super::wait::{ms, wait_until};

/// How long a server may take to answer `PING` after it starts.
const UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How many ports `start` tries before it gives up.
const START_TRIES: usize = 5;

/// A `redis-server` process started for one test.
pub struct RedisServer {
    /// `None` while killed.
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts a server, or `None` (with a message on stderr) when
    /// `redis-server` is not installed: the caller then skips its test.
    /// Panics when it is installed but does not come up.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find_program("redis-server") else {
            eprintln!("skipping: redis-server is not installed (apt-get install redis-server)");
            return None;
        };
        let mut server = RedisServer {
            child: None,
            port: 0,
            dir: fresh_dir("redis"),
            binary,
        };
        let mut failures = Vec::new();
        for _ in 0..START_TRIES {
            // A port free a moment ago: another process may take it before
            // the server binds it, and then the next try takes another.
            server.port = free_port();
            match server.spawn_and_wait() {
                Ok(()) => return Some(server),
                Err(why) => {
                    failures.push(format!("port {}: {why}", server.port));
                    server.stop();
                }
            }
        }
        panic!("redis-server did not come up in {START_TRIES} tries: {failures:#?}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server with SIGKILL (no shutdown, no save) and waits for it.
    pub fn kill(&mut self) {
        self.stop();
    }

    /// Starts the server again on the same port with the same directory
    /// (so the append-only file brings back every acknowledged write), and
    /// waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        // The port was ours a moment ago; if the server cannot bind it at
        // once, it is tried again for a while.
        let mut failures = Vec::new();
        let got_up = wait_until(Duration::from_secs(20), || match self.spawn_and_wait() {
            Ok(()) => true,
            Err(why) => {
                failures.push(why);
                self.stop();
                false
            }
        });
        assert!(
            got_up,
            "redis-server did not come back on port {}: {failures:#?}",
            self.port
        );
    }

    /// Whether the server answers `PING` now.
    pub fn answers(&self) -> bool {
        ping(self.addr(), None)
    }

    /// A connection of the `redis` crate to the server, for what takes
    /// more than one command (a transaction).
    pub fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(self.url()).expect("a Redis client");
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to {}: {e}", self.url()));
        connection
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("a read timeout");
        connection
    }

    /// One command, through the `redis` crate, with its reply as a value.
    /// Panics when Redis refuses it or cannot be reached.
    pub fn command(&self, args: &[&str]) -> redis::Value {
        let mut connection = self.connection();
        let (name, rest) = args.split_first().expect("a command");
        let mut command = redis::cmd(name);
        for arg in rest {
            command.arg(*arg);
        }
        command
            .query(&mut connection)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// `XLEN key`.
    pub fn xlen(&self, key: &str) -> u64 {
        match self.command(&["XLEN", key]) {
            redis::Value::Int(n) => u64::try_from(n).expect("a length"),
            other => panic!("XLEN {key}: {other:?}"),
        }
    }

    /// The ids of the entries of the stream `key` from `start` to `end`
    /// (`-` and `+` for its ends), at most `count` of them.
    pub fn xrange_ids(&self, key: &str, start: &str, end: &str, count: usize) -> Vec<String> {
        let reply = self.command(&["XRANGE", key, start, end, "COUNT", &count.to_string()]);
        let redis::Value::Array(entries) = reply else {
            panic!("XRANGE {key}: {reply:?}");
        };
        entries
            .iter()
            .map(|entry| match entry {
                redis::Value::Array(parts) => match parts.first() {
                    Some(redis::Value::BulkString(id)) => {
                        String::from_utf8(id.clone()).expect("an id in UTF-8")
                    }
                    Some(redis::Value::SimpleString(id)) => id.clone(),
                    other => panic!("an entry without an id: {other:?}"),
                },
                other => panic!("not an entry: {other:?}"),
            })
            .collect()
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    /// Starts the process on `self.port` and waits until it answers or
    /// exits.
    fn spawn_and_wait(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(["--bind", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .args(["--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--daemonize", "no", "--logfile"])
            .arg(self.dir.join("redis.log"))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        self.child = Some(child);
        let mut exited = None;
        let up = wait_until(UP_TIMEOUT, || {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                exited = Some(status);
                return true;
            }
            let pid = self.child.as_ref().map(Child::id);
            ping(self.addr(), pid)
        });
        match (up, exited) {
            (true, None) => Ok(()),
            (_, Some(status)) => Err(format!(
                "it exited ({status}); its log ends: {}",
                tail(&self.log(), 600)
            )),
            (false, None) => Err(format!(
                "no PONG within {UP_TIMEOUT:?}; its log ends: {}",
                tail(&self.log(), 600)
            )),
        }
    }

    /// SIGKILL and reap, if it runs.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl std::fmt::Debug for RedisServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisServer")
            .field("port", &self.port)
            .field("running", &self.child.is_some())
            .field("dir", &self.dir)
            .finish()
    }
}

/// `PING` over a raw socket: true on `+PONG` (a server still loading its
/// data answers `-LOADING`, which is no). With `pid`, the server must also
/// be that process (`INFO server`), not another that holds the port.
fn ping(addr: SocketAddr, pid: Option<u32>) -> bool {
    let Ok(mut socket) = TcpStream::connect_timeout(&addr, ms(500)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(ms(500)));
    let _ = socket.set_write_timeout(Some(ms(500)));
    if socket.write_all(b"PING\r\n").is_err() {
        return false;
    }
    match read_until(&mut socket, |reply| reply.ends_with(b"\r\n")) {
        Some(reply) if reply.starts_with(b"+PONG") => {}
        _ => return false,
    }
    let Some(pid) = pid else {
        return true;
    };
    if socket.write_all(b"INFO server\r\n").is_err() {
        return false;
    }
    let wanted = format!("\r\nprocess_id:{pid}\r\n");
    // A bulk string: `$<len>\r\n<bytes>\r\n`.
    let whole = |reply: &[u8]| {
        let Some(head_end) = reply.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let len: usize = std::str::from_utf8(&reply[1..head_end])
            .ok()
            .and_then(|len| len.parse().ok())
            .unwrap_or(0);
        reply.len() >= head_end + 2 + len + 2
    };
    read_until(&mut socket, whole)
        .is_some_and(|reply| String::from_utf8_lossy(&reply).contains(&wanted))
}

/// Reads from `socket` until `done(reply so far)`; `None` when it closes,
/// fails or times out first.
fn read_until(socket: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
    let mut reply = Vec::new();
    let mut piece = [0u8; 4096];
    while !done(&reply) {
        match socket.read(&mut piece) {
            Ok(0) | Err(_) => return None,
            Ok(n) => reply.extend_from_slice(&piece[..n]),
        }
    }
    Some(reply)
}
