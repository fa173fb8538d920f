//! `max_clients`: past the limit a client gets `503 Service Unavailable`
//! with `Retry-After`, no writer thread is started for it, and it is counted
//! in `Stats::rejected`; once a client leaves, a new one is served.
//!
//! This file counts the process's `sse-client` threads, so it holds this one
//! test only (each test file is its own process).

mod support;

use std::time::Duration;

use sse_server::{ClientId, Server};
use support::{Client, ms, thread_names, threads_named, wait_until};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn the_client_past_max_clients_gets_503_and_no_thread() {
    support::init_logging();
    assert_eq!(threads_named("sse-client"), 0);
    let hub = support::plain_hub()
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

    // The 4th (HTTP/1.1) and a 5th (HTTP/1.0): turned away.
    for (n, version) in [(1u64, "1.1"), (2, "1.0")] {
        let mut refused = Client::connect(addr, "/events", version, &[]).expect("connect");
        assert_eq!(refused.status, 503, "HTTP/{version}");
        assert_eq!(refused.reason, "Service Unavailable", "HTTP/{version}");
        assert_eq!(refused.header("Retry-After"), Some("5"), "HTTP/{version}");
        assert_ne!(
            refused.header("Content-Type"),
            Some("text/event-stream"),
            "HTTP/{version}"
        );
        assert_eq!(
            refused.read_to_end(WAIT),
            b"service unavailable\n",
            "HTTP/{version}"
        );
        // The hub counts a refusal right after answering it.
        assert!(
            wait_until(WAIT, || hub.stats().rejected == n),
            "HTTP/{version}: {:?}",
            hub.stats()
        );
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
    let refused = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    assert_eq!(refused.status, 503);
    assert!(
        wait_until(WAIT, || hub.stats().rejected == 3),
        "{:?}",
        hub.stats()
    );
    hub.shutdown().expect("shutdown");
}
