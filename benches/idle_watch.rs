//! What noticing departed clients and enforcing the request deadline cost,
//! at scale, against `examples/bench_server` in a process of its own.
//!
//! ```text
//! cargo build --release --example bench_server
//! cargo bench --bench idle_watch                       # 10,000 clients
//! cargo bench --bench idle_watch -- --clients 2000 --seconds 20
//! SSE_SERVER_NO_RELEASE=1 cargo bench --bench idle_watch   # the fallback path
//! ```
//!
//! With the library's defaults, with the close check only
//! (`--request-timeout-ms 0`), and with the watch off (`--close-check-ms 0
//! --request-timeout-ms 0`), keep-alives off so that an idle server does
//! nothing else:
//!
//! 1. connects N idle streams and measures the server's CPU (user + system,
//!    from `/proc/<pid>/stat`) over an idle window;
//! 2. closes a tenth of them (half with a reset) at once and measures how
//!    long until the server's `/stats` counts them gone;
//! 3. (defaults) opens 1,000 silent and 1,000 trickling connections and
//!    measures how long until the server has closed them all, with the
//!    default request deadline of 10 s, and the server's threads afterwards.
//!
//! Options (after `--`; unknown arguments, such as the `--bench` cargo
//! passes, are ignored): `--clients N` (default 10,000), `--seconds S` (the
//! idle window, default 30), `--slow N` (silent and as many trickling
//! connections, default 1,000); `SSE_BENCH_SERVER` names the server binary.
//!
//! Run without `--bench` (as `cargo test --benches` does) it does a small
//! smoke run of 100 clients, or says it is skipped when the server binary
//! is not built; `--full` forces the full one. Only 127.0.0.1 is used.

// Shared with the fan-out bench.
#[path = "common/args.rs"]
mod args;
#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/wait.rs"]
mod wait;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::args::{Arg, Parser};

struct Options {
    clients: usize,
    seconds: u64,
    slow: usize,
    server: std::path::PathBuf,
}

fn options() -> Result<Options, String> {
    let args = args::from_env();
    let full = args::full_run(&args);
    let mut options = Options {
        clients: if full { 10_000 } else { 100 },
        seconds: if full { 30 } else { 2 },
        slow: if full { 1_000 } else { 20 },
        server: std::env::var_os("SSE_BENCH_SERVER").map_or_else(
            || {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("target/release/examples/bench_server")
            },
            Into::into,
        ),
    };
    let mut parser = Parser::from_args(args);
    while let Some(arg) = args::next(&mut parser)? {
        match arg {
            Arg::Long("clients") => options.clients = args::number(&mut parser, "--clients")?,
            Arg::Long("seconds") => options.seconds = args::number(&mut parser, "--seconds")?,
            Arg::Long("slow") => options.slow = args::number(&mut parser, "--slow")?,
            _ => args::skip(&mut parser),
        }
    }
    Ok(options)
}

fn main() {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("idle_watch: {e}");
            std::process::exit(2);
        }
    };
    if !options.server.exists() {
        println!(
            "idle_watch: skipped: {} is not built (cargo build --release --example bench_server)",
            options.server.display()
        );
        return;
    }
    println!(
        "idle_watch: {} idle streams, {} s idle window, release {}",
        options.clients,
        options.seconds,
        if std::env::var_os("SSE_SERVER_NO_RELEASE").is_some() {
            "off (SSE_SERVER_NO_RELEASE)"
        } else {
            "on where the kernel allows"
        }
    );
    for mode in [Mode::Both, Mode::CloseCheckOnly, Mode::Off] {
        run(&options, mode);
    }
}

