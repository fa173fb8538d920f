//! Fan-out benchmark over real loopback sockets.
//!
//! ```text
//! CARGO_TARGET_DIR=/tmp/target-h5 cargo bench --bench fanout
//! CARGO_TARGET_DIR=/tmp/target-h5 cargo bench --bench fanout -- --clients 10,100
//! ```
//!
//! Two parts:
//!
//! 1. **Fan-out.** A [`Server`] with the library's default [`Hub`] runs in
//!    this process on `127.0.0.1:0`; the clients run in a child process (this
//!    same binary, re-executed with `--fanout-clients N --addr A --events M`),
//!    so that `/proc/self/stat` of this process is the server's CPU alone. The
//!    child opens N HTTP/1.1 streams to `/events` (at most 64 handshakes at a
//!    time, one thread per client), parses the chunked framing and the event
//!    stream, and measures each event's latency from the send timestamp in
//!    its data (`"<seq> <send_unix_ns> "`, padded with `x`, as in
//!    `shared/bench`). Two scenarios per client count: `burst` (M events as
//!    fast as `notify` takes them) and `paced` (a steady rate).
//! 2. **`notify` from the caller's side**: ns per call with 0, 100 and 1,000
//!    subscriptions that never read, from one thread and from 8 threads at
//!    once, and how long the hub thread then takes to work off the backlog.
//!
//! Options (after `--`; unknown arguments, such as the `--bench` cargo
//! passes, are ignored):
//!
//! * `--clients 10,100,1000` (or `SSE_BENCH_CLIENTS`): client counts.
//! * `--burst M`, `--paced M`, `--interval-us I`, `--size B`: the scenarios
//!   (defaults 2,000; 300 at 10,000 µs; 64 bytes). `--burst 0` or
//!   `--paced 0` skips that scenario.
//! * `--subs 0,100,1000`, `--publishers 8`, `--calls 100000`, `--rounds 7`:
//!   the `notify` part.
//! * `--only fanout|notify`.
//!
//! Run without `--bench` (as `cargo test --benches` does) it runs a small
//! smoke version that takes a few seconds; `--full` forces the full one.
//!
//! The machine this runs on is likely shared: the numbers are for comparing
//! runs on the same machine, not absolutes. CPU comes from `utime + stime`
//! in clock ticks (assumed 100 Hz), so compare ns per delivered event only
//! for runs that used a few hundred ms of CPU.

use std::fmt::Write as _;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sse_server::crossbeam_channel::{self, Receiver, RecvTimeoutError};
use sse_server::{Hub, Server};

/// The argument that makes this binary the client process.
const CHILD_MARKER: &str = "--fanout-clients";
/// Handshakes in flight at once in the client process.
const MAX_HANDSHAKES: usize = 64;
/// Attempts per client connection.
const CONNECT_ATTEMPTS: usize = 5;
/// Clock ticks per second of `/proc/*/stat` (`getconf CLK_TCK` on Linux).
const TICKS_PER_SECOND: u64 = 100;
/// The client process stops this long after the last event when some
/// client has not seen the last one (the events were lost).
const IDLE_STOP: Duration = Duration::from_secs(3);
/// The client process stops this long after the publish began, whatever
/// happened.
const MAX_WAIT: Duration = Duration::from_secs(120);

