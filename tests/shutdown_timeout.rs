//! `Hub::shutdown` gives up at its deadline on a stream that cannot drain
//! in time: a client that reads, but too slowly for its backlog. The
//! shutdown returns `Error::ShutdownTimeout` naming exactly the writers
//! still sending (not the streams that had nothing left to send), after its
//! deadline and within a little more; the writer it left behind still
//! delivers every event and ends its stream cleanly on its own.
//!
//! A client that stops reading altogether is cut off at once during a
//! shutdown (`tests/shutdown_stalled.rs`): a writer is only waited for
//! while its sends make progress, that is while each blocked send gets
//! some room within the socket's send timeout tick (250 ms). Linux wakes a
//! blocked sender once a third of its send buffer has drained (the buffer
//! grows to the `tcp_wmem` maximum, 4 MiB by default, at once on
//! loopback), so the slow client here reads in bursts of half that, a
//! tenth of a second apart: every burst makes room for the writer well
//! within a tick, while the client takes at most a burst per pause. Its
//! receive buffer is fixed small, so the kernel's buffers hold little of
//! the backlog, and the backlog is sized so that the writer cannot finish
//! in less than three times the shutdown's deadline, whatever the timing.
//!
//! Thread counts are process-wide, so this file holds this one test only.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::crossbeam_channel;
use sse_server::{ClientId, DisconnectReason, Error, Event, Server};
use support::client::End;
use support::fixed::{FixedEventReader, fixed_payload};
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{thread_names, threads_named};
use support::wait::wait_until;

const SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(250);
/// "Within the deadline plus a fraction of a second", with room for a
/// loaded machine.
const SLACK: Duration = Duration::from_secs(2);
/// The size of each event of the backlog.
const PAYLOAD: usize = 32 * 1024;
/// The slow client's pause between bursts.
const PAUSE: Duration = Duration::from_millis(100);
/// Its receive buffer (the kernel doubles it).
const RECV_BUFFER: usize = 64 * 1024;
/// The longest any wait or read here waits.
const WAIT: Duration = Duration::from_secs(60);

/// The data of event `seq`, as `fixed_payload` makes it (its number in ten
/// digits, `PAYLOAD` bytes in all) but padded mostly with four-byte
/// characters: the encoder looks for line breaks character by character,
/// which a debug build does slowly, and this makes four times fewer of them.
fn payload(seq: usize) -> String {
    let mut data = fixed_payload(seq, 10);
    let wide = (PAYLOAD - 10) / 4;
    data.extend(std::iter::repeat_n('\u{1F570}', wide));
    data.extend(std::iter::repeat_n('x', PAYLOAD - 10 - 4 * wide));
    assert_eq!(data.len(), PAYLOAD);
    data
}

/// The most a TCP send buffer grows to: the last of `tcp_wmem`.
fn send_buffer_max() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem")
        .ok()
        .and_then(|text| text.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(4 * 1024 * 1024)
}

