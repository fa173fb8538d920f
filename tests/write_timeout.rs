//! `write_timeout`: a client that connects and never reads is cut off once
//! its socket buffers are full and it has taken no bytes for the write
//! timeout, while 100 reading clients get every event of 64 KiB, no later
//! than without it.
//!
//! The test first measures the readers' per-event latency alone (the
//! baseline), then connects the stalled client and keeps publishing, at the
//! same pace, until the stalled client's writer thread has ended. A
//! loopback connection that is not read takes a few MB before writes block:
//! the client's receive queue fills first (about 128 KB: its window closes
//! and from then on it takes no bytes), then the server's send buffer,
//! which Linux grows up to 4 MB while the writer keeps writing. On this
//! machine it is the socket's `TCP_USER_TIMEOUT` (set to the write timeout)
//! that ends the connection, about the write timeout after the window
//! closed; the writer's own timer, which counts from the first write that
//! makes no progress, would come later. The test reads the queues of both
//! ends from `/proc/net/tcp` to know when the client stopped taking bytes.
//!
//! A second test checks what the disconnect hook is told. Both watch writer
//! threads by name and the first measures latencies, so they run one at a
//! time.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use sse_server::{ClientId, DisconnectReason, Server};
use support::client::End;
use support::fixed::{fixed_payload, spawn_fixed_readers};
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{TcpRow, tcp_rows, threads_named_exactly};
use support::serial;
use support::wait::{ms, wait_until};

const READERS: usize = 100;
const PAYLOAD: usize = 64 * 1024;
const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// How much later than the write timeout the stalled writer may end, after
/// the client stopped taking bytes: the time the send buffer takes to fill,
/// a tick of the socket's send timeout (250 ms), and scheduling on a busy
/// 2-core machine.
const END_SLACK: Duration = Duration::from_secs(3);
/// One event every 10 ms at most ...
const PACE: Duration = Duration::from_millis(10);
/// ... and never more than this many ahead of the slowest reader (so no
/// reader's queue overflows).
const WINDOW: usize = 4;
const BASELINE_EVENTS: usize = 40;
const WAIT: Duration = Duration::from_secs(20);

/// The send and receive queues (bytes) of both ends of a loopback TCP
/// connection, from one read of `/proc/net/tcp`: the socket from `a` to
/// `b`, and the one from `b` to `a`.
type Queues = Option<(u64, u64)>;

fn tcp_queues(a: SocketAddr, b: SocketAddr) -> (Queues, Queues) {
    let rows = tcp_rows(&[(a, b), (b, a)]);
    let queues = |row: Option<TcpRow>| row.map(|row| (row.tx_queue, row.rx_queue));
    (queues(rows[0]), queues(rows[1]))
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let at = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[at]
}

/// What the monitor saw of the stalled client.
#[derive(Debug, Default)]
struct Stalled {
    /// Events its writer wrote (into the socket's send buffer).
    delivered: u64,
    /// The most bytes seen in the client socket's receive queue, and in
    /// the server socket's send queue.
    client_rx: u64,
    server_tx: u64,
    /// From the last growth of each to the writer thread's end.
    after_rx_full: Duration,
    after_tx_full: Duration,
    after_last_write: Duration,
}

// The tests of this file run one at a time (`serial`): the first watches a
// writer thread by name, and counts on the machine for its latencies.

struct Publisher {
    hub: sse_server::Hub,
    progress: Vec<Arc<AtomicUsize>>,
    published_at: Vec<Instant>,
}