type Res<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|arg| arg == CHILD_MARKER) {
        if let Err(e) = client_process(&args) {
            println!("ERROR {e}");
            let _ = io::stdout().flush();
            std::process::exit(1);
        }
        return;
    }
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("fanout bench: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&options) {
        eprintln!("fanout bench FAILED: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------

struct Options {
    clients: Vec<usize>,
    burst_events: usize,
    paced_events: usize,
    paced_interval_us: u64,
    size: usize,
    subs: Vec<usize>,
    publishers: usize,
    calls: usize,
    rounds: usize,
    fanout: bool,
    notify: bool,
    smoke: bool,
}

impl Options {
    fn parse(args: &[String]) -> Res<Options> {
        let full = args.iter().any(|arg| arg == "--bench" || arg == "--full");
        let mut options = if full {
            Options {
                clients: vec![10, 100, 1000],
                burst_events: 2000,
                paced_events: 300,
                paced_interval_us: 10_000,
                size: 64,
                subs: vec![0, 100, 1000],
                publishers: 8,
                calls: 100_000,
                rounds: 7,
                fanout: true,
                notify: true,
                smoke: false,
            }
        } else {
            Options {
                clients: vec![10],
                burst_events: 200,
                paced_events: 20,
                paced_interval_us: 10_000,
                size: 64,
                subs: vec![0, 100],
                publishers: 8,
                calls: 10_000,
                rounds: 2,
                fanout: true,
                notify: true,
                smoke: true,
            }
        };
        if let Ok(list) = std::env::var("SSE_BENCH_CLIENTS") {
            options.clients = parse_list(&list)?;
        }
        let mut at = 0;
        while at < args.len() {
            let (name, inline) = match args[at].split_once('=') {
                Some((name, value)) => (name, Some(value.to_string())),
                None => (args[at].as_str(), None),
            };
            let takes_value = matches!(
                name,
                "--clients"
                    | "--burst"
                    | "--paced"
                    | "--interval-us"
                    | "--size"
                    | "--subs"
                    | "--publishers"
                    | "--calls"
                    | "--rounds"
                    | "--only"
            );
            if !takes_value {
                at += 1;
                continue;
            }
            let value = match inline {
                Some(value) => value,
                None => {
                    at += 1;
                    args.get(at)
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value"))?
                }
            };
            at += 1;
            match name {
                "--clients" => options.clients = parse_list(&value)?,
                "--burst" => options.burst_events = parse_number(&value)?,
                "--paced" => options.paced_events = parse_number(&value)?,
                "--interval-us" => options.paced_interval_us = parse_number(&value)? as u64,
                "--size" => options.size = parse_number(&value)?,
                "--subs" => options.subs = parse_list(&value)?,
                "--publishers" => options.publishers = parse_number(&value)?.max(1),
                "--calls" => options.calls = parse_number(&value)?.max(1),
                "--rounds" => options.rounds = parse_number(&value)?.max(1),
                "--only" => match value.as_str() {
                    "fanout" => options.notify = false,
                    "notify" => options.fanout = false,
                    other => return Err(format!("--only {other:?}: want fanout or notify")),
                },
                _ => unreachable!(),
            }
        }
        if options.clients.contains(&0) {
            return Err("a client count of 0 makes no sense".into());
        }
        Ok(options)
    }
}

fn parse_number(text: &str) -> Res<usize> {
    text.trim()
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

fn parse_list(text: &str) -> Res<Vec<usize>> {
    text.split(',')
        .filter(|item| !item.trim().is_empty())
        .map(parse_number)
        .collect()
}

// ---------------------------------------------------------------------------
// The benchmark process
// ---------------------------------------------------------------------------

fn run(options: &Options) -> Res<()> {
    print_header(options);
    if options.fanout {
        fanout_part(options)?;
    }
    if options.notify {
        notify_part(options)?;
    }
    Ok(())
}

fn print_header(options: &Options) {
    println!("# sse-server fan-out bench");
    println!();
    println!("date:      {}", utc_now());
    println!(
        "nproc:     {}",
        thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("cpu:       {}", cpu_model());
    println!(
        "kernel:    {}",
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default()
    );
    println!(
        "loadavg:   {}",
        read_trimmed("/proc/loadavg").unwrap_or_default()
    );
    println!("nofile:    {}", open_file_limit().unwrap_or(0));
    println!("defaults:  {:?}", Hub::builder());
    if options.smoke {
        println!(
            "mode:      SMOKE (run without --bench; `cargo bench --bench fanout` runs the full bench)"
        );
    }
    println!();
}

// ---------------------------------------------------------------------------
// Part 1: fan-out over loopback
// ---------------------------------------------------------------------------

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    events: usize,
    interval_us: u64,
}

/// One fan-out run, as the table shows it.
struct FanoutRow {
    scenario: &'static str,
    clients: usize,
    events: usize,
    interval_us: u64,
    client: ClientReport,
    rss_idle_kib: u64,
    rss_connected_kib: u64,
    rss_after_kib: u64,
    threads_idle: u64,
    threads_connected: u64,
    server_cpu_connect_ms: u64,
    server_cpu_ms: u64,
    hub_queued: u64,
    hub_dropped: u64,
    registered_s: f64,
    shutdown_ms: f64,
    threads_after_shutdown: u64,
    threads_settled: u64,
    settle_s: f64,
}

fn fanout_part(options: &Options) -> Res<()> {
    if let Some(limit) = open_file_limit() {
        let most = options.clients.iter().copied().max().unwrap_or(0);
        if (most as u64) + 200 > limit {
            return Err(format!(
                "{most} clients need about {} open files in each process; RLIMIT_NOFILE is {limit}",
                most + 200
            ));
        }
    }
    let mut scenarios = Vec::new();
    if options.burst_events > 0 {
        scenarios.push(Scenario {
            name: "burst",
            events: options.burst_events,
            interval_us: 0,
        });
    }
    if options.paced_events > 0 {
        scenarios.push(Scenario {
            name: "paced",
            events: options.paced_events,
            interval_us: options.paced_interval_us,
        });
    }
    println!(
        "## 1. Fan-out: server in this process, clients in a child process ({} B data per event)",
        options.size
    );
    println!();
    let base_threads = ProcSample::now()?.threads;
    let mut rows = Vec::new();
    for &clients in &options.clients {
        for scenario in &scenarios {
            eprintln!(
                "  fan-out: {} clients, {} x {} events{} ...",
                clients,
                scenario.name,
                scenario.events,
                match scenario.interval_us {
                    0 => String::new(),
                    us => format!(" every {us} µs"),
                }
            );
            let mut row = fanout_run(clients, *scenario, options.size)
                .map_err(|e| format!("{} clients, {}: {e}", clients, scenario.name))?;
            // Threads the server left behind (tiny_http's connection threads
            // end on their own): wait for them, so that the next run's idle
            // sample is clean, and report how long it took.
            let started = Instant::now();
            row.threads_after_shutdown = ProcSample::now()?.threads;
            wait_until(Duration::from_secs(20), || {
                ProcSample::now().is_ok_and(|now| now.threads <= base_threads)
            });
            row.threads_settled = ProcSample::now()?.threads;
            row.settle_s = started.elapsed().as_secs_f64();
            rows.push(row);
        }
    }
    print_fanout_table(&rows);
    Ok(())
}

fn fanout_run(clients: usize, scenario: Scenario, size: usize) -> Res<FanoutRow> {
    let hub = Hub::new().map_err(|e| format!("Hub::new: {e}"))?;
    let server = Server::bind("127.0.0.1:0", &hub).map_err(|e| format!("Server::bind: {e}"))?;
    let addr = server.local_addr();
    thread::sleep(Duration::from_millis(300));
    let idle = ProcSample::now()?;

    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let child = Command::new(exe)
        .args([
            CHILD_MARKER,
            &clients.to_string(),
            "--addr",
            &addr.to_string(),
            "--events",
            &scenario.events.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the client process: {e}"))?;
    let mut child = ChildGuard(Some(child));
    let mut stdin = child.stdin()?;
    let lines = child.lines()?;

    let connect_started = Instant::now();
    let ready_timeout = Duration::from_secs(30) + Duration::from_millis(30) * clients as u32;
    wait_line(&lines, "READY", ready_timeout, &mut child)?;
    let registered = wait_until(Duration::from_secs(10), || hub.stats().clients >= clients);
    if !registered {
        return Err(format!(
            "the child has {clients} streams, but hub.stats() says {:?}",
            hub.stats()
        ));
    }
    let registered_s = connect_started.elapsed().as_secs_f64();
    thread::sleep(Duration::from_millis(300));
    let connected = ProcSample::now()?;

    let cpu_before = cpu_ticks()?;
    send_line(&mut stdin, &format!("GO {}", unix_ns()))?;
    publish(&hub, scenario, size)?;
    send_line(&mut stdin, "PUBLISHED")?;
    let result_timeout = MAX_WAIT + Duration::from_secs(30);
    let line = wait_line(&lines, "RESULT", result_timeout, &mut child)?;
    let cpu_after = cpu_ticks()?;
    let after = ProcSample::now()?;
    let stats = hub.stats();
    let client = ClientReport::parse(&line)?;

    // Closing its stdin tells the child to close its connections and exit.
    drop(stdin);
    child.wait(Duration::from_secs(20))?;
    let shutdown_started = Instant::now();
    server
        .shutdown()
        .map_err(|e| format!("server.shutdown: {e}"))?;
    let shutdown_ms = shutdown_started.elapsed().as_secs_f64() * 1e3;
    drop(server);
    drop(hub);

    Ok(FanoutRow {
        scenario: scenario.name,
        clients,
        events: scenario.events,
        interval_us: scenario.interval_us,
        client,
        rss_idle_kib: idle.rss_kib,
        rss_connected_kib: connected.rss_kib,
        rss_after_kib: after.rss_kib,
        threads_idle: idle.threads,
        threads_connected: connected.threads,
        server_cpu_connect_ms: ticks_ms(connected.cpu_ticks.saturating_sub(idle.cpu_ticks)),
        server_cpu_ms: ticks_ms(cpu_after.saturating_sub(cpu_before)),
        hub_queued: stats.queued,
        hub_dropped: stats.dropped,
        registered_s,
        shutdown_ms,
        threads_after_shutdown: 0,
        threads_settled: 0,
        settle_s: 0.0,
    })
}

/// Publishes `scenario.events` events, event k at `t0 + k * interval`
/// (at once when the deadline has passed).
fn publish(hub: &Hub, scenario: Scenario, size: usize) -> Res<()> {
    let interval = Duration::from_micros(scenario.interval_us);
    let mut data = String::with_capacity(size.max(48));
    let t0 = Instant::now();
    for seq in 0..scenario.events {
        if scenario.interval_us > 0 {
            let deadline = t0 + interval * seq as u32;
            let now = Instant::now();
            if deadline > now {
                thread::sleep(deadline - now);
            }
        }
        data.clear();
        let _ = write!(data, "{seq} {} ", unix_ns());
        while data.len() < size {
            data.push('x');
        }
        hub.notify(&data)
            .map_err(|e| format!("notify #{seq}: {e}"))?;
    }
    Ok(())
}

fn print_fanout_table(rows: &[FanoutRow]) {
    println!(
        "| scenario | clients | events | delivered/s | loss % | p50 µs | p99 µs | max µs | server CPU ns/delivered | RSS KiB/client | threads idle→connected |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (index, row) in rows.iter().enumerate() {
        let c = &row.client;
        let rate = if c.seconds > 0.0 {
            c.delivered as f64 / c.seconds
        } else {
            0.0
        };
        let loss = if c.expected > 0 {
            100.0 * (c.expected - c.delivered.min(c.expected)) as f64 / c.expected as f64
        } else {
            0.0
        };
        let cpu_ns = if c.delivered > 0 {
            format!("{:.0}", row.server_cpu_ms as f64 * 1e6 / c.delivered as f64)
        } else {
            "-".into()
        };
        let rss_per_client =
            (row.rss_connected_kib as f64 - row.rss_idle_kib as f64) / row.clients as f64;
        let events = match row.interval_us {
            0 => format!("{}", row.events),
            us => format!("{} @{}/s", row.events, 1_000_000 / us.max(1)),
        };
        println!(
            "| {} | {} | {} | {:.0} | {:.2} | {} | {} | {} | {} | {:.1}{} | {}→{} |",
            row.scenario,
            row.clients,
            events,
            rate,
            loss,
            c.p50_us,
            c.p99_us,
            c.max_us,
            cpu_ns,
            rss_per_client,
            if index > 0 { "*" } else { "" },
            row.threads_idle,
            row.threads_connected,
        );
    }
    println!();
    if rows.len() > 1 {
        println!(
            "\\* RSS after an earlier run in this process: memory the allocator kept (and \
             cached thread stacks) is reused, so the per-client figure reads low; only the \
             first run's is clean. Run `-- --clients N --paced 0` for a clean figure at N."
        );
    }
    println!(
        "delivered/s: all clients' events / (last event received − just before the first \
         notify). Latency: receive time − send timestamp in the data (CLOCK_REALTIME). Server \
         CPU: utime+stime of this process from just before the first notify until the client \
         process reported (10 ms ticks)."
    );
    println!();
    println!("Details per run:");
    for row in rows {
        let c = &row.client;
        println!(
            "* {} {} clients: delivered {}/{} in {:.3} s (stop: {}), per-client min/max {}/{}, \
             complete {}/{}; server CPU {} ms publish, {} ms connect; client CPU {} ms; \
             RSS idle/connected/after {}/{}/{} KiB; hub queued {} dropped {}; \
             gap events {} (missed {}); out-of-order {}, bad data {}, eof {}, read errors {}; \
             connect {:.2} s (registered {:.2} s), shutdown {:.0} ms; \
             threads right after shutdown {}, {} after {:.1} s{}",
            row.scenario,
            row.clients,
            c.delivered,
            c.expected,
            c.seconds,
            c.stop,
            c.per_client_min,
            c.per_client_max,
            c.complete,
            row.clients,
            row.server_cpu_ms,
            row.server_cpu_connect_ms,
            c.client_cpu_ms,
            row.rss_idle_kib,
            row.rss_connected_kib,
            row.rss_after_kib,
            row.hub_queued,
            row.hub_dropped,
            c.gaps,
            c.missed,
            c.out_of_order,
            c.bad_data,
            c.eof,
            c.read_errors,
            c.connect_s,
            row.registered_s,
            row.shutdown_ms,
            row.threads_after_shutdown,
            row.threads_settled,
            row.settle_s,
            match &c.first_error {
                Some(e) => format!("; first error: {e}"),
                None => String::new(),
            }
        );
    }
    println!();
}

/// What the client process reports, parsed from its `RESULT` line.
#[derive(Default)]
struct ClientReport {
    delivered: u64,
    expected: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    per_client_min: u64,
    per_client_max: u64,
    complete: u64,
    seconds: f64,
    stop: String,
    gaps: u64,
    missed: u64,
    out_of_order: u64,
    bad_data: u64,
    eof: u64,
    read_errors: u64,
    connect_s: f64,
    client_cpu_ms: u64,
    first_error: Option<String>,
}

impl ClientReport {
    fn to_line(&self) -> String {
        let mut line = String::from("RESULT");
        let _ = write!(
            line,
            " delivered={} expected={} p50_us={} p99_us={} max_us={} per_client_min={} \
             per_client_max={} complete={} seconds={:.6} stop={} gaps={} missed={} \
             out_of_order={} bad_data={} eof={} read_errors={} connect_s={:.3} client_cpu_ms={}",
            self.delivered,
            self.expected,
            self.p50_us,
            self.p99_us,
            self.max_us,
            self.per_client_min,
            self.per_client_max,
            self.complete,
            self.seconds,
            self.stop,
            self.gaps,
            self.missed,
            self.out_of_order,
            self.bad_data,
            self.eof,
            self.read_errors,
            self.connect_s,
            self.client_cpu_ms,
        );
        if let Some(e) = &self.first_error {
            // Last, and to the end of the line: it may hold spaces.
            let _ = write!(line, " first_error={}", e.replace('\n', " "));
        }
        line
    }

    fn parse(line: &str) -> Res<ClientReport> {
        let mut report = ClientReport::default();
        let body = line.strip_prefix("RESULT").unwrap_or(line);
        let (body, first_error) = match body.split_once(" first_error=") {
            Some((body, e)) => (body, Some(e.to_string())),
            None => (body, None),
        };
        report.first_error = first_error;
        let bad = |key: &str| format!("bad {key} in the client's result line {line:?}");
        for pair in body.split_whitespace() {
            let (key, value) = pair.split_once('=').ok_or_else(|| bad(pair))?;
            let int = || value.parse::<u64>().map_err(|_| bad(key));
            let float = || value.parse::<f64>().map_err(|_| bad(key));
            match key {
                "delivered" => report.delivered = int()?,
                "expected" => report.expected = int()?,
                "p50_us" => report.p50_us = int()?,
                "p99_us" => report.p99_us = int()?,
                "max_us" => report.max_us = int()?,
                "per_client_min" => report.per_client_min = int()?,
                "per_client_max" => report.per_client_max = int()?,
                "complete" => report.complete = int()?,
                "seconds" => report.seconds = float()?,
                "stop" => report.stop = value.to_string(),
                "gaps" => report.gaps = int()?,
                "missed" => report.missed = int()?,
                "out_of_order" => report.out_of_order = int()?,
                "bad_data" => report.bad_data = int()?,
                "eof" => report.eof = int()?,
                "read_errors" => report.read_errors = int()?,
                "connect_s" => report.connect_s = float()?,
                "client_cpu_ms" => report.client_cpu_ms = int()?,
                _ => {}
            }
        }
        Ok(report)
    }
}

/// The client process, killed (by its own pid) if it is still running when
/// this is dropped.
struct ChildGuard(Option<Child>);

impl ChildGuard {
    fn stdin(&mut self) -> Res<ChildStdin> {
        self.0
            .as_mut()
            .and_then(|child| child.stdin.take())
            .ok_or_else(|| "no stdin pipe to the client process".to_string())
    }

    /// The child's stdout, line by line, from a reader thread. The channel
    /// disconnects when the child closes its stdout.
    fn lines(&mut self) -> Res<Receiver<String>> {
        let stdout = self
            .0
            .as_mut()
            .and_then(|child| child.stdout.take())
            .ok_or_else(|| "no stdout pipe from the client process".to_string())?;
        let (tx, rx) = crossbeam_channel::unbounded();
        thread::Builder::new()
            .name("bench-child-out".into())
            .spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| format!("spawning the stdout reader: {e}"))?;
        Ok(rx)
    }

    fn status(&mut self) -> String {
        match self.0.as_mut().map(|child| child.try_wait()) {
            Some(Ok(Some(status))) => format!("exited with {status}"),
            Some(Ok(None)) => "still running".into(),
            Some(Err(e)) => format!("unknown ({e})"),
            None => "gone".into(),
        }
    }

    /// Waits for the child to exit; kills it after `timeout`.
    fn wait(&mut self, timeout: Duration) -> Res<()> {
        let Some(mut child) = self.0.take() else {
            return Ok(());
        };
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the client process {status}")),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the client process did not exit within {timeout:?}; killed it"
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(10)),
                Err(e) => return Err(format!("waiting for the client process: {e}")),
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The next line from the child that starts with `want`; an `ERROR` line,
/// the child's exit, or the timeout is an error.
fn wait_line(
    lines: &Receiver<String>,
    want: &str,
    timeout: Duration,
    child: &mut ChildGuard,
) -> Res<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match lines.recv_deadline(deadline) {
            Ok(line) if line.starts_with(want) => return Ok(line),
            Ok(line) if line.starts_with("ERROR") => {
                return Err(format!("the client process failed: {line}"));
            }
            Ok(line) => eprintln!("  client process: {line}"),
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "no {want} line from the client process within {timeout:?} (it is {})",
                    child.status()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => {
                thread::sleep(Duration::from_millis(50));
                return Err(format!(
                    "the client process closed its stdout before {want} (it {})",
                    child.status()
                ));
            }
        }
    }
}

fn send_line(stdin: &mut ChildStdin, line: &str) -> Res<()> {
    writeln!(stdin, "{line}")
        .and_then(|()| stdin.flush())
        .map_err(|e| format!("writing {line:?} to the client process: {e}"))
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
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

// ---------------------------------------------------------------------------
// The client process
// ---------------------------------------------------------------------------

/// What the client threads share with the client process's main thread.
struct ClientShared {
    stop: AtomicBool,
    complete: AtomicUsize,
    ended: AtomicUsize,
    /// CLOCK_REALTIME ns of the newest read that completed an event (0: none
    /// yet).
    last_event: AtomicU64,
}

/// One client's tally.
#[derive(Default)]
struct ClientTally {
    delivered: u64,
    out_of_order: u64,
    bad_data: u64,
    gaps: u64,
    missed: u64,
    eof: bool,
    complete: bool,
    read_error: Option<String>,
    last_seq: Option<u64>,
    /// Latency of each delivered event in µs.
    latencies: Vec<u32>,
}

fn client_process(args: &[String]) -> Res<()> {
    let value = |name: &str| -> Res<&str> {
        let at = args
            .iter()
            .position(|arg| arg == name)
            .ok_or_else(|| format!("{name} missing"))?;
        args.get(at + 1)
            .map(String::as_str)
            .ok_or_else(|| format!("{name} needs a value"))
    };
    let clients = parse_number(value(CHILD_MARKER)?)?;
    let events = parse_number(value("--events")?)? as u64;
    let addr: SocketAddr = value("--addr")?
        .parse()
        .map_err(|e| format!("--addr: {e}"))?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not a loopback address"));
    }

    // Commands from the parent, one a line; the channel disconnects at EOF.
    let (commands_tx, commands) = crossbeam_channel::unbounded::<String>();
    thread::Builder::new()
        .name("stdin".into())
        .spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if commands_tx.send(line.trim().to_string()).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| format!("spawning the stdin reader: {e}"))?;

    let shared = Arc::new(ClientShared {
        stop: AtomicBool::new(false),
        complete: AtomicUsize::new(0),
        ended: AtomicUsize::new(0),
        last_event: AtomicU64::new(0),
    });

    // Connect, at most MAX_HANDSHAKES at a time.
    let started = Instant::now();
    let (handshake_tx, handshakes) = crossbeam_channel::unbounded::<Res<()>>();
    let mut handles = Vec::with_capacity(clients);
    let mut in_flight = 0usize;
    let wait_one = |in_flight: &mut usize| -> Res<()> {
        match handshakes.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(())) => {
                *in_flight -= 1;
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no handshake finished within 30 s ({in_flight} in flight)"
            )),
        }
    };
    for index in 0..clients {
        while in_flight >= MAX_HANDSHAKES {
            wait_one(&mut in_flight)?;
        }
        let shared = Arc::clone(&shared);
        let handshake_tx = handshake_tx.clone();
        let handle = thread::Builder::new()
            .name(format!("client-{index}"))
            .stack_size(256 * 1024)
            .spawn(move || client_thread(addr, events, &shared, &handshake_tx))
            .map_err(|e| format!("spawning client thread {index}: {e}"))?;
        handles.push(handle);
        in_flight += 1;
    }
    while in_flight > 0 {
        wait_one(&mut in_flight)?;
    }
    let connect_s = started.elapsed().as_secs_f64();
    println!("READY connect_s={connect_s:.3}");
    io::stdout().flush().map_err(|e| e.to_string())?;

    // The parent says `GO <unix_ns>` just before its first event, and
    // PUBLISHED after its last one.
    let go_ns = match commands.recv_timeout(Duration::from_secs(120)) {
        Ok(line) => line
            .strip_prefix("GO ")
            .and_then(|ns| ns.parse::<u64>().ok())
            .ok_or_else(|| format!("expected GO <unix_ns>, got {line:?}"))?,
        Err(_) => return Err("no GO from the parent".into()),
    };
    let go = Instant::now();
    let cpu_go = cpu_ticks()?;
    let mut published: Option<Instant> = None;
    let stop = loop {
        if shared.complete.load(Ordering::Acquire) >= clients {
            break "complete";
        }
        if shared.ended.load(Ordering::Acquire) >= clients {
            break "all_ended";
        }
        if go.elapsed() >= MAX_WAIT {
            break "max_wait";
        }
        if let Some(published) = published {
            let last = shared.last_event.load(Ordering::Acquire);
            let quiet = Duration::from_nanos(unix_ns().saturating_sub(last));
            if quiet.min(published.elapsed()) >= IDLE_STOP {
                break "idle";
            }
        }
        match commands.recv_timeout(Duration::from_millis(5)) {
            Ok(line) if line == "PUBLISHED" => published = Some(Instant::now()),
            Ok(line) => return Err(format!("unexpected command {line:?}")),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("the parent went away".into()),
        }
    };
    let last = shared.last_event.load(Ordering::Acquire);
    let seconds = last.saturating_sub(go_ns) as f64 / 1e9;
    let cpu_end = cpu_ticks()?;
    shared.stop.store(true, Ordering::Release);

    // Every thread gives back its socket, so the connections stay open until
    // the parent has taken its samples.
    let mut sockets = Vec::with_capacity(clients);
    let mut tallies = Vec::with_capacity(clients);
    for handle in handles {
        let (socket, tally) = handle
            .join()
            .map_err(|_| "a client thread panicked".to_string())?;
        sockets.push(socket);
        tallies.push(tally);
    }
    let mut report = summarise(&mut tallies, events);
    report.seconds = seconds;
    report.stop = stop.to_string();
    report.connect_s = connect_s;
    report.client_cpu_ms = ticks_ms(cpu_end.saturating_sub(cpu_go));
    println!("{}", report.to_line());
    io::stdout().flush().map_err(|e| e.to_string())?;

    // Until the parent closes our stdin (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match commands.recv_deadline(deadline) {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    drop(sockets);
    Ok(())
}

