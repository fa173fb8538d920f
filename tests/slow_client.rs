//! A client that stops reading, under both slow-client policies.
//!
//! * `DropNewest` (the default): once the stalled client's socket buffers
//!   and queue are full it misses events, which `Stats::dropped` and its
//!   `ClientStats::dropped` count; `notify` never waits for it and the other
//!   clients get everything; when it reads again it gets a gap event
//!   (`event: sse-gap`, `data: missed <n>`) before the events after the
//!   hole.
//! * `Disconnect`: the stalled client's stream is ended after what was
//!   queued for it (with the final chunk, once it reads), it is counted in
//!   `Stats::evicted`, and `on_disconnect` says `Evicted`.
//!
//! Events of 64 KiB fill the stalled client's socket buffers in a few MB;
//! each is a frame of its own (the hub batches up to 64 KiB), so queue
//! slots and events correspond one to one.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use sse_server::parse::ParsedEvent;
use sse_server::{ClientId, DisconnectReason, Hub, Server, SlowClient};
use support::client::{Client, End};
use support::fixed::fixed_payload;
use support::hubs::{new_client_id, plain_hub};
use support::init_logging;
use support::wait::wait_until;

const BIG: usize = 64 * 1024;
const WAIT: Duration = Duration::from_secs(10);
/// Events small enough to batch, published while the client is stalled (it
/// misses some of them: how many depends on what its writer took from its
/// queue before its write blocked).
const BURST: usize = 1_000;

/// The sequence number at the start of every test event's data.
fn seq_of(event: &ParsedEvent) -> usize {
    event.data[..10].parse().unwrap_or_else(|_| {
        panic!(
            "not a test event: {:?}",
            &event.data[..20.min(event.data.len())]
        )
    })
}

fn small(seq: usize) -> String {
    format!("{seq:010} small")
}

/// A client reading on a thread of its own: its events come back from
/// `join`, `progress` counts them as they come.
struct Reader {
    progress: Arc<AtomicUsize>,
    /// The events, how the stream ended, and the client itself: still
    /// connected (a client that closes is removed from the hub at once).
    thread: thread::JoinHandle<(Vec<ParsedEvent>, Option<End>, Client)>,
}

impl Reader {
    /// Reads until `until` events have come (or the stream ends, or nothing
    /// comes for `WAIT`).
    fn start(mut client: Client, until: Arc<AtomicUsize>) -> Reader {
        let progress = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&progress);
        let thread = thread::spawn(move || {
            let mut events = Vec::new();
            while events.len() < until.load(Ordering::Acquire) {
                match client.next_event(WAIT) {
                    Some(event) => {
                        events.push(event);
                        counter.store(events.len(), Ordering::Release);
                    }
                    None => break,
                }
            }
            let end = client.end();
            (events, end, client)
        });
        Reader { progress, thread }
    }

    fn wait_for(&self, n: usize) {
        assert!(
            wait_until(WAIT, || self.progress.load(Ordering::Acquire) >= n),
            "the reading client got {} events, not {n}, within {WAIT:?}",
            self.progress.load(Ordering::Acquire)
        );
    }
}

/// Two clients of one server: one that never reads (until the test reads
/// from it), one that reads on a thread of its own until `until` events.
struct Pair {
    _server: Server,
    stalled: Client,
    stalled_id: ClientId,
    reader: Reader,
    reader_id: ClientId,
    until: Arc<AtomicUsize>,
}

impl Pair {
    fn connect(hub: &Hub) -> Pair {
        let server = Server::bind("127.0.0.1:0", hub).expect("bind");
        let addr = server.local_addr();
        let stalled = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
        let stalled_id = new_client_id(hub, &[]);
        let reader_client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
        let reader_id = new_client_id(hub, &[stalled_id]);
        let until = Arc::new(AtomicUsize::new(usize::MAX));
        let reader = Reader::start(reader_client, Arc::clone(&until));
        Pair {
            _server: server,
            stalled,
            stalled_id,
            reader,
            reader_id,
            until,
        }
    }
}

/// What a `DropNewest` run saw.
struct DropRun {
    published: usize,
    dropped: u64,
    /// Everything the stalled client got once it read again, the events
    /// published after it resumed included.
    stalled_events: Vec<ParsedEvent>,
    after: Vec<usize>,
}

