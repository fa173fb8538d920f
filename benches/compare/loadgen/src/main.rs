//! `sse-loadgen`: the comparison's load generator (see ../README.md).
//!
//! Opens N SSE clients to a target on 127.0.0.1, waits until each has its
//! `200` head and `/stats` counts them, prints `READY`, publishes M events
//! with one `POST /publish`, reads every stream until each client saw the
//! last event (or 3 s without any event, or 120 s), prints `DONE`, closes
//! everything and prints one JSON line of results. With `--sync` it waits for
//! a line on stdin after `READY` and after `DONE`, so a driver can sample the
//! server in between.

mod client;
mod http;
mod sse;

use std::fmt::Display;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};

/// The command line.
struct Args {
    addr: SocketAddr,
    target: String,
    clients: usize,
    events: u64,
    size: usize,
    interval_us: u64,
    sync: bool,
    idle: Duration,
    max_wait: Duration,
    connect_timeout: Duration,
}

const USAGE: &str = "Usage: sse-loadgen --addr 127.0.0.1:PORT --clients N --events M --size B \
    --interval-us I [--target NAME] [--sync] [--idle-s 3] [--max-wait-s 120] [--connect-timeout-s 90]";

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    let mut addr: Option<SocketAddr> = None;
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        target: "unnamed".into(),
        clients: 1000,
        events: 300,
        size: 64,
        interval_us: 0,
        sync: false,
        idle: Duration::from_secs(3),
        max_wait: Duration::from_secs(120),
        connect_timeout: Duration::from_secs(90),
    };
    let secs = |v: f64| Duration::from_secs_f64(v.max(0.0));
    while let Some(arg) = parser.next()? {
        match arg {
            Long("addr") => addr = Some(parser.value()?.parse()?),
            Long("target") => args.target = parser.value()?.string()?,
            Long("clients") => args.clients = parser.value()?.parse()?,
            Long("events") => args.events = parser.value()?.parse()?,
            Long("size") => args.size = parser.value()?.parse()?,
            Long("interval-us") => args.interval_us = parser.value()?.parse()?,
            Long("sync") => args.sync = true,
            Long("idle-s") => args.idle = secs(parser.value()?.parse()?),
            Long("max-wait-s") => args.max_wait = secs(parser.value()?.parse()?),
            Long("connect-timeout-s") => args.connect_timeout = secs(parser.value()?.parse()?),
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(arg.unexpected()),
        }
    }
    args.addr = addr.ok_or("--addr is required")?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("sse-loadgen: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if !args.addr.ip().is_loopback() {
        eprintln!(
            "sse-loadgen: {} is not a loopback address; refusing",
            args.addr
        );
        return ExitCode::from(2);
    }
    if args.clients == 0 || args.events == 0 {
        eprintln!("sse-loadgen: --clients and --events must be at least 1");
        return ExitCode::from(2);
    }
    raise_nofile();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let line = runtime.block_on(run(&args));
    println!("{line}");
    ExitCode::SUCCESS
}

/// Raises the soft limit on open files to the hard limit: 10,000 clients need
/// ~10,100 descriptors.
fn raise_nofile() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    limit.current = limit.maximum;
    let _ = setrlimit(Resource::Nofile, limit);
}

/// CPU time this process has used.
fn cpu_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// `clients <n>` from `/stats`.
async fn stats_clients(addr: SocketAddr) -> Result<u64, String> {
    let (status, body) = http::request(addr, "GET", "/stats", Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix("clients ")?.trim().parse().ok())
        .filter(|_| status == 200)
        .ok_or_else(|| format!("/stats: status {status}, no `clients <n>` line"))
}

