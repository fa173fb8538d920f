//! A client that goes away is removed from the hub and its writer thread
//! ends: on an idle stream (noticed at the next keep-alive) and while
//! events keep flowing (noticed at the next event).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use sse_server::{ClientId, Server};
use support::client::Client;
use support::hubs::{client_ids, new_client_id, plain_hub};
use support::init_logging;
use support::proc::threads_named_exactly;
use support::serial;
use support::wait::{ms, wait_until};

// Writer threads are named after client ids, which every hub numbers from
// 1: the tests of this file run one at a time (`serial`) so that names are
// unique.

const WAIT: Duration = Duration::from_secs(5);

fn writer_name(id: ClientId) -> String {
    format!("sse-client-{id}")
}

#[test]
fn an_idle_client_that_leaves_is_removed_at_the_next_keep_alive() {
    let _serial = serial();
    init_logging();
    let hub = plain_hub()
        .keep_alive(Some(ms(50)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");

    for version in ["1.1", "1.0"] {
        assert_eq!(hub.stats().clients, 0);
        let client =
            Client::connect(server.local_addr(), "/events", version, &[]).expect("connect");
        assert_eq!(hub.stats().clients, 1, "HTTP/{version}: registered");
        let id = new_client_id(&hub, &[]);
        let name = writer_name(id);
        assert_eq!(
            threads_named_exactly(&name),
            1,
            "HTTP/{version}: the writer thread {name} runs"
        );
        drop(client);
        assert!(
            wait_until(WAIT, || hub.stats().clients == 0),
            "HTTP/{version}: the client is removed; stats: {:?}",
            hub.stats()
        );
        assert!(hub.client_stats(id).is_none(), "HTTP/{version}");
        assert!(
            wait_until(WAIT, || threads_named_exactly(&name) == 0),
            "HTTP/{version}: the writer thread {name} ends"
        );
    }
    hub.shutdown().expect("shutdown");
}

#[test]
fn many_clients_leave_one_stays() {
    let _serial = serial();
    let hub = plain_hub()
        .keep_alive(Some(ms(50)))
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let mut stayer = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    let stayer_id = new_client_id(&hub, &[]);
    let leavers: Vec<Client> = (0..20)
        .map(|i| {
            let version = if i % 2 == 0 { "1.1" } else { "1.0" };
            Client::connect(addr, "/events", version, &[]).expect("connect a leaver")
        })
        .collect();
    assert_eq!(hub.stats().clients, 21);
    let leaver_ids: Vec<ClientId> = client_ids(&hub)
        .into_iter()
        .filter(|&id| id != stayer_id)
        .collect();
    assert_eq!(leaver_ids.len(), 20);
    drop(leavers);

    assert!(
        wait_until(WAIT, || hub.stats().clients == 1),
        "the leavers are removed; stats: {:?}",
        hub.stats()
    );
    assert_eq!(client_ids(&hub), [stayer_id]);
    for &id in &leaver_ids {
        let name = writer_name(id);
        assert!(
            wait_until(WAIT, || threads_named_exactly(&name) == 0),
            "the writer thread {name} ends"
        );
    }
    assert_eq!(threads_named_exactly(&writer_name(stayer_id)), 1);

    hub.notify("still here").expect("notify");
    let event = stayer.expect_event(WAIT, "an event for the client that stayed");
    assert_eq!(event.data, "still here");
    hub.shutdown().expect("shutdown");
}

#[test]
fn a_client_that_leaves_while_events_flow_is_removed() {
    let _serial = serial();
    // No keep-alives: only the events can reveal that the client left.
    let hub = plain_hub()
        .keep_alive(None)
        .client_buffer(1 << 16)
        .build()
        .expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let addr = server.local_addr();

    let mut stayer = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    let stayer_id = new_client_id(&hub, &[]);
    let mut leaver = Client::connect(addr, "/events", "1.1", &[]).expect("connect");
    let leaver_id = new_client_id(&hub, &[stayer_id]);
    let leaver_thread = writer_name(leaver_id);
    assert_eq!(threads_named_exactly(&leaver_thread), 1);

    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let hub = hub.clone();
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) && seq < 20_000 {
                hub.notify(seq.to_string()).expect("notify while flowing");
                seq += 1;
                // Pacing, not synchronisation: a steady trickle of events.
                thread::sleep(ms(1));
            }
            seq
        })
    };

    // Events are flowing to the leaver...
    for seq in 0..5 {
        let event = leaver.expect_event(WAIT, "an event before leaving");
        assert_eq!(event.data, seq.to_string());
    }
    // ...when it goes.
    drop(leaver);
    assert!(
        wait_until(WAIT, || hub.stats().clients == 1),
        "the leaver is removed while events flow; stats: {:?}",
        hub.stats()
    );
    assert!(hub.client_stats(leaver_id).is_none());
    assert!(hub.client_stats(stayer_id).is_some());
    assert!(
        wait_until(WAIT, || threads_named_exactly(&leaver_thread) == 0),
        "the writer thread {leaver_thread} ends"
    );

    // The client that stayed got every event, in order, before and after.
    let published_so_far = hub.stats().published;
    let mut next = 0u64;
    while next < published_so_far + 5 {
        let event = stayer.expect_event(WAIT, &format!("event {next} for the client that stayed"));
        assert_eq!(event.data, next.to_string());
        next += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let published = publisher.join().expect("the publisher panicked");
    assert!(published >= next);
    assert_eq!(hub.stats().dropped, 0);
    hub.shutdown().expect("shutdown");
}
