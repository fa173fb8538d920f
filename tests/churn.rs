//! Churn: thousands of connect / receive one event / disconnect cycles
//! against one server (a few in flight at once; every third client leaves
//! abruptly: a reset with `SO_LINGER` 0 after its first event, or a close
//! before reading anything), then, within a bounded wait, nothing is left:
//! no client, no stream, no `sse-client` thread, and the process is back to
//! the descriptors and threads of an idle server.
//!
//! What "idle server" means, from the sources: the hub thread, the watch
//! thread, the acceptor thread, `tiny_http`'s accept thread, and its
//! connection pool.
//! The pool starts 4 threads that never time out while the pool has at
//! most 4; threads beyond 4 end after 5 s idle (`tiny_http` 0.12
//! `util/task_pool.rs`); and because each idle thread decides on its
//! timeout when it starts waiting, the pool can also end up with fewer
//! than 4. So the thread count must come back to at most that of the idle
//! server measured before the churn; descriptors must come back exactly
//! (the listening socket and the clone `tiny_http` holds, and the watch
//! thread's epoll set, wake-up descriptor and netlink socket). The acceptor
//! keeps making short wake-up connections for 3 s after the last request,
//! and idle pool threads take up to 5 s to go, so the wait is up to ~10 s.
//!
//! The thread and descriptor counts are process-wide: the tests of this
//! file run one at a time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::Server;
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{fd_count, proc_status_kib, thread_count, thread_names, threads_named};
use support::raw::reset_on_close;
use support::serial;
use support::wait::{ms, wait_until};

const WORKERS: usize = 4;
/// Threads an idle server adds: the hub, the watch, the acceptor,
/// tiny_http's accept thread and its 4 pool threads.
const IDLE_SERVER_THREADS: usize = 8;
/// Descriptors an idle server adds: the listening socket and tiny_http's
/// clone of it; the watch's epoll set, wake-up descriptor and netlink
/// socket.
const IDLE_SERVER_FDS: usize = 5;
const SETTLE: Duration = Duration::from_secs(20);

fn rss_kib() -> u64 {
    proc_status_kib("self", "VmRSS").expect("VmRSS")
}

fn churn(cycles: usize) {
    init_logging();
    let threads_before = thread_count();
    let fds_before = fd_count();
    assert_eq!(threads_named("sse-"), 0);

    let hub = plain_hub()
        .keep_alive(Some(ms(100)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // The idle server, before any client.
    let idle_threads = threads_before + IDLE_SERVER_THREADS;
    let idle_fds = fds_before + IDLE_SERVER_FDS;
    assert!(
        wait_until(SETTLE, || thread_count() == idle_threads
            && fd_count() == idle_fds),
        "an idle server: {} threads (expected {idle_threads}), {} descriptors (expected \
         {idle_fds}); threads {:?}",
        thread_count(),
        fd_count(),
        thread_names()
    );
    let rss_before = rss_kib();

    // A steady flow of events, so that every client gets one soon and a
    // departed client is noticed at once.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let hub = hub.clone();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                hub.notify(format!("tick {n}")).expect("notify");
                n += 1;
                // Pacing, not synchronisation.
                thread::sleep(ms(1));
            }
        })
    };

    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            thread::spawn(move || {
                for i in (worker..cycles).step_by(WORKERS) {
                    let mut client =
                        Client::connect_within(addr, "/events", Duration::from_secs(5))
                            .unwrap_or_else(|e| panic!("cycle {i}: connect: {e}"));
                    assert_eq!(client.status, 200, "cycle {i}");
                    match (i % 3, i % 2) {
                        // Abrupt: a reset after the first event.
                        (0, 0) => {
                            client.expect_event(Duration::from_secs(5), "the first event");
                            reset_on_close(client.socket());
                        }
                        // Abrupt: gone before reading anything.
                        (0, _) => {}
                        // Polite: one event, then a close.
                        _ => {
                            let event =
                                client.expect_event(Duration::from_secs(5), "the first event");
                            assert!(event.data.starts_with("tick "), "cycle {i}: {event:?}");
                        }
                    }
                    drop(client);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let churned = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    publisher.join().expect("the publisher panicked");

    let settle_started = Instant::now();
    assert!(
        wait_until(SETTLE, || {
            let stats = hub.stats();
            stats.clients == 0 && stats.streams == 0 && threads_named("sse-client") == 0
        }),
        "every client is gone: {:?}, {} writer threads",
        hub.stats(),
        threads_named("sse-client")
    );
    let clients_gone = settle_started.elapsed();
    assert!(
        wait_until(SETTLE, || fd_count() == idle_fds),
        "descriptors: {} (an idle server has {idle_fds})",
        fd_count()
    );
    let fds_back = settle_started.elapsed();
    assert!(
        wait_until(SETTLE, || thread_count() <= idle_threads),
        "threads: {} (an idle server has {idle_threads}): {:?}",
        thread_count(),
        thread_names()
    );
    let threads_back = settle_started.elapsed();
    let stats = hub.stats();
    assert_eq!(stats.rejected, 0, "{stats:?}");
    let rss_after = rss_kib();
    eprintln!(
        "{cycles} cycles in {churned:?} ({:.0}/s); after them: clients gone in {clients_gone:?}, \
         descriptors back in {fds_back:?}, threads back in {threads_back:?} ({} now, idle \
         server {idle_threads}); RSS {rss_before} KiB before, {rss_after} KiB after, peak {} KiB",
        cycles as f64 / churned.as_secs_f64(),
        thread_count(),
        proc_status_kib("self", "VmHWM").expect("VmHWM")
    );
    server.shutdown().expect("shutdown");
}

#[test]
fn two_thousand_clients_come_and_go_and_leave_nothing_behind() {
    let _serial = serial();
    churn(2_000);
}

#[test]
#[ignore = "a measurement: 20,000 cycles; prints the RSS before and after"]
fn twenty_thousand_clients_come_and_go_and_leave_nothing_behind() {
    let _serial = serial();
    churn(20_000);
}
