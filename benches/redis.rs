//! What sharing one stream through Redis (feature `redis`) costs: fan-out
//! over real loopback sockets with and without Redis, the latency Redis adds
//! to one event, and how fast publishers can append.
//!
//! ```text
//! export CARGO_TARGET_DIR=/tmp/target-redis-bench
//! cargo build --release --features redis --example bench_server
//! cargo bench --features redis --bench redis              # full, ~10 min
//! cargo bench --features redis --bench redis -- --smoke   # ~10 s
//! cargo test --features redis --benches                   # smoke too
//! ```
//!
//! The bench starts its own `redis-server` (127.0.0.1, a free port, a
//! temporary directory, `--save "" --appendonly no`) and, for each run,
//! fresh `bench_server` processes (`examples/bench_server.rs`, found beside
//! this binary in `<target>/<profile>/examples/`, or given with `--server
//! PATH`; it must be built with the `redis` feature). Every process it
//! starts dies with it (`PR_SET_PDEATHSIG`) and is killed by a guard when
//! its run ends, also on a panic. Every wait is bounded.
//!
//! Three parts, each in interleaved rounds (every configuration once a
//! round, in the same order), reported as the median over rounds with the
//! lowest and highest value:
//!
//! 1. **Fan-out.** `--clients N` streams in all (300) over HTTP/1.1 to
//!    `GET /events`, spread evenly over the processes, for four setups:
//!    `1p` (one process, no Redis), `1p+redis`, `3p+redis` (`--processes`
//!    processes on one Redis Stream; all events published by process 0)
//!    and `3p+redis split` (each process publishes its share, at its share
//!    of the rate; `--no-split` leaves it out). Two scenarios: `burst`
//!    (`--burst M` events, 2,000, as fast as the publishing thread goes)
//!    and `paced` (`--paced M` events, 2,000, every `--interval-us`, 1,000
//!    µs). The events come from `bench_server`'s `POST /publish`: data
//!    `"<seq> <send_unix_ns> "` padded with `x` to `--size` bytes (64).
//!    delivered/s is every client's events / (last receipt − first send);
//!    latency is receipt − send time, per event per client; for a paced
//!    run with one publisher also receipt − due time (when the event was
//!    meant to be sent), which adds how far the publishing thread fell
//!    behind its schedule. With Redis, `bench_server`'s single publishing
//!    thread waits for each XADD, and on this bench's 2-core machine that
//!    round trip slows to milliseconds once 300 streams are busy: a burst
//!    of 20,000 would take minutes per run, hence 2,000.
//! 2. **What Redis adds to one event**: `--latency-clients` (10) clients on
//!    one process, `--latency-events` (1,000) events every
//!    `--latency-interval-us` (5,000 µs: 200/s), without and with Redis.
//! 3. **Append rate**: `notify` in a loop on 1, 4 and 16 threads
//!    (`--publishers`) for `--append-secs` (3 s) after a 300 ms warm-up,
//!    on a hub in this process built with `.redis(url, key)`; for
//!    reference, `XADD` sent straight to Redis (a connection per thread, no
//!    hub: the round trip alone), and a hub without Redis (the callers
//!    paused while more than 200,000 events wait, so memory stays bounded:
//!    about the hub thread's pace). One subscription that never reads is
//!    attached to each hub, so that the events the Redis reader brings
//!    back are counted when they reach the hub thread (queued or dropped).
//!
//! The clients run in this process, which is otherwise idle during a run
//! (its CPU time is theirs): by default one thread per stream (256 KiB
//! stacks) with blocking reads, as `benches/fanout` does; `--client-threads
//! K` reads all streams from K threads over epoll instead (on 2 cores the
//! scheduler then gives those few threads a small share next to the
//! servers' 300 writer threads, so the clients fall behind: the default
//! keeps the two sides even). They read with the tests' chunked decoder
//! (`tests/support/chunked.rs`) and the crate's full WHATWG parser
//! (`EventParser::feed_with`), and check the sequence numbers, that event
//! ids only grow, and that every client got the same ids in the same order.
//! CPU time is taken for the server processes (ticks of `/proc/<pid>/stat`,
//! and per thread group from each thread's `schedstat`: writers, hub,
//! Redis reader and appender, the publishing thread), this process and
//! `redis-server`.
//!
//! Each run appends one JSON line to `--jsonl PATH` (full runs: by default
//! `benches/results/<UTC date>-redis.jsonl`; smoke runs write none unless
//! asked; `--no-jsonl`). Other options: `--rounds R` (5), `--append-rounds
//! R` (3), `--only fanout,latency,append`, `--redis-server PATH`.
//!
//! Run without `--bench` (as `cargo test --benches` does), or with
//! `--smoke`, it makes a short smoke run; `--full` forces the full one.
//! The machine is likely shared and small: compare ratios within one
//! session rather than absolutes.

#[path = "common/args.rs"]
mod args;
// The tests' chunked decoder: the clients read the streams as the tests do.
#[allow(dead_code)]
#[path = "../tests/support/chunked.rs"]
mod chunked;
#[allow(dead_code)]
#[path = "common/procfs.rs"]
mod procfs;
#[path = "common/stream.rs"]
mod stream;
#[path = "common/wait.rs"]
mod wait;

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_server::Hub;
use sse_server::crossbeam_channel::{self, Sender};
use sse_server::parse::EventRef;

use crate::args::{Arg, Parser};
use crate::procfs::{cpu_ticks, ticks_ms};
use crate::stream::{StreamReader, connect_with_retries, nearest_rank};
use crate::wait::wait_for;

/// What the bench's fallible steps give back: an error is a sentence.
type Res<T> = Result<T, String>;

/// A run stops this long after the last event when some client has not
/// seen all of them (they were lost).
const IDLE_STOP: Duration = Duration::from_secs(3);
/// No run waits longer than this for its events, past the publishing time.
const MAX_EXTRA_WAIT: Duration = Duration::from_secs(60);
/// How long a server process may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// In part 3 without Redis, callers pause while more events than this wait
/// for the hub thread.
const LOCAL_BACKLOG_CAP: usize = 200_000;