/// A stalled client and a reading one under `DropNewest`: big events until
/// the stalled one misses some, a burst of small ones from a publisher
/// thread, then the stalled client reads again and three more events come.
fn drop_newest_run() -> DropRun {
    init_logging();
    let hub = plain_hub()
        .client_buffer(8)
        .keep_alive(None)
        .build()
        .expect("build the hub");
    let Pair {
        _server,
        mut stalled,
        stalled_id,
        reader,
        reader_id,
        until,
    } = Pair::connect(&hub);

    // Big events, with the reading client at most two behind, until the
    // stalled client misses one.
    let mut seq = 0;
    while hub.client_stats(stalled_id).expect("stalled").dropped == 0 {
        assert!(
            seq < 1_000,
            "the stalled client missed nothing in {seq} events of 64 KiB"
        );
        hub.notify(fixed_payload(seq, BIG)).expect("notify");
        seq += 1;
        reader.wait_for(seq.saturating_sub(2));
    }

    // A publisher thread: many small events, paced only by the reading
    // client (a queue of 8 could overflow in a burst), never by the
    // stalled one.
    let first_small = seq;
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    {
        let hub = hub.clone();
        let progress = Arc::clone(&reader.progress);
        thread::spawn(move || {
            for seq in first_small..first_small + BURST {
                hub.notify(small(seq)).expect("notify");
                if seq % 4 == 3 {
                    let behind = (seq + 1).saturating_sub(4);
                    if !wait_until(WAIT, || progress.load(Ordering::Acquire) >= behind) {
                        return;
                    }
                }
            }
            let _ = done_tx.send(());
        });
    }
    match done_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => {}
        Err(RecvTimeoutError::Timeout) => panic!("the publisher did not finish its notifies"),
        Err(RecvTimeoutError::Disconnected) => panic!("the reading client fell behind"),
    }
    let published = first_small + BURST;
    reader.wait_for(published);
    assert!(
        stalled.body().is_empty(),
        "the stalled client has read nothing"
    );

    // The counters: only the stalled client missed events. How many it
    // missed depends on how much its writer took from its queue before its
    // write blocked, but the accounting is exact: every event was queued
    // for the reading client, and for the stalled one either queued or
    // counted as missed (no replay history, so nothing else is queued).
    let dropped = hub.client_stats(stalled_id).expect("stalled").dropped;
    assert!(
        dropped > 0 && dropped < published as u64,
        "missed {dropped} of {published}"
    );
    let stats = hub.stats();
    assert_eq!(stats.dropped, dropped, "{stats:?}");
    assert_eq!(stats.published, published as u64, "{stats:?}");
    assert_eq!(
        stats.queued + stats.dropped,
        2 * published as u64,
        "each event queued or missed, once per client: {stats:?}"
    );
    assert_eq!(hub.client_stats(reader_id).expect("reader").dropped, 0);
    assert_eq!(hub.stats().streams, 2);

    // It reads again: what was in its socket buffers and queue, and a gap
    // event for the rest.
    let mut stalled_events = Vec::new();
    let data_events =
        |events: &[ParsedEvent]| events.iter().filter(|e| e.event_type == "message").count() as u64;
    while data_events(&stalled_events) + dropped < published as u64 {
        let event = stalled.next_event(WAIT).unwrap_or_else(|| {
            panic!(
                "the stalled client got {} events after it resumed and missed {dropped}, \
                 of {published}; then nothing for {WAIT:?}",
                data_events(&stalled_events)
            )
        });
        stalled_events.push(event);
    }
    assert_eq!(data_events(&stalled_events) + dropped, published as u64);
    // Three more events, for both; the reading client stops after them.
    until.store(published + 3, Ordering::Release);
    let after: Vec<usize> = (published..published + 3).collect();
    for &seq in &after {
        hub.notify(small(seq)).expect("notify");
        // The gap event comes just before the first event after the hole,
        // which may be this one.
        loop {
            let event = stalled.expect_event(WAIT, &format!("event {seq} after resuming"));
            let done = event.event_type == "message" && seq_of(&event) == seq;
            stalled_events.push(event);
            if done {
                break;
            }
        }
    }
    reader.wait_for(published + 3);
    let (reader_events, _, _reader) = reader.thread.join().expect("the reader panicked");
    let reader_seqs: Vec<usize> = reader_events.iter().map(seq_of).collect();
    assert_eq!(
        reader_seqs,
        (0..published + 3).collect::<Vec<_>>(),
        "the reading client got every event, in order"
    );
    assert!(reader_events.iter().all(|e| e.event_type == "message"));
    assert_eq!(hub.client_stats(reader_id).expect("reader").dropped, 0);
    assert_eq!(
        hub.stats().dropped,
        dropped,
        "no more misses after resuming"
    );
    hub.shutdown().expect("shutdown");
    DropRun {
        published,
        dropped,
        stalled_events,
        after,
    }
}