fn summarise(tallies: &mut [ClientTally], events: u64) -> ClientReport {
    let mut report = ClientReport {
        expected: events * tallies.len() as u64,
        per_client_min: u64::MAX,
        ..ClientReport::default()
    };
    let total: usize = tallies.iter().map(|t| t.latencies.len()).sum();
    let mut latencies = Vec::with_capacity(total);
    for tally in tallies.iter_mut() {
        report.delivered += tally.delivered;
        report.per_client_min = report.per_client_min.min(tally.delivered);
        report.per_client_max = report.per_client_max.max(tally.delivered);
        report.complete += u64::from(tally.complete);
        report.gaps += tally.gaps;
        report.missed += tally.missed;
        report.out_of_order += tally.out_of_order;
        report.bad_data += tally.bad_data;
        report.eof += u64::from(tally.eof);
        if let Some(e) = &tally.read_error {
            report.read_errors += 1;
            report.first_error.get_or_insert_with(|| e.clone());
        }
        latencies.append(&mut tally.latencies);
    }
    if tallies.is_empty() {
        report.per_client_min = 0;
    }
    latencies.sort_unstable();
    report.p50_us = nearest_rank(&latencies, 50.0);
    report.p99_us = nearest_rank(&latencies, 99.0);
    report.max_us = latencies.last().copied().unwrap_or(0).into();
    report
}