fn main() {
    let options = match Options::parse(args::from_env()) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("redis bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("redis bench FAILED: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Options

/// What to run, and with which sizes.
struct Options {
    smoke: bool,
    server: Option<PathBuf>,
    redis_server: PathBuf,
    rounds: usize,
    append_rounds: usize,
    clients: usize,
    processes: usize,
    burst: usize,
    paced: usize,
    interval_us: u64,
    size: usize,
    split: bool,
    latency_clients: usize,
    latency_events: usize,
    latency_interval_us: u64,
    append_secs: f64,
    append_warmup: Duration,
    publishers: Vec<usize>,
    fanout: bool,
    latency: bool,
    append: bool,
    jsonl: Option<PathBuf>,
    settle: Duration,
    client_threads: usize,
}

impl Options {
    fn parse(args: Vec<OsString>) -> Res<Options> {
        let smoke = !args::full_run(&args) || args.iter().any(|arg| arg == "--smoke");
        let mut options = if smoke {
            Options {
                smoke,
                server: None,
                redis_server: PathBuf::from("redis-server"),
                rounds: 1,
                append_rounds: 1,
                clients: 6,
                processes: 3,
                burst: 300,
                paced: 60,
                interval_us: 2_000,
                size: 64,
                split: true,
                latency_clients: 3,
                latency_events: 40,
                latency_interval_us: 5_000,
                append_secs: 0.2,
                append_warmup: Duration::from_millis(50),
                publishers: vec![1, 4],
                fanout: true,
                latency: true,
                append: true,
                jsonl: None,
                settle: Duration::from_millis(50),
                client_threads: 0,
            }
        } else {
            Options {
                smoke,
                server: None,
                redis_server: PathBuf::from("redis-server"),
                rounds: 5,
                append_rounds: 3,
                clients: 300,
                processes: 3,
                burst: 2_000,
                paced: 2_000,
                interval_us: 1_000,
                size: 64,
                split: true,
                latency_clients: 10,
                latency_events: 1_000,
                latency_interval_us: 5_000,
                append_secs: 3.0,
                append_warmup: Duration::from_millis(300),
                publishers: vec![1, 4, 16],
                fanout: true,
                latency: true,
                append: true,
                jsonl: Some(default_jsonl()),
                settle: Duration::from_millis(300),
                client_threads: 0,
            }
        };
        let mut parser = Parser::from_args(args);
        while let Some(arg) = args::next(&mut parser)? {
            match arg {
                Arg::Long("server") => options.server = Some(args::value(&mut parser)?.into()),
                Arg::Long("redis-server") => {
                    options.redis_server = args::value(&mut parser)?.into();
                }
                Arg::Long("rounds") => {
                    options.rounds = args::number::<usize>(&mut parser, "--rounds")?.max(1);
                }
                Arg::Long("append-rounds") => {
                    options.append_rounds =
                        args::number::<usize>(&mut parser, "--append-rounds")?.max(1);
                }
                Arg::Long("clients") => {
                    options.clients = args::number::<usize>(&mut parser, "--clients")?.max(1);
                }
                Arg::Long("processes") => {
                    options.processes = args::number::<usize>(&mut parser, "--processes")?.max(1);
                }
                Arg::Long("burst") => options.burst = args::number(&mut parser, "--burst")?,
                Arg::Long("paced") => options.paced = args::number(&mut parser, "--paced")?,
                Arg::Long("interval-us") => {
                    options.interval_us = args::number(&mut parser, "--interval-us")?;
                }
                Arg::Long("size") => options.size = args::number(&mut parser, "--size")?,
                Arg::Long("no-split") => options.split = false,
                Arg::Long("client-threads") => {
                    options.client_threads = args::number(&mut parser, "--client-threads")?;
                }
                Arg::Long("latency-clients") => {
                    options.latency_clients =
                        args::number::<usize>(&mut parser, "--latency-clients")?.max(1);
                }
                Arg::Long("latency-events") => {
                    options.latency_events = args::number(&mut parser, "--latency-events")?;
                }
                Arg::Long("latency-interval-us") => {
                    options.latency_interval_us =
                        args::number(&mut parser, "--latency-interval-us")?;
                }
                Arg::Long("append-secs") => {
                    options.append_secs = args::number::<f64>(&mut parser, "--append-secs")?;
                    if !(options.append_secs > 0.0 && options.append_secs < 600.0) {
                        return Err("--append-secs: want more than 0 and less than 600".into());
                    }
                }
                Arg::Long("publishers") => {
                    let text = args::value(&mut parser)?;
                    options.publishers = text
                        .to_string_lossy()
                        .split(',')
                        .filter(|item| !item.trim().is_empty())
                        .map(|item| args::parse_number("--publishers", item.as_ref()))
                        .collect::<Res<Vec<usize>>>()?;
                    if options.publishers.contains(&0) {
                        return Err("--publishers: 0 threads make no sense".into());
                    }
                }
                Arg::Long("only") => {
                    let text = args::value(&mut parser)?;
                    options.fanout = false;
                    options.latency = false;
                    options.append = false;
                    for part in text.to_string_lossy().split(',') {
                        match part.trim() {
                            "fanout" => options.fanout = true,
                            "latency" => options.latency = true,
                            "append" => options.append = true,
                            other => {
                                return Err(format!(
                                    "--only {other:?}: want fanout, latency or append"
                                ));
                            }
                        }
                    }
                }
                Arg::Long("jsonl") => options.jsonl = Some(args::value(&mut parser)?.into()),
                Arg::Long("no-jsonl") => options.jsonl = None,
                _ => args::skip(&mut parser),
            }
        }
        if options.size > 1 << 20 {
            return Err("--size: at most 1 MiB".into());
        }
        Ok(options)
    }
}

/// `benches/results/<UTC date>-redis.jsonl` in this crate.
fn default_jsonl() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches/results")
        .join(format!(
            "{}-redis.jsonl",
            civil_date(unix_ns() / 1_000_000_000)
        ))
}

// ---------------------------------------------------------------------------
// The session

/// What every run of a session shares.
struct Session {
    options: Options,
    server: PathBuf,
    redis: RedisServer,
    /// Makes each run's stream key its own.
    keys: AtomicU64,
    started_unix_s: u64,
    machine: String,
    jsonl: Option<Mutex<std::fs::File>>,
}

impl Session {
    fn next_key(&self) -> String {
        format!(
            "sse-bench-{}-{}",
            self.started_unix_s,
            self.keys.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Appends one run's line to the JSON Lines file, if there is one.
    fn record(&self, mut line: Json) -> Res<()> {
        let Some(file) = &self.jsonl else {
            return Ok(());
        };
        line.str("bench", "redis")
            .num("session", self.started_unix_s)
            .str("machine", &self.machine)
            .str("mode", if self.options.smoke { "smoke" } else { "full" });
        let text = line.finish();
        let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        writeln!(file, "{text}").map_err(|e| format!("writing the JSON Lines file: {e}"))
    }
}

fn run(options: &Options) -> Res<()> {
    let server = find_server(options.server.as_deref())?;
    let redis = RedisServer::start(&options.redis_server)?;
    let machine = format!(
        "nproc={} cpu={}",
        thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    let jsonl = match &options.jsonl {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?;
            Some(Mutex::new(file))
        }
        None => None,
    };
    let session = Session {
        options: clone_options(options),
        server,
        redis,
        keys: AtomicU64::new(0),
        started_unix_s: unix_ns() / 1_000_000_000,
        machine,
        jsonl,
    };
    print_header(&session);
    let started = Instant::now();
    let mut fanout = Vec::new();
    let mut latency = Vec::new();
    let mut append = Vec::new();
    if options.fanout {
        fanout = fanout_part(&session)?;
    }
    if options.latency {
        latency = latency_part(&session)?;
    }
    if options.append {
        append = append_part(&session)?;
    }
    println!();
    println!(
        "# Results ({} s in all; loadavg now {})",
        started.elapsed().as_secs(),
        read_trimmed("/proc/loadavg").unwrap_or_default()
    );
    println!();
    if !fanout.is_empty() {
        print_fanout_table(&fanout);
    }
    if !latency.is_empty() {
        print_latency_table(&latency);
    }
    if !append.is_empty() {
        print_append_table(&append);
    }
    print_warnings(&fanout, &latency);
    if let Some(path) = &options.jsonl {
        println!("JSON lines appended to {}", path.display());
    }
    Ok(())
}

/// The options again (they hold no handle), so that the session owns a copy.
fn clone_options(o: &Options) -> Options {
    Options {
        smoke: o.smoke,
        server: o.server.clone(),
        redis_server: o.redis_server.clone(),
        rounds: o.rounds,
        append_rounds: o.append_rounds,
        clients: o.clients,
        processes: o.processes,
        burst: o.burst,
        paced: o.paced,
        interval_us: o.interval_us,
        size: o.size,
        split: o.split,
        latency_clients: o.latency_clients,
        latency_events: o.latency_events,
        latency_interval_us: o.latency_interval_us,
        append_secs: o.append_secs,
        append_warmup: o.append_warmup,
        publishers: o.publishers.clone(),
        fanout: o.fanout,
        latency: o.latency,
        append: o.append,
        jsonl: o.jsonl.clone(),
        settle: o.settle,
        client_threads: o.client_threads,
    }
}

fn print_header(session: &Session) {
    let o = &session.options;
    println!("# sse-server Redis bench");
    println!();
    println!("date:         {} (Unix time, s)", session.started_unix_s);
    println!("machine:      {}", session.machine);
    println!(
        "kernel:       {}",
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()
    );
    println!(
        "loadavg:      {}",
        read_trimmed("/proc/loadavg").unwrap_or_default()
    );
    println!("bench_server: {}", session.server.display());
    println!(
        "redis:        {} (pid {}, {})",
        session.redis.url(),
        session.redis.pid(),
        session.redis.version
    );
    println!(
        "sizes:        {} clients, {} processes, burst {}, paced {} every {} µs, {} B; \
         latency {} clients, {} events every {} µs; append {} s on {:?} threads; \
         rounds {} (append {})",
        o.clients,
        o.processes,
        o.burst,
        o.paced,
        o.interval_us,
        o.size,
        o.latency_clients,
        o.latency_events,
        o.latency_interval_us,
        o.append_secs,
        o.publishers,
        o.rounds,
        o.append_rounds
    );
    if o.smoke {
        println!(
            "mode:         SMOKE (`cargo bench --features redis --bench redis` runs the full bench)"
        );
    }
    if session
        .server
        .components()
        .any(|part| part.as_os_str() == "debug")
    {
        println!("WARNING:      bench_server is a debug build: its figures mean little");
    }
    println!();
    let _ = io::stdout().flush();
}

// ---------------------------------------------------------------------------
// Processes

/// A process this bench started: killed (by its own pid) and reaped when
/// dropped. Its stderr lines are kept (the first 200).
struct Proc {
    name: String,
    child: Option<Child>,
    pid: u32,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `command`; with `listening`, each stderr line that says where
    /// the process listens is sent there.
    fn spawn(name: &str, command: &mut Command, listening: Option<Sender<String>>) -> Res<Proc> {
        die_with_parent(command);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {name} ({:?}): {e}", command.get_program()))?;
        let pid = child.id();
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            thread::Builder::new()
                .name("proc-stderr".into())
                .spawn(move || {
                    for line in BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        if let Some(tx) = &listening
                            && line.contains("listening on ")
                        {
                            let _ = tx.send(line);
                            continue;
                        }
                        let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                        if log.len() < 200 {
                            log.push(line);
                        }
                    }
                })
                .map_err(|e| format!("spawning the stderr reader of {name}: {e}"))?;
        }
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            pid,
            log,
        })
    }

    /// How it exited, if it has.
    fn exit_status(&mut self) -> Option<String> {
        match self.child.as_mut()?.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    fn log_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The child gets SIGKILL when this process dies, however it dies.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the child between fork and exec; it
        // makes one system call (prctl) and neither allocates nor locks.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(io::Error::from)
            });
        }
    }
}