/// What the stalled client read, in order: a data event's sequence number,
/// or a gap event's count of missed events.
#[derive(Debug, PartialEq, Eq)]
enum Item {
    Data(usize),
    Gap(u64),
}

fn items(events: &[ParsedEvent]) -> Vec<Item> {
    events
        .iter()
        .map(|event| match event.event_type.as_str() {
            "message" => Item::Data(seq_of(event)),
            "sse-gap" => {
                let count = event.data.strip_prefix("missed ").unwrap_or_else(|| {
                    panic!("a gap event says what was missed: {:?}", event.data)
                });
                Item::Gap(count.parse().expect("a count of missed events"))
            }
            other => panic!("unexpected event type {other:?}"),
        })
        .collect()
}

/// The holes in the stalled client's events: `(last before, first after,
/// what the gap event just before the first after said)`. How many holes
/// there are depends on when its writer could take frames out of its
/// queue; what each one looks like does not.
fn holes(items: &[Item]) -> Vec<(Option<usize>, usize, Option<u64>)> {
    let mut holes = Vec::new();
    let mut last: Option<usize> = None;
    let mut announced: Option<u64> = None;
    for item in items {
        match *item {
            Item::Gap(count) => {
                assert!(announced.is_none(), "two gap events in a row: {items:?}");
                announced = Some(count);
            }
            Item::Data(seq) => {
                let expected = last.map_or(0, |last| last + 1);
                assert!(seq >= expected, "out of order after {last:?}: {seq}");
                if seq != expected || announced.is_some() {
                    holes.push((last, seq, announced.take()));
                }
                last = Some(seq);
            }
        }
    }
    assert!(announced.is_none(), "a gap event with no event after it");
    holes
}

#[test]
fn drop_newest_a_stalled_client_misses_events_and_is_told_with_a_gap_event() {
    let run = drop_newest_run();
    let items = items(&run.stalled_events);
    let holes = holes(&items);
    assert!(!holes.is_empty(), "at least one hole");
    // Every hole is announced, with its exact size, and the sizes add up to
    // what the hub counted as missed.
    for &(before, after, announced) in &holes {
        let size = (after - before.map_or(0, |b| b + 1)) as u64;
        assert!(size > 0, "a gap event with no hole before event {after}");
        assert_eq!(
            announced,
            Some(size),
            "the hole {before:?}..{after} is announced with its size"
        );
    }
    let missed: u64 = holes.iter().filter_map(|&(_, _, n)| n).sum();
    assert_eq!(missed, run.dropped);
    let data: Vec<usize> = items
        .iter()
        .filter_map(|item| match *item {
            Item::Data(seq) => Some(seq),
            Item::Gap(_) => None,
        })
        .collect();
    assert_eq!(data[0], 0, "it got the first event");
    assert_eq!(data.len() as u64 + run.dropped, run.published as u64 + 3);
    assert_eq!(&data[data.len() - 3..], &run.after[..]);
}

#[test]
fn drop_newest_the_gap_event_stands_where_the_hole_is() {
    let run = drop_newest_run();
    let items = items(&run.stalled_events);
    // Each gap event comes right before the first event after its hole:
    // never after events that were published before the hole (they would
    // then follow on from the event before the gap event).
    for (at, item) in items.iter().enumerate() {
        if let Item::Gap(count) = *item {
            let before = items[..at].iter().rev().find_map(|item| match *item {
                Item::Data(seq) => Some(seq),
                Item::Gap(_) => None,
            });
            let next = match items.get(at + 1) {
                Some(&Item::Data(seq)) => seq,
                other => panic!("the gap event at {at} is followed by {other:?}"),
            };
            assert_eq!(
                (next - before.map_or(0, |b| b + 1)) as u64,
                count,
                "the gap event (missed {count}) after event {before:?} stands right \
                 before the first event after the hole ({next})"
            );
        }
    }
    assert!(items.iter().any(|item| matches!(item, Item::Gap(_))));
}

