//! Shutdown under stress: 200 connections, of which 160 read their streams,
//! 20 never read (their socket buffers and queues filled by events of 64
//! KiB, so their writers are blocked in a write), and 20 are still sending
//! their request headers. `shutdown()` returns within its timeout plus a
//! second, no `sse-*` thread is left, and every reader gets every event and
//! a clean end (the final chunk on HTTP/1.1, the server's close on
//! HTTP/1.0).
//!
//! This file counts threads, so it holds this one test only.

mod support;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sse_server::{ClientId, Server};
use support::client::{Client, End};
use support::fixed::{fixed_payload, spawn_fixed_readers};
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{thread_count, thread_names, threads_named};
use support::raw::raw_connect;
use support::wait::wait_until;

const READERS: usize = 160;
const STALLED: usize = 20;
const HALF_CONNECTED: usize = 20;
const PAYLOAD: usize = 64 * 1024;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);
/// The most events a reader may be behind the publisher: less than the
/// queue, so no reader misses one.
const WINDOW: usize = 2;
const WAIT: Duration = Duration::from_secs(30);

#[test]
fn shutdown_with_readers_stalled_clients_and_half_sent_requests() {
    init_logging();
    assert_eq!(threads_named("sse-"), 0);
    let hub = plain_hub()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .client_buffer(4)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // The readers; one in four on HTTP/1.0.
    let (progress, readers) = spawn_fixed_readers(addr, READERS, PAYLOAD, WAIT);
    let reader_ids: Vec<ClientId> = hub.clients().into_iter().map(|c| c.id).collect();
    assert_eq!(reader_ids.len(), READERS);

    // The clients that never read past their response head.
    let stalled: Vec<Client> = (0..STALLED)
        .map(|i| {
            let version = if i % 2 == 0 { "1.1" } else { "1.0" };
            Client::connect(addr, "/events", version, &[]).expect("connect a stalled client")
        })
        .collect();
    let stalled_ids: Vec<ClientId> = hub
        .clients()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !reader_ids.contains(id))
        .collect();
    assert_eq!(stalled_ids.len(), STALLED);

    // The clients still sending their request: connected, half a head.
    let half: Vec<TcpStream> = (0..HALF_CONNECTED)
        .map(|i| {
            let mut stream = raw_connect(addr);
            let part: &[u8] = if i % 2 == 0 {
                b"GET /events HTTP/1.1\r\nHost: x\r\n"
            } else {
                b"GET /ev"
            };
            stream.write_all(part).expect("send half a request");
            stream
        })
        .collect();
    assert_eq!(hub.stats().streams, READERS + STALLED);

    // Events of 64 KiB, the readers at most `WINDOW` behind, until every
    // stalled client's queue has overflowed: its writer is blocked.
    let mut published: usize = 0;
    let all_stalled = || {
        stalled_ids
            .iter()
            .all(|&id| hub.client_stats(id).is_some_and(|s| s.dropped > 0))
    };
    let fill_started = Instant::now();
    while !all_stalled() {
        assert!(
            fill_started.elapsed() < WAIT,
            "the stalled clients' queues did not all overflow in {published} events"
        );
        let behind = published.saturating_sub(WINDOW);
        assert!(
            wait_until(WAIT, || progress
                .iter()
                .all(|p| p.load(Ordering::Acquire) >= behind)),
            "a reader fell behind event {published}"
        );
        hub.notify(fixed_payload(published, PAYLOAD))
            .expect("notify");
        published += 1;
    }
    eprintln!(
        "{published} events of 64 KiB filled the stalled clients in {:?}; {} threads",
        fill_started.elapsed(),
        thread_count()
    );
    for &id in &reader_ids {
        assert_eq!(hub.client_stats(id).map(|s| s.dropped), Some(0));
    }

    let started = Instant::now();
    let result = server.shutdown();
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}: {result:?}");
    assert!(result.is_ok(), "shutdown: {result:?}");
    assert!(
        took < SHUTDOWN_TIMEOUT + SLACK,
        "shutdown took {took:?}, more than {SHUTDOWN_TIMEOUT:?} plus {SLACK:?}"
    );
    // The crate's threads were joined by shutdown. `pthread_join` returns
    // once the kernel clears the thread's id, a moment before the thread
    // leaves /proc/self/task (a clean CI run once saw one still listed):
    // a short bounded wait lets the kernel finish reaping it, as in
    // tests/shutdown.rs.
    assert!(
        wait_until(Duration::from_secs(1), || threads_named("sse-") == 0),
        "threads left after shutdown (of {:?})",
        thread_names()
    );

    for (i, reader) in readers.into_iter().enumerate() {
        let (version, end, reader) = reader.join().expect("a reader panicked");
        let (events, partial) = (reader.events(), reader.partial_bytes());
        let clean = if version == "1.1" {
            End::FinalChunk
        } else {
            End::Eof
        };
        assert_eq!(end, Some(clean), "reader {i} (HTTP/{version})");
        assert_eq!(
            (events, partial),
            (published, 0),
            "reader {i} (HTTP/{version}) got every event, whole"
        );
    }
    assert_eq!(hub.stats().clients, 0);
    assert_eq!(hub.stats().streams, 0);
    assert!(hub.notify("too late").is_err());
    drop(stalled);
    drop(half);
}
