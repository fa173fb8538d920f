//! Part 2: what `notify` costs its caller, with subscriptions that never
//! read, from one thread and from several at once.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use sse_server::Hub;

use crate::Res;
use crate::options::Options;
use crate::system::wait_until;

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

pub fn notify_part(options: &Options) -> Res<()> {
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