fn nearest_rank(sorted: &[u32], percent: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((percent / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].into()
}

/// One client: connects, reports the handshake, then reads events until told
/// to stop. Gives back its socket (so that it stays open) and its tally.
fn client_thread(
    addr: SocketAddr,
    events: u64,
    shared: &ClientShared,
    handshake_tx: &crossbeam_channel::Sender<Res<()>>,
) -> (Option<TcpStream>, ClientTally) {
    let mut tally = ClientTally::default();
    let (mut socket, chunked, leftover) = match connect_with_retries(addr) {
        Ok(connected) => connected,
        Err(e) => {
            let _ = handshake_tx.send(Err(e));
            shared.ended.fetch_add(1, Ordering::AcqRel);
            return (None, tally);
        }
    };
    let _ = handshake_tx.send(Ok(()));
    tally.latencies.reserve(events.min(1 << 20) as usize);
    let mut parser = Parser::new(chunked);
    let mut buf = vec![0u8; 32 * 1024];
    if !leftover.is_empty() {
        handle_read(&mut parser, &leftover, events, &mut tally, shared);
    }
    if let Err(e) = socket.set_read_timeout(Some(Duration::from_millis(100))) {
        tally.read_error = Some(format!("set_read_timeout: {e}"));
    }
    while tally.read_error.is_none() && !shared.stop.load(Ordering::Acquire) {
        match socket.read(&mut buf) {
            Ok(0) => {
                tally.eof = true;
                break;
            }
            Ok(n) => handle_read(&mut parser, &buf[..n], events, &mut tally, shared),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => tally.read_error = Some(format!("read: {e}")),
        }
    }
    if tally.eof || tally.read_error.is_some() {
        shared.ended.fetch_add(1, Ordering::AcqRel);
    }
    (Some(socket), tally)
}

fn handle_read(
    parser: &mut Parser,
    bytes: &[u8],
    events: u64,
    tally: &mut ClientTally,
    shared: &ClientShared,
) {
    let now_ns = unix_ns();
    let before = tally.delivered;
    let was_complete = tally.complete;
    parser.feed(bytes, &mut |event| on_event(event, now_ns, events, tally));
    if let Some(e) = parser.error.take() {
        tally.read_error.get_or_insert(e);
    }
    if tally.delivered != before {
        shared.last_event.fetch_max(now_ns, Ordering::AcqRel);
    }
    if tally.complete && !was_complete {
        shared.complete.fetch_add(1, Ordering::AcqRel);
    }
}

fn on_event(event: ParsedEvent<'_>, now_ns: u64, events: u64, tally: &mut ClientTally) {
    match event.name {
        None | Some(b"message") => {}
        Some(b"sse-gap") => {
            tally.gaps += 1;
            if let Some(n) = event
                .data
                .and_then(|data| data.strip_prefix(b"missed "))
                .and_then(|n| std::str::from_utf8(n).ok())
                .and_then(|n| n.trim().parse::<u64>().ok())
            {
                tally.missed += n;
            }
            return;
        }
        Some(_) => return,
    }
    let Some(data) = event.data else {
        tally.bad_data += 1;
        return;
    };
    let mut fields = data.split(|&b| b == b' ');
    let number =
        |field: Option<&[u8]>| -> Option<u64> { std::str::from_utf8(field?).ok()?.parse().ok() };
    let (Some(seq), Some(sent_ns)) = (number(fields.next()), number(fields.next())) else {
        tally.bad_data += 1;
        return;
    };
    if seq >= events {
        tally.bad_data += 1;
        return;
    }
    if tally.last_seq.is_some_and(|last| seq <= last) {
        tally.out_of_order += 1;
    }
    tally.last_seq = Some(seq);
    tally.delivered += 1;
    let latency_us = now_ns.saturating_sub(sent_ns) / 1000;
    tally
        .latencies
        .push(latency_us.min(u64::from(u32::MAX)) as u32);
    if seq + 1 == events {
        tally.complete = true;
    }
}

/// Connects, sends the request and reads the response head; gives back the
/// socket, whether the body is chunked, and the body bytes read with the
/// head. Retries a few times (connection refused or reset, a `503`).
fn connect_with_retries(addr: SocketAddr) -> Res<(TcpStream, bool, Vec<u8>)> {
    let mut last_error = String::new();
    for attempt in 0..CONNECT_ATTEMPTS {
        if attempt > 0 {
            thread::sleep(Duration::from_millis(50 << attempt));
        }
        match handshake(addr) {
            Ok(connected) => return Ok(connected),
            Err(e) => last_error = e,
        }
    }
    Err(format!(
        "connecting to {addr} failed {CONNECT_ATTEMPTS} times; last: {last_error}"
    ))
}

fn handshake(addr: SocketAddr) -> Res<(TcpStream, bool, Vec<u8>)> {
    let mut socket = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    socket.set_nodelay(true).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(15)))
        .map_err(|e| e.to_string())?;
    socket
        .write_all(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(at) = find(&head, b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > 16 * 1024 {
            return Err("response head longer than 16 KiB".into());
        }
        match socket.read(&mut buf) {
            Ok(0) => return Err("connection closed before the response head".into()),
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("reading the response head: {e}")),
        }
    };
    let leftover = head.split_off(end);
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let status_line = text.lines().next().unwrap_or("");
    if !status_line.starts_with("http/1.1 200") && !status_line.starts_with("http/1.0 200") {
        return Err(format!("status line {status_line:?}"));
    }
    if !text.contains("content-type: text/event-stream") {
        return Err(format!("not an event stream: {text:?}"));
    }
    let chunked = text.contains("transfer-encoding: chunked");
    Ok((socket, chunked, leftover))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// One event as the parser hands it over: its name and first data line.