/// `bench_server`: `--server PATH`, or beside this binary.
fn find_server(given: Option<&Path>) -> Res<PathBuf> {
    let how = "build it with `cargo build --release --features redis --example bench_server` \
               (with the same CARGO_TARGET_DIR as this bench), or pass --server PATH";
    if let Some(path) = given {
        if path.is_file() {
            return Ok(path.to_path_buf());
        }
        return Err(format!("--server {}: no such file; {how}", path.display()));
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // <target>/<profile>/deps/redis-<hash>
    let deps = exe.parent().unwrap_or(Path::new("."));
    let profile = deps.parent().unwrap_or(deps);
    let target = profile.parent().unwrap_or(profile);
    let candidates = [
        profile.join("examples/bench_server"),
        deps.join("bench_server"),
        target.join("release/examples/bench_server"),
    ];
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "bench_server not found (looked for {}); {how}",
                candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// A `redis-server` of this bench's own.
struct RedisServer {
    proc: Proc,
    port: u16,
    dir: PathBuf,
    version: String,
}

impl RedisServer {
    fn start(binary: &Path) -> Res<RedisServer> {
        let mut last_error = String::new();
        for attempt in 0..5 {
            let dir = std::env::temp_dir().join(format!(
                "sse-redis-bench-{}-{}-{attempt}",
                std::process::id(),
                unix_ns()
            ));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            let port = free_port()?;
            let mut command = Command::new(binary);
            command
                .arg("--port")
                .arg(port.to_string())
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--protected-mode", "yes", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(dir.join("redis.log"));
            let proc = match Proc::spawn("redis-server", &mut command, None) {
                Ok(proc) => proc,
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&dir);
                    return Err(format!(
                        "{e} (is redis-server installed? --redis-server PATH names it)"
                    ));
                }
            };
            let mut server = RedisServer {
                proc,
                port,
                dir,
                version: String::new(),
            };
            match server.wait_until_up(Duration::from_secs(10)) {
                Ok(version) => {
                    server.version = version;
                    return Ok(server);
                }
                Err(e) => last_error = e,
            }
        }
        Err(format!("redis-server did not start: {last_error}"))
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.proc.pid
    }

    fn connection(&self) -> Res<redis::Connection> {
        let client = redis::Client::open(self.url()).map_err(|e| e.to_string())?;
        let connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        connection
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        Ok(connection)
    }

    /// Waits until it answers PING; gives back its version.
    fn wait_until_up(&mut self, timeout: Duration) -> Res<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.proc.exit_status() {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                return Err(format!(
                    "redis-server {status}: {}",
                    log.lines().rev().take(3).collect::<Vec<_>>().join(" / ")
                ));
            }
            if let Ok(mut connection) = self.connection()
                && redis::cmd("PING").query::<String>(&mut connection).is_ok()
            {
                let info: String = redis::cmd("INFO")
                    .arg("server")
                    .query(&mut connection)
                    .unwrap_or_default();
                let version = info
                    .lines()
                    .find_map(|line| line.strip_prefix("redis_version:"))
                    .unwrap_or("?")
                    .trim();
                return Ok(format!("redis {version}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("no PONG on port {} within {timeout:?}", self.port));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Removes a run's stream and its node counter.
    fn delete(&self, key: &str) {
        if let Ok(mut connection) = self.connection() {
            let _ = redis::cmd("DEL")
                .arg(key)
                .arg(format!("{key}:nodes"))
                .query::<u64>(&mut connection);
        }
    }

    fn cpu_ticks(&self) -> u64 {
        cpu_ticks(&self.proc.pid.to_string()).unwrap_or(0)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.proc.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on now (someone may take it before we do: the
/// caller tries again).
fn free_port() -> Res<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("binding: {e}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| e.to_string())
}

/// One `bench_server` process.
struct BenchServer {
    proc: Proc,
    addr: SocketAddr,
}

/// Starts `count` bench_server processes on 127.0.0.1 (free ports), sharing
/// the stream `redis` = `(url, key)` if given.
fn start_servers(
    binary: &Path,
    count: usize,
    redis: Option<(&str, &str)>,
) -> Res<Vec<BenchServer>> {
    let mut procs = Vec::with_capacity(count);
    let mut listening = Vec::with_capacity(count);
    for index in 0..count {
        let mut command = Command::new(binary);
        command.args(["--addr", "127.0.0.1:0"]);
        if let Some((url, key)) = redis {
            command.args(["--redis", url, "--redis-key", key]);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        procs.push(Proc::spawn(
            &format!("bench_server #{index}"),
            &mut command,
            Some(tx),
        )?);
        listening.push(rx);
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut servers = Vec::with_capacity(count);
    for (mut proc, rx) in procs.into_iter().zip(listening) {
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(line) => {
                    let text = line.rsplit("listening on ").next().unwrap_or("").trim();
                    break text
                        .parse::<SocketAddr>()
                        .map_err(|e| format!("{}: bad address in {line:?}: {e}", proc.name))?;
                }
                Err(_) => {
                    if let Some(status) = proc.exit_status() {
                        thread::sleep(Duration::from_millis(50));
                        let log = proc.log_lines().join(" / ");
                        let hint = if log.contains("needs the `redis` feature") {
                            "; rebuild it with `cargo build --release --features redis \
                             --example bench_server`"
                        } else {
                            ""
                        };
                        return Err(format!("{} {status}: {log}{hint}", proc.name));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "{} did not say where it listens within {START_TIMEOUT:?}",
                            proc.name
                        ));
                    }
                }
            }
        };
        servers.push(BenchServer { proc, addr });
    }
    Ok(servers)
}

// ---------------------------------------------------------------------------
// HTTP requests to the servers

/// One request with `Connection: close`: the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str) -> Res<(u16, String)> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| format!("{method} {path} to {addr}: connect: {e}"))?;
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| socket.set_write_timeout(Some(Duration::from_secs(5))))
        .map_err(|e| e.to_string())?;
    write!(
        socket,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    )
    .map_err(|e| format!("{method} {path} to {addr}: {e}"))?;
    let mut response = Vec::new();
    socket
        .take(1 << 20)
        .read_to_end(&mut response)
        .map_err(|e| format!("{method} {path} to {addr}: reading: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{method} {path} to {addr}: no status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_string();
    Ok((status, body))
}

/// `GET /stats`: `name value` a line.
fn server_stats(addr: SocketAddr) -> Res<HashMap<String, u64>> {
    let (status, body) = http(addr, "GET", "/stats")?;
    if status != 200 {
        return Err(format!("GET /stats from {addr}: {status} {body}"));
    }
    Ok(body
        .lines()
        .filter_map(|line| {
            let (name, value) = line.split_once(' ')?;
            Some((name.to_string(), value.trim().parse().ok()?))
        })
        .collect())
}

fn publish(addr: SocketAddr, count: usize, size: usize, interval_us: u64) -> Res<()> {
    let path = format!("/publish?count={count}&size={size}&interval_us={interval_us}");
    let (status, body) = http(addr, "POST", &path)?;
    if status != 202 {
        return Err(format!("POST {path} to {addr}: {status} {body}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The clients

/// What the client threads share with the main thread.
struct ClientShared {
    stop: AtomicBool,
    complete: AtomicUsize,
    /// CLOCK_REALTIME ns of the newest read that completed an event (0: none
    /// yet).
    last_event_ns: AtomicU64,
}

/// What a client expects.
#[derive(Clone, Copy)]
struct ClientPlan {
    /// Events it should get.
    expected: u64,
    /// One publisher: the sequence numbers run 0, 1, 2, ... and are
    /// checked.
    one_publisher: bool,
    /// One publisher on a schedule (event `k` due at `t0 + k * interval`,
    /// `t0` being when event 0 was sent): the latency from the due time is
    /// measured too.
    interval_ns: u64,
}

/// One client's tally.
struct Tally {
    plan: ClientPlan,
    delivered: u64,
    gaps: u64,
    other_events: u64,
    bad_data: u64,
    out_of_order: u64,
    skipped: u64,
    id_out_of_order: u64,
    no_id: u64,
    eof: bool,
    complete: bool,
    read_error: Option<String>,
    framing_error: Option<String>,
    last_seq: Option<u64>,
    first_send_ns: u64,
    last_send_ns: u64,
    last_recv_ns: u64,
    /// When event 0 was sent, if this client got it.
    t0_ns: Option<u64>,
    /// FNV-1a over the ids in the order received: equal for clients that
    /// got the same events in the same order.
    order_hash: u64,
    last_id_prefix: String,
    last_id_number: Option<u64>,
    /// Latency of each delivered event in µs, from its send time.
    latencies: Vec<u32>,
    /// The same from its due time (paced, one publisher).
    due_latencies: Vec<u32>,
}

impl Tally {
    fn new(plan: ClientPlan) -> Tally {
        let capacity = plan.expected.min(1 << 20) as usize;
        Tally {
            plan,
            delivered: 0,
            gaps: 0,
            other_events: 0,
            bad_data: 0,
            out_of_order: 0,
            skipped: 0,
            id_out_of_order: 0,
            no_id: 0,
            eof: false,
            complete: false,
            read_error: None,
            framing_error: None,
            last_seq: None,
            first_send_ns: u64::MAX,
            last_send_ns: 0,
            last_recv_ns: 0,
            t0_ns: None,
            order_hash: 0xcbf2_9ce4_8422_2325,
            last_id_prefix: String::new(),
            last_id_number: None,
            latencies: Vec::with_capacity(capacity),
            due_latencies: Vec::new(),
        }
    }

    fn on_event(&mut self, event: EventRef<'_>, now_ns: u64) {
        if event.event_type != "message" {
            if event.event_type == "sse-gap" {
                self.gaps += 1;
            } else {
                self.other_events += 1;
            }
            return;
        }
        let mut parts = event.data.split(' ');
        let seq = parts.next().and_then(|seq| seq.parse::<u64>().ok());
        let sent = parts.next().and_then(|ns| ns.parse::<u64>().ok());
        let (Some(seq), Some(sent)) = (seq, sent) else {
            self.bad_data += 1;
            return;
        };
        self.delivered += 1;
        self.first_send_ns = self.first_send_ns.min(sent);
        self.last_send_ns = self.last_send_ns.max(sent);
        self.last_recv_ns = now_ns;
        self.latencies.push(micros(now_ns.saturating_sub(sent)));
        if self.plan.one_publisher {
            if seq == 0 {
                self.t0_ns = Some(sent);
            }
            if self.plan.interval_ns > 0
                && let Some(t0) = self.t0_ns
            {
                let due = t0 + seq * self.plan.interval_ns;
                self.due_latencies.push(micros(now_ns.saturating_sub(due)));
            }
            let next = self.last_seq.map_or(0, |last| last + 1);
            if seq < next {
                self.out_of_order += 1;
            } else {
                self.skipped += seq - next;
                self.last_seq = Some(seq);
            }
        }
        self.check_id(event.last_event_id);
    }

    /// Ids must grow: `<prefix>-<n>` (the hub's own ids, or Redis entry ids
    /// `<ms>-<seq>`).
    fn check_id(&mut self, id: &str) {
        if id.is_empty() {
            self.no_id += 1;
            return;
        }
        for &byte in id.as_bytes().iter().chain(b"\n") {
            self.order_hash = (self.order_hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
        let (prefix, number) = match id.rsplit_once('-') {
            Some((prefix, number)) => (prefix, number.parse::<u64>().ok()),
            None => ("", id.parse::<u64>().ok()),
        };
        let Some(number) = number else {
            return;
        };
        let newer = match self.last_id_number {
            None => true,
            Some(last) if prefix == self.last_id_prefix => number > last,
            Some(_) => {
                (prefix.len(), prefix) > (self.last_id_prefix.len(), self.last_id_prefix.as_str())
            }
        };
        if !newer {
            self.id_out_of_order += 1;
        }
        if prefix != self.last_id_prefix {
            self.last_id_prefix = prefix.to_string();
        }
        self.last_id_number = Some(number);
    }
}

/// `ns` in whole µs, as kept.
fn micros(ns: u64) -> u32 {
    (ns / 1_000).min(u64::from(u32::MAX)) as u32
}

/// One stream: its socket, its decoder, its tally.
struct Conn {
    socket: TcpStream,
    reader: StreamReader,
    tally: Tally,
    closed: bool,
}

impl Conn {
    /// Takes the bytes of one read, received at `now_ns`.
    fn on_bytes(&mut self, bytes: &[u8], now_ns: u64, shared: &ClientShared) {
        let before = self.tally.delivered;
        let tally = &mut self.tally;
        if let Some(e) = self
            .reader
            .feed(bytes, |event| tally.on_event(event, now_ns))
        {
            self.tally.framing_error.get_or_insert(e);
        }
        if self.tally.delivered != before {
            shared.last_event_ns.fetch_max(now_ns, Ordering::AcqRel);
            if !self.tally.complete && self.tally.delivered >= self.tally.plan.expected {
                self.tally.complete = true;
                shared.complete.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    /// One read; false once the stream is over.
    fn read_once(&mut self, buf: &mut [u8], shared: &ClientShared) -> bool {
        match self.socket.read(buf) {
            Ok(0) => {
                self.tally.eof = true;
                self.closed = true;
                false
            }
            Ok(n) => {
                self.on_bytes(&buf[..n], unix_ns(), shared);
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                true
            }
            Err(e) => {
                self.tally.read_error = Some(e.to_string());
                self.closed = true;
                false
            }
        }
    }
}

/// The client side of one run: the streams, read by one thread each or by
/// a few threads over epoll.
struct Clients {
    shared: Arc<ClientShared>,
    handles: Vec<JoinHandle<Vec<Tally>>>,
    connect_s: f64,
}

impl Clients {
    /// Connects `count` streams, client `i` to `addrs[i % addrs.len()]`
    /// (16 connecting threads, so at most 16 handshakes in flight), then
    /// reads them: `threads` = 0, a thread per stream; otherwise that many
    /// threads, each with an epoll set of its share of the streams.
    fn connect(
        addrs: &[SocketAddr],
        count: usize,
        plan: ClientPlan,
        threads: usize,
    ) -> Res<Clients> {
        let started = Instant::now();
        let connectors = CONNECTORS.min(count).max(1);
        let mut streams: Vec<Option<(TcpStream, bool, Vec<u8>)>> =
            (0..count).map(|_| None).collect();
        thread::scope(|scope| -> Res<()> {
            let mut handles = Vec::with_capacity(connectors);
            for first in 0..connectors {
                let handle = thread::Builder::new()
                    .name(format!("connect-{first}"))
                    .spawn_scoped(scope, move || -> Res<Vec<_>> {
                        (first..count)
                            .step_by(connectors)
                            .map(|index| {
                                connect_with_retries(addrs[index % addrs.len()])
                                    .map(|connected| (index, connected))
                            })
                            .collect()
                    })
                    .map_err(|e| format!("spawning a connecting thread: {e}"))?;
                handles.push(handle);
            }
            for handle in handles {
                let connected = handle
                    .join()
                    .map_err(|_| "a connecting thread panicked".to_string())??;
                for (index, stream) in connected {
                    streams[index] = Some(stream);
                }
            }
            Ok(())
        })?;
        let mut clients = Clients {
            shared: Arc::new(ClientShared {
                stop: AtomicBool::new(false),
                complete: AtomicUsize::new(0),
                last_event_ns: AtomicU64::new(0),
            }),
            handles: Vec::new(),
            connect_s: 0.0,
        };
        let readers = if threads == 0 {
            count
        } else {
            threads.min(count)
        };
        let mut shares: Vec<Vec<Conn>> = (0..readers).map(|_| Vec::new()).collect();
        for (index, stream) in streams.into_iter().enumerate() {
            let (socket, chunked, leftover) = stream.ok_or("a stream was not connected")?;
            let mut conn = Conn {
                socket,
                reader: StreamReader::new(chunked),
                tally: Tally::new(plan),
                closed: false,
            };
            if !leftover.is_empty() {
                conn.on_bytes(&leftover, unix_ns(), &clients.shared);
            }
            shares[index % readers].push(conn);
        }
        for (index, share) in shares.into_iter().enumerate() {
            let shared = Arc::clone(&clients.shared);
            let builder = thread::Builder::new().name(format!("client-{index}"));
            let spawned = if threads == 0 {
                builder
                    .stack_size(256 * 1024)
                    .spawn(move || read_one(share, &shared))
            } else {
                builder.spawn(move || read_epoll(share, &shared))
            };
            clients
                .handles
                .push(spawned.map_err(|e| format!("spawning client thread {index}: {e}"))?);
        }
        clients.connect_s = started.elapsed().as_secs_f64();
        Ok(clients)
    }

    /// Stops the threads and takes their tallies.
    fn finish(mut self) -> Res<Vec<Tally>> {
        self.shared.stop.store(true, Ordering::Release);
        let mut tallies = Vec::new();
        for handle in self.handles.drain(..) {
            tallies.extend(
                handle
                    .join()
                    .map_err(|_| "a client thread panicked".to_string())?,
            );
        }
        Ok(tallies)
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        // Every thread sees this within its 250 ms timeout.
        self.shared.stop.store(true, Ordering::Release);
        for handle in self.handles.drain(..) {
            let _ = handle.join();
        }
    }
}

/// Connecting threads per run.
const CONNECTORS: usize = 16;

/// A thread per stream: blocking reads, 250 ms at most each.
fn read_one(conns: Vec<Conn>, shared: &ClientShared) -> Vec<Tally> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut tallies = Vec::with_capacity(conns.len());
    for mut conn in conns {
        if let Err(e) = conn
            .socket
            .set_read_timeout(Some(Duration::from_millis(250)))
        {
            conn.tally.read_error = Some(e.to_string());
            tallies.push(conn.tally);
            continue;
        }
        loop {
            if shared.stop.load(Ordering::Acquire) || !conn.read_once(&mut buf, shared) {
                break;
            }
        }
        tallies.push(conn.tally);
    }
    tallies
}

/// A few threads for all streams: each waits on its epoll set (250 ms at
/// most) and reads each ready stream once.
fn read_epoll(mut conns: Vec<Conn>, shared: &ClientShared) -> Vec<Tally> {
    use rustix::event::epoll;
    let fail = |mut conns: Vec<Conn>, e: String| -> Vec<Tally> {
        for conn in &mut conns {
            conn.tally.read_error.get_or_insert_with(|| e.clone());
        }
        conns.into_iter().map(|conn| conn.tally).collect()
    };
    let epoll_fd = match epoll::create(epoll::CreateFlags::CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => return fail(conns, format!("epoll_create: {e}")),
    };
    for (index, conn) in conns.iter().enumerate() {
        let added = conn
            .socket
            .set_nonblocking(true)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                epoll::add(
                    &epoll_fd,
                    &conn.socket,
                    epoll::EventData::new_u64(index as u64),
                    epoll::EventFlags::IN | epoll::EventFlags::RDHUP,
                )
                .map_err(|e| e.to_string())
            });
        if let Err(e) = added {
            return fail(conns, format!("epoll_ctl: {e}"));
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut ready = Vec::with_capacity(conns.len().clamp(1, 1024));
    let timeout = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 250_000_000,
    };
    while !shared.stop.load(Ordering::Acquire) {
        ready.clear();
        match epoll::wait(
            &epoll_fd,
            rustix::buffer::spare_capacity(&mut ready),
            Some(&timeout),
        ) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return fail(conns, format!("epoll_wait: {e}")),
        }
        for event in &ready {
            let Some(conn) = conns.get_mut(event.data.u64() as usize) else {
                continue;
            };
            if !conn.closed && !conn.read_once(&mut buf, shared) {
                let _ = epoll::delete(&epoll_fd, &conn.socket);
            }
        }
    }
    conns.into_iter().map(|conn| conn.tally).collect()
}

// ---------------------------------------------------------------------------
// CPU time per process and per thread group

/// A process's CPU time: in all (ticks of `/proc/<pid>/stat`, threads
/// that ended included) and per live thread (ns of
/// `/proc/<pid>/task/<tid>/schedstat`: ticks per thread round down too
/// much when 300 threads each use a little).
struct CpuSample {
    total_ticks: u64,
    /// tid → (group, ns on a CPU).
    threads: HashMap<u32, (&'static str, u64)>,
}

fn sample_cpu(pid: u32) -> CpuSample {
    let total_ticks = cpu_ticks(&pid.to_string()).unwrap_or(0);
    let mut threads = HashMap::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|tid| tid.parse().ok()) else {
                continue;
            };
            let path = task.path();
            let (Ok(comm), Ok(schedstat)) = (
                std::fs::read_to_string(path.join("comm")),
                std::fs::read_to_string(path.join("schedstat")),
            ) else {
                continue;
            };
            if let Some(ns) = schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse().ok())
            {
                threads.insert(tid, (thread_group(comm.trim()), ns));
            }
        }
    }
    CpuSample {
        total_ticks,
        threads,
    }
}

fn thread_group(comm: &str) -> &'static str {
    if comm.starts_with("sse-client") {
        "writers"
    } else if comm == "sse-hub" {
        "hub"
    } else if comm.starts_with("sse-redis-read") {
        "redis-read"
    } else if comm.starts_with("sse-redis-app") {
        "redis-append"
    } else if comm == "publisher" || comm.starts_with("append-pub") {
        "publisher"
    } else if comm.starts_with("client-") {
        "clients"
    } else {
        "other"
    }
}

/// Adds the CPU ms between two samples to `groups`: per group of the
/// threads alive at the end, and what the threads that ended in between
/// used as `ended` (in a server, mostly its publishing thread, which ends
/// when it has sent its events). Gives back the total ms.
fn cpu_delta(
    before: &CpuSample,
    after: &CpuSample,
    groups: &mut HashMap<&'static str, u64>,
) -> u64 {
    let mut counted_ns = 0;
    for (tid, &(group, ns)) in &after.threads {
        let start = before.threads.get(tid).map_or(0, |&(_, ns)| ns).min(ns);
        counted_ns += ns - start;
        *groups.entry(group).or_default() += (ns - start) / 1_000_000;
    }
    let total_ms = ticks_ms(after.total_ticks.saturating_sub(before.total_ticks));
    *groups.entry("ended").or_default() += total_ms.saturating_sub(counted_ns / 1_000_000);
    total_ms
}

// ---------------------------------------------------------------------------
// Part 1 and 2: fan-out runs

/// A server setup.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Setup {
    name: &'static str,
    processes: usize,
    redis: bool,
    /// Every process publishes its share (else process 0 publishes all).
    split: bool,
}

/// One fan-out run to make.
struct RunSpec {
    part: &'static str,
    setup: Setup,
    scenario: &'static str,
    round: usize,
    clients: usize,
    events: usize,
    interval_us: u64,
    size: usize,
}

/// What one fan-out run measured.
struct FanoutResult {
    part: &'static str,
    setup: Setup,
    scenario: &'static str,
    round: usize,
    clients: usize,
    events_per_client: u64,
    interval_us: u64,
    stop: &'static str,
    connect_s: f64,
    /// From just before the first POST /publish until the run was over.
    wall_s: f64,
    delivered: u64,
    expected: u64,
    complete_clients: usize,
    per_client_min: u64,
    per_client_max: u64,
    gaps: u64,
    other_events: u64,
    bad_data: u64,
    out_of_order: u64,
    skipped: u64,
    id_out_of_order: u64,
    no_id: u64,
    eof: usize,
    read_errors: usize,
    first_error: Option<String>,
    orders_distinct: usize,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Latency from the due time (paced, one publisher; 0 otherwise).
    due_p50_us: u64,
    due_p99_us: u64,
    first_send_ns: u64,
    last_send_ns: u64,
    last_recv_ns: u64,
    server_cpu_ms: Vec<u64>,
    server_groups: HashMap<&'static str, u64>,
    client_cpu_ms: u64,
    redis_cpu_ms: u64,
    server_dropped: u64,
    publish_failed: u64,
    warnings: Vec<String>,
}

impl FanoutResult {
    /// Events every client got, per second, from the first send to the
    /// last receipt.
    fn rate(&self) -> f64 {
        let ns = self.last_recv_ns.saturating_sub(self.first_send_ns);
        if ns == 0 || self.first_send_ns == u64::MAX {
            return 0.0;
        }
        self.delivered as f64 / (ns as f64 / 1e9)
    }

    /// Events sent per second, from the send timestamps.
    fn publish_rate(&self) -> f64 {
        let ns = self.last_send_ns.saturating_sub(self.first_send_ns);
        if ns == 0 || self.first_send_ns == u64::MAX {
            return 0.0;
        }
        (self.events_per_client.saturating_sub(1)) as f64 / (ns as f64 / 1e9)
    }

    fn loss_percent(&self) -> f64 {
        if self.expected == 0 {
            return 0.0;
        }
        100.0 * self.expected.saturating_sub(self.delivered) as f64 / self.expected as f64
    }

    fn cpu_percent(&self, ms: u64) -> f64 {
        if self.wall_s <= 0.0 {
            return 0.0;
        }
        ms as f64 / (self.wall_s * 10.0)
    }

    fn server_cpu_total(&self) -> u64 {
        self.server_cpu_ms.iter().sum()
    }

    fn to_json(&self) -> Json {
        let mut json = Json::new();
        json.str("part", self.part)
            .str("setup", self.setup.name)
            .num("processes", self.setup.processes)
            .bool("redis", self.setup.redis)
            .bool("split_publishers", self.setup.split)
            .str("scenario", self.scenario)
            .num("round", self.round)
            .num("clients", self.clients)
            .num("events_per_client", self.events_per_client)
            .num("interval_us", self.interval_us)
            .str("stop", self.stop)
            .float("delivered_per_s", self.rate())
            .float("publish_per_s", self.publish_rate())
            .num("delivered", self.delivered)
            .num("expected", self.expected)
            .float("loss_percent", self.loss_percent())
            .num("complete_clients", self.complete_clients)
            .num("per_client_min", self.per_client_min)
            .num("per_client_max", self.per_client_max)
            .num("p50_us", self.p50_us)
            .num("p99_us", self.p99_us)
            .num("max_us", self.max_us)
            .num("due_p50_us", self.due_p50_us)
            .num("due_p99_us", self.due_p99_us)
            .num("gaps", self.gaps)
            .num("other_events", self.other_events)
            .num("bad_data", self.bad_data)
            .num("out_of_order", self.out_of_order)
            .num("skipped", self.skipped)
            .num("id_out_of_order", self.id_out_of_order)
            .num("no_id", self.no_id)
            .num("eof", self.eof)
            .num("read_errors", self.read_errors)
            .num("orders_distinct", self.orders_distinct)
            .float("connect_s", self.connect_s)
            .float("wall_s", self.wall_s)
            .float(
                "first_send_to_last_recv_s",
                self.last_recv_ns.saturating_sub(self.first_send_ns) as f64 / 1e9,
            )
            .num("server_cpu_ms", self.server_cpu_total())
            .raw(
                "server_cpu_ms_each",
                &format!(
                    "[{}]",
                    self.server_cpu_ms
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            )
            .raw("server_cpu_ms_by_thread", &groups_json(&self.server_groups))
            .num("client_cpu_ms", self.client_cpu_ms)
            .num("redis_cpu_ms", self.redis_cpu_ms)
            .num("server_dropped", self.server_dropped)
            .num("publish_failed", self.publish_failed)
            .num("warnings", self.warnings.len());
        if let Some(e) = &self.first_error {
            json.str("first_error", e);
        }
        if let Some(w) = self.warnings.first() {
            json.str("first_warning", w);
        }
        json
    }
}

fn groups_json(groups: &HashMap<&'static str, u64>) -> String {
    let mut names: Vec<_> = groups.iter().filter(|(_, ms)| **ms > 0).collect();
    names.sort();
    let mut json = Json::new();
    for (name, ms) in names {
        json.num(name, *ms);
    }
    json.finish()
}

fn fanout_run(session: &Session, spec: &RunSpec) -> Res<FanoutResult> {
    let options = &session.options;
    let key = session.next_key();
    let url = session.redis.url();
    let redis = spec.setup.redis.then_some((url.as_str(), key.as_str()));
    let mut servers = start_servers(&session.server, spec.setup.processes, redis)?;
    let addrs: Vec<SocketAddr> = servers.iter().map(|server| server.addr).collect();
    for &addr in &addrs {
        let stats = server_stats(addr)?;
        if spec.setup.redis && stats.get("redis_connected") != Some(&1) {
            return Err(format!("{addr} is not connected to Redis: {stats:?}"));
        }
    }

    // What each client should get.
    let publishers = if spec.setup.split {
        spec.setup.processes
    } else {
        1
    };
    let count_each = spec.events.div_ceil(publishers);
    let interval_each = spec.interval_us * publishers as u64;
    let expected = (count_each * publishers) as u64;
    let plan = ClientPlan {
        expected,
        one_publisher: publishers == 1,
        interval_ns: if publishers == 1 {
            spec.interval_us * 1_000
        } else {
            0
        },
    };
    let clients = Clients::connect(&addrs, spec.clients, plan, options.client_threads)?;
    for (index, &addr) in addrs.iter().enumerate() {
        let want = (spec.clients + addrs.len() - 1 - index) / addrs.len();
        let registered = wait_for(Duration::from_secs(10), Duration::from_millis(5), || {
            server_stats(addr).is_ok_and(|stats| stats.get("clients") == Some(&(want as u64)))
        });
        if registered.is_none() {
            return Err(format!(
                "{addr} should have {want} clients: {:?}",
                server_stats(addr)
            ));
        }
    }
    thread::sleep(options.settle);

    // The run.
    let cpu_before: Vec<CpuSample> = servers
        .iter()
        .map(|server| sample_cpu(server.proc.pid))
        .collect();
    let client_before = cpu_ticks("self")?;
    let redis_before = session.redis.cpu_ticks();
    let go = Instant::now();
    for &addr in addrs.iter().take(publishers) {
        publish(addr, count_each, spec.size, interval_each)?;
    }
    let publish_time = Duration::from_micros(interval_each.saturating_mul(count_each as u64));
    let stop = wait_delivery(&clients.shared, spec.clients, publish_time);
    let wall_s = go.elapsed().as_secs_f64();
    let cpu_after: Vec<CpuSample> = servers
        .iter()
        .map(|server| sample_cpu(server.proc.pid))
        .collect();
    let client_after = cpu_ticks("self")?;
    let redis_after = session.redis.cpu_ticks();
    let mut server_dropped = 0;
    let mut publish_failed = 0;
    for &addr in &addrs {
        if let Ok(stats) = server_stats(addr) {
            server_dropped += stats.get("dropped").copied().unwrap_or(0);
            publish_failed += stats.get("publish_failed").copied().unwrap_or(0);
        }
    }
    let connect_s = clients.connect_s;
    let tallies = clients.finish()?;
    let mut warnings = Vec::new();
    for server in &mut servers {
        for line in server.proc.log_lines() {
            warnings.push(format!("{}: {line}", server.proc.name));
        }
        server.proc.kill();
    }
    drop(servers);
    if spec.setup.redis {
        session.redis.delete(&key);
    }

    let mut server_groups = HashMap::new();
    let server_cpu_ms = cpu_before
        .iter()
        .zip(&cpu_after)
        .map(|(before, after)| cpu_delta(before, after, &mut server_groups))
        .collect();
    let mut result = FanoutResult {
        part: spec.part,
        setup: spec.setup,
        scenario: spec.scenario,
        round: spec.round,
        clients: spec.clients,
        events_per_client: expected,
        interval_us: spec.interval_us,
        stop,
        connect_s,
        wall_s,
        delivered: 0,
        expected: expected * spec.clients as u64,
        complete_clients: 0,
        per_client_min: u64::MAX,
        per_client_max: 0,
        gaps: 0,
        other_events: 0,
        bad_data: 0,
        out_of_order: 0,
        skipped: 0,
        id_out_of_order: 0,
        no_id: 0,
        eof: 0,
        read_errors: 0,
        first_error: None,
        orders_distinct: 0,
        p50_us: 0,
        p99_us: 0,
        max_us: 0,
        due_p50_us: 0,
        due_p99_us: 0,
        first_send_ns: u64::MAX,
        last_send_ns: 0,
        last_recv_ns: 0,
        server_cpu_ms,
        server_groups,
        client_cpu_ms: ticks_ms(client_after.saturating_sub(client_before)),
        redis_cpu_ms: ticks_ms(redis_after.saturating_sub(redis_before)),
        server_dropped,
        publish_failed,
        warnings,
    };
    summarise(&mut result, tallies);
    Ok(result)
}

/// Waits until every client has all its events, or they stop coming.
fn wait_delivery(shared: &ClientShared, clients: usize, publish_time: Duration) -> &'static str {
    let started = Instant::now();
    let first_deadline = started + publish_time + Duration::from_secs(15);
    let last_deadline = started + publish_time + MAX_EXTRA_WAIT;
    loop {
        if shared.complete.load(Ordering::Acquire) >= clients {
            return "complete";
        }
        let now = Instant::now();
        let last = shared.last_event_ns.load(Ordering::Acquire);
        if last == 0 {
            if now >= first_deadline {
                return "no_events";
            }
        } else {
            let quiet = Duration::from_nanos(unix_ns().saturating_sub(last));
            if quiet >= IDLE_STOP && now >= started + publish_time {
                return "idle";
            }
        }
        if now >= last_deadline {
            return "max_wait";
        }
        thread::sleep(Duration::from_millis(2));
    }
}

fn summarise(result: &mut FanoutResult, tallies: Vec<Tally>) {
    let total: usize = tallies.iter().map(|tally| tally.latencies.len()).sum();
    let mut latencies = Vec::with_capacity(total);
    let mut due = Vec::new();
    let mut orders = Vec::new();
    for mut tally in tallies {
        result.delivered += tally.delivered;
        result.per_client_min = result.per_client_min.min(tally.delivered);
        result.per_client_max = result.per_client_max.max(tally.delivered);
        result.complete_clients += usize::from(tally.complete);
        result.gaps += tally.gaps;
        result.other_events += tally.other_events;
        result.bad_data += tally.bad_data;
        result.out_of_order += tally.out_of_order;
        result.skipped += tally.skipped;
        result.id_out_of_order += tally.id_out_of_order;
        result.no_id += tally.no_id;
        result.eof += usize::from(tally.eof);
        if let Some(e) = tally.read_error.as_ref().or(tally.framing_error.as_ref()) {
            result.read_errors += 1;
            result.first_error.get_or_insert_with(|| e.clone());
        }
        result.first_send_ns = result.first_send_ns.min(tally.first_send_ns);
        result.last_send_ns = result.last_send_ns.max(tally.last_send_ns);
        result.last_recv_ns = result.last_recv_ns.max(tally.last_recv_ns);
        if tally.complete {
            orders.push(tally.order_hash);
        }
        latencies.append(&mut tally.latencies);
        due.append(&mut tally.due_latencies);
    }
    if result.per_client_min == u64::MAX {
        result.per_client_min = 0;
    }
    orders.sort_unstable();
    orders.dedup();
    result.orders_distinct = orders.len();
    latencies.sort_unstable();
    result.p50_us = nearest_rank(&latencies, 50.0);
    result.p99_us = nearest_rank(&latencies, 99.0);
    result.max_us = latencies.last().copied().map_or(0, u64::from);
    due.sort_unstable();
    result.due_p50_us = nearest_rank(&due, 50.0);
    result.due_p99_us = nearest_rank(&due, 99.0);
}

fn describe(result: &FanoutResult) -> String {
    format!(
        "{:.0}/s, loss {:.2} %, p50 {} µs, p99 {} µs, max {} µs{}, publish {:.0}/s, CPU ms \
         servers {} clients {} redis {} in {:.2} s ({})",
        result.rate(),
        result.loss_percent(),
        result.p50_us,
        result.p99_us,
        result.max_us,
        if result.due_p50_us > 0 {
            format!(
                " (from due time: p50 {} µs, p99 {} µs)",
                result.due_p50_us, result.due_p99_us
            )
        } else {
            String::new()
        },
        result.publish_rate(),
        result.server_cpu_total(),
        result.client_cpu_ms,
        result.redis_cpu_ms,
        result.wall_s,
        result.stop
    )
}

fn fanout_part(session: &Session) -> Res<Vec<FanoutResult>> {
    let o = &session.options;
    let mut setups = vec![
        Setup {
            name: "1p",
            processes: 1,
            redis: false,
            split: false,
        },
        Setup {
            name: "1p+redis",
            processes: 1,
            redis: true,
            split: false,
        },
        Setup {
            name: "3p+redis",
            processes: o.processes,
            redis: true,
            split: false,
        },
    ];
    if o.split && o.processes > 1 {
        setups.push(Setup {
            name: "3p+redis split",
            processes: o.processes,
            redis: true,
            split: true,
        });
    }
    let mut scenarios = Vec::new();
    if o.burst > 0 {
        scenarios.push(("burst", o.burst, 0));
    }
    if o.paced > 0 {
        scenarios.push(("paced", o.paced, o.interval_us));
    }
    println!(
        "## 1. Fan-out: {} clients, {} rounds (setups interleaved)",
        o.clients, o.rounds
    );
    println!();
    let mut results = Vec::new();
    for round in 1..=o.rounds {
        for &(scenario, events, interval_us) in &scenarios {
            for &setup in &setups {
                let spec = RunSpec {
                    part: "fanout",
                    setup,
                    scenario,
                    round,
                    clients: o.clients,
                    events,
                    interval_us,
                    size: o.size,
                };
                let result = fanout_run(session, &spec).map_err(|e| {
                    format!("fan-out round {round}, {scenario}, {}: {e}", setup.name)
                })?;
                println!(
                    "* round {round} {scenario} {}: {}",
                    setup.name,
                    describe(&result)
                );
                let _ = io::stdout().flush();
                session.record(result.to_json())?;
                results.push(result);
            }
        }
    }
    println!();
    Ok(results)
}

fn latency_part(session: &Session) -> Res<Vec<FanoutResult>> {
    let o = &session.options;
    let setups = [
        Setup {
            name: "1p",
            processes: 1,
            redis: false,
            split: false,
        },
        Setup {
            name: "1p+redis",
            processes: 1,
            redis: true,
            split: false,
        },
    ];
    println!(
        "## 2. One event's latency: {} clients, {} events every {} µs, {} rounds",
        o.latency_clients, o.latency_events, o.latency_interval_us, o.rounds
    );
    println!();
    let mut results = Vec::new();
    for round in 1..=o.rounds {
        for &setup in &setups {
            let spec = RunSpec {
                part: "latency",
                setup,
                scenario: "low-rate",
                round,
                clients: o.latency_clients,
                events: o.latency_events,
                interval_us: o.latency_interval_us,
                size: o.size,
            };
            let result = fanout_run(session, &spec)
                .map_err(|e| format!("latency round {round}, {}: {e}", setup.name))?;
            println!("* round {round} {}: {}", setup.name, describe(&result));
            let _ = io::stdout().flush();
            session.record(result.to_json())?;
            results.push(result);
        }
    }
    println!();
    Ok(results)
}

// ---------------------------------------------------------------------------
// Part 3: append rate

/// Who appends in part 3.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AppendMode {
    /// `notify` on a hub built with `.redis(url, key)`.
    Redis,
    /// `XADD` straight to Redis, a connection per thread (no hub): what
    /// the round trip alone allows.
    Direct,
    /// `notify` on a hub without Redis.
    Local,
}

impl AppendMode {
    fn name(self) -> &'static str {
        match self {
            AppendMode::Redis => "hub + redis",
            AppendMode::Direct => "direct XADD",
            AppendMode::Local => "hub, no redis",
        }
    }
}

struct AppendResult {
    mode: AppendMode,
    threads: usize,
    round: usize,
    secs: f64,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    call_p50_us: f64,
    call_p99_us: f64,
    process_cpu_ms: u64,
    groups: HashMap<&'static str, u64>,
    redis_cpu_ms: u64,
    /// Events the hub thread had not taken (not queued or dropped for the
    /// subscription) when the calls ended, how long it took to get them,
    /// and how many it never got.
    behind_at_end: u64,
    catch_up_ms: f64,
    missing: u64,
}

impl AppendResult {
    fn rate(&self) -> f64 {
        self.calls as f64 / self.secs
    }

    fn to_json(&self) -> Json {
        let mut json = Json::new();
        json.str("part", "append")
            .str("setup", self.mode.name())
            .bool("redis", self.mode != AppendMode::Local)
            .num("threads", self.threads)
            .num("round", self.round)
            .float("secs", self.secs)
            .num("calls", self.calls)
            .float("events_per_s", self.rate())
            .num("errors", self.errors)
            .float("call_p50_us", self.call_p50_us)
            .float("call_p99_us", self.call_p99_us)
            .num("process_cpu_ms", self.process_cpu_ms)
            .raw("process_cpu_ms_by_thread", &groups_json(&self.groups))
            .num("redis_cpu_ms", self.redis_cpu_ms)
            .num("behind_at_end", self.behind_at_end)
            .float("catch_up_ms", self.catch_up_ms)
            .num("missing", self.missing);
        if let Some(e) = &self.first_error {
            json.str("first_error", e);
        }
        json
    }
}

/// One publishing thread's tally.
struct Worker {
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    durations_ns: Vec<u32>,
}

fn append_run(
    session: &Session,
    mode: AppendMode,
    threads: usize,
    round: usize,
) -> Res<AppendResult> {
    let o = &session.options;
    let key = session.next_key();
    let hub = match mode {
        AppendMode::Redis => Some(Hub::builder().redis(&session.redis.url(), &key).build()),
        AppendMode::Local => Some(Hub::builder().build()),
        AppendMode::Direct => None,
    }
    .transpose()
    .map_err(|e| format!("building the hub: {e}"))?;
    if let Some(hub) = &hub
        && mode == AppendMode::Redis
        && hub.stats().redis_connected != Some(true)
    {
        return Err(format!(
            "the hub is not connected to Redis: {:?}",
            hub.stats()
        ));
    }
    let subscription = hub
        .as_ref()
        .map(Hub::subscribe)
        .transpose()
        .map_err(|e| format!("subscribe: {e}"))?;
    let mut data = String::from("12345 1700000000000000000 ");
    while data.len() < o.size.max(32) {
        data.push('x');
    }
    let secs = Duration::from_secs_f64(o.append_secs);
    // The calls start at once (the warm-up covers the spawning) and are
    // counted from `warm_end` to `end`.
    let warm_end = Instant::now() + Duration::from_millis(20) + o.append_warmup;
    let end = warm_end + secs;
    // Publishers that made their last call; then they stay alive until the
    // main thread has taken its CPU sample (`sampled`), so that their time
    // is counted as theirs. Both waits are bounded.
    let done = AtomicUsize::new(0);
    let sampled = AtomicBool::new(false);
    let (workers, cpu, redis_cpu_ms) = thread::scope(|scope| -> Res<_> {
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let (hub, data, key, done, sampled) =
                (hub.as_ref(), data.as_str(), key.as_str(), &done, &sampled);
            let handle = thread::Builder::new()
                .name(format!("append-pub-{index}"))
                .spawn_scoped(scope, move || {
                    let mut worker = Worker {
                        calls: 0,
                        errors: 0,
                        first_error: None,
                        durations_ns: Vec::new(),
                    };
                    let mut direct = None;
                    if mode == AppendMode::Direct {
                        match session.redis.connection() {
                            Ok(connection) => direct = Some(connection),
                            Err(e) => {
                                worker.errors += 1;
                                worker.first_error = Some(format!("connecting: {e}"));
                            }
                        }
                    }
                    let mut n = 0u64;
                    loop {
                        let before = Instant::now();
                        if before >= end {
                            break;
                        }
                        let outcome = match (hub, &mut direct) {
                            (Some(hub), _) => hub.notify(data).map_err(|e| {
                                let closed = matches!(e, sse_server::Error::Closed);
                                (e.to_string(), closed)
                            }),
                            (None, Some(connection)) => redis::cmd("XADD")
                                .arg(key)
                                .arg("MAXLEN")
                                .arg("~")
                                .arg(10_000)
                                .arg("*")
                                .arg("d")
                                .arg(data)
                                .query::<String>(connection)
                                .map(drop)
                                .map_err(|e| (e.to_string(), false)),
                            (None, None) => break,
                        };
                        let counted = before >= warm_end;
                        match outcome {
                            Ok(()) if counted => {
                                worker.calls += 1;
                                if mode != AppendMode::Local {
                                    let ns = before.elapsed().as_nanos();
                                    worker
                                        .durations_ns
                                        .push(ns.min(u128::from(u32::MAX)) as u32);
                                }
                            }
                            Ok(()) => {}
                            Err((e, closed)) => {
                                if counted {
                                    worker.errors += 1;
                                    worker.first_error.get_or_insert(e);
                                }
                                if closed {
                                    break;
                                }
                            }
                        }
                        n += 1;
                        if mode == AppendMode::Local
                            && n.is_multiple_of(1024)
                            && let Some(hub) = hub
                        {
                            // Keep the backlog, and so memory, bounded.
                            while hub.stats().pending > LOCAL_BACKLOG_CAP && Instant::now() < end {
                                thread::sleep(Duration::from_micros(100));
                            }
                        }
                    }
                    done.fetch_add(1, Ordering::AcqRel);
                    let _ = wait_for(Duration::from_secs(10), Duration::from_micros(200), || {
                        sampled.load(Ordering::Acquire)
                    });
                    worker
                });
            match handle {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    sampled.store(true, Ordering::Release);
                    return Err(format!("spawning a publisher: {e}"));
                }
            }
        }
        thread::sleep(warm_end.saturating_duration_since(Instant::now()));
        let before = sample_cpu(std::process::id());
        let redis_before = session.redis.cpu_ticks();
        thread::sleep(end.saturating_duration_since(Instant::now()));
        // A call waits at most about twice the Redis timeout (1 s).
        let _ = wait_for(Duration::from_secs(5), Duration::from_micros(200), || {
            done.load(Ordering::Acquire) >= threads
        });
        let after = sample_cpu(std::process::id());
        let redis_after = session.redis.cpu_ticks();
        sampled.store(true, Ordering::Release);
        let mut workers = Vec::with_capacity(threads);
        for handle in handles {
            workers.push(
                handle
                    .join()
                    .map_err(|_| "a publisher thread panicked".to_string())?,
            );
        }
        Ok((
            workers,
            (before, after),
            ticks_ms(redis_after.saturating_sub(redis_before)),
        ))
    })?;
    // How far the hub thread (through the Redis reader) is behind.
    let (mut behind_at_end, mut catch_up_ms, mut missing) = (0, f64::NAN, 0);
    if let Some(hub) = &hub {
        let calls_ended = Instant::now();
        let taken = |stats: sse_server::Stats| stats.queued + stats.dropped;
        let stats = hub.stats();
        behind_at_end = stats.published.saturating_sub(taken(stats));
        let caught_up = wait_for(Duration::from_secs(20), Duration::from_millis(1), || {
            let stats = hub.stats();
            taken(stats) >= stats.published
        });
        if caught_up.is_some() {
            catch_up_ms = calls_ended.elapsed().as_secs_f64() * 1e3;
        }
        let stats = hub.stats();
        missing = stats.published.saturating_sub(taken(stats));
    }
    drop(subscription);
    if let Some(hub) = hub {
        hub.shutdown().map_err(|e| format!("hub.shutdown: {e}"))?;
    }
    if mode != AppendMode::Local {
        session.redis.delete(&key);
    }

    let mut groups = HashMap::new();
    let process_cpu_ms = cpu_delta(&cpu.0, &cpu.1, &mut groups);
    let mut durations: Vec<u32> = Vec::new();
    let mut result = AppendResult {
        mode,
        threads,
        round,
        secs: secs.as_secs_f64(),
        calls: 0,
        errors: 0,
        first_error: None,
        call_p50_us: f64::NAN,
        call_p99_us: f64::NAN,
        process_cpu_ms,
        groups,
        redis_cpu_ms,
        behind_at_end,
        catch_up_ms,
        missing,
    };
    for mut worker in workers {
        result.calls += worker.calls;
        result.errors += worker.errors;
        if result.first_error.is_none() {
            result.first_error = worker.first_error.take();
        }
        durations.append(&mut worker.durations_ns);
    }
    if !durations.is_empty() {
        durations.sort_unstable();
        result.call_p50_us = nearest_rank(&durations, 50.0) as f64 / 1e3;
        result.call_p99_us = nearest_rank(&durations, 99.0) as f64 / 1e3;
    }
    Ok(result)
}

fn append_part(session: &Session) -> Res<Vec<AppendResult>> {
    let o = &session.options;
    println!(
        "## 3. Append rate: `notify` in a loop for {} s, on {:?} threads, {} rounds",
        o.append_secs, o.publishers, o.append_rounds
    );
    println!();
    let mut results = Vec::new();
    for round in 1..=o.append_rounds {
        for mode in [AppendMode::Redis, AppendMode::Direct, AppendMode::Local] {
            for &threads in &o.publishers {
                let result = append_run(session, mode, threads, round).map_err(|e| {
                    format!(
                        "append round {round}, {}, {threads} threads: {e}",
                        mode.name()
                    )
                })?;
                println!(
                    "* round {round} {} {threads} thread(s): {:.0} events/s, call p50 {:.1} µs \
                     p99 {:.1} µs, CPU ms process {} redis {}, errors {}, behind {} (caught up \
                     in {:.0} ms), missing {}",
                    mode.name(),
                    result.rate(),
                    result.call_p50_us,
                    result.call_p99_us,
                    result.process_cpu_ms,
                    result.redis_cpu_ms,
                    result.errors,
                    result.behind_at_end,
                    result.catch_up_ms,
                    result.missing
                );
                let _ = io::stdout().flush();
                session.record(result.to_json())?;
                results.push(result);
            }
        }
    }
    println!();
    Ok(results)
}

// ---------------------------------------------------------------------------
// Tables

/// Median, lowest and highest.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
    if sorted.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    } else {
        sorted[middle]
    };
    (median, sorted[0], sorted[sorted.len() - 1])
}