/// One run, as its JSON line.
async fn run(args: &Args) -> String {
    let origin = Instant::now();
    let shared = Arc::new(client::Shared {
        addr: args.addr,
        events: args.events,
        size: args.size,
        connect_deadline: origin + args.connect_timeout,
        handshakes: Semaphore::new(client::IN_FLIGHT),
        delivered: AtomicU64::new(0),
        last_event_ns: AtomicU64::new(0),
        origin,
        complete: AtomicUsize::new(0),
        first_error: Mutex::new(None),
    });
    let mut stdin = args.sync.then(stdin_lines);

    // Connect every client; each reports its handshake once.
    let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks: Vec<_> = (0..args.clients)
        .map(|_| {
            let (shared, ready, stop) = (shared.clone(), ready_tx.clone(), stop_rx.clone());
            tokio::spawn(async move { client::run(&shared, ready, stop).await })
        })
        .collect();
    drop(ready_tx);
    let mut connected = 0;
    for _ in 0..args.clients {
        match ready_rx.recv().await {
            Some(ok) => connected += usize::from(ok),
            None => break,
        }
    }
    // Then wait until /stats counts them (registration may lag the head).
    let stats_deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match stats_clients(args.addr).await {
            Ok(n) if n >= connected as u64 => break,
            Ok(n) if Instant::now() >= stats_deadline => {
                shared.error(format!("/stats says {n} clients, {connected} connected"));
                break;
            }
            Err(e) if Instant::now() >= stats_deadline => {
                shared.error(e);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let connect_s = origin.elapsed().as_secs_f64();
    say("READY");
    if let Some(lines) = &mut stdin {
        lines.recv().await;
    }

    // Publish, then watch the counters every 10 ms until a stop condition.
    let stats_at_publish = stats_clients(args.addr).await.ok();
    let query = format!(
        "/publish?count={}&size={}&interval_us={}",
        args.events, args.size, args.interval_us
    );
    let t_pub = origin.elapsed();
    let cpu_pub = cpu_now();
    match http::request(args.addr, "POST", &query, Duration::from_secs(10)).await {
        Ok((status, _)) if (200..300).contains(&status) => {}
        Ok((status, _)) => shared.error(format!("POST /publish: status {status}")),
        Err(e) => shared.error(e),
    }
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut seen, mut cpu_busy) = (0, Duration::ZERO);
    let stop = loop {
        tick.tick().await;
        let delivered = shared.delivered.load(Ordering::Relaxed);
        if delivered != seen {
            seen = delivered;
            cpu_busy = cpu_now().saturating_sub(cpu_pub);
        }
        let now = origin.elapsed();
        let last = Duration::from_nanos(shared.last_event_ns.load(Ordering::Relaxed));
        if connected > 0 && shared.complete.load(Ordering::Relaxed) >= connected {
            break "complete";
        } else if now.saturating_sub(last.max(t_pub)) >= args.idle {
            break "idle";
        } else if now.saturating_sub(t_pub) >= args.max_wait {
            break "max_wait";
        }
    };
    let _ = stop_tx.send(true);
    let mut tallies = Vec::with_capacity(tasks.len());
    let mut streams = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok((tally, stream)) => {
                tallies.push(tally);
                streams.extend(stream);
            }
            Err(e) => shared.error(format!("client task failed: {e}")),
        }
    }
    say("DONE");
    if let Some(lines) = &mut stdin {
        lines.recv().await;
    }
    drop(streams);

    let last = Duration::from_nanos(shared.last_event_ns.load(Ordering::Relaxed));
    let seconds = last.saturating_sub(t_pub).as_secs_f64();
    let first_error = shared
        .first_error
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    report(
        args,
        tallies,
        seconds,
        connect_s,
        stop,
        stats_at_publish,
        first_error,
        cpu_busy,
    )
}

