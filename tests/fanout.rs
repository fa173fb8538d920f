//! Fan-out: 200 stream clients each receive 1,000 events, all of them, in
//! publish order.

mod support;

use std::thread;
use std::time::Duration;

use sse_server::{Event, Server};
use support::client::{Client, End};
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::{ms, wait_until};

const CLIENTS: usize = 200;
const EVENTS: usize = 1000;
const READERS: usize = 8;

#[test]
fn every_client_receives_every_event_in_order() {
    init_logging();
    let hub = plain_hub()
        .client_buffer(2048)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    // A mix of HTTP/1.1 and HTTP/1.0 clients; each is registered once its
    // response head has been read.
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let version = if i % 4 == 3 { "1.0" } else { "1.1" };
        let client = Client::connect(addr, "/events", version, &[])
            .unwrap_or_else(|e| panic!("connect client {i}: {e}"));
        assert_eq!(client.status, 200, "client {i}");
        clients.push((i, client));
    }
    assert_eq!(hub.stats().clients, CLIENTS);

    // Readers start before the publisher, so reading overlaps publishing.
    let mut groups: Vec<Vec<(usize, Client)>> = (0..READERS).map(|_| Vec::new()).collect();
    for (n, entry) in clients.into_iter().enumerate() {
        groups[n % READERS].push(entry);
    }
    let readers: Vec<_> = groups
        .into_iter()
        .map(|group| {
            thread::spawn(move || {
                let mut done = Vec::new();
                for (i, mut client) in group {
                    for seq in 0..EVENTS {
                        let event = client.expect_event(
                            Duration::from_secs(10),
                            &format!("client {i}, event {seq}"),
                        );
                        assert_eq!(event.data, format!("payload {seq}"), "client {i}: order");
                        assert_eq!(event.last_event_id, seq.to_string(), "client {i}: id");
                        assert_eq!(event.event_type, "seq", "client {i}: type");
                    }
                    done.push((i, client));
                }
                done
            })
        })
        .collect();

    for seq in 0..EVENTS {
        let event = Event::new(format!("payload {seq}"))
            .with_event("seq")
            .expect("valid name")
            .with_id(seq.to_string())
            .expect("valid id");
        hub.publish(&event).expect("publish");
    }

    let mut clients = Vec::new();
    for reader in readers {
        clients.extend(reader.join().expect("a reader thread panicked"));
    }
    assert_eq!(clients.len(), CLIENTS);

    let stats = hub.stats();
    assert_eq!(stats.published, EVENTS as u64);
    assert_eq!(stats.dropped, 0, "no client missed an event");
    assert_eq!(stats.queued, (EVENTS * CLIENTS) as u64);
    assert_eq!(stats.clients, CLIENTS);
    // The writer counts an event as delivered right after its write returns.
    assert!(
        wait_until(Duration::from_secs(5), || {
            let all = hub.clients();
            all.len() == CLIENTS
                && all
                    .iter()
                    .all(|c| c.delivered == EVENTS as u64 && c.dropped == 0)
        }),
        "per-client counters: {:?}",
        hub.clients()
            .iter()
            .find(|c| c.delivered != EVENTS as u64 || c.dropped != 0)
    );

    // No extra event is on its way: after shutdown every stream ends right
    // after the last event.
    hub.shutdown().expect("shutdown");
    for (i, client) in &mut clients {
        let want = if *i % 4 == 3 {
            End::Eof
        } else {
            End::FinalChunk
        };
        assert_eq!(
            client.wait_end(Duration::from_secs(5)),
            Some(want),
            "client {i}"
        );
        assert_eq!(client.next_event(ms(0)), None, "client {i}: no extra event");
    }
}