/// `median (min–max)`, numbers rounded to `decimals`.
fn show(values: &[f64], decimals: usize) -> String {
    let (median, min, max) = spread(values);
    if median.is_nan() {
        return "-".into();
    }
    if values.len() == 1 {
        return format!("{median:.decimals$}");
    }
    format!("{median:.decimals$} ({min:.decimals$}–{max:.decimals$})")
}

fn median(values: &[f64]) -> f64 {
    spread(values).0
}

/// The runs of `results` grouped by scenario and setup, in first-seen order.
fn groups(results: &[FanoutResult]) -> Vec<Vec<&FanoutResult>> {
    let mut order: Vec<(&str, &str)> = Vec::new();
    let mut by: HashMap<(&str, &str), Vec<&FanoutResult>> = HashMap::new();
    for result in results {
        let key = (result.scenario, result.setup.name);
        if !by.contains_key(&key) {
            order.push(key);
        }
        by.entry(key).or_default().push(result);
    }
    order
        .into_iter()
        .filter_map(|key| by.remove(&key))
        .collect()
}

fn print_fanout_table(results: &[FanoutResult]) {
    let groups = groups(results);
    println!("## 1. Fan-out (median over rounds, lowest–highest in brackets)");
    println!();
    println!(
        "| scenario | setup | rounds | delivered/s | vs 1p | loss % (worst) | p50 µs | p99 µs | max µs | from due time p50 / p99 µs | publish events/s | server CPU µs per delivery | CPU % servers / clients / redis-server |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for group in &groups {
        let first = group[0];
        let rates: Vec<f64> = group.iter().map(|r| r.rate()).collect();
        let baseline: Vec<f64> = results
            .iter()
            .filter(|r| r.scenario == first.scenario && r.setup.name == "1p")
            .map(FanoutResult::rate)
            .collect();
        let ratio = if baseline.is_empty() || first.setup.name == "1p" {
            "1".to_string()
        } else {
            format!("{:.2}", median(&rates) / median(&baseline))
        };
        let worst_loss = group
            .iter()
            .map(|r| r.loss_percent())
            .fold(0.0f64, f64::max);
        let pick =
            |f: &dyn Fn(&FanoutResult) -> f64| group.iter().map(|r| f(r)).collect::<Vec<_>>();
        let due = if first.due_p50_us > 0 {
            format!(
                "{:.0} / {:.0}",
                median(&pick(&|r| r.due_p50_us as f64)),
                median(&pick(&|r| r.due_p99_us as f64))
            )
        } else {
            "-".to_string()
        };
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {:.1} | {:.0} / {:.0} / {:.0} |",
            first.scenario,
            first.setup.name,
            group.len(),
            show(&rates, 0),
            ratio,
            worst_loss,
            show(&pick(&|r| r.p50_us as f64), 0),
            show(&pick(&|r| r.p99_us as f64), 0),
            show(&pick(&|r| r.max_us as f64), 0),
            due,
            show(&pick(&|r| r.publish_rate()), 0),
            median(&pick(
                &|r| r.server_cpu_total() as f64 * 1e3 / r.delivered.max(1) as f64
            )),
            median(&pick(&|r| r.cpu_percent(r.server_cpu_total()))),
            median(&pick(&|r| r.cpu_percent(r.client_cpu_ms))),
            median(&pick(&|r| r.cpu_percent(r.redis_cpu_ms))),
        );
    }
    println!();
    println!(
        "delivered/s: every client's events / (last receipt − first send). Latency: receipt − \
         send timestamp in the data, per event per client. From due time (paced, one \
         publisher): receipt − (send time of event 0 + seq × interval), which adds the time an \
         event waited because the publishing thread was behind its schedule. publish events/s: \
         from the send timestamps. CPU %: CPU time / wall time from the first POST /publish \
         until the run was over (100 % = one core; 2 cores here), all server processes \
         together."
    );
    println!();
    println!("Server CPU by thread group (ms, median over rounds, all processes together):");
    println!();
    for group in &groups {
        let first = group[0];
        let mut names: Vec<&str> = group
            .iter()
            .flat_map(|r| r.server_groups.keys().copied())
            .collect();
        names.sort_unstable();
        names.dedup();
        let parts: Vec<String> = names
            .iter()
            .filter_map(|name| {
                let values: Vec<f64> = group
                    .iter()
                    .map(|r| r.server_groups.get(name).copied().unwrap_or(0) as f64)
                    .collect();
                let m = median(&values);
                (m > 0.0).then(|| format!("{name} {m:.0}"))
            })
            .collect();
        println!(
            "* {} {}: {} (of {:.0} ms in all, over {:.2} s)",
            first.scenario,
            first.setup.name,
            parts.join(", "),
            median(
                &group
                    .iter()
                    .map(|r| r.server_cpu_total() as f64)
                    .collect::<Vec<_>>()
            ),
            median(&group.iter().map(|r| r.wall_s).collect::<Vec<_>>()),
        );
    }
    println!();
    print_checks(results);
}

