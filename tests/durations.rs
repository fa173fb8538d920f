//! No duration a caller can pass makes the library panic: every `Duration`
//! setting at `Duration::MAX`, and again at `Duration::ZERO`, through a
//! whole life: build, bind a server, stream to a real client, publish,
//! replay, subscribe, shut down, drop. Each extreme does what its setter's
//! docs say.
//!
//! A call that may legitimately wait forever with these settings (a
//! shutdown without a deadline, `recv_timeout(Duration::MAX)`) runs on a
//! thread of its own, and the test waits a bounded time for its answer.

mod support;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use sse_server::crossbeam_channel::{self, RecvTimeoutError};
use sse_server::{Error, Event, Frame, Hub, Server, Subscription};
use support::client::{Client, End};
use support::init_logging;
use support::wait::wait_until;

const WAIT: Duration = Duration::from_secs(10);

/// The cap on every reconnection time sent: a day, in milliseconds.
const RETRY_CAP_MS: u64 = 24 * 60 * 60 * 1000;

/// Runs `f` on a thread of its own and waits at most `WAIT` for its result;
/// panics, saying `what`, when it does not come (or `f` panicked).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = crossbeam_channel::bounded(1);
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(WAIT) {
        Ok(value) => value,
        Err(RecvTimeoutError::Timeout) => panic!("{what} did not return within {WAIT:?}"),
        Err(RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

/// `recv_timeout(timeout)` on its own thread, bounded by `WAIT`.
fn recv_within(
    subscription: &Arc<Subscription>,
    timeout: Duration,
) -> Result<Option<Frame>, Error> {
    let subscription = Arc::clone(subscription);
    within("Subscription::recv_timeout", move || {
        subscription.recv_timeout(timeout)
    })
}

/// Reads the `retry:` line a stream starts with.
fn first_retry(client: &mut Client) -> u64 {
    assert!(
        client.read_raw_until(WAIT, |body| body.contains(&b'\n')),
        "a first line arrives"
    );
    let body = String::from_utf8_lossy(client.body()).into_owned();
    let line = body.lines().next().unwrap_or_default();
    line.strip_prefix("retry: ")
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("the stream starts with a retry line: {body:?}"))
}

/// Keep-alive lines (`:` alone) in a stream's body.
fn keep_alives(body: &[u8]) -> usize {
    body.split(|&b| b == b'\n')
        .filter(|line| *line == b":")
        .count()
}

#[test]
fn every_duration_at_its_maximum() {
    init_logging();
    let hub = Hub::builder()
        .keep_alive(Some(Duration::MAX))
        .write_timeout(Duration::MAX)
        .shutdown_timeout(Duration::MAX)
        .history_events(100)
        .history_bytes(1 << 20)
        .history_age(Some(Duration::MAX))
        .retry(Some(Duration::MAX))
        .retry_jitter(Duration::MAX)
        .close_check(Some(Duration::MAX))
        .request_timeout(Some(Duration::MAX))
        .build()
        .expect("build the hub");
    // Sets TCP_USER_TIMEOUT from the write timeout: clamped, not an
    // overflow, and within what the kernel accepts.
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // The retry and its jitter are each capped, and so is their sum.
    let mut client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(client.status, 200);
    assert_eq!(first_retry(&mut client), RETRY_CAP_MS);
    assert_eq!(client.parser().retry(), Some(RETRY_CAP_MS));
    let subscription = Arc::new(hub.subscribe().expect("subscribe"));

    // An event's own retry is capped the same way.
    let event = Event::new("max").with_retry(Duration::MAX);
    assert_eq!(event.retry(), Some(Duration::from_millis(RETRY_CAP_MS)));
    hub.publish(&event).expect("publish");
    let first = client.expect_event(WAIT, "the event");
    assert_eq!(first.data, "max");
    assert_eq!(first.retry, Some(RETRY_CAP_MS));
    let want = format!(
        "retry: {RETRY_CAP_MS}\nid: {}\nretry: {RETRY_CAP_MS}\ndata: max\n\n",
        first.last_event_id
    );
    assert_eq!(String::from_utf8_lossy(client.body()), want);
    hub.notify("second").expect("notify");
    assert_eq!(client.expect_event(WAIT, "the second event").data, "second");

    // recv_timeout(MAX) waits like recv: it returns what is queued.
    assert!(
        wait_until(WAIT, || subscription.receiver().len() >= 2),
        "both events reach the subscription"
    );
    let frame = recv_within(&subscription, Duration::MAX)
        .expect("open")
        .expect("a frame");
    assert!(frame.events() >= 1);

    // No age limit: a reconnect after the first event replays the second.
    let mut replayed = Client::connect(
        addr,
        "/events",
        "1.1",
        &[("Last-Event-ID", first.last_event_id.as_str())],
    )
    .expect("reconnect");
    assert_eq!(
        replayed.expect_event(WAIT, "the replayed event").data,
        "second"
    );

    // No deadline: shutdown waits for the streams, which end at once since
    // their clients read.
    let closing = hub.clone();
    let result = within("shutdown", move || closing.shutdown());
    assert!(result.is_ok(), "shutdown: {result:?}");
    for client in [&mut client, &mut replayed] {
        assert_eq!(client.wait_end(WAIT), Some(End::FinalChunk));
        assert_eq!(client.parser().comments(), 0, "no keep-alive ever");
    }
    // What was queued is still received, then the end, without waiting.
    while let Ok(Some(frame)) = subscription.try_recv() {
        assert!(frame.events() >= 1);
    }
    assert!(matches!(
        recv_within(&subscription, Duration::MAX),
        Err(Error::Closed)
    ));

    // Dropping the server and the last handle shuts down again: at once.
    within("drop", move || {
        drop(server);
        drop(hub);
    });
}

#[test]
fn every_duration_at_zero() {
    init_logging();
    let hub = Hub::builder()
        .keep_alive(Some(Duration::ZERO))
        .write_timeout(Duration::ZERO)
        .shutdown_timeout(Duration::ZERO)
        .history_events(100)
        .history_bytes(1 << 20)
        .history_age(Some(Duration::ZERO))
        .retry(Some(Duration::ZERO))
        .retry_jitter(Duration::ZERO)
        .close_check(Some(Duration::ZERO))
        .request_timeout(Some(Duration::ZERO))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // A zero retry is sent as it is: reconnect at once.
    let connecting = Instant::now();
    let mut client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(client.status, 200);
    assert_eq!(first_retry(&mut client), 0);
    assert_eq!(client.parser().retry(), Some(0));

    // A zero keep-alive is one millisecond: keep-alives come, but no more
    // than one per millisecond since the stream began.
    assert!(
        client.read_raw_until(WAIT, |body| keep_alives(body) >= 10),
        "keep-alives arrive"
    );
    let elapsed = connecting.elapsed();
    let seen = keep_alives(client.body());
    assert!(
        seen as u128 <= elapsed.as_millis() + 1,
        "{seen} keep-alives in {elapsed:?}: more than one a millisecond"
    );

    // Events flow, with automatic ids, and a zero retry of their own.
    let subscription = Arc::new(hub.subscribe().expect("subscribe"));
    assert!(
        recv_within(&subscription, Duration::ZERO)
            .expect("open")
            .is_none(),
        "nothing queued yet"
    );
    hub.publish(&Event::new("first").with_retry(Duration::ZERO))
        .expect("publish");
    let first = client.expect_event(WAIT, "the first event");
    assert_eq!(first.data, "first");
    assert_eq!(first.retry, Some(0));
    assert!(!first.last_event_id.is_empty(), "an automatic id");
    hub.notify("second").expect("notify");
    assert_eq!(client.expect_event(WAIT, "the second event").data, "second");

    // recv_timeout(ZERO) takes what is already queued.
    assert!(
        wait_until(WAIT, || !subscription.receiver().is_empty()),
        "the events reach the subscription"
    );
    let frame = recv_within(&subscription, Duration::ZERO)
        .expect("open")
        .expect("a queued frame");
    assert!(frame.events() >= 1);

    // A zero age keeps nothing to replay: a client that missed the second
    // event gets the gap event instead.
    let mut behind = Client::connect(
        addr,
        "/events",
        "1.1",
        &[("Last-Event-ID", first.last_event_id.as_str())],
    )
    .expect("reconnect");
    let gap = behind.expect_event(WAIT, "the gap event");
    assert_eq!(gap.event_type, "sse-gap");
    assert_eq!(gap.data, "unknown-id");

    // No deadline to wait for: shutdown returns at once, Ok if the two
    // streams had ended already, otherwise naming those that had not; the
    // rest end on their own, cleanly.
    let closing = hub.clone();
    let result = within("shutdown", move || closing.shutdown());
    assert!(
        matches!(
            result,
            Ok(()) | Err(Error::ShutdownTimeout { threads: 1..=2 })
        ),
        "shutdown: {result:?}"
    );
    for client in [&mut client, &mut behind] {
        assert_eq!(client.wait_end(WAIT), Some(End::FinalChunk));
    }
    assert!(hub.is_closed());
    within("drop", move || {
        drop(server);
        drop(hub);
    });
}
