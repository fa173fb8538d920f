//! A client that closes (FIN) or resets (RST) its connection while its
//! stream is idle is removed at once, not at the next write: the
//! disconnect hook fires with `Closed`, `stats()` drops it, its writer
//! thread ends and its descriptor is closed. No event is published in
//! these tests, and the keep-alive (15 s by default) is far away, so only
//! the watch thread can notice.
//!
//! The same holds where `tiny_http`'s reading thread is not released
//! (`SSE_SERVER_NO_RELEASE`, as where `pidfd_getfd` is refused): that
//! scenario runs in a child process with the variable set.
//!
//! Thread and descriptor counts are process-wide: the tests of this file
//! run one at a time.

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{DisconnectReason, Hub, Server};
use support::child::{run_child_test, run_child_test_with};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{fd_count, threads_named};
use support::raw::reset_on_close;
use support::serial;
use support::wait::wait_until;

const CLIENTS: usize = 200;
/// What the issue asks: every client gone within 2 s of closing.
const GONE_WITHIN: Duration = Duration::from_secs(2);
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

// Descriptors are checked to come back to no more than before the clients:
// the count taken then may still hold those of an earlier test's
// connections, which tiny_http's threads close on their own time.

/// What the disconnect hook saw: the client's address, why, and when.
type Departures = Arc<Mutex<Vec<(Option<SocketAddr>, DisconnectReason, Instant)>>>;

fn hub_recording(departures: &Departures) -> Hub {
    let record = Arc::clone(departures);
    plain_hub()
        .on_disconnect(move |d| {
            record.lock().expect("departures").push((
                d.remote_addr,
                d.reason.clone(),
                Instant::now(),
            ));
        })
        .build()
        .expect("build the hub")
}

/// Closes `client`: with a reset (`SO_LINGER` 0) or an orderly FIN.
fn close(client: Client, reset: bool) {
    if reset {
        reset_on_close(client.socket());
    }
    drop(client);
}

fn median_and_max(mut times: Vec<Duration>) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() - 1])
}

/// 200 idle clients; half close, half reset; every one is gone within 2 s,
/// with `Closed`, and nothing of them is left.
fn two_hundred_leave() {
    init_logging();
    let departures: Departures = Arc::default();
    let hub = hub_recording(&departures);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    assert!(wait_until(GONE_WITHIN, || fd_count() > 0));
    let fds_idle = fd_count();

    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            Client::connect(addr, "/events", "1.1", &[])
                .unwrap_or_else(|e| panic!("client {i}: {e}"))
        })
        .collect();
    assert!(
        wait_until(GONE_WITHIN, || hub.stats().clients == CLIENTS),
        "{:?}",
        hub.stats()
    );
    assert_eq!(hub.stats().streams, CLIENTS);
    assert_eq!(threads_named("sse-client"), CLIENTS);

    let mut closed_at: HashMap<SocketAddr, (bool, Instant)> = HashMap::new();
    for (i, client) in clients.into_iter().enumerate() {
        let reset = i % 2 == 1;
        let local = client.local_addr();
        close(client, reset);
        closed_at.insert(local, (reset, Instant::now()));
    }
    let last_close = Instant::now();
    let all_gone = wait_until(GONE_WITHIN, || {
        departures.lock().expect("departures").len() == CLIENTS
            && hub.stats().clients == 0
            && hub.stats().streams == 0
            && threads_named("sse-client") == 0
    });
    let stats = hub.stats();
    let left = departures.lock().expect("departures").clone();
    assert!(
        all_gone,
        "within {GONE_WITHIN:?} of the last close: {} departures, {stats:?}, {} writer threads",
        left.len(),
        threads_named("sse-client")
    );
    assert!(
        wait_until(
            GONE_WITHIN.saturating_sub(last_close.elapsed()),
            || fd_count() <= fds_idle
        ),
        "descriptors: {} now, {fds_idle} before the clients",
        fd_count()
    );

    let mut fin = Vec::new();
    let mut rst = Vec::new();
    for (remote, reason, at) in &left {
        assert_eq!(*reason, DisconnectReason::Closed, "{remote:?}");
        let remote = remote.expect("a stream has a remote address");
        let (reset, closed) = closed_at
            .remove(&remote)
            .unwrap_or_else(|| panic!("a departure from an unknown or repeated client {remote}"));
        let noticed = at.saturating_duration_since(closed);
        if reset { &mut rst } else { &mut fin }.push(noticed);
    }
    assert!(closed_at.is_empty(), "never reported: {closed_at:?}");
    let (fin_median, fin_max) = median_and_max(fin);
    let (rst_median, rst_max) = median_and_max(rst);
    eprintln!(
        "time to notice over {CLIENTS} clients: FIN median {fin_median:?} max {fin_max:?}; \
         RST median {rst_median:?} max {rst_max:?}"
    );
    assert!(fin_max <= GONE_WITHIN && rst_max <= GONE_WITHIN);
    hub.shutdown().expect("shutdown");
}

#[test]
fn two_hundred_idle_clients_that_close_or_reset_are_gone_within_two_seconds() {
    let _serial = serial();
    two_hundred_leave();
}

#[test]
#[ignore = "run by the test below, in a child process without the release"]
fn child_two_hundred_leave_without_the_release() {
    assert!(std::env::var_os("SSE_SERVER_NO_RELEASE").is_some());
    two_hundred_leave();
}

