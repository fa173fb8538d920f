//! Eight threads notify at once: every client gets every event exactly once,
//! and each thread's events in the order that thread sent them.

mod support;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use sse_server::parse::EventParser;
use sse_server::{Server, Subscription};
use support::client::{Client, read_events};
use support::hubs::plain_hub;
use support::init_logging;

const THREADS: usize = 8;
const PER_THREAD: usize = 500;
const TOTAL: usize = THREADS * PER_THREAD;
const STREAMS: usize = 6;

/// Checks that `data` (in arrival order) holds every `t{thread}-{seq}`
/// exactly once, each thread's in increasing order.
fn check_sequence(who: &str, data: &[String]) {
    assert_eq!(data.len(), TOTAL, "{who}: number of events");
    let mut seen = HashSet::new();
    let mut next = [0usize; THREADS];
    for (at, item) in data.iter().enumerate() {
        assert!(seen.insert(item.clone()), "{who}: {item:?} received twice");
        let (t, seq) = item
            .strip_prefix('t')
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(t, seq)| Some((t.parse::<usize>().ok()?, seq.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("{who}: unexpected data {item:?} at {at}"));
        assert!(t < THREADS, "{who}: {item:?}");
        assert_eq!(
            seq, next[t],
            "{who}: thread {t}'s events out of order at position {at}"
        );
        next[t] += 1;
    }
    assert!(next.iter().all(|&n| n == PER_THREAD), "{who}: {next:?}");
}

fn drain_subscription(subscription: &Subscription) -> Vec<String> {
    let mut parser = EventParser::new();
    let mut data = Vec::new();
    while data.len() < TOTAL {
        let frame = subscription
            .recv_timeout(Duration::from_secs(10))
            .expect("the hub is running")
            .unwrap_or_else(|| panic!("subscription: only {} events arrived", data.len()));
        let events = parser.feed(frame.as_bytes());
        assert_eq!(
            events.len(),
            frame.events(),
            "Frame::events counts the events"
        );
        data.extend(events.into_iter().map(|e| e.data));
    }
    data
}

#[test]
fn eight_threads_notify_at_once_and_every_client_gets_every_event_once() {
    init_logging();
    // Room for every event even if each one took a queue slot of its own.
    let hub = plain_hub()
        .client_buffer(TOTAL * 2)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let clients: Vec<Client> = (0..STREAMS)
        .map(|i| {
            let version = if i % 2 == 0 { "1.1" } else { "1.0" };
            Client::connect(addr, "/events", version, &[]).expect("connect")
        })
        .collect();
    let subscription = hub.subscribe().expect("subscribe");
    assert_eq!(hub.stats().clients, STREAMS + 1);

    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            thread::spawn(move || {
                let events = read_events(&mut client, TOTAL, Duration::from_secs(10));
                let data: Vec<String> = events.into_iter().map(|e| e.data).collect();
                check_sequence(&format!("stream {i}"), &data);
                client
            })
        })
        .collect();

    let start = Arc::new(Barrier::new(THREADS));
    let publishers: Vec<_> = (0..THREADS)
        .map(|t| {
            let hub = hub.clone();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for seq in 0..PER_THREAD {
                    hub.notify(format!("t{t}-{seq}")).expect("notify");
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().expect("a publisher panicked");
    }

    check_sequence("subscription", &drain_subscription(&subscription));
    let mut clients = Vec::new();
    for reader in readers {
        clients.push(reader.join().expect("a reader panicked"));
    }

    let stats = hub.stats();
    assert_eq!(stats.published, TOTAL as u64);
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.queued, (TOTAL * (STREAMS + 1)) as u64);
    // Nothing beyond the events: no stream holds an extra one.
    assert!(subscription.try_recv().expect("open").is_none());
    for client in &mut clients {
        assert!(client.next_event(Duration::ZERO).is_none());
    }
    hub.shutdown().expect("shutdown");
}
