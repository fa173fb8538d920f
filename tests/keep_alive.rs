//! Keep-alives: after `keep_alive` of silence a stream carries the comment
//! line `:\n` (and again after each further interval of silence); with
//! keep-alives off nothing is sent while the stream is idle; and every
//! event restarts the silence timer, so a stream whose events come more
//! often than the interval carries no keep-alive at all.
//!
//! The hubs come from `plain_hub()` (no `retry:` line, no automatic ids), so
//! the stream's bytes are exact.

mod support;

use std::time::{Duration, Instant};

use sse_server::Server;
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::ms;

const KEEP_ALIVE: &[u8] = b":\n";

/// How many keep-alive lines `body` holds; panics if it holds anything
/// else.
fn count_keep_alives(body: &[u8]) -> usize {
    assert!(
        body.len().is_multiple_of(KEEP_ALIVE.len()) && body.chunks(2).all(|c| c == KEEP_ALIVE),
        "an idle stream carries nothing but keep-alive lines; got {:?}",
        String::from_utf8_lossy(body)
    );
    body.len() / KEEP_ALIVE.len()
}

#[test]
fn an_idle_stream_carries_a_keep_alive_line_after_each_interval_of_silence() {
    init_logging();
    let interval = ms(200);
    let hub = plain_hub()
        .keep_alive(Some(interval))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");

    // Both streams idle side by side, so their intervals overlap.
    let mut clients: Vec<(&str, Client, Instant)> = ["1.1", "1.0"]
        .into_iter()
        .map(|version| {
            let client =
                Client::connect(server.local_addr(), "/events", version, &[]).expect("connect");
            (version, client, Instant::now())
        })
        .collect();
    for (version, client, connected) in &mut clients {
        assert_eq!(client.status, 200, "HTTP/{version}");
        // The first keep-alive comes after one interval of silence, not
        // before (the writer waits the whole interval for an event).
        assert!(
            client.read_raw_len(Duration::from_secs(5), KEEP_ALIVE.len()),
            "HTTP/{version}: no keep-alive within 5 s of a {interval:?} interval; body {:?}",
            String::from_utf8_lossy(client.body())
        );
        let first = connected.elapsed();
        assert!(
            first >= interval - ms(50),
            "HTTP/{version}: the first keep-alive came after {first:?}, before the interval {interval:?}"
        );
        assert_eq!(
            &client.body()[..2],
            KEEP_ALIVE,
            "HTTP/{version}: exactly `:\\n`"
        );

        // ... and again after each further interval.
        assert!(
            client.read_raw_len(Duration::from_secs(10), 4 * KEEP_ALIVE.len()),
            "HTTP/{version}: four keep-alives within 10 s; body {:?}",
            String::from_utf8_lossy(client.body())
        );
        let four = connected.elapsed();
        assert!(
            four >= interval * 4 - ms(50),
            "HTTP/{version}: four keep-alives after only {four:?}"
        );
        let seen = count_keep_alives(client.body());
        assert!(seen >= 4, "HTTP/{version}: {seen} keep-alives");

        // A keep-alive is a comment: no event reaches the client, and the
        // parser counted each line as a comment.
        assert_eq!(client.take_parsed(), Vec::new(), "HTTP/{version}");
        assert_eq!(client.parser().comments(), seen, "HTTP/{version}");
        assert!(!client.parser().has_pending(), "HTTP/{version}");
        if *version == "1.1" {
            // One chunk per keep-alive: each went out on its own write.
            assert!(
                client.chunk_sizes().iter().all(|&size| size == 2),
                "chunks {:?}",
                client.chunk_sizes()
            );
        }
    }

    // Keep-alives go on after an event, too.
    hub.notify("between").expect("notify");
    for (version, client, _) in &mut clients {
        let event = client.expect_event(Duration::from_secs(5), "the event");
        assert_eq!(event.data, "between", "HTTP/{version}");
        let wanted: &[u8] = b"data: between\n\n";
        let at = client
            .body()
            .windows(wanted.len())
            .position(|w| w == wanted)
            .expect("the event's bytes");
        count_keep_alives(&client.body()[..at]);
        let after = at + wanted.len();
        assert!(
            client.read_raw_len(Duration::from_secs(5), after + 2 * KEEP_ALIVE.len()),
            "HTTP/{version}: keep-alives after an event"
        );
        count_keep_alives(&client.body()[after..]);
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn with_keep_alive_off_an_idle_stream_stays_silent() {
    init_logging();
    // `None` must win over an interval set before it.
    let would_be = ms(100);
    let hub = plain_hub()
        .keep_alive(Some(would_be))
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");

    let mut clients: Vec<Client> = ["1.1", "1.0"]
        .into_iter()
        .map(|version| {
            Client::connect(server.local_addr(), "/events", version, &[]).expect("connect")
        })
        .collect();
    // Ten would-be intervals of silence (a bounded read that must time
    // out: any byte would end it early).
    let until = Instant::now() + would_be * 10;
    for client in &mut clients {
        // At least one real read for each client.
        let left = until.saturating_duration_since(Instant::now()).max(ms(20));
        let got = client.read_raw_len(left, 1);
        assert!(
            !got,
            "a byte arrived on an idle stream with keep-alives off: {:?}",
            String::from_utf8_lossy(client.body())
        );
        assert_eq!(client.end(), None, "the stream is still open");
    }
    // The streams are alive, and an event is all they carry.
    hub.notify("awake").expect("notify");
    for client in &mut clients {
        let event = client.expect_event(Duration::from_secs(5), "an event");
        assert_eq!(event.data, "awake");
        assert_eq!(client.body(), b"data: awake\n\n");
        assert_eq!(client.parser().comments(), 0);
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn events_more_often_than_the_interval_leave_no_room_for_a_keep_alive() {
    init_logging();
    // Events every 70 ms against a 700 ms interval: a 10x margin. If the
    // timer were not restarted by each event (a fixed ticker), keep-alives
    // would fall between the events, at 0.7 s and 1.4 s.
    let interval = ms(700);
    let pace = ms(70);
    let events = 24;
    let hub = plain_hub()
        .keep_alive(Some(interval))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client = Client::connect(server.local_addr(), "/events", "1.1", &[]).expect("connect");

    let mut expected = Vec::new();
    let started = Instant::now();
    for i in 0..events {
        let data = format!("tick {i}");
        hub.notify(&data).expect("notify");
        let event = client.expect_event(Duration::from_secs(5), &format!("event {i}"));
        assert_eq!(event.data, data);
        expected.extend_from_slice(format!("data: {data}\n\n").as_bytes());
        // Pacing, not synchronisation: the gap between two events.
        std::thread::sleep(pace);
    }
    let took = started.elapsed();
    assert!(
        took >= interval * 2,
        "the events spanned {took:?}, at least two intervals"
    );
    assert_eq!(
        String::from_utf8_lossy(client.body()),
        String::from_utf8_lossy(&expected),
        "the stream holds the events and no keep-alive between them"
    );
    assert_eq!(client.parser().comments(), 0);

    // Silence again: now the keep-alive comes.
    let len = client.body().len();
    assert!(
        client.read_raw_len(Duration::from_secs(5), len + KEEP_ALIVE.len()),
        "a keep-alive once the events stop"
    );
    assert_eq!(&client.body()[len..], KEEP_ALIVE);
    hub.shutdown().expect("shutdown");
}
