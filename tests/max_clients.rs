//! `max_clients`: past the limit a client is turned away (an event-stream
//! client with the `sse-busy` answer, others with `503 Service Unavailable`
//! and `Retry-After`; tests/busy.rs checks both in full), no writer thread
//! is started for it, and it is counted in `Stats::rejected`; once a client
//! leaves, a new one is served.
//!
//! This file counts the process's `sse-client` threads, so it holds this one
//! test only (each test file is its own process).

mod support;

use std::time::Duration;

use sse_server::{ClientId, Server};
use support::client::{Client, End};
use support::hubs::plain_hub;
use support::init_logging;
use support::proc::{thread_names, threads_named};
use support::wait::{ms, wait_until};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_client_past_max_clients_is_turned_away_without_a_thread() {
    init_logging();
    assert_eq!(threads_named("sse-client"), 0);
    let hub = plain_hub()
        .max_clients(3)
        // The client that leaves is noticed at the next keep-alive.
        .keep_alive(Some(ms(50)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let mut clients: Vec<Client> = (0..3)
        .map(|i| {
            let client = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
            assert_eq!(client.status, 200, "client {i}");
            client
        })
        .collect();
    assert_eq!(hub.stats().streams, 3);
    assert_eq!(threads_named("sse-client"), 3, "{:?}", thread_names());
    let first_ids: Vec<ClientId> = {
        let mut ids: Vec<ClientId> = hub.clients().into_iter().map(|c| c.id).collect();
        ids.sort();
        ids
    };

    // The 4th (HTTP/1.1, an event-stream client) and a 5th (HTTP/1.0,
    // accepting anything): turned away.
    for (n, version) in [(1u64, "1.1"), (2, "1.0")] {
        if version == "1.1" {
            let mut refused = Client::connect(addr, "/events", version, &[]).expect("connect");
            assert_eq!(refused.status, 200, "HTTP/{version}");
            assert_eq!(refused.wait_end(WAIT), Some(End::Complete));
            let told = refused.take_parsed();
            assert_eq!(told.len(), 1, "{told:?}");
            assert_eq!(told[0].event_type, "sse-busy");
            assert_eq!(told[0].data, "too-many-clients");
        } else {
            let headers = [("Accept", "*/*")];
            let mut refused =
                Client::request(addr, "GET", "/events", version, &headers, b"").expect("request");
            assert_eq!(refused.status, 503, "HTTP/{version}");
            assert_eq!(refused.reason, "Service Unavailable", "HTTP/{version}");
            assert_eq!(refused.header("Retry-After"), Some("5"), "HTTP/{version}");
            assert_eq!(refused.read_to_end(WAIT), b"service unavailable\n");
        }
        // The hub counts a refusal before answering it.
        assert_eq!(hub.stats().rejected, n, "HTTP/{version}");
        assert_eq!(hub.stats().streams, 3, "HTTP/{version}");
        assert_eq!(hub.stats().clients, 3, "HTTP/{version}");
        assert_eq!(
            threads_named("sse-client"),
            3,
            "HTTP/{version}: no writer thread for the refused client: {:?}",
            thread_names()
        );
    }

    // The streams that were there carry on.
    hub.notify("still three").expect("notify");
    for client in &mut clients {
        let event = client.expect_event(WAIT, "an event for the first three");
        assert_eq!(event.data, "still three");
    }

    // One leaves; once the hub has noticed, a new client is served.
    drop(clients.remove(0));
    assert!(
        wait_until(WAIT, || hub.stats().streams == 2
            && threads_named("sse-client") == 2),
        "the client that left is gone: {:?}, threads {:?}",
        hub.stats(),
        thread_names()
    );
    let mut newcomer = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(newcomer.status, 200);
    assert_eq!(hub.stats().streams, 3);
    assert_eq!(hub.stats().rejected, 2);
    assert_eq!(threads_named("sse-client"), 3);
    // Writer threads are numbered as they start: had a thread been started
    // (and ended) for either refused client, the newcomer's id would be
    // past 4.
    let new_ids: Vec<ClientId> = hub
        .clients()
        .into_iter()
        .map(|c| c.id)
        .filter(|id| !first_ids.contains(id))
        .collect();
    assert_eq!(
        new_ids,
        [ClientId::new(first_ids[2].get() + 1)],
        "first clients {first_ids:?}"
    );
    hub.notify("welcome").expect("notify");
    let event = newcomer.expect_event(WAIT, "an event for the newcomer");
    assert_eq!(event.data, "welcome");

    // Full again: the next one is turned away.
    let refused = Client::request(addr, "GET", "/events", "1.1", &[], b"").expect("request");
    assert_eq!(refused.status, 503);
    assert_eq!(hub.stats().rejected, 3);
    hub.shutdown().expect("shutdown");
}
