//! Connections that never finish a request (slowloris) are closed after
//! `HubBuilder::request_timeout`, whether they send nothing, part of a
//! request head, or one byte now and then; so are kept-alive connections
//! that send no next request. Their threads and descriptors go back, a
//! normal client is served all along, and event streams are not affected.
//!
//! Thread and descriptor counts are process-wide: the tests of this file
//! run one at a time.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{Hub, Server};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{fd_count, thread_count};
use support::raw::raw_connect;
use support::serial;
use support::wait::wait_until;

const TIMEOUT: Duration = Duration::from_secs(1);
/// The watch lists connections every quarter of the timeout (250 ms here)
/// and closes those past it; the rest is room for a loaded machine and a
/// debug build (closing 300 connections takes it about a second here).
const SLACK: Duration = Duration::from_secs(8);
const EACH: usize = 100;

fn hub() -> Hub {
    plain_hub()
        .request_timeout(Some(TIMEOUT))
        .build()
        .expect("build the hub")
}

fn open(addr: SocketAddr, first_bytes: &[u8]) -> TcpStream {
    let mut stream = raw_connect(addr);
    stream.write_all(first_bytes).expect("write");
    stream
}

/// Whether the server has closed `stream` (end of file or a reset), waiting
/// at most `wait`.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("read timeout");
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[test]
fn silent_partial_and_trickling_connections_are_closed_after_the_deadline() {
    let _serial = serial();
    init_logging();
    let hub = hub();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    // The idle server (no request yet, so no pool kicks under way).
    let fds_idle = fd_count();
    let threads_idle = thread_count();

    let opened = Instant::now();
    let mut silent: Vec<TcpStream> = (0..EACH).map(|_| open(addr, b"")).collect();
    let mut partial: Vec<TcpStream> = (0..EACH)
        .map(|_| open(addr, b"GET /events HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    let trickling: Vec<TcpStream> = (0..EACH).map(|_| open(addr, b"G")).collect();

    // One byte every 200 ms to each trickling connection, until told to
    // stop (or the server closed it).
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut trickling = trickling;
            let head = b"ET /events HTTP/1.1\r\nHost: x\r\n";
            let mut at = 0;
            while !stop.load(Ordering::Acquire) {
                for stream in &mut trickling {
                    let _ = stream.write_all(&head[at % head.len()..at % head.len() + 1]);
                }
                at += 1;
                // Pacing the client's bytes, not synchronisation.
                thread::sleep(Duration::from_millis(200));
            }
            trickling
        })
    };

    // A normal client is served while they hang on.
    let mut client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(client.status, 200);
    hub.notify("served").expect("notify");
    assert_eq!(client.expect_event(SLACK, "an event").data, "served");

    // None is closed before the deadline (counted from when they opened:
    // the watch starts counting later, when it first lists them).
    let early = TIMEOUT.saturating_sub(opened.elapsed());
    if !early.is_zero() {
        assert!(
            !closed_within(&mut silent[0], early),
            "a silent connection closed {:?} after it opened",
            opened.elapsed()
        );
    }
    // Every one is closed, and not long after the deadline.
    for (kind, streams) in [("silent", &mut silent), ("partial", &mut partial)] {
        for (i, stream) in streams.iter_mut().enumerate() {
            let left = (TIMEOUT + SLACK).saturating_sub(opened.elapsed());
            assert!(
                closed_within(stream, left),
                "{kind} connection {i} (from {:?}) still open {:?} after it opened",
                stream.local_addr(),
                opened.elapsed()
            );
        }
    }
    stop.store(true, Ordering::Release);
    let mut trickling = trickler.join().expect("the trickler panicked");
    for (i, stream) in trickling.iter_mut().enumerate() {
        let left = (TIMEOUT + SLACK).saturating_sub(opened.elapsed());
        assert!(
            closed_within(stream, left),
            "trickling connection {i} still open {:?} after it opened",
            opened.elapsed()
        );
    }
    let closed = opened.elapsed();
    eprintln!("all {} closed {closed:?} after they opened", 3 * EACH);

    // The normal client still streams.
    hub.notify("still served").expect("notify");
    assert_eq!(client.expect_event(SLACK, "an event").data, "still served");
    drop(client);
    drop(silent);
    drop(partial);
    drop(trickling);
    // Threads: tiny_http ends pool threads beyond its first 4 after 5 s
    // idle. Descriptors: no more than before; the count taken then may
    // still have held those of the previous test's connections, which
    // tiny_http's threads close on their own time.
    assert!(
        wait_until(Duration::from_secs(10), || fd_count() <= fds_idle
            && thread_count() <= threads_idle
            && hub.stats().streams == 0),
        "descriptors {} (idle {fds_idle}), threads {} (idle {threads_idle}), {:?}",
        fd_count(),
        thread_count(),
        hub.stats()
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_kept_alive_connection_is_closed_when_no_next_request_comes() {
    let _serial = serial();
    init_logging();
    let hub = hub();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let request = b"GET /page HTTP/1.1\r\nHost: x\r\n\r\n";
    // A connection that keeps asking, every 300 ms, for longer than the
    // deadline: each request starts it again.
    let mut busy = open(addr, request);
    // One that asks once and then idles.
    let mut idle = open(addr, request);
    let opened = Instant::now();
    let mut buf = [0u8; 1024];
    idle.set_read_timeout(Some(SLACK)).expect("read timeout");
    let n = idle.read(&mut buf).expect("an answer");
    assert!(buf[..n].starts_with(b"HTTP/1.1 404"), "{:?}", &buf[..n]);
    while opened.elapsed() < TIMEOUT * 3 {
        busy.write_all(request)
            .expect("the busy connection is open");
        busy.set_read_timeout(Some(SLACK)).expect("read timeout");
        let n = busy
            .read(&mut buf)
            .expect("the busy connection is answered");
        assert!(
            n > 0,
            "the busy connection was closed after {:?}",
            opened.elapsed()
        );
        // Pacing the client's requests.
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        closed_within(&mut idle, SLACK),
        "the idle connection is closed"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn an_event_stream_is_not_held_to_the_deadline() {
    let _serial = serial();
    init_logging();
    let hub = hub();
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    // No event, no keep-alive (15 s away) for three deadlines.
    assert!(
        client.next_event(TIMEOUT * 3).is_none(),
        "nothing comes while idle"
    );
    assert!(client.end().is_none(), "the stream is still open");
    hub.notify("after three deadlines").expect("notify");
    assert_eq!(
        client.expect_event(SLACK, "an event").data,
        "after three deadlines"
    );
    assert_eq!(hub.stats().streams, 1);
    hub.shutdown().expect("shutdown");
}