/// Which of the watch's jobs the server does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The defaults: noticing departures and the request deadline.
    Both,
    /// Noticing departures only (`--request-timeout-ms 0`).
    CloseCheckOnly,
    /// Neither (`--close-check-ms 0 --request-timeout-ms 0`).
    Off,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Both => "defaults (close check and request deadline)",
            Mode::CloseCheckOnly => "close check only",
            Mode::Off => "watch off",
        }
    }
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(options: &Options, mode: Mode) -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut command = Command::new(&options.server);
        command.args(["--addr", &addr.to_string(), "--keep-alive-ms", "0"]);
        match mode {
            Mode::Both => {}
            Mode::CloseCheckOnly => {
                command.args(["--request-timeout-ms", "0"]);
            }
            Mode::Off => {
                command.args(["--close-check-ms", "0", "--request-timeout-ms", "0"]);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start bench_server");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => {}
                _ => panic!("bench_server did not start"),
            }
        }
        // Keep draining its warnings.
        thread::spawn(move || for _ in lines {});
        Server { child, addr }
    }

    fn stat(&self, key: &str) -> Option<u64> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.trim().parse().ok())
    }

    /// User + system CPU time of the server process.
    fn cpu(&self) -> Duration {
        let ticks = procfs::cpu_ticks(&self.child.id().to_string()).expect("the server's stat");
        Duration::from_millis(procfs::ticks_ms(ticks))
    }

    fn threads(&self) -> u64 {
        procfs::Status::read(&self.child.id().to_string())
            .and_then(|status| status.field("Threads"))
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn open_stream(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream
        .write_all(b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        .expect("request");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).expect("response head");
    assert_eq!(&head, b"HTTP/1.1 200", "a stream");
    stream
}

fn wait_for(what: &str, limit: Duration, done: impl FnMut() -> bool) -> Option<Duration> {
    let took = wait::wait_for(limit, Duration::from_millis(5), done);
    if took.is_none() {
        eprintln!("idle_watch: {what}: not within {limit:?}");
    }
    took
}

fn run(options: &Options, mode: Mode) {
    let watch = mode != Mode::Off;
    let server = Server::start(options, mode);
    let connecting = Instant::now();
    let mut streams: Vec<TcpStream> = (0..options.clients)
        .map(|_| open_stream(server.addr))
        .collect();
    let connected = connecting.elapsed();
    wait_for("clients counted", Duration::from_secs(60), || {
        server.stat("clients") == Some(options.clients as u64)
    });
    let before = server.cpu();
    let window = Duration::from_secs(options.seconds);
    thread::sleep(window);
    let idle_cpu = server.cpu().saturating_sub(before);
    let share = idle_cpu.as_secs_f64() / window.as_secs_f64() * 100.0;

    let leaving = options.clients / 10;
    let remaining = (options.clients - leaving) as u64;
    let closed_at = Instant::now();
    for (i, stream) in streams.drain(..leaving).enumerate() {
        if i % 2 == 1 {
            let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
        }
        drop(stream);
    }
    let closing = closed_at.elapsed();
    let limit = if watch {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(3)
    };
    let gone = wait_for("departed clients counted gone", limit, || {
        server.stat("clients") == Some(remaining)
    });
    println!(
        "{}: connected {} in {:.2} s; idle CPU {:.2} % of a core over {:?}; \
         {leaving} closed in {:.0} ms, gone from the hub after {}",
        mode.name(),
        options.clients,
        connected.as_secs_f64(),
        share,
        window,
        closing.as_secs_f64() * 1000.0,
        gone.map_or_else(
            || format!("more than {limit:?} (at the next write only)"),
            |d| format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        )
    );
    if mode == Mode::Both {
        slow_heads(options, &server);
    }
}

/// Silent and trickling connections against the 10 s request deadline.
fn slow_heads(options: &Options, server: &Server) {
    let threads_before = server.threads();
    let opened = Instant::now();
    let mut connections: Vec<TcpStream> = Vec::new();
    for i in 0..2 * options.slow {
        let mut stream =
            TcpStream::connect_timeout(&server.addr, Duration::from_secs(10)).expect("connect");
        if i % 2 == 1 {
            let _ = stream.write_all(b"G");
        }
        connections.push(stream);
    }
    let mut open = connections.len();
    let mut closed = vec![false; connections.len()];
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut last_trickle = Instant::now();
    let mut buf = [0u8; 64];
    for stream in &connections {
        stream.set_nonblocking(true).expect("nonblocking");
    }
    while open > 0 && Instant::now() < deadline {
        for (i, stream) in connections.iter_mut().enumerate() {
            if closed[i] {
                continue;
            }
            match stream.read(&mut buf) {
                Ok(0) => {
                    closed[i] = true;
                    open -= 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Ok(_) => {}
                Err(_) => {
                    closed[i] = true;
                    open -= 1;
                }
            }
        }
        if last_trickle.elapsed() >= Duration::from_secs(1) {
            last_trickle = Instant::now();
            for (i, stream) in connections.iter_mut().enumerate() {
                if i % 2 == 1 && !closed[i] {
                    let _ = stream.write(b"E");
                }
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    let took = opened.elapsed();
    drop(connections);
    let peak = server.threads();
    let settled = wait_for("threads back", Duration::from_secs(15), || {
        server.threads() <= threads_before + 8
    });
    println!(
        "slow heads: {} silent + {} trickling; all closed by the server {:.2} s after opening \
         (deadline 10 s); {} still open; server threads {threads_before} before, {peak} at the \
         end, back within {}",
        options.slow,
        options.slow,
        took.as_secs_f64(),
        open,
        settled.map_or_else(|| "no".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
}