/// Losses, order and errors, summed over all runs of a group.
fn print_checks(results: &[FanoutResult]) {
    println!("Checks (sums over the rounds):");
    println!();
    for group in groups(results) {
        let first = group[0];
        let sum = |f: &dyn Fn(&FanoutResult) -> u64| group.iter().map(|r| f(r)).sum::<u64>();
        let stops: Vec<&str> = group.iter().map(|r| r.stop).collect();
        let orders: Vec<String> = group
            .iter()
            .map(|r| r.orders_distinct.to_string())
            .collect();
        println!(
            "* {} {} {}: delivered {}/{}, incomplete clients {}, gap events {}, skipped {}, \
             out of order {} (ids {}), bad data {}, eof {}, errors {}, server dropped {}, \
             publish failed {}, distinct orders per run [{}], stops [{}]{}",
            first.part,
            first.scenario,
            first.setup.name,
            sum(&|r| r.delivered),
            sum(&|r| r.expected),
            sum(&|r| (r.clients - r.complete_clients) as u64),
            sum(&|r| r.gaps),
            sum(&|r| r.skipped),
            sum(&|r| r.out_of_order),
            sum(&|r| r.id_out_of_order),
            sum(&|r| r.bad_data),
            sum(&|r| r.eof as u64),
            sum(&|r| r.read_errors as u64),
            sum(&|r| r.server_dropped),
            sum(&|r| r.publish_failed),
            orders.join(","),
            stops.join(","),
            match group.iter().find_map(|r| r.first_error.as_ref()) {
                Some(e) => format!("; first error: {e}"),
                None => String::new(),
            }
        );
    }
    println!();
}