struct ParsedEvent<'a> {
    name: Option<&'a [u8]>,
    data: Option<&'a [u8]>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading a chunk-size line.
    Size,
    /// This many body bytes left in the chunk.
    Data(usize),
    /// Reading the CRLF after a chunk's data.
    DataEnd,
    /// The last chunk came.
    Done,
    /// No chunked framing: the body runs to the end of the connection.
    Raw,
}

/// Chunked framing, then the event stream (lines end in LF or CRLF; the first
/// `data:` line and the `event:` line of each event are kept).
struct Parser {
    chunk: Chunk,
    size_line: Vec<u8>,
    line: Vec<u8>,
    name: Option<Vec<u8>>,
    data: Option<Vec<u8>>,
    error: Option<String>,
}

impl Parser {
    fn new(chunked: bool) -> Parser {
        Parser {
            chunk: if chunked { Chunk::Size } else { Chunk::Raw },
            size_line: Vec::new(),
            line: Vec::with_capacity(256),
            name: None,
            data: None,
            error: None,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(ParsedEvent<'_>)) {
        while !bytes.is_empty() {
            match self.chunk {
                Chunk::Raw => {
                    self.body(bytes, on_event);
                    return;
                }
                Chunk::Done => {
                    self.error
                        .get_or_insert_with(|| "bytes after the last chunk".into());
                    return;
                }
                Chunk::Size | Chunk::DataEnd => {
                    let Some(at) = bytes.iter().position(|&b| b == b'\n') else {
                        self.size_line.extend_from_slice(bytes);
                        return;
                    };
                    self.size_line.extend_from_slice(&bytes[..at]);
                    bytes = &bytes[at + 1..];
                    let line = std::mem::take(&mut self.size_line);
                    let line = line.strip_suffix(b"\r").unwrap_or(&line);
                    if self.chunk == Chunk::DataEnd {
                        if !line.is_empty() {
                            self.error
                                .get_or_insert_with(|| "no CRLF after a chunk".into());
                        }
                        self.chunk = Chunk::Size;
                        continue;
                    }
                    let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                    match std::str::from_utf8(hex)
                        .ok()
                        .and_then(|hex| usize::from_str_radix(hex.trim(), 16).ok())
                    {
                        Some(0) => self.chunk = Chunk::Done,
                        Some(size) => self.chunk = Chunk::Data(size),
                        None => {
                            self.error.get_or_insert_with(|| {
                                format!("bad chunk size {:?}", String::from_utf8_lossy(line))
                            });
                            return;
                        }
                    }
                }
                Chunk::Data(left) => {
                    let take = left.min(bytes.len());
                    self.body(&bytes[..take], on_event);
                    bytes = &bytes[take..];
                    self.chunk = match left - take {
                        0 => Chunk::DataEnd,
                        left => Chunk::Data(left),
                    };
                }
            }
        }
    }

    /// Event-stream bytes.
    fn body(&mut self, mut bytes: &[u8], on_event: &mut dyn FnMut(ParsedEvent<'_>)) {
        while let Some(at) = bytes.iter().position(|&b| b == b'\n') {
            let line = if self.line.is_empty() {
                &bytes[..at]
            } else {
                self.line.extend_from_slice(&bytes[..at]);
                &self.line[..]
            };
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                if self.data.is_some() || self.name.is_some() {
                    on_event(ParsedEvent {
                        name: self.name.as_deref(),
                        data: self.data.as_deref(),
                    });
                }
                self.name = None;
                self.data = None;
            } else if line[0] != b':' {
                let (field, value) = match line.iter().position(|&b| b == b':') {
                    Some(colon) => {
                        let value = &line[colon + 1..];
                        (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                    }
                    None => (line, &b""[..]),
                };
                match field {
                    b"data" if self.data.is_none() => self.data = Some(value.to_vec()),
                    b"event" => self.name = Some(value.to_vec()),
                    _ => {}
                }
            }
            self.line.clear();
            bytes = &bytes[at + 1..];
        }
        self.line.extend_from_slice(bytes);
    }
}

// ---------------------------------------------------------------------------
// Part 2: the cost of notify
// ---------------------------------------------------------------------------

struct NotifyRow {
    subs: usize,
    publishers: usize,
    /// Per round: ns per call as one publisher sees it (median over the
    /// publishers of that round).
    per_call_ns: Vec<f64>,
    /// Per round: wall time over all calls (calls from all publishers
    /// together).
    aggregate_ns: Vec<f64>,
    /// Per round: events still waiting for the hub thread when the calls
    /// ended, and how long it then took to take them all.
    backlog: Vec<usize>,
    drain_ms: Vec<f64>,
    dropped: u64,
}

fn notify_part(options: &Options) -> Res<()> {
    println!(
        "## 2. `notify` from the caller's side ({} calls a round, {} rounds; subscriptions never read)",
        options.calls, options.rounds
    );
    println!();
    let mut rows = Vec::new();
    for &subs in &options.subs {
        let mut counts = vec![1];
        if options.publishers > 1 {
            counts.push(options.publishers);
        }
        for publishers in counts {
            eprintln!("  notify: {subs} subscriptions, {publishers} publisher thread(s) ...");
            let row = notify_cost(subs, publishers, options.calls, options.rounds)
                .map_err(|e| format!("notify, {subs} subscriptions, {publishers} threads: {e}"))?;
            rows.push(row);
        }
    }
    println!(
        "| subscriptions | publisher threads | ns/call per thread, median (min–max) | wall ns/call, all threads | backlog at end of calls (median) | hub drain ms (median) | dropped (total) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let (median, min, max) = spread(&row.per_call_ns);
        let (aggregate, _, _) = spread(&row.aggregate_ns);
        let backlog: Vec<f64> = row.backlog.iter().map(|&b| b as f64).collect();
        let (backlog, _, _) = spread(&backlog);
        let (drain, _, _) = spread(&row.drain_ms);
        println!(
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} | {:.0} | {:.1} | {} |",
            row.subs, row.publishers, median, min, max, aggregate, backlog, drain, row.dropped
        );
    }
    println!();
    println!(
        "ns/call per thread: a thread's time for its calls / its calls (the caller's cost, \
         including waiting for the other publishers). wall ns/call: wall time from the start \
         barrier until every thread finished / all calls. Backlog: `Stats::pending` when the \
         calls ended; drain: from then until it was 0."
    );
    println!();
    Ok(())
}

fn notify_cost(subs: usize, publishers: usize, calls: usize, rounds: usize) -> Res<NotifyRow> {
    let hub = Hub::new().map_err(|e| format!("Hub::new: {e}"))?;
    let subscriptions = (0..subs)
        .map(|_| hub.subscribe())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("subscribe: {e}"))?;
    if hub.stats().clients != subs {
        return Err(format!("{subs} subscriptions but {:?}", hub.stats()));
    }
    let mut data = String::from("12345 1700000000000000000 ");
    while data.len() < 64 {
        data.push('x');
    }
    let per_thread = calls.div_ceil(publishers);
    let mut row = NotifyRow {
        subs,
        publishers,
        per_call_ns: Vec::new(),
        aggregate_ns: Vec::new(),
        backlog: Vec::new(),
        drain_ms: Vec::new(),
        dropped: 0,
    };
    // Round 0 is a warm-up and is not kept.
    for round in 0..=rounds {
        if !wait_until(Duration::from_secs(60), || hub.stats().pending == 0) {
            return Err(format!("the hub did not drain in 60 s: {:?}", hub.stats()));
        }
        let barrier = Barrier::new(publishers + 1);
        let (wall, mut per_thread_ns) = thread::scope(|scope| -> Res<(Duration, Vec<f64>)> {
            let workers: Vec<_> = (0..publishers)
                .map(|_| {
                    let hub = &hub;
                    let barrier = &barrier;
                    let data = data.as_str();
                    scope.spawn(move || -> Res<Duration> {
                        barrier.wait();
                        let started = Instant::now();
                        for _ in 0..per_thread {
                            hub.notify(data).map_err(|e| format!("notify: {e}"))?;
                        }
                        Ok(started.elapsed())
                    })
                })
                .collect();
            barrier.wait();
            let started = Instant::now();
            let mut per_thread_ns = Vec::with_capacity(publishers);
            for worker in workers {
                let elapsed = worker
                    .join()
                    .map_err(|_| "a publisher thread panicked".to_string())??;
                per_thread_ns.push(elapsed.as_nanos() as f64 / per_thread as f64);
            }
            Ok((started.elapsed(), per_thread_ns))
        })?;
        let calls_ended = Instant::now();
        let backlog = hub.stats().pending;
        if !wait_until(Duration::from_secs(60), || hub.stats().pending == 0) {
            return Err(format!("the hub did not drain in 60 s: {:?}", hub.stats()));
        }
        let drain = calls_ended.elapsed();
        if round == 0 {
            continue;
        }
        per_thread_ns.sort_by(f64::total_cmp);
        row.per_call_ns.push(per_thread_ns[per_thread_ns.len() / 2]);
        row.aggregate_ns
            .push(wall.as_nanos() as f64 / (per_thread * publishers) as f64);
        row.backlog.push(backlog);
        row.drain_ms.push(drain.as_secs_f64() * 1e3);
    }
    row.dropped = hub.stats().dropped;
    drop(subscriptions);
    hub.shutdown().map_err(|e| format!("hub.shutdown: {e}"))?;
    Ok(row)
}

/// Median, min and max.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    (
        sorted[sorted.len() / 2],
        sorted[0],
        sorted[sorted.len() - 1],
    )
}

// ---------------------------------------------------------------------------
// /proc and clocks
// ---------------------------------------------------------------------------

struct ProcSample {
    rss_kib: u64,
    threads: u64,
    cpu_ticks: u64,
}

impl ProcSample {
    fn now() -> Res<ProcSample> {
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
fn cpu_ticks() -> Res<u64> {
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

fn ticks_ms(ticks: u64) -> u64 {
    ticks * 1000 / TICKS_PER_SECOND
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

fn read_trimmed(path: &str) -> Option<String> {
    Some(std::fs::read_to_string(path).ok()?.trim().to_string())
}

fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
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

/// The current UTC time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = (secs / 86_400) as i64;
    let (year, month, day) = civil_from_days(days);
    let rest = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to a date.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