/// Builds the JSON line from what the clients saw.
#[allow(clippy::too_many_arguments)]
fn report(
    args: &Args,
    tallies: Vec<client::Tally>,
    seconds: f64,
    connect_s: f64,
    stop: &str,
    stats_clients: Option<u64>,
    first_error: Option<String>,
    cpu_busy: Duration,
) -> String {
    let count = |f: fn(&client::Tally) -> bool| tallies.iter().filter(|t| f(t)).count();
    let sum = |f: fn(&client::Tally) -> u64| tallies.iter().map(f).sum::<u64>();
    let delivered = sum(|t| t.delivered);
    let expected = args.clients as u64 * args.events;
    let per_client = tallies.iter().map(|t| t.delivered);
    let (per_min, per_max) = (per_client.clone().min(), per_client.max());
    let mut latencies = Vec::with_capacity(delivered as usize);
    let (complete, out_of_order) = (count(|t| t.complete), sum(|t| t.out_of_order));
    let counters = [
        ("eof_before_done", count(|t| t.eof_before_done) as u64),
        ("read_errors", count(|t| t.read_error) as u64),
        ("body_errors", count(|t| t.body_error) as u64),
        ("bad_data", sum(|t| t.bad_data)),
        ("seq_out_of_range", sum(|t| t.seq_out_of_range)),
        ("not_event_stream", count(|t| t.not_event_stream) as u64),
    ];
    let connect_failed = count(|t| t.connect_failed);
    for tally in tallies {
        latencies.extend_from_slice(&tally.latencies);
    }
    let cpu_ms = cpu_busy.as_secs_f64() * 1e3;
    let per_s = |v: f64| if seconds > 0.0 { v / seconds } else { 0.0 };

    let mut json = Json::default();
    json.string("target", Some(args.target.as_str()));
    json.field("N", args.clients);
    json.field("M", args.events);
    json.field("B", args.size);
    json.field("interval_us", args.interval_us);
    json.field("delivered", delivered);
    json.field("expected", expected);
    json.field(
        "loss_pct",
        round(
            100.0 * (expected - delivered.min(expected)) as f64 / expected as f64,
            4,
        ),
    );
    json.field("seconds", round(seconds, 6));
    json.field("delivered_per_s", round(per_s(delivered as f64), 1));
    json.optional("lat_p50_us", nearest_rank(&mut latencies, 50.0));
    json.optional("lat_p99_us", nearest_rank(&mut latencies, 99.0));
    json.optional("lat_max_us", latencies.iter().max());
    json.field("clients_connect_s", round(connect_s, 4));
    json.field("clients_complete", complete);
    json.field("per_client_min", per_min.unwrap_or(0));
    json.field("per_client_max", per_max.unwrap_or(0));
    json.field("out_of_order", out_of_order);
    json.string("stop", Some(stop));
    json.optional("stats_clients", stats_clients);
    for (name, value) in counters {
        json.field(name, value);
    }
    json.string("first_error", first_error.as_deref());
    json.field("connect_failed", connect_failed);
    json.field("loadgen_cpu_ms", round(cpu_ms, 1));
    json.field("loadgen_busy_pct", round(per_s(cpu_ms / 10.0), 1));
    json.finish()
}

/// The nearest-rank percentile `p` of `values` (reordered in the process).
fn nearest_rank(values: &mut [u32], p: f64) -> Option<u32> {
    if values.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * values.len() as f64).ceil() as usize;
    let index = rank.clamp(1, values.len()) - 1;
    Some(*values.select_nth_unstable(index).1)
}

fn round(value: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// A JSON object written field by field, in order.
#[derive(Default)]
struct Json(String);

impl Json {
    fn field(&mut self, name: &str, value: impl Display) {
        self.0 += if self.0.is_empty() { "{" } else { "," };
        self.0 += &format!("\"{name}\":{value}");
    }

    fn optional(&mut self, name: &str, value: Option<impl Display>) {
        match value {
            Some(v) => self.field(name, v),
            None => self.field(name, "null"),
        }
    }

    fn string(&mut self, name: &str, value: Option<&str>) {
        let Some(value) = value else {
            return self.field(name, "null");
        };
        let mut quoted = String::from("\"");
        for c in value.chars() {
            match c {
                '"' => quoted += "\\\"",
                '\\' => quoted += "\\\\",
                c if (c as u32) < 0x20 => quoted += &format!("\\u{:04x}", c as u32),
                c => quoted.push(c),
            }
        }
        quoted.push('"');
        self.field(name, quoted);
    }

    fn finish(self) -> String {
        self.0 + "}"
    }
}

/// Prints a marker line on stdout at once.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Lines from stdin, read on a thread of their own so the runtime keeps
/// reading the streams meanwhile. The channel closes at end of input.
fn stdin_lines() -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if line.is_err() || tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    rx
}