fn print_latency_table(results: &[FanoutResult]) {
    println!("## 2. What Redis adds to one event's latency (median over rounds, lowest–highest)");
    println!();
    println!("| setup | rounds | p50 µs | p99 µs | max µs | server CPU % | redis-server CPU % |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let groups = groups(results);
    for group in &groups {
        let pick =
            |f: &dyn Fn(&FanoutResult) -> f64| group.iter().map(|r| f(r)).collect::<Vec<_>>();
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} |",
            group[0].setup.name,
            group.len(),
            show(&pick(&|r| r.p50_us as f64), 0),
            show(&pick(&|r| r.p99_us as f64), 0),
            show(&pick(&|r| r.max_us as f64), 0),
            median(&pick(&|r| r.cpu_percent(r.server_cpu_total()))),
            median(&pick(&|r| r.cpu_percent(r.redis_cpu_ms))),
        );
    }
    println!();
    // Paired by round: the difference of each round's runs.
    let by_round = |redis: bool, f: fn(&FanoutResult) -> u64| -> HashMap<usize, f64> {
        results
            .iter()
            .filter(|r| r.setup.redis == redis)
            .map(|r| (r.round, f(r) as f64))
            .collect()
    };
    for (name, f) in [
        (
            "p50",
            (|r: &FanoutResult| r.p50_us) as fn(&FanoutResult) -> u64,
        ),
        ("p99", |r: &FanoutResult| r.p99_us),
    ] {
        let without = by_round(false, f);
        let with = by_round(true, f);
        let mut diffs: Vec<f64> = with
            .iter()
            .filter_map(|(round, w)| Some(w - without.get(round)?))
            .collect();
        diffs.sort_by(f64::total_cmp);
        let without: Vec<f64> = without.values().copied().collect();
        let with: Vec<f64> = with.values().copied().collect();
        println!(
            "* Redis adds to the {name}: {:+.0} µs (median with − median without); per round \
             {}",
            median(&with) - median(&without),
            show(&diffs, 0)
        );
    }
    println!();
}

