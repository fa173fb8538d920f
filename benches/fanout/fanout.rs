//! Part 1, the server side: a [`Server`] in this process, the clients in a
//! child process; the samples around each run and the table of all runs.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{Hub, Server};

use crate::Res;
use crate::child::{ChildGuard, send_line, wait_line};
use crate::clients::{ClientArgs, MAX_WAIT};
use crate::options::Options;
use crate::procfs::{cpu_ticks, ticks_ms};
use crate::report::ClientReport;
use crate::system::{ProcSample, open_file_limit, unix_ns, wait_until};

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

pub fn fanout_part(options: &Options) -> Res<()> {
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
        .args(
            ClientArgs {
                clients,
                addr,
                events: scenario.events as u64,
            }
            .to_args(),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting the client process: {e}"))?;
    let mut child = ChildGuard::new(child);
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

    let cpu_before = cpu_ticks("self")?;
    send_line(&mut stdin, &format!("GO {}", unix_ns()))?;
    publish(&hub, scenario, size)?;
    send_line(&mut stdin, "PUBLISHED")?;
    let result_timeout = MAX_WAIT + Duration::from_secs(30);
    let line = wait_line(&lines, "RESULT", result_timeout, &mut child)?;
    let cpu_after = cpu_ticks("self")?;
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