#[test]
fn disconnect_policy_ends_a_stalled_clients_stream_after_what_was_queued() {
    init_logging();
    let (gone_tx, gone_rx) = crossbeam_channel::unbounded();
    let hub = plain_hub()
        .client_buffer(4)
        .slow_client(SlowClient::Disconnect)
        .keep_alive(None)
        .on_disconnect(move |d| {
            let _ = gone_tx.send((d.id, d.reason.clone(), d.delivered, d.dropped));
        })
        .build()
        .expect("build the hub");
    let Pair {
        _server,
        mut stalled,
        stalled_id,
        reader,
        reader_id,
        until,
    } = Pair::connect(&hub);

    let mut seq = 0;
    while hub.stats().evicted == 0 {
        assert!(seq < 1_000, "no eviction after {seq} events of 64 KiB");
        hub.notify(fixed_payload(seq, BIG)).expect("notify");
        seq += 1;
        // The reading client stays at most one behind: its queue of 4
        // never fills.
        reader.wait_for(seq.saturating_sub(1));
    }
    // The hub let go of the stalled client at once, while its writer is
    // still blocked on the full socket.
    assert_eq!(hub.stats().evicted, 1);
    assert!(
        wait_until(WAIT, || hub.client_stats(stalled_id).is_none()),
        "the evicted client leaves the hub's list"
    );
    assert_eq!(hub.stats().clients, 1);
    assert_eq!(hub.stats().streams, 2, "its stream is still being written");
    assert!(gone_rx.try_recv().is_err(), "no disconnect yet");

    // The reading client is unaffected; it stops after these.
    until.store(seq + 5, Ordering::Release);
    for _ in 0..5 {
        hub.notify(fixed_payload(seq, BIG)).expect("notify");
        seq += 1;
        reader.wait_for(seq);
    }
    assert!(!hub.client_stats(reader_id).expect("reader").evicted);
    assert_eq!(hub.client_stats(reader_id).expect("reader").dropped, 0);

    // The stalled client reads again: what was queued for it, in order
    // from the first event, then the final chunk.
    assert!(stalled.body().is_empty());
    let end = stalled.wait_end(WAIT);
    assert_eq!(end, Some(End::FinalChunk), "{stalled:?}");
    let events = stalled.take_parsed();
    let data: Vec<usize> = events
        .iter()
        .filter(|e| e.event_type == "message")
        .map(seq_of)
        .collect();
    assert_eq!(
        data,
        (0..data.len()).collect::<Vec<_>>(),
        "from the first, in order"
    );
    assert!(
        data.len() < seq,
        "it got {} events, but was evicted before the last {seq}",
        data.len()
    );
    let others: Vec<&ParsedEvent> = events
        .iter()
        .filter(|e| e.event_type != "message")
        .collect();
    eprintln!(
        "besides its {} events the evicted client got {others:?}",
        data.len()
    );
    assert!(
        others
            .iter()
            .all(|e| e.event_type == "sse-gap" && e.data == "missed 1"),
        "only the missed event may be announced: {others:?}"
    );

    let (id, reason, delivered, dropped) = gone_rx.recv_timeout(WAIT).expect("on_disconnect");
    assert_eq!(id, stalled_id);
    assert_eq!(reason, DisconnectReason::Evicted);
    assert_eq!(delivered, data.len() as u64);
    assert_eq!(dropped, 1, "the event that did not fit");
    assert!(
        wait_until(WAIT, || hub.stats().streams == 1),
        "{:?}",
        hub.stats()
    );
    assert_eq!(hub.stats().evicted, 1);

    let (reader_events, _, _reader) = reader.thread.join().expect("the reader panicked");
    assert_eq!(
        reader_events.iter().map(seq_of).collect::<Vec<_>>(),
        (0..seq).collect::<Vec<_>>()
    );
    hub.shutdown().expect("shutdown");
    assert!(
        gone_rx
            .recv_timeout(WAIT)
            .is_ok_and(|(id, reason, ..)| id == reader_id && reason == DisconnectReason::Shutdown)
    );
}