fn print_append_table(results: &[AppendResult]) {
    println!("## 3. Append rate (median over rounds, lowest–highest)");
    println!();
    println!(
        "| who appends | publisher threads | rounds | events/s | call p50 µs | call p99 µs | CPU % this process | CPU % redis-server | hub behind at end (events) | caught up after ms | errors |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut keys: Vec<(AppendMode, usize)> = Vec::new();
    for result in results {
        if !keys.contains(&(result.mode, result.threads)) {
            keys.push((result.mode, result.threads));
        }
    }
    let group_of = |mode: AppendMode, threads: usize| -> Vec<&AppendResult> {
        results
            .iter()
            .filter(|r| r.mode == mode && r.threads == threads)
            .collect()
    };
    for &(mode, threads) in &keys {
        let group = group_of(mode, threads);
        let pick =
            |f: &dyn Fn(&AppendResult) -> f64| group.iter().map(|r| f(r)).collect::<Vec<_>>();
        let hub = mode != AppendMode::Direct;
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {} |",
            mode.name(),
            threads,
            group.len(),
            show(&pick(&|r| r.rate()), 0),
            show(&pick(&|r| r.call_p50_us), 1),
            show(&pick(&|r| r.call_p99_us), 1),
            median(&pick(&|r| r.process_cpu_ms as f64 / (r.secs * 10.0))),
            median(&pick(&|r| r.redis_cpu_ms as f64 / (r.secs * 10.0))),
            if hub {
                show(&pick(&|r| r.behind_at_end as f64), 0)
            } else {
                "-".into()
            },
            if hub {
                show(&pick(&|r| r.catch_up_ms), 0)
            } else {
                "-".into()
            },
            group.iter().map(|r| r.errors).sum::<u64>(),
        );
    }
    println!();
    println!(
        "events/s: calls that returned Ok / the window. hub + redis: `notify` returns once \
         Redis has the event (XADD on the hub's appending thread). direct XADD: each thread \
         sends XADD on its own connection and waits for the answer (no hub): the round trip \
         alone. hub, no redis: `notify` returns once the hub thread's channel has the event \
         (the callers pause while more than {LOCAL_BACKLOG_CAP} wait, so this is about the hub \
         thread's pace). Behind: events published but not yet taken by the hub thread (with \
         Redis: not yet read back from the stream) when the calls ended; missing: never taken."
    );
    println!();
    println!("This process's CPU by thread group (ms, median over rounds):");
    println!();
    for &(mode, threads) in &keys {
        let group = group_of(mode, threads);
        let mut names: Vec<&str> = group
            .iter()
            .flat_map(|r| r.groups.keys().copied())
            .collect();
        names.sort_unstable();
        names.dedup();
        let parts: Vec<String> = names
            .iter()
            .filter_map(|name| {
                let values: Vec<f64> = group
                    .iter()
                    .map(|r| r.groups.get(name).copied().unwrap_or(0) as f64)
                    .collect();
                let m = median(&values);
                (m > 0.0).then(|| format!("{name} {m:.0}"))
            })
            .collect();
        let calls = median(&group.iter().map(|r| r.calls as f64).collect::<Vec<_>>());
        println!(
            "* {} {threads} thread(s), {calls:.0} calls: {}",
            mode.name(),
            parts.join(", ")
        );
    }
    println!();
}

