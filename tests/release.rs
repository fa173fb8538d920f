//! A stream lets go of `tiny_http`'s reading side: once it is accepted, the
//! connection holds one descriptor on the server and no `tiny_http` thread
//! (Linux; see `src/release.rs`).
//!
//! The tests count the whole process's descriptors and threads, so they run
//! one at a time.

#![cfg(target_os = "linux")]

mod support;

use std::io::Write;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use sse_server::Server;
use support::{Client, fd_count, init_logging, thread_count, wait_until};

const WAIT: Duration = Duration::from_secs(10);

/// `tiny_http`'s idle pool threads end 5 s after their last connection.
const POOL_LINGER: Duration = Duration::from_secs(20);

fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn each_stream_holds_one_descriptor_and_one_thread_of_the_server() {
    let _serial = serial();
    init_logging();
    const CLIENTS: usize = 40;
    let hub = support::plain_hub().build().expect("hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    let fds = fd_count();
    let threads = thread_count();

    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            Client::connect(addr, "/events", "1.1", &[])
                .unwrap_or_else(|e| panic!("client {i}: {e}"))
        })
        .collect();
    assert!(wait_until(WAIT, || hub.stats().clients == CLIENTS));
    // Each client's socket is in this process too: one descriptor each on
    // the client's side, one on the server's (tiny_http held two before).
    assert!(
        wait_until(WAIT, || fd_count() == fds + 2 * CLIENTS),
        "descriptors: {} for {CLIENTS} clients (idle: {fds}; {} with tiny_http's copies)",
        fd_count(),
        fds + 3 * CLIENTS
    );
    // One writer thread per client; tiny_http's pool keeps at most a few
    // idle threads of its own once they have waited out their linger.
    let at_most = threads + CLIENTS + 8;
    assert!(
        wait_until(POOL_LINGER, || thread_count() <= at_most),
        "threads: {} for {CLIENTS} clients (idle: {threads})",
        thread_count()
    );

    // The streams work as before.
    hub.notify("after the release").expect("notify");
    for (i, client) in clients.iter_mut().enumerate() {
        let event = client.expect_event(WAIT, &format!("client {i}'s event"));
        assert_eq!(event.data, "after the release");
    }
    hub.shutdown().expect("shutdown");
    for (i, client) in clients.iter_mut().enumerate() {
        assert!(client.wait_end(WAIT).is_some(), "client {i}'s stream ended");
    }
}

#[test]
fn a_request_sent_behind_a_running_stream_is_not_read() {
    let _serial = serial();
    init_logging();
    let hub = support::plain_hub().keep_alive(None).build().expect("hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let fds = fd_count();
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");
    // Released: the client's socket and the server's one.
    assert!(
        wait_until(WAIT, || fd_count() == fds + 2),
        "descriptors: {} (idle: {fds})",
        fd_count()
    );
    client
        .socket()
        .try_clone()
        .expect("clone the client's socket")
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send a request behind the stream");
    hub.notify("still streaming").expect("notify");
    let event = client.expect_event(WAIT, "the event after the request");
    assert_eq!(event.data, "still streaming");
    assert_eq!(hub.stats().evicted, 0);
    assert_eq!(hub.stats().streams, 1);

    // The stream ends with its final chunk and nothing after it: the
    // request behind it was never read, so never answered.
    hub.shutdown().expect("shutdown");
    assert!(client.wait_end(WAIT).is_some(), "the final chunk");
    assert!(
        client.server_closed(WAIT),
        "the server closed the connection"
    );
    drop(server);
}