#[test]
fn the_same_where_tiny_https_reader_is_not_released() {
    let _serial = serial();
    let test = "child_two_hundred_leave_without_the_release";
    let run = run_child_test_with(test, None, &[("SSE_SERVER_NO_RELEASE", "1")], CHILD_TIMEOUT);
    eprintln!("{}", run.stderr);
    assert!(run.passed(test), "{run:?}");
}

#[test]
fn two_thousand_connect_close_cycles_leave_nothing_behind() {
    const CYCLES: usize = 2_000;
    const WORKERS: usize = 4;
    let _serial = serial();
    init_logging();
    let departures: Departures = Arc::default();
    let hub = hub_recording(&departures);
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let fds_idle = fd_count();

    let workers: Vec<_> = (0..WORKERS)
        .map(|worker| {
            thread::spawn(move || {
                for i in (worker..CYCLES).step_by(WORKERS) {
                    let client = Client::connect_within(addr, "/events", Duration::from_secs(5))
                        .unwrap_or_else(|e| panic!("cycle {i}: {e}"));
                    assert_eq!(client.status, 200, "cycle {i}");
                    close(client, i % 3 == 0);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    let last_close = Instant::now();
    let settled = wait_until(GONE_WITHIN, || {
        hub.stats().clients == 0
            && hub.stats().streams == 0
            && threads_named("sse-client") == 0
            && fd_count() <= fds_idle
    });
    assert!(
        settled,
        "{:?} after the last close: {:?}, {} writer threads, {} descriptors (idle: {fds_idle})",
        last_close.elapsed(),
        hub.stats(),
        threads_named("sse-client"),
        fd_count()
    );
    let left = departures.lock().expect("departures").clone();
    assert_eq!(left.len(), CYCLES);
    assert!(
        left.iter()
            .all(|(_, reason, _)| *reason == DisconnectReason::Closed),
        "every client closed"
    );
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_full_server_whose_clients_all_leave_serves_a_new_client_within_two_seconds() {
    const MAX: usize = 5;
    let _serial = serial();
    init_logging();
    let hub = plain_hub().max_clients(MAX).build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let clients: Vec<Client> = (0..MAX)
        .map(|_| Client::connect(addr, "/events", "1.1", &[]).expect("connect"))
        .collect();
    assert!(clients.iter().all(|c| c.status == 200));
    // Full: a client that does not ask for an event stream gets 503.
    let refused = Client::request(addr, "GET", "/events", "1.1", &[], b"").expect("request");
    assert_eq!(refused.status, 503);

    for (i, client) in clients.into_iter().enumerate() {
        close(client, i % 2 == 0);
    }
    let closed = Instant::now();
    let mut served = None;
    let within = wait_until(GONE_WITHIN, || {
        let client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
        let streaming = client.status == 200 && client.header("Content-Length").is_none();
        if streaming {
            served = Some(client);
        }
        streaming
    });
    assert!(
        within,
        "no stream within {GONE_WITHIN:?} of the clients leaving: {:?}",
        hub.stats()
    );
    let mut client = served.expect("a served client");
    hub.notify("welcome back").expect("notify");
    let event = client.expect_event(Duration::from_secs(5), "an event for the new client");
    assert_eq!(event.data, "welcome back");
    eprintln!("served again {:?} after the last close", closed.elapsed());
    hub.shutdown().expect("shutdown");
}

/// How many descriptors the child process may have.
const NOFILE: u32 = 64;

#[test]
#[ignore = "run by the test below, in a child process with `ulimit -n 64`"]
fn child_out_of_descriptors_then_everyone_leaves() {
    init_logging();
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    // Streams until one is not answered: each takes the client's socket
    // and the server's (and, while it is accepted, tiny_http's copy).
    let mut clients = Vec::new();
    let mut unanswered = None;
    for _ in 0..NOFILE {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(mut stream) => {
                stream
                    .write_all(
                        b"GET /events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n",
                    )
                    .expect("send the request");
                stream
                    .set_read_timeout(Some(Duration::from_secs(1)))
                    .expect("read timeout");
                let mut head = [0u8; 12];
                match stream.read_exact(&mut head) {
                    Ok(()) if head.starts_with(b"HTTP/1.1 200") => clients.push(stream),
                    _ => {
                        unanswered = Some(stream);
                        break;
                    }
                }
            }
            // Out of descriptors on the client's side: the server's are
            // out too, one connection from now.
            Err(_) => break,
        }
    }
    eprintln!(
        "{} streams open, then {}",
        clients.len(),
        if unanswered.is_some() {
            "one not answered"
        } else {
            "no descriptor for another client"
        }
    );
    assert!(clients.len() > 5, "some streams opened: {}", clients.len());
    drop(unanswered);
    drop(clients);
    let closed = Instant::now();
    let within = wait_until(GONE_WITHIN, || {
        Client::connect_within(addr, "/events", Duration::from_millis(200))
            .is_ok_and(|client| client.status == 200)
    });
    assert!(
        within,
        "no stream within {GONE_WITHIN:?} of the clients leaving: {:?}",
        hub.stats()
    );
    eprintln!("served again {:?} after the clients left", closed.elapsed());
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_server_out_of_descriptors_serves_again_within_two_seconds_of_the_clients_leaving() {
    let _serial = serial();
    let test = "child_out_of_descriptors_then_everyone_leaves";
    let run = run_child_test(test, Some(NOFILE), CHILD_TIMEOUT);
    eprintln!("{}", run.stderr);
    assert!(run.passed(test), "{run:?}");
}
