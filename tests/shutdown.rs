//! Shutdown with clients connected and events flowing: it returns within its
//! deadline, every stream ends cleanly after the last event published,
//! every thread the crate started is gone, the process returns to its
//! thread count from before the hub, and the hub refuses further work.
//!
//! Thread counts are process-wide, so this file holds this one test only
//! (each test file is its own process).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{ClientId, Error, Event, Server};
use support::client::{Client, End};
use support::hubs::{assert_refuses_everything, plain_hub};
use support::init_logging;
use support::proc::{thread_count, thread_names, threads_named};
use support::wait::{ms, wait_until};

const CLIENTS_11: usize = 8;
const CLIENTS_10: usize = 4;
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);

#[test]
fn shutdown_with_clients_and_events_flowing() {
    init_logging();
    let baseline = thread_count();
    assert_eq!(threads_named("sse-"), 0, "no sse thread before the hub");

    let hub = plain_hub()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .client_buffer(1 << 16)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();
    // A thread names itself as it starts: wait for that.
    assert!(
        wait_until(Duration::from_secs(5), || threads_named("sse-hub") == 1
            && threads_named("sse-acceptor") == 1),
        "the hub and acceptor threads run; threads: {:?}",
        thread_names()
    );

    // Readers: each reads its stream until the stream ends, checks the
    // events came in order without a gap, then closes its socket.
    let clients = CLIENTS_11 + CLIENTS_10;
    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..clients).map(|_| AtomicUsize::new(0)).collect());
    let readers: Vec<_> = (0..clients)
        .map(|i| {
            let version = if i < CLIENTS_11 { "1.1" } else { "1.0" };
            let mut client = Client::connect(addr, "/events", version, &[])
                .unwrap_or_else(|e| panic!("connect client {i} (HTTP/{version}): {e}"));
            assert_eq!(client.status, 200);
            let received = Arc::clone(&received);
            thread::spawn(move || {
                let mut next = 0usize;
                while let Some(event) = client.next_event(Duration::from_secs(10)) {
                    assert_eq!(event.data, next.to_string(), "client {i}: order");
                    next += 1;
                    received[i].store(next, Ordering::Relaxed);
                }
                let end = client.end();
                // Close the socket, as a client does once its stream ends.
                drop(client);
                (version, end, next)
            })
        })
        .collect();
    assert_eq!(hub.stats().clients, clients);
    let threads_with_clients = threads_named("sse-client-");
    assert_eq!(
        threads_with_clients, clients,
        "one writer thread per client"
    );

    // A publisher that runs until the hub refuses.
    let publisher = {
        let hub = hub.clone();
        thread::spawn(move || {
            let mut seq = 0usize;
            loop {
                let result = if seq.is_multiple_of(3) {
                    hub.publish(
                        &Event::new(seq.to_string())
                            .with_id(seq.to_string())
                            .expect("id"),
                    )
                } else {
                    hub.notify(seq.to_string())
                };
                match result {
                    Ok(()) => seq += 1,
                    Err(e) => return (seq, e),
                }
                // Pacing, not synchronisation: a steady flow of events.
                thread::sleep(ms(1));
            }
        })
    };

    // Every client is receiving.
    assert!(
        wait_until(Duration::from_secs(5), || received
            .iter()
            .all(|n| n.load(Ordering::Relaxed) >= 20)),
        "every client receives events before the shutdown"
    );

    let connected: Vec<ClientId> = hub.clients().iter().map(|client| client.id).collect();
    assert_eq!(connected.len(), clients);
    let started = Instant::now();
    let result = server.shutdown();
    let took = started.elapsed();
    assert!(result.is_ok(), "shutdown: {result:?}");
    assert!(
        took < SHUTDOWN_TIMEOUT + SLACK,
        "shutdown took {took:?}, more than its timeout {SHUTDOWN_TIMEOUT:?} plus {SLACK:?}"
    );
    eprintln!("shutdown took {took:?}");

    // The crate's threads were joined by shutdown (a short bounded wait lets
    // the kernel finish reaping them).
    assert!(
        wait_until(Duration::from_secs(1), || threads_named("sse-") == 0),
        "threads left after shutdown: {:?}",
        thread_names()
    );

    // The publisher was refused with Closed.
    let (published, error) = publisher.join().expect("the publisher panicked");
    assert!(
        matches!(error, Error::Closed),
        "the publisher got {error:?}"
    );
    assert!(published > 0);
    assert_eq!(hub.stats().published, published as u64);

    // Every stream ended cleanly, after every event published before the
    // shutdown.
    for (i, reader) in readers.into_iter().enumerate() {
        let (version, end, got) = reader.join().expect("a reader panicked");
        let want = if version == "1.1" {
            End::FinalChunk
        } else {
            End::Eof
        };
        assert_eq!(
            end,
            Some(want),
            "client {i} (HTTP/{version}): how the stream ended"
        );
        assert_eq!(
            got, published,
            "client {i} (HTTP/{version}): events received vs published before the shutdown"
        );
    }

    // The hub refuses everything now.
    assert!(hub.is_closed());
    assert_refuses_everything(&hub, &connected);
    assert!(
        Client::connect(addr, "/events", "1.1", &[]).is_err(),
        "nothing listens any more"
    );

    // tiny_http's own connection threads end once clients close; its idle
    // pool threads within about 5 s.
    drop(server);
    assert!(
        wait_until(Duration::from_secs(10), || thread_count() <= baseline),
        "thread count {} did not return to {baseline}; threads: {:?}",
        thread_count(),
        thread_names()
    );
    assert_eq!(threads_named("sse-"), 0);
}
