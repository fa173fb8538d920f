//! Shutdown keeps its deadline even when a client has stopped reading and
//! its writer thread is blocked in a write, while other clients read.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{Error, Server};
use support::client::{Client, End};
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::wait_until;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(1);

#[test]
fn shutdown_keeps_its_deadline_with_a_client_that_does_not_read() {
    init_logging();
    let hub = plain_hub()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        .client_buffer(16)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // This client never reads after its head.
    let stalled = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    let stalled_id = hub.clients()[0].id;
    // This one reads everything.
    let mut reader = Client::connect(addr, "/events", "1.1", &[]).expect("connect");

    // Publish 64 KiB events until the stalled client's queue overflows,
    // which shows its writer is blocked (the socket buffers are full).
    let big = "x".repeat(64 * 1024);
    let read = Arc::new(AtomicUsize::new(0));
    let reading = {
        let read = Arc::clone(&read);
        thread::spawn(move || {
            let mut n = 0usize;
            while let Some(event) = reader.next_event(Duration::from_secs(10)) {
                assert_eq!(event.data.len(), 64 * 1024);
                n += 1;
                read.store(n, Ordering::Relaxed);
            }
            (n, reader.end())
        })
    };
    let mut published = 0usize;
    let overflowed = wait_until(Duration::from_secs(10), || {
        // The reading client keeps up (its queue of 16 never overflows):
        // the next batch goes out once it has read the previous one.
        if read.load(Ordering::Relaxed) < published {
            return false;
        }
        for _ in 0..16 {
            hub.notify(&big).expect("notify");
            published += 1;
        }
        hub.client_stats(stalled_id)
            .is_some_and(|stats| stats.dropped > 0)
    });
    assert!(
        overflowed,
        "the stalled client's queue never overflowed after {published} events"
    );

    let started = Instant::now();
    let result = hub.shutdown();
    let took = started.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(
        took < SHUTDOWN_TIMEOUT + SLACK,
        "shutdown took {took:?}, more than {SHUTDOWN_TIMEOUT:?} plus {SLACK:?}"
    );
    // The stalled writer is cut off at once, so it does not count as stuck.
    assert!(
        !matches!(result, Err(Error::ShutdownTimeout { .. })) && result.is_ok(),
        "shutdown: {result:?}"
    );

    // The reading client got every event up to the shutdown, and a clean end.
    let (n, end) = reading.join().expect("the reader panicked");
    assert_eq!(end, Some(End::FinalChunk));
    assert_eq!(n, published);
    drop(stalled);
    drop(server);
}