#[test]
fn shutdown_gives_up_on_a_stream_too_slow_to_drain_and_says_how_many() {
    init_logging();
    // Each burst drains more than a third of the writer's send buffer even
    // after what the client's receive buffer held.
    let send_buffer = send_buffer_max();
    let burst = send_buffer / 2;
    // In a time t the client reads at most burst * (1 + t / PAUSE). It may
    // have read two bursts before the shutdown begins; the writer is done
    // once what is left fits in the two sockets' buffers. So with this
    // backlog the client must read for at least three deadlines after the
    // shutdown begins before the writer can be done.
    let deadlines = 3 * SHUTDOWN_TIMEOUT.as_millis() as usize;
    let backlog =
        3 * burst + send_buffer + 2 * RECV_BUFFER + burst * deadlines / PAUSE.as_millis() as usize;
    let events = backlog.div_ceil(PAYLOAD + 8);
    eprintln!(
        "send buffer {send_buffer} bytes, bursts of {burst}, backlog {events} events ({backlog} bytes)"
    );
    let (gone_tx, gone_rx) = crossbeam_channel::unbounded();
    let hub = plain_hub()
        .shutdown_timeout(SHUTDOWN_TIMEOUT)
        // Room for the whole backlog: no event is missed, so the slow
        // client's stream holds exactly the events published.
        .client_buffer(2 * events)
        // The slow client takes nothing while the backlog is published
        // (encoding the backlog takes seconds in a debug build).
        .write_timeout(Duration::from_secs(300))
        .keep_alive(None)
        .on_disconnect(move |gone| {
            let _ = gone_tx.send((gone.id, gone.reason.clone(), gone.delivered));
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // Two idle clients that get none of the backlog (it goes to a topic):
    // their writers have nothing to send and end at once.
    let idle: Vec<FixedEventReader> = ["1.1", "1.0"]
        .into_iter()
        .map(|version| {
            let client = FixedEventReader::connect(addr, version, PAYLOAD).expect("connect");
            assert_eq!(client.status, 200);
            client
        })
        .collect();
    let idle_ids: Vec<ClientId> = hub.clients().iter().map(|client| client.id).collect();
    assert_eq!(idle_ids.len(), 2);
    let mut slow = FixedEventReader::connect_to(
        addr,
        "/events?topic=backlog",
        "1.1",
        PAYLOAD,
        Some(RECV_BUFFER),
    )
    .expect("connect the slow client");
    assert_eq!(slow.status, 200);
    // A client that has its response head is registered.
    let slow_id = hub
        .clients()
        .into_iter()
        .map(|client| client.id)
        .find(|id| !idle_ids.contains(id))
        .expect("the slow client is registered");

    let (start_tx, start_rx) = crossbeam_channel::bounded::<()>(1);
    let hurry = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicUsize::new(0));
    let reader = {
        let hurry = Arc::clone(&hurry);
        let progress = Arc::clone(&progress);
        thread::spawn(move || {
            start_rx.recv_timeout(WAIT).expect("told to start reading");
            let end = slow.read_in_bursts(burst, PAUSE, &hurry, WAIT, &progress);
            let end = end.or_else(|| slow.read_to_end(WAIT, &progress));
            (end, slow.events())
        })
    };

    let started = Instant::now();
    for seq in 0..events {
        let event = Event::new(payload(seq));
        hub.publish_to("backlog", &event).expect("publish");
    }
    assert!(
        wait_until(WAIT, || hub.stats().queued == events as u64),
        "the hub queued the backlog: {:?}",
        hub.stats()
    );
    eprintln!("publishing took {:?}", started.elapsed());

    // The client starts reading; once it has taken a first event, its
    // writer is sending, and the shutdown begins.
    start_tx.send(()).expect("start the reader");
    assert!(
        wait_until(WAIT, || progress.load(Ordering::Acquire) >= 1),
        "the slow client reads"
    );
    let started = Instant::now();
    let result = hub.shutdown();
    let took = started.elapsed();
    let read_by_then = progress.load(Ordering::Acquire);
    hurry.store(true, Ordering::Release);
    eprintln!("shutdown took {took:?}; the slow client had read {read_by_then} of {events} events");

    assert!(
        matches!(result, Err(Error::ShutdownTimeout { threads: 1 })),
        "shutdown: {result:?} (the slow client had read {read_by_then} of {events} events)"
    );
    let error = result.expect_err("checked above");
    assert_eq!(
        error.to_string(),
        "shutdown deadline passed with 1 writer thread(s) still running"
    );
    assert!(
        took >= SHUTDOWN_TIMEOUT,
        "shutdown gave up after {took:?}, before its deadline {SHUTDOWN_TIMEOUT:?}"
    );
    assert!(
        took < SHUTDOWN_TIMEOUT + SLACK,
        "shutdown took {took:?}, more than {SHUTDOWN_TIMEOUT:?} plus {SLACK:?}"
    );
    assert!(hub.is_closed());

    // The writer left behind keeps going on its own: the client gets every
    // event and the final chunk once it reads faster.
    let (end, received) = reader.join().expect("the slow reader panicked");
    assert_eq!(end, Some(End::FinalChunk));
    assert_eq!(received, events);
    // The idle streams ended cleanly at the shutdown, with nothing in them.
    for (mut client, want) in idle.into_iter().zip([End::FinalChunk, End::Eof]) {
        let counter = AtomicUsize::new(0);
        assert_eq!(client.read_to_end(WAIT, &counter), Some(want));
        assert_eq!(client.events(), 0);
    }

    // Every stream ended as a shutdown; the slow one after writing every
    // event.
    let mut gone = Vec::new();
    while gone.len() < 3 {
        let next = gone_rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("only {} disconnects: {gone:?}", gone.len()));
        gone.push(next);
    }
    for (id, reason, delivered) in gone {
        assert_eq!(reason, DisconnectReason::Shutdown, "client {id}");
        let want = if id == slow_id { events as u64 } else { 0 };
        assert_eq!(delivered, want, "client {id}");
    }
    assert!(
        wait_until(WAIT, || threads_named("sse-") == 0),
        "threads left: {:?}",
        thread_names()
    );
    drop(server);
}