fn print_warnings(fanout: &[FanoutResult], latency: &[FanoutResult]) {
    let mut lines: Vec<String> = Vec::new();
    for result in fanout.iter().chain(latency) {
        for line in &result.warnings {
            lines.push(format!(
                "{} {} {} round {}: {line}",
                result.part, result.scenario, result.setup.name, result.round
            ));
        }
    }
    if lines.is_empty() {
        println!("No server printed anything on stderr besides where it listens.");
    } else {
        println!(
            "What the servers printed on stderr ({} lines):",
            lines.len()
        );
        for line in lines.iter().take(30) {
            println!("    {line}");
        }
    }
    println!();
}

// ---------------------------------------------------------------------------
// Small things

/// One JSON object, written field by field.
struct Json(String);

impl Json {
    fn new() -> Json {
        Json(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.escaped(key);
        self.0.push(':');
    }

    fn escaped(&mut self, text: &str) {
        self.0.push('"');
        for c in text.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }

    fn str(&mut self, key: &str, value: &str) -> &mut Json {
        self.key(key);
        self.escaped(value);
        self
    }

    fn num(&mut self, key: &str, value: impl Into<Count>) -> &mut Json {
        self.key(key);
        let _ = write!(self.0, "{}", value.into().0);
        self
    }

    fn float(&mut self, key: &str, value: f64) -> &mut Json {
        self.key(key);
        if value.is_finite() {
            let _ = write!(self.0, "{value:.3}");
        } else {
            self.0.push_str("null");
        }
        self
    }

    fn bool(&mut self, key: &str, value: bool) -> &mut Json {
        self.key(key);
        self.0.push_str(if value { "true" } else { "false" });
        self
    }

    /// `value` is JSON already.
    fn raw(&mut self, key: &str, value: &str) -> &mut Json {
        self.key(key);
        self.0.push_str(value);
        self
    }

    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// An unsigned number for [`Json::num`].
struct Count(u64);

impl From<u64> for Count {
    fn from(value: u64) -> Count {
        Count(value)
    }
}

impl From<usize> for Count {
    fn from(value: usize) -> Count {
        Count(value as u64)
    }
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn civil_date(unix_s: u64) -> String {
    let z = (unix_s / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}
