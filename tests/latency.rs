//! An event published while a client is connected reaches it within 100 ms:
//! nothing sits in a buffer waiting for more bytes (the one timing
//! assertion of the suite).

mod support;

use std::time::{Duration, Instant};

use sse_server::{Event, Server};
use support::client::Client;
use support::hubs::plain_hub;
use support::init_logging;
use support::wait::ms;

const LIMIT: Duration = Duration::from_millis(100);
const ROUNDS: usize = 20;

fn check_latency(http_version: &str) {
    init_logging();
    // The default keep-alive (15 s) never fires during the test, so every
    // byte that arrives is an event.
    let hub = plain_hub().build().expect("build the hub");
    let server = Server::bind("127.0.0.1:0", &hub).expect("bind");
    let mut client =
        Client::connect(server.local_addr(), "/events", http_version, &[]).expect("connect");
    assert_eq!(client.status, 200);

    let mut worst = Duration::ZERO;
    for round in 0..ROUNDS {
        // Small events (a buffer waiting to fill would hold them) and, every
        // fifth round, a named one with an id.
        let started = Instant::now();
        if round % 5 == 4 {
            let event = Event::new(format!("{round}"))
                .with_event("tick")
                .expect("valid name")
                .with_id(round.to_string())
                .expect("valid id");
            hub.publish(&event).expect("publish");
        } else {
            hub.notify(format!("{round}")).expect("notify");
        }
        let event = client.expect_event(Duration::from_secs(2), &format!("event {round}"));
        let took = started.elapsed();
        assert_eq!(event.data, round.to_string(), "HTTP/{http_version}");
        assert!(
            took < LIMIT,
            "HTTP/{http_version}: event {round} took {took:?} from publish to receipt"
        );
        worst = worst.max(took);
    }
    eprintln!("HTTP/{http_version}: worst publish-to-receipt time {worst:?}");
    // Nothing else arrived in between: the body is exactly the events.
    assert!(client.next_event(ms(0)).is_none());
    hub.shutdown().expect("shutdown");
}

#[test]
fn events_arrive_within_100_ms_over_http_1_1() {
    check_latency("1.1");
}

#[test]
fn events_arrive_within_100_ms_over_http_1_0() {
    check_latency("1.0");
}