impl Publisher {
    /// Publishes the next event once the slowest reader is at most
    /// `WINDOW` behind and `PACE` has passed since the last one.
    fn publish_next(&mut self) {
        let seq = self.published_at.len();
        let behind = seq.saturating_sub(WINDOW);
        let progress = &self.progress;
        assert!(
            wait_until(WAIT, || progress
                .iter()
                .all(|p| p.load(Ordering::Acquire) >= behind)),
            "a reader fell more than {WINDOW} events behind event {seq}: {:?}",
            progress.iter().map(|p| p.load(Ordering::Acquire)).min()
        );
        if let Some(last) = self.published_at.last() {
            let next = *last + PACE;
            // Pacing, not synchronisation.
            thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        let data = fixed_payload(seq, PAYLOAD);
        self.published_at.push(Instant::now());
        self.hub.notify(data).expect("notify");
    }
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_slows_no_one() {
    let _serial = serial();
    init_logging();
    let (gone_tx, gone_rx) = crossbeam_channel::unbounded();
    let hub = plain_hub()
        .write_timeout(WRITE_TIMEOUT)
        .keep_alive(None)
        .client_buffer(64)
        .on_disconnect(move |d| {
            let _ = gone_tx.send((d.id, d.reason.clone(), d.dropped));
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // The readers, each on a thread of its own; one in four on HTTP/1.0.
    let (progress, readers) = spawn_fixed_readers(addr, READERS, PAYLOAD, WAIT);
    assert_eq!(hub.stats().streams, READERS);
    let reader_ids: Vec<ClientId> = hub.clients().into_iter().map(|c| c.id).collect();
    let mut publisher = Publisher {
        hub: hub.clone(),
        progress,
        published_at: Vec::new(),
    };

    // The baseline: the readers alone.
    for _ in 0..BASELINE_EVENTS {
        publisher.publish_next();
    }

    // The client that never reads.
    let mut stalled = TcpStream::connect(addr).expect("connect the stalled client");
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: stalled\r\nAccept: text/event-stream\r\n\r\n")
        .expect("send the stalled client's request");
    assert!(
        wait_until(WAIT, || hub.stats().clients == READERS + 1),
        "the stalled client is registered"
    );
    let stalled_id = hub
        .clients()
        .into_iter()
        .map(|c| c.id)
        .find(|id| !reader_ids.contains(id))
        .expect("the stalled client's id");
    let writer_name = format!("sse-client-{stalled_id}");
    assert_eq!(threads_named_exactly(&writer_name), 1);

    // Watches the stalled client: when its socket's receive queue last grew
    // (after that it takes no bytes: its window is closed), when the
    // server's send queue to it last grew (after that both buffers are
    // full), when its writer last wrote (its delivered count grew), and
    // when its writer thread ended.
    let client_end = stalled.local_addr().expect("local address");
    let ended = Arc::new(AtomicBool::new(false));
    let monitor = {
        let hub = hub.clone();
        let ended = Arc::clone(&ended);
        let writer_name = writer_name.clone();
        thread::spawn(move || {
            let mut seen = Stalled::default();
            let start = Instant::now();
            let (mut rx_grew, mut tx_grew, mut wrote) = (start, start, start);
            while start.elapsed() < WAIT {
                if let Some(stats) = hub.client_stats(stalled_id)
                    && stats.delivered > seen.delivered
                {
                    seen.delivered = stats.delivered;
                    wrote = Instant::now();
                }
                let (client, server) = tcp_queues(client_end, addr);
                if let Some((_, rx)) = client
                    && rx > seen.client_rx
                {
                    seen.client_rx = rx;
                    rx_grew = Instant::now();
                }
                if let Some((tx, _)) = server
                    && tx > seen.server_tx
                {
                    seen.server_tx = tx;
                    tx_grew = Instant::now();
                }
                if threads_named_exactly(&writer_name) == 0 {
                    let now = Instant::now();
                    ended.store(true, Ordering::Release);
                    seen.after_rx_full = now - rx_grew;
                    seen.after_tx_full = now - tx_grew;
                    seen.after_last_write = now - wrote;
                    return Some(seen);
                }
                // Reading /proc/net/tcp costs: every 10 ms is enough against
                // a 500 ms timeout.
                thread::sleep(ms(10));
            }
            None
        })
    };
    let stalled_from = publisher.published_at.len();
    let deadline = Instant::now() + WAIT;
    while !ended.load(Ordering::Acquire) {
        assert!(
            Instant::now() < deadline,
            "the stalled client's writer still runs after {} events: {:?}",
            publisher.published_at.len() - stalled_from,
            hub.client_stats(stalled_id)
        );
        publisher.publish_next();
    }
    let stalled_until = publisher.published_at.len();
    let seen = monitor
        .join()
        .expect("the monitor panicked")
        .expect("the stalled writer ended");
    eprintln!(
        "stalled client: its writer wrote {} events ({} KB), its receive queue reached {} KB \
         and the server's send queue {} KB; the writer ended {:?} after the receive queue \
         last grew, {:?} after the send queue last grew, {:?} after its last write; \
         {} events were published while it was connected",
        seen.delivered,
        seen.delivered as usize * (PAYLOAD + 8) / 1000,
        seen.client_rx / 1000,
        seen.server_tx / 1000,
        seen.after_rx_full,
        seen.after_tx_full,
        seen.after_last_write,
        stalled_until - stalled_from
    );
    // Its buffers filled: bytes waited in its receive queue, and half a MB
    // or more in the server's send queue, unable to go anywhere.
    assert!(
        seen.client_rx > 0 && seen.server_tx >= 512 * 1024,
        "the socket queues were seen filling: {seen:?}"
    );
    // The client took no bytes from the moment its receive queue stopped
    // growing: it is cut off one write timeout after that, not before, and
    // not much later (the writer's last write and the full send queue come
    // between the two, so they bound the end from above too).
    assert!(
        seen.after_rx_full >= WRITE_TIMEOUT - ms(100),
        "the writer ended {:?} after the client stopped taking bytes, before the write \
         timeout {WRITE_TIMEOUT:?}",
        seen.after_rx_full
    );
    assert!(
        seen.after_rx_full <= WRITE_TIMEOUT + END_SLACK
            && seen.after_tx_full <= WRITE_TIMEOUT + END_SLACK,
        "the writer ended too late: {seen:?}"
    );

    // The hub let go of it, and told the disconnect hook why.
    assert!(
        wait_until(WAIT, || hub.client_stats(stalled_id).is_none()
            && hub.stats().streams == READERS
            && hub.stats().clients == READERS),
        "{:?}",
        hub.stats()
    );
    // Why it left is the subject of the next test; here only who.
    let (id, reason, stalled_dropped) = gone_rx.recv_timeout(WAIT).expect("on_disconnect");
    assert_eq!(id, stalled_id, "{reason:?}");
    drop(stalled);

    // A few more events with the readers alone, then the end.
    for _ in 0..5 {
        publisher.publish_next();
    }
    let published = publisher.published_at.len();
    hub.shutdown().expect("shutdown");

    let mut baseline = Vec::new();
    let mut with_stalled = Vec::new();
    for (i, reader) in readers.into_iter().enumerate() {
        let (version, end, reader) = reader.join().expect("a reader panicked");
        let arrivals = reader.arrivals;
        assert_eq!(
            arrivals.len(),
            published,
            "reader {i} (HTTP/{version}) got every event"
        );
        let clean = if version == "1.1" {
            End::FinalChunk
        } else {
            End::Eof
        };
        assert_eq!(end, Some(clean), "reader {i} (HTTP/{version})");
        for (seq, arrived) in arrivals.iter().enumerate() {
            let latency = *arrived - publisher.published_at[seq];
            if seq < BASELINE_EVENTS {
                baseline.push(latency);
            } else if (stalled_from..stalled_until).contains(&seq) {
                with_stalled.push(latency);
            }
        }
    }
    for &id in &reader_ids {
        assert!(hub.client_stats(id).is_none());
    }
    // The stalled client may have missed events before it was cut off;
    // every miss is its own.
    assert_eq!(
        hub.stats().dropped,
        stalled_dropped,
        "no reader missed an event"
    );

    let base_p95 = percentile(&mut baseline, 0.95);
    let stalled_p95 = percentile(&mut with_stalled, 0.95);
    eprintln!(
        "per-event latency, {READERS} readers: alone p50 {:?} p95 {base_p95:?} max {:?}; \
         with the stalled client p50 {:?} p95 {stalled_p95:?} max {:?}",
        percentile(&mut baseline, 0.5),
        baseline.last().expect("samples"),
        percentile(&mut with_stalled, 0.5),
        with_stalled.last().expect("samples"),
    );
    assert!(
        stalled_p95 <= base_p95 * 5 + ms(50),
        "p95 latency {stalled_p95:?} with the stalled client, {base_p95:?} without"
    );
}

#[test]
fn the_disconnect_hook_says_timed_out_for_a_client_that_never_reads() {
    let _serial = serial();
    init_logging();
    let (gone_tx, gone_rx) = crossbeam_channel::unbounded();
    let hub = plain_hub()
        .write_timeout(WRITE_TIMEOUT)
        .keep_alive(None)
        .on_disconnect(move |d| {
            let _ = gone_tx.send((d.id, d.reason.clone()));
        })
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut stalled = TcpStream::connect(server.local_addr()).expect("connect");
    stalled
        .write_all(b"GET /events HTTP/1.1\r\nHost: stalled\r\n\r\n")
        .expect("send the request");
    assert!(wait_until(WAIT, || hub.stats().clients == 1));
    let id = hub.clients()[0].id;
    // Events of 64 KiB until the writer gives up. A few MB fill the
    // buffers; they must fill fast, because the writer's clock starts only
    // then, while the kernel's TCP_USER_TIMEOUT (2 s here) counts from when
    // the client's window closed, after the first few events: a slow fill
    // lets the kernel cut the connection first, and the writer then sees a
    // broken pipe. 4 events per 10 ms fill them in a fraction of a second
    // even on a loaded machine; the queue may overflow (the client misses
    // events, which changes nothing here).
    let deadline = Instant::now() + WAIT;
    let mut seq = 0;
    let reason = loop {
        if let Ok((gone, reason)) = gone_rx.try_recv() {
            assert_eq!(gone, id);
            break reason;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client is still connected"
        );
        for _ in 0..4 {
            hub.notify(fixed_payload(seq, PAYLOAD)).expect("notify");
            seq += 1;
        }
        // Pacing, not synchronisation.
        thread::sleep(ms(10));
    };
    eprintln!("cut off after {seq} events: {reason:?}");
    assert_eq!(hub.client_stats(id).map(|c| c.dropped), None);
    assert_eq!(
        reason,
        DisconnectReason::TimedOut,
        "the client never closed its connection; it took no bytes for the write timeout"
    );
    drop(stalled);
    hub.shutdown().expect("shutdown");
}
